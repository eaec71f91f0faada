"""Who may write and read: exporter.auth directly (fake clock), then through the app.

Peers other than loopback are simulated with starlette's TestClient(client=(host, port)): the
ASGI scope's ``client`` is what uvicorn fills from the socket (tests/test_web_config.py runs
the real server). The client's token goes through a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx2 as httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from exporter import auth
from exporter.app import create_app
from exporter.client import MonitorClient
from exporter.client import _stats as client_stats
from exporter.client._delivery import Batch
from exporter.config import load_settings
from exporter.errors import ConfigError, Reason, RejectedInput
from tests.conftest import FakeClock, parse_metrics, sample

EVENT = {"id": "a", "features": {"x": 1.0}, "prediction": 1}
REMOTE = ("10.0.0.5", 40000)
LOCAL = ("127.0.0.1", 40000)


def rejected(client: TestClient, reason: str) -> float | None:
    text = client.get("/metrics", headers={"Authorization": "Bearer read-tok"}).text
    return sample(parse_metrics(text), "model_exporter_events_rejected_total", reason=reason)


def app_with(**overrides: Any) -> Any:
    return create_app(load_settings(None, **overrides), clock=FakeClock(), drift_worker=False)


@pytest.fixture
def peer() -> Iterator[Callable[..., TestClient]]:
    """``peer(app, host)``: a TestClient whose requests come from ``(host, port)``."""
    clients: list[TestClient] = []

    def make(app: Any, address: tuple[str, int] = REMOTE) -> TestClient:
        client = TestClient(app, client=address)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# -- exporter.auth, directly -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("::ffff:10.0.0.5", False),
        ("128.0.0.1", False),
        ("testclient", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_peers(host: str | None, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


def test_token_file_lines_comments_and_scopes() -> None:
    text = "# the writers\n\ntok-all\ntok-f   fraud, churn # two models\n\ttok-x x\n"
    tokens = auth.parse_tokens(text, "auth.write_tokens_file", scoped=True)
    assert [t.models for t in tokens] == [None, frozenset({"fraud", "churn"}), frozenset({"x"})]
    assert [t.origin for t in tokens] == [
        "auth.write_tokens_file line 3",
        "auth.write_tokens_file line 4",
        "auth.write_tokens_file line 5",
    ]
    found = auth.Tokens(tokens).find("tok-f")
    assert found is not None and found.models == frozenset({"fraud", "churn"})
    assert auth.Tokens(tokens).find("tok-") is None


@pytest.mark.parametrize(
    ("text", "scoped", "problem"),
    [
        ("tok a/b\n", True, "line 1: 'a/b' is not a model name"),
        ("ok\ntok fraud,,churn\n", True, "line 2: '' is not a model name"),
        ("a,b\n", True, "line 1: a token is visible ASCII"),
        ("tok fraud\n", False, "line 1: one token a line"),
    ],
)
def test_a_bad_token_line_is_a_config_error_naming_key_and_line(
    text: str, scoped: bool, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        auth.parse_tokens(text, "auth.write_tokens_file", scoped=scoped)
    message = str(info.value)
    assert message.startswith("config key 'auth.write_tokens_file': ")
    assert problem in message and "\n" not in message


def test_unreadable_or_empty_token_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'auth.write_tokens_file': cannot read .*missing"):
        auth.read_tokens(tmp_path / "missing", "auth.write_tokens_file", scoped=True)
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match=r"'auth.metrics_tokens_file': .* holds no token"):
        auth.read_tokens(empty, "auth.metrics_tokens_file", scoped=False)


def test_a_token_configured_twice_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("same fraud\n")
    settings = load_settings(None, auth={"write_tokens_file": tmp_path / "t"})
    assert len(auth.write_policy(settings.auth).tokens) == 1
    settings = load_settings(
        None, auth={"write_tokens_file": tmp_path / "t", "write_tokens": ["same"]}
    )
    with pytest.raises(ConfigError, match=r"auth\.write_tokens_file line 1 is the token of"):
        auth.write_policy(settings.auth)


def test_every_configured_token_is_compared_in_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    tokens = auth.Tokens(auth.listed_tokens(["first", "second", "third"], "auth.write_tokens"))
    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in ("first", "third", "nope", "a-much-longer-token-than-any-configured"):
        calls.clear()
        tokens.find(presented)
        assert len(calls) == 3  # all of them, whichever matched: no early exit
        assert {len(a) for a, _ in calls} == {len(b) for _, b in calls} == {32}  # digests


def test_write_policy_without_tokens_is_loopback_only() -> None:
    policy = auth.WritePolicy(auth.Tokens([]))
    assert policy.authorize("127.0.0.1", None) == auth.Grant()
    assert policy.authorize("::1", "Bearer anything") == auth.Grant()
    with pytest.raises(RejectedInput) as info:
        policy.authorize("10.0.0.5", None)
    exc = info.value
    assert (exc.reason, exc.status_code, exc.field, exc.value) == (
        Reason.FORBIDDEN,
        403,
        None,
        "10.0.0.5",
    )
    assert "auth.write_tokens_file" in exc.detail and "Authorization: Bearer" in exc.detail
    assert "loopback peers only" in policy.describe()


def test_a_loopback_peer_relayed_to_the_pod_address_is_not_local() -> None:
    """A mesh sidecar (Istio: from 127.0.0.6 to the pod's address) relays other machines."""
    policy = auth.WritePolicy(auth.Tokens([]))
    assert policy.authorize("127.0.0.1", None, "127.0.0.1") == auth.Grant()
    with pytest.raises(RejectedInput) as info:
        policy.authorize("127.0.0.6", None, "10.1.2.3")
    assert info.value.reason is Reason.FORBIDDEN
    assert "to 10.1.2.3, a non-loopback address" in info.value.detail


def test_a_relayed_write_through_the_app_is_forbidden() -> None:
    app = app_with()
    with TestClient(app, base_url="http://10.1.2.3:17090", client=("127.0.0.6", 1)) as client:
        r = client.post("/v1/predictions", json={"model": "fraud", "events": [EVENT]})
    assert r.status_code == 403 and r.json()["value"] == "127.0.0.6"


def test_write_policy_with_tokens_needs_one_from_loopback_too() -> None:
    tokens = auth.parse_tokens("tok-all\ntok-f fraud\n", "k", scoped=True)
    policy = auth.WritePolicy(auth.Tokens(tokens))
    for header in (None, "", "Bearer", "Basic dG9rLWFsbDo=", "Bearer tok-wrong", "tok-all"):
        with pytest.raises(RejectedInput) as info:
            policy.authorize("127.0.0.1", header)
        assert (info.value.reason, info.value.status_code) == (Reason.UNAUTHORIZED, 401)
        assert info.value.field == "Authorization"
        assert "tok-" not in str(info.value.body())  # the credentials are never sent back
    assert policy.authorize("10.0.0.5", "Bearer tok-all") == auth.Grant(None)
    assert policy.authorize("10.0.0.5", "bearer  tok-f ") == auth.Grant(frozenset({"fraud"}))
    assert "2 bearer token(s), 1 of them for some models only" in policy.describe()


def test_a_scoped_grant_refuses_other_models() -> None:
    grant = auth.Grant(frozenset({"fraud"}))
    grant.check("fraud")
    with pytest.raises(RejectedInput) as info:
        grant.check("churn")
    assert (info.value.reason, info.value.field, info.value.value) == (
        Reason.FORBIDDEN,
        "model",
        "churn",
    )
    auth.Grant().check("anything")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def alice_hash() -> bytes:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4))  # cost 4: fast tests


