"""exporter.server: read timeouts, the connection cap, 429 overloaded, the write listener and the
stop on SIGTERM, against real uvicorn servers on 127.0.0.1 and raw sockets; the admission
wrapper directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx
import pytest

from exporter import server
from exporter.app import create_app
from exporter.client import MonitorClient
from exporter.config import load_settings, split_address
from exporter.errors import ConfigError, Reason
from exporter.telemetry import Telemetry
from tests.conftest import parse_metrics, sample
from tests.helpers import ExporterProcess

EVENTS = {"model": "m", "events": [{"id": "a", "features": {"x": 1.0}, "prediction": 1}]}


class Running:
    """A server of :mod:`exporter.server` in a thread of this process."""

    def __init__(self, srv: server.ExporterServer) -> None:
        self.server = srv
        self.ports = [sock.getsockname()[1] for sock in srv.listeners]
        self.url = f"http://127.0.0.1:{self.ports[0]}"
        assert isinstance(srv.config, server.ExporterConfig)
        self.stats = srv.config.stats

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(httpx.get(self.url + "/metrics", timeout=5).text)


@contextmanager
def running(**overrides: Any) -> Iterator[Running]:
    settings = load_settings(None, host="127.0.0.1", port=0, log_level="warning", **overrides)
    app = create_app(settings, drift_worker=False)
    srv = server.build_server(app, settings, server.bind(settings))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield Running(srv)
    finally:
        srv.should_exit = True
        thread.join(15)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def stalled_write(port: int, sent: int = 10) -> socket.socket:
    """A POST whose head is complete and whose body stops after ``sent`` of its 1000 bytes."""
    sock = connect(port)
    head = b"POST /v1/predictions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Content-Length: 1000\r\n\r\n" + b" " * sent)
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (bounded by ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


# --- read timeouts and the connection cap --------------------------------------------------


def test_half_sent_and_idle_connections_neither_stop_a_real_client_nor_stay_open() -> None:
    with running(server={"header_timeout": 2}) as srv, contextlib.ExitStack() as sockets:
        port = srv.ports[0]
        idle = [sockets.enter_context(connect(port)) for _ in range(300)]
        half = [sockets.enter_context(connect(port)) for _ in range(500)]
        for sock in half:
            sock.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: t\r\nContent-Ty")
        wait_until(lambda: srv.stats.connections >= 800)
        started = time.monotonic()
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            assert client.post("/v1/predictions", json=EVENTS).status_code == 200
            assert client.get("/metrics").status_code == 200
        # Served while all 800 were still open (the timeout had not closed any yet): the
        # client did not wait for them to go. (A wall-clock bound here, < 1 s, failed once at
        # 1.02 s on this shared 2-core machine: the count is what proves it.)
        assert srv.stats.connections >= 800
        assert time.monotonic() - started < 2.0  # within the header timeout

        for sock in half:  # answered 408, then closed
            status, _, body = response(read_all(sock, timeout=5))
            assert status == 408 and body["reason"] == "header_timeout"
        for sock in idle:  # closed without an answer: they sent nothing
            assert read_all(sock, timeout=5) == b""
        assert time.monotonic() - started >= 1.5  # not before the timeout
        m = srv.metrics()
        assert sample(m, "model_exporter_connections_closed_total", reason="header_timeout") == 800


def test_a_body_that_stalls_is_answered_408_after_the_body_timeout() -> None:
    with running(server={"body_timeout": 0.5, "header_timeout": 5}) as srv:
        started = time.monotonic()
        sock = stalled_write(srv.ports[0])
        status, headers, body = response(read_all(sock, timeout=5))
        elapsed = time.monotonic() - started
        sock.close()
        assert status == 408 and headers["connection"] == "close"
        assert body["reason"] == "body_timeout" and "server.body_timeout" in body["detail"]
        assert 0.45 <= elapsed < 3
        m = srv.metrics()
        assert sample(m, "model_exporter_connections_closed_total", reason="body_timeout") == 1
        assert sample(m, "model_exporter_connections_closed_total", reason="header_timeout") == 0
        assert sample(m, "model_exporter_writes_in_flight") == 0


def test_a_later_request_on_a_kept_alive_connection_has_its_own_head_deadline() -> None:
    with running(server={"header_timeout": 0.5, "keep_alive_timeout": 30}) as srv:
        sock = connect(srv.ports[0])
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.8)  # idle longer than the head deadline: keep-alive governs, still open
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHo")
        started = time.monotonic()
        status, _, body = response(read_all(sock, timeout=5))
        assert status == 408 and body["reason"] == "header_timeout"
        assert 0.45 <= time.monotonic() - started < 3
        sock.close()


def test_connections_beyond_the_cap_are_closed_at_once_and_counted() -> None:
    with running(server={"max_connections": 5, "header_timeout": 30}) as srv:
        held = [connect(srv.ports[0]) for _ in range(5)]
        wait_until(lambda: srv.stats.connections == 5)
        started = time.monotonic()
        extra = connect(srv.ports[0])
        assert read_all(extra, timeout=5) == b""
        assert time.monotonic() - started < 1.0
        extra.close()
        for sock in held:
            sock.close()
        wait_until(lambda: srv.stats.connections == 0)
        m = srv.metrics()
        assert sample(m, "model_exporter_connections_closed_total", reason="max_connections") == 1
        assert sample(m, "model_exporter_connections") == 1  # this scrape's own


# --- overload ------------------------------------------------------------------------------


def test_writes_beyond_the_in_flight_bound_get_429_and_scrapes_still_answer() -> None:
    with running(server={"max_inflight_writes": 2, "body_timeout": 30}) as srv:
        stalled = [stalled_write(srv.ports[0]) for _ in range(2)]
        wait_until(lambda: srv.stats.writes_in_flight == 2)
        with httpx.Client(base_url=srv.url, timeout=5) as client:
            refused = client.post("/v1/predictions", json=EVENTS)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert refused.json()["reason"] == "overloaded"
            assert "server.max_inflight_writes" in refused.json()["detail"]
            assert client.get("/-/ready").status_code == 200
            m = parse_metrics(client.get("/metrics").text)
            assert sample(m, "model_exporter_events_rejected_total", reason="overloaded") == 1
            assert sample(m, "model_exporter_writes_in_flight") == 2
            for sock in stalled:
                sock.close()
            wait_until(lambda: srv.stats.writes_in_flight == 0)
            assert client.post("/v1/predictions", json=EVENTS).status_code == 200
            assert "m" in client.get("/v1/models").text


def test_the_client_waits_as_retry_after_says_and_delivers() -> None:
    with running(server={"max_inflight_writes": 1, "body_timeout": 30}) as srv:
        stalled = stalled_write(srv.ports[0])
        wait_until(lambda: srv.stats.writes_in_flight == 1)
        threading.Timer(1.5, stalled.close).start()
        # Without Retry-After, 3 attempts 10 ms apart would all meet the stalled write.
        with MonitorClient(
            srv.url, model="m", flush_interval=0.05, max_retries=2, backoff=0.01, max_backoff=5
        ) as client:
            for i in range(10):
                client.log_prediction(f"e{i}", {"x": float(i)}, i % 2)
            assert client.flush(15)
            stats = client.stats()
        assert stats.retries >= 1 and stats.dropped_failed == 0 and stats.sent_events == 10
        m = srv.metrics()
        assert sample(m, "model_predictions_total", model="m", model_version="default") == 10
        assert sample(m, "model_exporter_events_rejected_total", reason="overloaded") >= 1


# --- the write listener --------------------------------------------------------------------


def test_writes_are_served_only_on_the_write_listener() -> None:
    with running(server={"write_listen_address": "127.0.0.1:0"}) as srv:
        main, write = (f"http://127.0.0.1:{port}" for port in srv.ports)
        refused = httpx.post(main + "/v1/predictions", json=EVENTS, timeout=5)
        assert refused.status_code == 403 and refused.json()["reason"] == Reason.FORBIDDEN
        assert f"127.0.0.1:{srv.ports[1]}" in refused.json()["detail"]
        assert httpx.delete(main + "/v1/models/m", timeout=5).status_code == 403
        assert httpx.post(write + "/v1/predictions", json=EVENTS, timeout=5).status_code == 200
        for base in (main, write):
            assert httpx.get(base + "/metrics", timeout=5).status_code == 200
            assert httpx.get(base + "/v1/models/m", timeout=5).status_code == 200
        m = srv.metrics()
        assert sample(m, "model_exporter_events_rejected_total", reason="forbidden") == 2
        assert sample(m, "model_predictions_total", model="m", model_version="default") == 1


@pytest.mark.parametrize(
    ("listener", "local", "expected"),
    [
        (("127.0.0.1", 17091), ("127.0.0.1", 17091), True),
        (("127.0.0.1", 17091), ("127.0.0.1", 17090), False),
        (("127.0.0.1", 17091), ("10.0.0.5", 17091), False),
        (("0.0.0.0", 17091), ("10.0.0.5", 17091), True),
        (("::", 17091), ("::1", 17090), False),
        (None, ("10.0.0.5", 17090), True),
    ],
)
def test_a_write_listener_is_told_by_its_address(
    listener: tuple[str, int] | None, local: tuple[str, int], expected: bool
) -> None:
    admission = server.Admission(
        _never, Telemetry(), server.ServingStats(), max_inflight_writes=1, write_listener=listener
    )
    assert admission._on_write_listener({"type": "http", "server": local}) is expected


def test_the_write_listen_address_is_validated() -> None:
    assert split_address(" [::1]:17091 ") == ("::1", 17091)
    for bad in ("17091", "127.0.0.1", "host:99999", "a b:1", ":17091"):
        with pytest.raises(ConfigError, match=r"server\.write_listen_address"):
            load_settings(None, server={"write_listen_address": bad})


def test_a_listener_that_cannot_be_bound_is_named() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = load_settings(
            None, host="127.0.0.1", port=0, server={"write_listen_address": f"127.0.0.1:{port}"}
        )
        with pytest.raises(OSError, match=rf"127\.0\.0\.1:{port} \(server\.write_listen_address\)"):
            server.bind(settings)


# --- the admission wrapper, directly -------------------------------------------------------


async def _never(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(3600)


def test_a_request_cancelled_by_the_shutdown_grace_is_answered_503() -> None:
    stats = server.ServingStats()
    admission = server.Admission(_never, Telemetry(), stats, max_inflight_writes=1)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def scenario() -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/labels"}
        task = asyncio.ensure_future(admission(scope, receive, send))
        await asyncio.sleep(0.01)
        assert stats.writes_in_flight == 1
        task.cancel()
        await task  # answered, not cancelled

    asyncio.run(scenario())
    assert sent[0]["status"] == 503 and json.loads(sent[1]["body"])["reason"] == "shutting_down"
    assert stats.writes_in_flight == 0


# --- stopping ------------------------------------------------------------------------------


def test_sigterm_drains_then_finishes_what_runs_and_exits_0() -> None:
    drain = 1.5
    proc = ExporterProcess(
        env={"MODEL_EXPORTER_SHUTDOWN__DRAIN": "1500ms", "MODEL_EXPORTER_SHUTDOWN__GRACE": "1s"}
    )
    try:
        port = int(proc.url.rsplit(":", 1)[1])
        assert proc.client.get("/-/ready").json() == {"status": "ready"}
        in_flight = stalled_write(port)  # still uploading when the grace ends
        wait_until(
            lambda: (
                sample(
                    parse_metrics(proc.client.get("/metrics").text),
                    "model_exporter_writes_in_flight",
                )
                == 1
            )
        )
        signalled = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)

        def not_ready() -> bool:
            r = httpx.get(proc.url + "/-/ready", timeout=2)
            return r.status_code == 503 and r.json() == {"status": "stopping"}

        wait_until(not_ready, timeout=drain)
        assert time.monotonic() - signalled < drain  # 503 at once, before the listener closes
        assert httpx.get(proc.url + "/metrics", timeout=2).status_code == 200  # still served

        def refused() -> bool:
            try:
                httpx.get(proc.url + "/-/healthy", timeout=2)
            except httpx.TransportError:
                return True
            return False

        wait_until(refused, timeout=drain + 5)
        assert time.monotonic() - signalled >= drain - 0.2
        status, _, body = response(read_all(in_flight, timeout=10))
        assert status == 503 and body["reason"] == "shutting_down"
        in_flight.close()
        assert proc.proc.wait(timeout=15) == 0
    finally:
        code = proc.stop()
    output = "".join(proc.output)
    assert code == 0, output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output and "Exception in ASGI" not in output
