"""The client against a real exporter (uvicorn on 127.0.0.1), and against a misbehaving server."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from exporter.client import AsyncMonitorClient, MonitorClient, MonitorError
from exporter.client.sklearn import MonitoredEstimator
from tests.conftest import parse_metrics, sample
from tests.helpers import ROOT, ExporterProcess

pytestmark = pytest.mark.e2e

CONFIG = "quality: {min_samples: 1}\ndrift: {min_samples: 10, refresh_interval: 0.1}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("client") / "config.yaml"
    cfg.write_text(CONFIG)
    proc = ExporterProcess(cfg)
    yield proc
    proc.stop()


def metrics(server: ExporterProcess):
    return parse_metrics(server.client.get("/metrics").text)


def test_importing_the_client_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, exporter.client\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'scipy', 'fastapi', 'starlette', 'pydantic', 'prometheus_client', 'sklearn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_event_arrives_when_the_exporter_is_up(server: ExporterProcess) -> None:
    rng = np.random.default_rng(0)
    with MonitorClient(
        server.url, model="up", model_version="v1", batch_size=300, flush_interval=0.05
    ) as client:
        truth = rng.integers(0, 2, 5000)
        for i in range(5000):
            assert client.log_prediction(
                f"e{i}",
                {"x": float(rng.normal()), "c": "a"},
                int(truth[i] if i % 4 else 1 - truth[i]),
            )
        assert client.log_labels((f"e{i}", int(truth[i])) for i in range(5000)) == 5000
        assert client.flush(30)
        stats = client.stats()
    assert stats.sent_events == 10_000 and stats.dropped_queue_full == 0
    assert stats.dropped_failed == stats.dropped_rejected == 0
    m = metrics(server)
    assert sample(m, "model_predictions_total", model="up", model_version="v1") == 5000
    assert sample(m, "model_labels_total", model="up", model_version="v1") == 5000
    assert sample(m, "model_accuracy", model="up", model_version="v1", window="1h") == 0.75


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_exporter_down_bounded_memory_counted_drops_caller_never_blocked() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    client = MonitorClient(
        url,
        model="m",
        max_queue=1000,
        batch_size=100,
        flush_interval=0.01,
        timeout=0.2,
        max_retries=1000,
        backoff=0.05,
        max_backoff=0.1,
        flush_on_exit=False,
    )
    slowest = 0.0
    for i in range(20_000):
        started = time.perf_counter()
        client.log_prediction(str(i), {"x": 1.0}, 1)
        slowest = max(slowest, time.perf_counter() - started)
    stats = client.stats()
    assert stats.queued <= 1000  # bounded, whatever the caller does
    assert stats.dropped_queue_full >= 20_000 - 1000 - 300  # the rest was dropped, and counted
    assert slowest < 0.25, f"a log call took {slowest * 1e3:.1f} ms"
    assert not client.flush(timeout=0.5)  # cannot drain: returns instead of hanging
    assert client.stats().retries > 0
    client.close(timeout=1.0)  # gives up the batch being retried (counted) and stops
    final = client.stats()
    total = final.dropped_queue_full + final.dropped_failed + final.queued + final.sent_events
    assert final.sent_events == 0 and total == 20_000
    assert "Connection" in (final.last_error or "") or "refused" in (final.last_error or "")


class Flaky(BaseHTTPRequestHandler):
    """Answers 503, then 429 with Retry-After, then 200; or stalls; counts what it received."""

    script: ClassVar[list[str]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        step = Flaky.script.pop(0) if Flaky.script else "ok"
        if step == "slow":
            time.sleep(1.0)
        if step in ("503", "slow"):
            self.send_response(503)
        elif step == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0.05")
        elif step == "422":
            self.send_response(422)
        else:
            Flaky.received.append(json.loads(body))
            self.send_response(200)
        payload = json.dumps({"detail": f"step {step}"}).encode()
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky():
    Flaky.script, Flaky.received = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_retries_on_5xx_and_429_then_delivers(flaky: str) -> None:
    Flaky.script = ["503", "429", "503"]
    with MonitorClient(
        flaky, model="m", flush_interval=0.01, backoff=0.01, flush_on_exit=False
    ) as client:
        for i in range(10):
            client.log_prediction(str(i), {"x": 1.0}, 0)
        assert client.flush(10)
        stats = client.stats()
    assert stats.retries == 3 and stats.sent_events == 10
    assert [e["id"] for e in Flaky.received[0]["events"]] == [str(i) for i in range(10)]


def test_a_slow_exporter_times_out_and_is_retried_without_blocking_the_caller(flaky: str) -> None:
    Flaky.script = ["slow"]
    with MonitorClient(
        flaky, model="m", flush_interval=0.01, timeout=0.3, backoff=0.01, flush_on_exit=False
    ) as client:
        started = time.perf_counter()
        client.log_prediction("a", {"x": 1.0}, 0)
        # The server stalls 1 s: a call waiting for it would take that long.
        assert time.perf_counter() - started < 0.25
        assert client.flush(10)
        assert client.stats().retries >= 1 and client.stats().sent_events == 1


def test_a_rejected_batch_is_dropped_and_counted(flaky: str) -> None:
    Flaky.script = ["422"]
    with MonitorClient(flaky, model="m", flush_interval=0.01, flush_on_exit=False) as client:
        client.log_prediction("a", {"x": 1.0}, 0)
        assert client.flush(10)
        stats = client.stats()
    assert stats.dropped_rejected == 1 and stats.retries == 0
    assert stats.rejected_by_reason == {"http_422": 1}  # no reason: not the exporter's answer
    assert "step 422" in (stats.last_error or "")


def test_events_are_flushed_at_interpreter_exit(server: ExporterProcess) -> None:
    code = (
        "from exporter.client import MonitorClient\n"
        f"c = MonitorClient({server.url!r}, model='atexit', flush_interval=60)\n"
        "for i in range(250): c.log_prediction(str(i), {'x': float(i)}, 1)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    m = metrics(server)
    assert sample(m, "model_predictions_total", model="atexit", model_version="default") == 250


def test_async_client(server: ExporterProcess) -> None:
    async def main() -> None:
        async with AsyncMonitorClient(server.url, model="async", flush_interval=0.05) as client:
            for i in range(100):
                client.log_prediction(str(i), {"x": float(i)}, i % 2)
            assert await client.flush(10)
            reference = await client.set_reference({"x": [float(i) for i in range(50)]})
            assert reference["rows"] == 50

    asyncio.run(main())
    m = metrics(server)
    assert sample(m, "model_predictions_total", model="async", model_version="default") == 100


def test_set_reference_errors_are_raised(server: ExporterProcess) -> None:
    with (
        MonitorClient(server.url, model="refs", flush_on_exit=False) as client,
        pytest.raises(MonitorError, match=r"refused.*no values"),
    ):
        client.set_reference({"x": [None, None]})
    with (
        MonitorClient(f"http://127.0.0.1:{free_port()}", model="m", flush_on_exit=False) as client,
        pytest.raises(MonitorError, match="reach"),
    ):
        client.set_reference({"x": [1.0]})


def test_sklearn_wrapper_reports_rows_and_labels(server: ExporterProcess) -> None:
    data = load_breast_cancer()
    X, y = data.data, data.target
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X[:400], y[:400])
    with MonitorClient(
        server.url, model="cancer", model_version="lr", flush_interval=0.05
    ) as client:
        wrapped = MonitoredEstimator(fitted, client, feature_names=list(data.feature_names))
        pred, ids = wrapped.predict(X[400:], return_ids=True)
        np.testing.assert_array_equal(pred, fitted.predict(X[400:]))
        assert len(set(ids)) == X.shape[0] - 400 and wrapped.last_ids == ids
        proba, more = wrapped.predict_proba(X[:5], return_ids=True)
        np.testing.assert_allclose(proba, fitted.predict_proba(X[:5]))
        assert len(more) == 5 and not set(more) & set(ids)
        wrapped.log_labels(ids, y[400:])
        assert wrapped.score(X[400:], y[400:]) == fitted.score(X[400:], y[400:])  # delegated
        assert client.flush(30)
    m = metrics(server)
    key = {"model": "cancer", "model_version": "lr"}
    assert sample(m, "model_predictions_total", **key) == X.shape[0] - 400 + 5
    assert sample(m, "model_accuracy", **key, window="1h") == pytest.approx(
        accuracy_score(y[400:], pred), abs=1e-12
    )
    status = server.client.get("/v1/models/cancer").json()
    assert [f["name"] for f in status["features"]] == list(data.feature_names)


class _Frame:
    """Just enough of a DataFrame: ``columns`` and ``to_numpy`` (pandas is not a dependency)."""

    def __init__(self, values: np.ndarray, columns: list[str]) -> None:
        self.values, self.columns = values, columns

    def to_numpy(self) -> np.ndarray:
        return self.values

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values


class _Recorder(MonitorClient):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", flush_on_exit=False, max_retries=0)
        self.seen: list[tuple[str, dict[str, Any], Any]] = []

    def log_prediction(self, id, features, prediction, **kw):  # type: ignore[override]
        self.seen.append((id, dict(features), prediction))
        return True


def test_wrapper_takes_feature_names_from_the_frame_or_numbers_them() -> None:
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    fitted = LogisticRegression().fit(X, [0, 1])
    recorder = _Recorder()
    try:
        MonitoredEstimator(fitted, recorder).predict(_Frame(X, ["age", "income"]))
        MonitoredEstimator(fitted, recorder).predict(X)
    finally:
        recorder.close(timeout=0.1)
    assert recorder.seen[0][1] == {"age": 1.0, "income": 2.0}
    assert recorder.seen[2][1] == {"x0": 1.0, "x1": 2.0}
    assert recorder.seen[0][2] in (0, 1) and isinstance(recorder.seen[0][2], int)