def test_basic_auth_checks_bcrypt_and_remembers_only_successes_briefly(
    monkeypatch: pytest.MonkeyPatch, alice_hash: bytes
) -> None:
    checks: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return real(password, hashed)

    monkeypatch.setattr(auth.bcrypt, "checkpw", counting)
    clock = FakeClock(0.0)
    policy = auth.ReadPolicy({"alice": alice_hash}, auth.Tokens([]), clock=clock)
    assert policy.required and policy.challenge == 'Basic realm="model-exporter"'
    good = basic("alice", "s3cret")
    assert policy.slow(good)
    policy.authenticate(good)
    assert not policy.slow(good)
    policy.authenticate(good)  # remembered: no second bcrypt
    assert checks == [b"s3cret"]
    clock.advance(auth.CACHE_SECONDS)
    assert policy.slow(good)
    policy.authenticate(good)  # expired: checked again
    assert len(checks) == 2
    for wrong in (basic("alice", "nope"), basic("alice", "nope"), basic("bob", "s3cret")):
        with pytest.raises(RejectedInput) as info:
            policy.authenticate(wrong)
        assert info.value.reason is Reason.UNAUTHORIZED
    assert len(checks) == 5  # failures are never remembered; an unknown user costs bcrypt too
    for malformed in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), None):
        with pytest.raises(RejectedInput):
            policy.authenticate(malformed)


