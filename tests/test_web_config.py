"""The exporter-toolkit web config: strict parsing, uvicorn's TLS options, and the real thing:
the CLI serving TLS with basic auth, scraped by a real Prometheus.

Certificates are made in the test by the ``openssl`` binary (self-signed, for 127.0.0.1). Every
process started here listens on 127.0.0.1 and is stopped by its PID; bounded in time.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bcrypt
import httpx2 as httpx
import pytest
import yaml

from exporter.app import create_app
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.web_config import (
    WebConfig,
    load_web_config,
    parse_web_config,
    uvicorn_tls_options,
)
from tests.conftest import FakeClock
from tests.helpers import ROOT, require_binary, terminate

PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``cert.pem`` and ``key.pem``: self-signed for IP 127.0.0.1 (its own CA),
    and ``other.pem``, the key of another certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl binary is not installed")
    folder = tmp_path_factory.mktemp("certs")
    for name in ("", "other-"):
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(folder / f"{name}key.pem"),
                "-out",
                str(folder / f"{name}cert.pem"),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return folder


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


# -- parsing -----------------------------------------------------------------------------------


def test_an_empty_web_config_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("")
    cfg = load_web_config(tmp_path / "web.yml")
    assert cfg == WebConfig() and cfg.users == {}
    assert uvicorn_tls_options(cfg) == {}
    assert load_web_config(None) == WebConfig()


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"basic_auth_user": {}}, "web_config.basic_auth_user"),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k", "ca": 1}}, "ca"),
        ({"tls_server_config": {"key_file": "k"}}, "web_config.tls_server_config.cert_file"),
        ({"http_server_config": {"http2": True}}, "http_server_config: exporter-toolkit's"),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "cipher_suites": []}},
            "tls_server_config.cipher_suites: exporter-toolkit's, not supported",
        ),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "min_version": "TLS10"}},
            "web_config.tls_server_config.min_version",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "c",
                    "key_file": "k",
                    "client_auth_type": "RequireAnyClientCert",
                }
            },
            "RequireAnyClientCert is not supported",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "c",
                    "key_file": "k",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "needs client_ca_file",
        ),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "client_ca_file": "ca"}},
            "client_auth_type is NoClientCert",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "c",
                    "key_file": "k",
                    "min_version": "TLS13",
                    "max_version": "TLS12",
                }
            },
            "max_version TLS12 is below min_version",
        ),
        ({"basic_auth_users": {"alice": "plain-text"}}, "user 'alice': the password must be"),
        ({"basic_auth_users": {"a:b": "$2y$10$" + "a" * 53}}, "holds no ':'"),
    ],
)
def test_wrong_keys_and_values_are_one_line_config_errors_naming_them(
    data: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_web_config(data)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_files_are_relative_to_the_web_config_and_loaded_at_start(
    tmp_path: Path, certs: Path, password_hash: str
) -> None:
    web = certs / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "cert.pem", "key_file": "key.pem"},
                "basic_auth_users": {"prometheus": password_hash},
            }
        )
    )
    cfg = load_web_config(web)
    assert cfg.users == {"prometheus": password_hash.encode()}
    assert uvicorn_tls_options(cfg) == {
        "ssl_certfile": str(certs / "cert.pem"),
        "ssl_keyfile": str(certs / "key.pem"),
        "ssl_cert_reqs": ssl.CERT_NONE,
    }
    for key_file, problem in (("other-key.pem", "cannot be used"), ("nope.pem", "cannot be")):
        data = {"tls_server_config": {"cert_file": "cert.pem", "key_file": key_file}}
        with pytest.raises(ConfigError, match=problem) as info:
            parse_web_config(data, certs)
        assert "tls_server_config.cert_file" in str(info.value)


def test_client_verification_and_tls_version_bounds_become_uvicorn_options(certs: Path) -> None:
    data = {
        "tls_server_config": {
            "cert_file": "cert.pem",
            "key_file": "key.pem",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": "cert.pem",
            "min_version": "TLS13",
        }
    }
    options = uvicorn_tls_options(parse_web_config(data, certs))
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["ssl_ca_certs"] == str(certs / "cert.pem")
    context = options["ssl_context_factory"](None, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    data["tls_server_config"].update(
        client_auth_type="VerifyClientCertIfGiven", min_version="TLS12"
    )
    options = uvicorn_tls_options(parse_web_config(data, certs))
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL and "ssl_context_factory" not in options


def test_the_app_reads_basic_auth_users_from_the_web_config(
    tmp_path: Path, password_hash: str
) -> None:
    from fastapi.testclient import TestClient

    (tmp_path / "web.yml").write_text(yaml.safe_dump({"basic_auth_users": {"p": password_hash}}))
    settings = load_settings(None, web_config=tmp_path / "web.yml")
    with TestClient(create_app(settings, clock=FakeClock(), drift_worker=False)) as client:
        r = client.get("/metrics")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="model-exporter"'
        assert client.get("/metrics", auth=("p", "wrong")).status_code == 401
        assert client.get("/metrics", auth=("p", PASSWORD)).status_code == 200
        assert client.get("/-/ready").status_code == 200
    with pytest.raises(ConfigError, match="web config"):
        create_app(load_settings(None, web_config=tmp_path / "missing.yml"))


# -- the CLI over TLS, scraped by a real Prometheus ----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(check: Any, deadline: float, what: str, log: Path) -> Any:
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} in time:\n{log.read_text()[-3000:]}")


@pytest.mark.e2e
def test_real_prometheus_scrapes_over_tls_with_basic_auth(
    tmp_path: Path, certs: Path, password_hash: str
) -> None:
    prometheus = require_binary("prometheus")
    deadline = time.monotonic() + 60
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(certs / "cert.pem"),
                    "key_file": str(certs / "key.pem"),
                },
                "basic_auth_users": {"prometheus": password_hash},
            }
        )
    )
    port, prom_port = free_port(), free_port()
    exporter_log, prom_log = tmp_path / "exporter.log", tmp_path / "prometheus.log"
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    scrape = {
        "scheme": "https",
        "tls_config": {"ca_file": str(certs / "cert.pem")},
        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
    }
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "model-exporter",
                        "basic_auth": {"username": "prometheus", "password": PASSWORD},
                        **scrape,
                    },
                    {
                        "job_name": "wrong-password",
                        "basic_auth": {"username": "prometheus", "password": "wrong"},
                        **scrape,
                    },
                ],
            }
        )
    )
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--web-config", str(web)]
    with exporter_log.open("w") as out, prom_log.open("w") as prom_out:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args], cwd=ROOT, stdout=out, stderr=out, text=True
        )
        prom = None
        try:
            with httpx.Client(base_url=url, verify=trust, timeout=5) as client:
                wait_for(
                    lambda: client.get("/-/healthy").status_code == 200,
                    deadline,
                    "the exporter did not answer over TLS",
                    exporter_log,
                )
                assert client.get("/metrics").status_code == 401
                event = {"id": "a", "features": {"x": 1.0}, "prediction": 1}
                r = client.post("/v1/predictions", json={"model": "fraud", "events": [event]})
                assert r.status_code == 200, r.text  # a loopback write: no token configured
            prom = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                ],
                stdout=prom_out,
                stderr=prom_out,
                text=True,
            )
            api = f"http://127.0.0.1:{prom_port}/api/v1"

            def query(expr: str) -> list[Any]:
                r = httpx.get(f"{api}/query", params={"query": expr}, timeout=5)
                result: list[Any] = r.json()["data"]["result"] if r.status_code == 200 else []
                return result

            series = wait_for(
                lambda: query('model_predictions_total{job="model-exporter",model="fraud"}'),
                deadline,
                "no model_* series arrived",
                prom_log,
            )
            assert float(series[0]["value"][1]) == 1.0
            up = {s["metric"]["job"]: s["value"][1] for s in query("up")}
            assert up["model-exporter"] == "1"

            def refused() -> Any:
                targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
                wrong = next(t for t in targets if t["labels"]["job"] == "wrong-password")
                return wrong if wrong["health"] == "down" else None

            wrong = wait_for(refused, deadline, "a wrong password was not refused", prom_log)
            assert "401" in wrong["lastError"]
        finally:
            if prom is not None:
                terminate(prom)
            terminate(exporter)


@pytest.mark.e2e
def test_client_certificates_are_required_and_verified(tmp_path: Path, certs: Path) -> None:
    """``RequireAndVerifyClientCert``: the real server completes the handshake only for a
    client certificate signed by ``client_ca_file``; without one, or with another, it fails."""
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(certs / "cert.pem"),
                    "key_file": str(certs / "key.pem"),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": str(certs / "cert.pem"),  # self-signed: its own CA
                }
            }
        )
    )
    port = free_port()
    log = tmp_path / "exporter.log"
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--web-config", str(web)]
    url = f"https://127.0.0.1:{port}"

    def client_context(cert: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        if cert is not None:
            context.load_cert_chain(certs / f"{cert}cert.pem", certs / f"{cert}key.pem")
        return context

    with log.open("w") as out:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args], cwd=ROOT, stdout=out, stderr=out, text=True
        )
        try:
            with httpx.Client(base_url=url, verify=client_context(""), timeout=5) as client:
                wait_for(
                    lambda: client.get("/-/ready").status_code == 200,
                    time.monotonic() + 60,
                    "the exporter did not answer over mutual TLS",
                    log,
                )
                assert client.get("/metrics").status_code == 200
            for cert in (None, "other-"):  # no client certificate; one the CA did not sign
                bad = httpx.Client(base_url=url, verify=client_context(cert), timeout=5)
                with bad, pytest.raises(httpx.HTTPError):
                    bad.get("/-/healthy")
        finally:
            terminate(exporter)
