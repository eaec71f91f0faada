"""Removing models and versions: deletion, idle expiry, pinning, and what readers see after.

Directly on the store with a fake clock (what is removed and counted, what a declared model
keeps, a write or a drift run racing a removal), then over HTTP (the DELETE routes, the series
gone from the next scrape, JSON 404/405 for wrong paths and methods, trailing slashes), and once
through a real uvicorn server, for names that need percent-encoding.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
import pytest
import uvicorn

import exporter.drift_worker as drift_worker
from exporter.app import create_app
from exporter.config import load_settings
from exporter.drift_worker import DriftCache, refresh
from exporter.errors import Reason, RejectedInput
from exporter.reference import build_reference
from exporter.store import Store
from tests.conftest import T0, FakeClock, parse_metrics
from tests.test_store import events, labels, snap, version


def make_store(**overrides: Any) -> tuple[Store, FakeClock]:
    clock = FakeClock()
    return Store(load_settings(**overrides), clock=clock), clock


def refused(call: Any) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        call()
    return caught.value


# -- deleting -------------------------------------------------------------------------------------


def test_deleting_a_model_removes_it_and_counts_what_waited_in_its_join() -> None:
    store, _ = make_store()
    store.add_predictions("m", "v1", events(["a", "b"]))
    store.add_predictions("m", "v2", events(["c"]))
    store.add_labels("m", labels(["early"]))  # waits for its prediction
    store.add_predictions("n", None, events(["a"]))
    removal = store.delete("m")
    assert (removal.model, removal.versions) == ("m", ("v1", "v2"))
    assert (removal.pending_predictions, removal.pending_labels) == (3, 1)
    assert [s.name for s in store.models()] == ["n"]
    assert refused(lambda: store.get("m")).reason is Reason.UNKNOWN_MODEL
    counts = store.removals()
    assert counts.models == {"deleted": 1, "idle": 0}
    assert counts.dropped == {"prediction": 3, "label": 1}
    assert counts.versions == {"deleted": 0, "idle": 0, "replaced": 0}  # went with the model
    assert refused(lambda: store.delete("m")).reason is Reason.UNKNOWN_MODEL


def test_a_deleted_model_comes_back_empty_and_never_looks_like_the_old_one() -> None:
    store, _ = make_store()
    store.add_predictions("m", None, events(["a", "b"]))
    old = snap(store)
    store.delete("m")
    store.add_predictions("m", None, events(["x", "y", "z"]))
    new = snap(store)
    assert version(new).counters.predictions == 3 and new.counters.labels_received == 0
    # The same revision and version uid: only the model's identity tells the two apart, and
    # readers' caches (the exposition's, by snapshot key) must not take one for the other.
    assert new.revision == old.revision and new.key != old.key
    assert store.add_predictions("m", None, events(["a"])).accepted == 1  # not a duplicate


def test_a_declared_model_stays_declared_with_the_reference_from_its_file() -> None:
    store, _ = make_store(auto_register=False, models={"fraud": {"task": "binary"}})
    reference = build_reference(
        {"x": [1.0, 2.0, 3.0]}, settings=store.settings.drift, source="file", created=T0
    )
    store.load_reference("fraud", reference)
    store.add_predictions("fraud", "v1", events(["a"]))
    store.set_reference(
        "fraud",
        None,
        build_reference({"x": [9.0]}, settings=store.settings.drift, source="upload", created=T0),
    )
    store.delete("fraud")
    assert store.models() == []
    store.add_labels("fraud", labels(["a"]))  # declared: its labels may come first
    again = snap(store, "fraud")
    assert again.task == "binary" and again.pending_labels == 1 and again.versions == ()
    store.add_predictions("fraud", "v1", events(["b"]))
    info = version(snap(store, "fraud"), "v1").reference
    assert (info.source, info.scope, info.reference) == ("file", "model", reference)
    with pytest.raises(RejectedInput):  # an undeclared model is still refused
        store.add_predictions("other", None, events(["a"]))


def test_deleting_a_version_drops_its_waiting_predictions_and_nothing_else() -> None:
    store, _ = make_store()
    store.add_predictions("m", "v1", events(["a", "b"]))
    store.add_predictions("m", "v2", events(["c"]))
    store.add_labels("m", labels(["early"]))
    assert store.delete_version("m", "v1") == 2
    s = snap(store)
    assert [v.name for v in s.versions] == ["v2"] and s.pending_labels == 1
    assert version(s, "v2").pending == 1
    # a's prediction is gone: its label now waits, and c's still joins.
    assert store.add_labels("m", labels(["a", "c"])).as_dict() == {
        "accepted": 2,
        "duplicates": 0,
        "joined": 1,
        "pending": 1,
    }
    counts = store.removals()
    assert counts.versions["deleted"] == 1 and counts.dropped == {"prediction": 2, "label": 0}
    store.add_predictions("m", "v1", events(["d"]))  # a new v1, from nothing
    assert version(snap(store), "v1").counters.predictions == 1


def test_unknown_models_and_versions_are_404s_naming_what_exists() -> None:
    store, _ = make_store()
    assert refused(lambda: store.delete_version("m", "v1")).reason is Reason.UNKNOWN_MODEL
    store.add_predictions("m", "v1", events(["a"]))
    e = refused(lambda: store.delete_version("m", "v9"))
    assert (e.reason, e.status_code, e.field, e.value) == (
        Reason.UNKNOWN_VERSION,
        404,
        "model_version",
        "v9",
    )
    assert "v1" in e.message
    assert [v.name for v in snap(store).versions] == ["v1"]


# -- pinned versions ------------------------------------------------------------------------------


def test_a_pinned_version_is_never_replaced_expired_or_deleted() -> None:
    store, clock = make_store(
        windows=["5m"],
        limits={"max_versions_per_model": 2, "idle_model_ttl": "1h"},
        join={"prediction_ttl": "1m"},
    )
    store.add_predictions("m", "v1", events(["a"]))
    clock.advance(10)
    store.add_predictions("m", "v2", events(["b"]))
    store.get("m").pin("v1")
    e = refused(lambda: store.delete_version("m", "v1"))
    assert (e.reason, e.status_code, e.field, e.value) == (
        Reason.PINNED_VERSION,
        409,
        "model_version",
        "v1",
    )
    assert refused(lambda: store.delete("m")).reason is Reason.PINNED_VERSION
    clock.advance(600)  # both idle past the longest window: v1 is the oldest, but pinned
    store.add_predictions("m", "v3", events(["c"]))
    assert [v.name for v in snap(store).versions] == ["v1", "v3"]
    assert store.removals().versions["replaced"] == 1
    clock.advance(7200)  # everything idle past idle_model_ttl
    store.expire_all()
    assert [v.name for v in snap(store).versions] == ["v1"]  # v3 expired, v1 and m stay
    store.get("m").unpin("v1")
    store.expire_all()
    assert store.models() == []
    assert store.removals().models["idle"] == 1


# -- idle expiry ----------------------------------------------------------------------------------


def test_an_idle_model_expires_after_the_ttl_and_not_before() -> None:
    store, clock = make_store(limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "1m"})
    store.add_predictions("m", None, events(["a"]))
    clock.advance(1800)
    store.add_labels("m", labels(["zzz"]))  # labels are activity too (this one waits 10 min)
    clock.advance(3599)
    store.expire_all()
    assert [s.name for s in store.models()] == ["m"]
    clock.advance(1)
    store.expire_all()
    assert store.models() == []
    counts = store.removals()
    assert counts.models == {"deleted": 0, "idle": 1}
    assert counts.dropped == {"prediction": 0, "label": 0}  # nothing waited: nothing dropped


@pytest.mark.parametrize("waiting", ["prediction", "label"])
def test_a_model_with_anything_waiting_in_its_join_is_not_idle(waiting: str) -> None:
    store, clock = make_store(
        limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "3h", "label_ttl": "3h"}
    )
    store.add_predictions("m", None, events(["a"], label=None if waiting == "prediction" else 1))
    if waiting == "label":
        store.add_labels("m", labels(["b"]))  # waits for its prediction
    clock.advance(7200)
    store.expire_all()
    assert [s.name for s in store.models()] == ["m"]
    clock.advance(3600)  # the waiting entries expire after 3 h: then it is idle
    store.expire_all()
    assert store.models() == []


def test_idle_versions_expire_while_their_model_stays_active() -> None:
    store, clock = make_store(limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "1m"})
    store.add_predictions("m", "v1", events(["a"]))
    store.add_predictions("m", "v2", events(["b"]))
    clock.advance(3000)
    store.add_predictions("m", "v2", events(["c"]))
    clock.advance(600)
    store.expire_all()
    assert [v.name for v in snap(store).versions] == ["v2"]
    assert store.removals().versions == {"deleted": 0, "idle": 1, "replaced": 0}


def test_a_label_joined_to_a_version_is_its_activity() -> None:
    store, clock = make_store(limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "2h"})
    store.add_predictions("m", "v1", events(["a"]))
    store.add_predictions("m", "v2", events(["b"], label=1))
    clock.advance(3000)
    store.add_labels("m", labels(["a"]))  # joins v1's prediction: v1 was active just now
    clock.advance(600)
    store.expire_all()
    assert [v.name for v in snap(store).versions] == ["v1"]  # v2 idle for 1 h: expired
    clock.advance(3000)
    store.expire_all()
    assert store.models() == []


def test_an_idle_ttl_of_zero_keeps_models_forever() -> None:
    store, clock = make_store(limits={"idle_model_ttl": 0})
    store.add_predictions("m", None, events(["a"]))
    clock.advance(10 * 365 * 86400.0)
    store.expire_all()
    assert [s.name for s in store.models()] == ["m"]


# -- races ----------------------------------------------------------------------------------------


def test_a_write_that_loses_the_race_to_a_delete_goes_to_the_model_registered_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = make_store()
    store.add_predictions("m", None, events(["a"]))
    old = store.get("m")
    write = old.add_predictions

    def deleted_meanwhile(*args: Any) -> Any:  # the writer found the model, then lost the race
        store.delete("m")
        return write(*args)

    monkeypatch.setattr(old, "add_predictions", deleted_meanwhile)
    assert store.add_predictions("m", None, events(["b", "c"])).accepted == 2
    assert store.get("m") is not old
    assert version(snap(store)).counters.predictions == 2


def test_a_delete_waiting_for_a_busy_model_holds_up_no_other_model() -> None:
    """A DELETE waits for the model's lock (a batch being committed), not with the store's
    lock held: other models are written and read meanwhile; then the model is gone, and a write
    to it that came after registers it anew."""
    store, _ = make_store()
    store.add_predictions("busy", None, events(["a"]))
    busy = store.get("busy")
    deleted = threading.Event()
    with busy.lock:  # a batch of "busy" being committed
        deleter = threading.Thread(target=lambda: (store.delete("busy"), deleted.set()))
        deleter.start()
        assert not deleted.wait(0.2)  # the delete waits for the model ...
        # ... and the store is not blocked: others register, write and are read.
        assert store.add_predictions("other", None, events(["x"])).accepted == 1
        assert {s.name for s in store.models()} == {"busy", "other"}
    deleter.join(5)
    assert deleted.is_set() and busy.closed
    assert {s.name for s in store.models()} == {"other"}
    assert store.removals().models["deleted"] == 1
    assert store.add_predictions("busy", None, events(["a"])).accepted == 1  # anew: not a dup
    assert store.get("busy") is not busy


def test_a_drift_run_in_flight_does_not_bring_a_deleted_model_or_version_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = make_store(windows=["5m"])
    cache = DriftCache()
    store.on_removed(cache.forget)
    store.add_predictions("m", "v1", events(["a", "b", "c"]))
    store.add_predictions("m", "v2", events(["d", "e", "f"]))
    store.add_predictions("n", None, events(["a", "b", "c"]))
    compute = drift_worker.compute
    removals = iter([lambda: store.delete_version("m", "v2"), lambda: store.delete("n")])

    def removed_meanwhile(*args: Any, **kwargs: Any) -> Any:
        next(removals, lambda: None)()  # removed after the snapshot, before the result
        return compute(*args, **kwargs)

    monkeypatch.setattr(drift_worker, "compute", removed_meanwhile)
    assert refresh(store, cache).computed == 3  # computed, and the removed ones refused
    assert set(cache.results("m")) == {("v1", "5m")}
    assert cache.results("n") == {} and cache.known("n") == {}
    monkeypatch.setattr(drift_worker, "compute", compute)
    store.add_predictions("n", None, events(["x"]))  # registered anew: computed afresh
    store.add_predictions("m", "v2", events(["x"]))
    assert refresh(store, cache).computed == 2
    assert cache.results("n")[("default", "5m")].window_events == 1
    assert cache.results("m")[("v2", "5m")].window_events == 1


def test_the_removals_the_cache_remembers_stay_bounded() -> None:
    store, _ = make_store()
    cache = DriftCache()
    store.on_removed(cache.forget)
    for i in range(50):
        store.add_predictions(f"m{i}", None, events(["a"]))
        store.delete(f"m{i}")
        refresh(store, cache)
    assert cache._removed == {}  # a removal is kept only until a run that began after it ends


# -- over HTTP ------------------------------------------------------------------------------------


def series_of(metrics: dict[Any, float], **labels: str) -> list[Any]:
    return [
        key
        for key in metrics
        if all(dict(key[1]).get(name) == value for name, value in labels.items())
    ]


def post(exp: Any, model: str, ids: list[str], **extra: Any) -> Any:
    body = [{"id": i, "features": {"x": 1.0}, "prediction": 1} for i in ids]
    return exp.predictions(model, body, **extra)


def test_delete_a_model_over_http_and_its_series_are_gone_from_the_next_scrape(
    make_exporter,
) -> None:
    exp = make_exporter(drift={"reference_size": 2, "min_samples": 2})
    post(exp, "fraud", ["a", "b", "c"], model_version="v1")
    post(exp, "other", ["a"])
    exp.refresh_drift()
    assert series_of(exp.metrics(), model="fraud")  # scraped once: cached by the exposition
    r = exp.client.delete("/v1/models/fraud")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "model": "fraud",
        "declared": False,
        "removed_versions": ["v1"],
        "pending_predictions_dropped": 3,
        "pending_labels_dropped": 0,
    }
    metrics = exp.metrics()
    assert series_of(metrics, model="fraud") == [] and series_of(metrics, model="other")
    assert metrics[("model_exporter_models_removed_total", frozenset({("reason", "deleted")}))] == 1
    dropped = ("model_exporter_pending_dropped_total", frozenset({("kind", "prediction")}))
    assert metrics[dropped] == 3
    assert exp.client.get("/v1/models/fraud").status_code == 404
    assert [m["model"] for m in exp.client.get("/v1/models").json()["models"]] == ["other"]
    exp.refresh_drift()  # the worker does not bring it back either
    assert series_of(exp.metrics(), model="fraud") == []
    r = exp.client.delete("/v1/models/fraud")
    assert (r.status_code, r.json()["reason"], r.json()["value"]) == (404, "unknown_model", "fraud")


def test_a_model_recreated_between_scrapes_is_not_served_from_the_old_one(make_exporter) -> None:
    exp = make_exporter()
    post(exp, "m", ["a", "b", "c"])
    before = exp.metrics()
    key = ("model_predictions_total", frozenset({("model", "m"), ("model_version", "default")}))
    assert before[key] == 3
    assert exp.client.delete("/v1/models/m").status_code == 200
    post(exp, "m", ["x", "y"])  # same revision, same version uid, same buckets: a new model
    assert exp.metrics()[key] == 2
    assert exp.status("m")["versions"]["default"]["predictions_total"] == 2


def test_delete_a_version_over_http(make_exporter) -> None:
    exp = make_exporter()
    post(exp, "m", ["a", "b"], model_version="v1")
    post(exp, "m", ["c"], model_version="v2")
    r = exp.client.delete("/v1/models/m/versions/v1")
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "m", "model_version": "v1", "pending_predictions_dropped": 2}
    metrics = exp.metrics()
    assert series_of(metrics, model="m", model_version="v1") == []
    assert series_of(metrics, model="m", model_version="v2")
    removed = ("model_exporter_versions_removed_total", frozenset({("reason", "deleted")}))
    assert metrics[removed] == 1
    r = exp.client.delete("/v1/models/m/versions/v1")
    assert r.status_code == 404
    assert (r.json()["reason"], r.json()["field"]) == ("unknown_version", "model_version")
    assert exp.client.delete("/v1/models/nope/versions/v1").json()["reason"] == "unknown_model"
    exp.app.state.store.get("m").pin("v2")
    r = exp.client.delete("/v1/models/m/versions/v2")
    assert (r.status_code, r.json()["reason"]) == (409, "pinned_version")
    assert exp.client.delete("/v1/models/m").status_code == 409
    assert exp.status("m")["versions"]["v2"]["predictions_total"] == 1


def test_a_declared_model_deleted_over_http_stays_declared(make_exporter) -> None:
    exp = make_exporter(auto_register=False, models={"fraud": {"task": "binary"}})
    post(exp, "fraud", ["a"])
    r = exp.client.delete("/v1/models/fraud")
    assert r.json()["declared"] is True
    exp.labels("fraud", [{"id": "a", "label": 1}])  # accepted: it is still declared
    assert exp.status("fraud")["pending_labels"] == 1


def test_idle_models_expire_on_the_drift_workers_run(make_exporter) -> None:
    exp = make_exporter(limits={"idle_model_ttl": "1h"}, join={"prediction_ttl": "1m"})
    post(exp, "m", ["a"])
    exp.clock.advance(3600)
    exp.refresh_drift()
    metrics = exp.metrics()
    assert series_of(metrics, model="m") == []
    assert metrics[("model_exporter_models_removed_total", frozenset({("reason", "idle")}))] == 1


def test_a_wrong_path_is_a_json_404_listing_the_endpoints(make_exporter) -> None:
    exp = make_exporter()
    r = exp.client.post("/v1/prediction", json={})
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert (body["reason"], body["value"]) == ("unknown_path", "/v1/prediction")
    assert {"POST /v1/predictions", "DELETE /v1/models/{model}", "GET /metrics"} <= set(
        body["endpoints"]
    )
    assert exp.client.get("/v1/models/team%2Ffraud").json()["reason"] == "unknown_path"
    rejected = ("model_exporter_events_rejected_total", frozenset({("reason", "unknown_path")}))
    assert exp.metrics()[rejected] == 1  # the POST; a GET sends no events


def test_a_wrong_method_is_a_json_405_with_the_allowed_methods(make_exporter) -> None:
    exp = make_exporter()
    r = exp.client.put("/v1/models/m")
    assert r.status_code == 405
    body = r.json()
    assert (body["reason"], body["value"]) == ("method_not_allowed", "PUT")
    assert body["allowed"] == ["DELETE", "GET"]  # from both routes of the path
    assert r.headers["allow"] == "DELETE, GET"
    assert exp.client.delete("/v1/predictions").json()["allowed"] == ["POST"]


def test_a_trailing_slash_is_the_path_without_it(make_exporter) -> None:
    exp = make_exporter()
    body = {"model": "m", "events": [{"id": "a", "features": {"x": 1.0}, "prediction": 1}]}
    r = exp.client.post("/v1/predictions/", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert exp.client.get("/v1/models/m/").json()["model"] == "m"
    assert exp.client.get("/metrics/").status_code == 200
    assert exp.client.get("/").status_code == 200


# -- names that need percent-encoding, through a real server ------------------------------------


@pytest.fixture
def served() -> Iterator[httpx.Client]:
    """The app under uvicorn on 127.0.0.1 (an OS-chosen port), in a thread of this process."""
    app = create_app(load_settings(), clock=FakeClock(), drift_worker=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("name", ["betrug prüfung", "50%", "模型", "a?b#c", "%2F", "v 1.0+x"])
def test_every_accepted_name_round_trips_through_its_percent_encoding(
    served: httpx.Client, name: str
) -> None:
    event = {"id": "a", "features": {"x": 1.0}, "prediction": 1}
    r = served.post(
        "/v1/predictions", json={"model": name, "model_version": name, "events": [event]}
    )
    assert r.status_code == 200, r.text
    path = f"/v1/models/{quote(name, safe='')}"
    r = served.get(path)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == name and list(r.json()["versions"]) == [name]
    r = served.put(
        f"{path}/reference", params={"model_version": name}, json={"features": {"x": [1.0, 2.0]}}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["model_version"]) == (name, name)
    r = served.delete(f"{path}/versions/{quote(name, safe='')}")
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == name
    r = served.delete(path)
    assert (r.status_code, r.json()["model"]) == (200, name)
    assert served.get(path).status_code == 404
    assert not [k for k in parse_metrics(served.get("/metrics").text) if ("model", name) in k[1]]