def test_read_policy_open_by_default_and_bearer_tokens() -> None:
    auth.ReadPolicy({}, auth.Tokens([])).authenticate(None)
    tokens = auth.Tokens(auth.listed_tokens(["read-tok"], "auth.metrics_tokens"))
    policy = auth.ReadPolicy({}, tokens)
    policy.authenticate("Bearer read-tok")
    assert policy.challenge == 'Bearer realm="model-exporter"'
    with pytest.raises(RejectedInput, match="needs a bearer token"):
        policy.authenticate("Bearer other")


def test_tokens_from_the_environment_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_AUTH__WRITE_TOKENS", "tok-1, tok-2")
    policy = auth.write_policy(load_settings().auth)
    assert policy.authorize("10.0.0.5", "Bearer tok-2") == auth.Grant()
    monkeypatch.setenv("MODEL_EXPORTER_AUTH__WRITE_TOKENS", "tok 1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "'auth.write_tokens' (MODEL_EXPORTER_AUTH__WRITE_TOKENS)" in str(info.value)


# -- through the app ---------------------------------------------------------------------------


def write_routes(app: Any) -> list[tuple[str, str]]:
    """Every documented (method, path) of the app that is not a read, placeholders filled."""
    out = []
    for template, operations in app.openapi()["paths"].items():
        path = template.replace("{model}", "fraud").replace("{model_version}", "v1")
        out += [(m.upper(), path) for m in sorted(operations) if m not in ("get", "head")]
    return out


def test_every_write_route_is_refused_from_another_peer_and_nothing_changes(
    peer: Callable[..., TestClient],
) -> None:
    app = app_with(auth={"metrics_tokens": ["read-tok"]})
    local, remote = peer(app, LOCAL), peer(app, REMOTE)
    assert local.post("/v1/predictions", json={"model": "fraud", "events": [EVENT]}).is_success
    before = local.get("/v1/models/fraud", headers={"Authorization": "Bearer read-tok"}).json()
    routes = write_routes(app)
    assert len(routes) >= 7  # predictions, labels, reference, comparison x2, delete x2
    for method, path in routes:
        r = remote.request(method, path, json={"model": "fraud", "events": [EVENT]})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["reason"] == "forbidden" and r.json()["value"] == "10.0.0.5"
        assert "configure a write token" in r.json()["detail"]
    assert rejected(local, "forbidden") == len(routes)
    after = local.get("/v1/models/fraud", headers={"Authorization": "Bearer read-tok"}).json()
    assert after == before
    assert remote.get("/-/healthy").status_code == 200  # reads stay as they were


def test_write_tokens_from_a_file_any_peer_and_401_without(
    peer: Callable[..., TestClient], tmp_path: Path
) -> None:
    (tmp_path / "tokens").write_text("tok-all\n")
    app = app_with(auth={"write_tokens_file": tmp_path / "tokens", "metrics_tokens": ["read-tok"]})
    local, remote = peer(app, LOCAL), peer(app, REMOTE)
    body = {"model": "fraud", "events": [EVENT]}
    for client, headers in ((local, {}), (local, {"Authorization": "Bearer nope"})):
        r = client.post("/v1/predictions", json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == 'Bearer realm="model-exporter"'
        assert r.json() == {
            "detail": r.json()["detail"],
            "reason": "unauthorized",
            "field": "Authorization",
        }
    assert rejected(local, "unauthorized") == 2
    assert (
        local.get("/v1/models", headers={"Authorization": "Bearer read-tok"}).json()["models"] == []
    )
    r = remote.post("/v1/predictions", json=body, headers={"Authorization": "Bearer tok-all"})
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_a_token_scoped_to_some_models_is_forbidden_the_others_before_any_change(
    peer: Callable[..., TestClient], tmp_path: Path
) -> None:
    (tmp_path / "tokens").write_text("tok-f fraud\n")
    app = app_with(auth={"write_tokens_file": tmp_path / "tokens", "metrics_tokens": ["read-tok"]})
    client = peer(app, REMOTE)
    token = {"Authorization": "Bearer tok-f"}
    events = [EVENT, {**EVENT, "id": "b"}, {**EVENT, "id": "c"}]
    r = client.post("/v1/predictions", json={"model": "churn", "events": events}, headers=token)
    assert r.status_code == 403
    assert (r.json()["reason"], r.json()["field"], r.json()["value"]) == (
        "forbidden",
        "model",
        "churn",
    )
    assert rejected(client, "forbidden") == 3  # the batch's events, as other rejections count
    labels = {"model": "churn", "labels": [{"id": "a", "label": 1}]}
    assert client.post("/v1/labels", json=labels, headers=token).status_code == 403
    reference = {"features": {"x": [1.0, 2.0]}}
    r = client.put("/v1/models/churn/reference", json=reference, headers=token)
    assert r.status_code == 403 and r.json()["value"] == "churn"
    assert client.delete("/v1/models/churn", headers=token).status_code == 403
    models = client.get("/v1/models", headers={"Authorization": "Bearer read-tok"}).json()
    assert models["models"] == []  # nothing registered
    ok = client.post("/v1/predictions", json={"model": "fraud", "events": events}, headers=token)
    assert ok.status_code == 200, ok.text
    r = client.put("/v1/models/fraud/reference", json=reference, headers=token)
    assert r.status_code == 200, r.text


def test_reads_with_metrics_tokens_and_open_health_endpoints(
    peer: Callable[..., TestClient], tmp_path: Path
) -> None:
    (tmp_path / "read").write_text("read-tok\n")
    app = app_with(auth={"metrics_tokens_file": tmp_path / "read"})
    client = peer(app, LOCAL)  # loopback or not: reads follow the read policy only
    for path in ("/metrics", "/v1/models", "/v1/models/x", "/docs", "/openapi.json", "/"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="model-exporter"'
        assert r.json()["reason"] == "unauthorized"
        assert client.get(path, headers={"Authorization": "Bearer read-tok"}).status_code in (
            200,
            404,
        )
    assert client.head("/metrics").status_code == 401
    for path in ("/-/healthy", "/-/ready", "/-/healthy/"):
        assert client.get(path).status_code == 200, path
    assert rejected(client, "unauthorized") == 7


def test_the_start_up_log_states_both_policies(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="exporter"):
        app_with()
    text = caplog.text
    assert "write API: loopback peers only" in text and "auth.write_tokens_file" in text
    assert "reads (/metrics, status pages): open" in text


# -- the client's token, through a real uvicorn ------------------------------------------------


@pytest.fixture
def served_with_tokens() -> Iterator[str]:
    app = app_with(auth={"write_tokens": ["tok-client"], "metrics_tokens": ["read-tok"]})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def test_the_client_sends_its_token(served_with_tokens: str) -> None:
    with MonitorClient(served_with_tokens, model="fraud", token="tok-client") as client:
        assert client.log_prediction("a", {"x": 1.0}, 1)
        assert client.flush(5)
        assert client.stats().sent_events == 1
        result = client.set_reference({"x": [1.0, 2.0, 3.0]})
        assert result["model"] == "fraud"
    status = httpx.get(
        f"{served_with_tokens}/v1/models/fraud", headers={"Authorization": "Bearer read-tok"}
    )
    assert status.status_code == 200


def test_a_client_without_the_token_drops_loudly_without_bisecting(
    served_with_tokens: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="exporter.client"),
        MonitorClient(served_with_tokens, model="fraud", batch_size=10) as client,
    ):
        for i in range(10):
            client.log_prediction(f"p{i}", {"x": 1.0}, 1)
        assert client.flush(5)
        stats = client.stats()
    assert stats.requests == 1  # no event is at fault: no bisection, no retry
    assert stats.dropped_rejected == 10 and stats.rejected_by_reason == {"unauthorized": 10}
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "10 predictions of model 'fraud' refused by the exporter (unauthorized)" in error
    assert "token=" in error  # what to do


def test_refused_credentials_are_logged_as_errors_once_an_interval_never_falling_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    tally = client_stats.Tally(clock=clock)
    batch = Batch("prediction", "fraud", None, [b"{}"] * 4)
    with caplog.at_level(logging.WARNING, logger="exporter.client"):
        for _ in range(3 * client_stats.LOGGED_PER_REASON):
            tally.refused(batch, "forbidden", "this token may not write model 'fraud'")
            clock.advance(1.0)
        assert len(caplog.records) == 1 and caplog.records[0].levelno == logging.ERROR
        clock.advance(client_stats.AUTH_LOG_INTERVAL)
        tally.refused(batch, "forbidden", "again")
        tally.refused(batch, "http_401", "a proxy's")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "(64 refused as forbidden so far)" in messages[1]
    assert "http_401" in messages[2]
    assert tally.snapshot(0).rejected_by_reason == {"forbidden": 64, "http_401": 4}
