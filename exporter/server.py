"""How the exporter is served: uvicorn with one worker, and the bounds uvicorn lacks.

::

    bind(settings)           the listening sockets: the main one, then the write listener if any
    build_server(app, ...)   an ExporterServer over them, connections bounded by BoundedProtocol
    serve(app, settings)     both, run until SIGTERM or SIGINT; the exit status (0 after a stop)

Read timeouts. uvicorn bounds an idle kept-alive connection, nothing else: a client that sends
half a request head, or half a body, holds its connection (and a task) for ever.
:class:`BoundedProtocol` is uvicorn's own httptools protocol (its default, selected through
``Config(http=...)``, which takes a class) with one timer per connection: the head of a request
must be complete within ``server.header_timeout`` of the connection's start (or of the first
byte of a later request on it), its body within ``server.body_timeout`` of the head. Both are
deadlines, not idle timeouts, so a client cannot hold a connection by dripping a byte at a time.
On expiry a client that sent part of a request gets 408 with a JSON body (when nothing was
answered yet) and the connection is closed; one that sent nothing is closed without an answer,
like an expired keep-alive (a 408 there could be read as the answer to a request a client is
just sending). Connections beyond ``server.max_connections`` are closed as soon as they are
accepted. Each is counted in ``model_exporter_connections_closed_total{reason}``.

Why a subclass rather than another server: uvicorn with httptools is what the ingest benchmark
was measured on (the events/s target), the subclass adds one timer per request and uses only
the protocol's parser callbacks (no global patching), and the shutdown, lifespan and TLS options
the rest of the project relies on stay uvicorn's. Hypercorn has read timeouts, but is slower on
this workload and would change all of that at once.

Admission. :class:`Admission` wraps the app: writes (any method but GET, HEAD and OPTIONS)
arriving on the main listener while a write listener is configured get 403 ``forbidden``; more
than ``server.max_inflight_writes`` writes at once get 429 ``overloaded`` with ``Retry-After``
(a bound instead of a queue that grows); scrapes and health checks are never refused. Both are
counted in ``model_exporter_events_rejected_total{reason}`` like every rejection.

Stopping. On SIGTERM, ``/-/ready`` answers 503 for ``shutdown.drain`` while everything is still
served (the orchestrator takes the pod out of its Service meanwhile); then the listeners close,
requests in flight have ``shutdown.grace`` to finish, and one still running then is answered 503
with a JSON body (uvicorn alone would cancel it into a 500). A second SIGTERM, or SIGINT, skips
the rest of the drain. The process exits 0: the signal is not raised again after the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

import uvicorn
from fastapi import FastAPI
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from exporter.api.context import Context
from exporter.config import ServerSettings, Settings
from exporter.errors import Reason, RejectedInput
from exporter.telemetry import Telemetry

log = logging.getLogger("exporter.server")

#: Why the exporter closed a connection: the ``reason`` label of connections_closed_total.
CLOSE_REASONS: Final = ("header_timeout", "body_timeout", "max_connections")
#: Methods that change nothing: never refused by :class:`Admission`.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: Seconds a client refused with 429 is asked to wait.
RETRY_AFTER: Final = 1


@dataclass
class ServingStats:
    """What the serving layer counts. Written on the event loop only; scrapes read the ints."""

    closed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    connections: int = 0
    writes_in_flight: int = 0


class ServingCollector(Collector):
    """``model_exporter_connections*`` and ``model_exporter_writes_in_flight``."""

    def __init__(self, stats: ServingStats, bounds: ServerSettings) -> None:
        self._stats = stats
        self._bounds = bounds

    def describe(self) -> Iterable[Metric]:
        return []  # collected per scrape; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        closed = CounterMetricFamily(
            "model_exporter_connections_closed",
            "Connections the exporter closed: reason header_timeout (no complete request head "
            "within server.header_timeout), body_timeout (no complete body within "
            "server.body_timeout), max_connections (refused on arrival: server.max_connections "
            "were open).",
            labels=["reason"],
        )
        for reason, count in dict(self._stats.closed).items():
            closed.add_metric([reason], count)
        yield closed
        connections = GaugeMetricFamily(
            "model_exporter_connections",
            f"Open HTTP connections (at most server.max_connections, "
            f"{self._bounds.max_connections}).",
        )
        connections.add_metric([], self._stats.connections)
        yield connections
        writes = GaugeMetricFamily(
            "model_exporter_writes_in_flight",
            f"Write requests being served (at most server.max_inflight_writes, "
            f"{self._bounds.max_inflight_writes}; more get 429 overloaded).",
        )
        writes.add_metric([], self._stats.writes_in_flight)
        yield writes


class ExporterConfig(uvicorn.Config):
    """uvicorn's configuration, plus the bounds and counters :class:`BoundedProtocol` reads."""

    def __init__(
        self, app: ASGIApp, *, bounds: ServerSettings, stats: ServingStats, **options: Any
    ) -> None:
        # No websockets: the exporter has no such route, and an upgrade would bypass the bounds.
        super().__init__(app, http=BoundedProtocol, ws="none", **options)
        self.bounds = bounds
        self.stats = stats


def _timeout_response(what: str, setting: str, seconds: float) -> bytes:
    body = json.dumps(
        {
            "detail": f"the request {what} did not arrive within {setting} ({seconds:g} s)",
            "reason": setting.removeprefix("server."),
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's head and body, and a cap
    on open connections (see the module's docstring)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, ExporterConfig):
            raise TypeError("BoundedProtocol needs an ExporterConfig")
        super().__init__(config, server_state, app_state, _loop)
        self.bounds = config.bounds
        self.stats = config.stats
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # (uvicorn's own signature narrows BaseTransport to Transport: same override.)
        if len(self.connections) >= self.bounds.max_connections:
            self._refused = True
            self.transport = transport
            self.stats.closed["max_connections"] += 1
            transport.close()
            return
        super().connection_made(transport)
        self.stats.connections += 1
        self._arm("header_timeout", self.bounds.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        self.stats.connections -= 1
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if self._deadline is None:  # a later request on a kept-alive connection
            self._arm("header_timeout", self.bounds.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._head_started = False
        self._arm("body_timeout", self.bounds.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, reason: str, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, reason: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.stats.closed[reason] += 1
        if reason == "header_timeout":
            idle = self.cycle is None or self.cycle.response_complete  # no answer pending
            if self._head_started and idle:
                timeout = self.bounds.header_timeout
                self.transport.write(_timeout_response("head", "server.header_timeout", timeout))
        elif self.cycle is not None and not self.cycle.response_started:
            timeout = self.bounds.body_timeout
            self.transport.write(_timeout_response("body", "server.body_timeout", timeout))
            self.cycle.disconnected = True  # the app's sends are dropped; it receives a disconnect
            self.cycle.message_event.set()
        self.transport.close()


class Admission:
    """ASGI wrapper deciding which requests reach the app (see the module's docstring), and
    answering 503 for a request still running when the shutdown's grace ends."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        stats: ServingStats,
        *,
        max_inflight_writes: int,
        write_listener: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.stats = stats
        self.max_inflight_writes = max_inflight_writes
        self.write_listener = write_listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        write = scope["method"] not in SAFE_METHODS
        if write and self.write_listener is not None and not self._on_write_listener(scope):
            await self._refuse(send, _not_here(self.write_listener))
            return
        if write and self.stats.writes_in_flight >= self.max_inflight_writes:
            await self._refuse(send, self._overloaded(), {"retry-after": str(RETRY_AFTER)})
            return
        if write:
            self.stats.writes_in_flight += 1
        try:
            await self._run(scope, receive, send)
        finally:
            if write:
                self.stats.writes_in_flight -= 1

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except ClientDisconnect:
            log.debug("client gone before its request was read: %s", scope.get("client"))
        except asyncio.CancelledError:
            # Only the server cancels a request: its shutdown grace is over.
            if started:
                raise
            log.warning(
                "answered 503: %s %s still running at the end of the shutdown grace",
                scope["method"],
                scope["path"],
            )
            await _send_json(
                send,
                503,
                {
                    "detail": "the exporter stopped before this request finished; send it again",
                    "reason": "shutting_down",
                },
            )

    def _on_write_listener(self, scope: Scope) -> bool:
        """Whether a request came through the write listener (true when there is none). A
        wildcard write listener (0.0.0.0, ::) is told by its port alone."""
        if self.write_listener is None:
            return True
        local = scope.get("server")
        if local is None:  # a Unix socket: not ours
            return False
        host, port = self.write_listener
        return bool(local[1] == port and (host in ("0.0.0.0", "::") or local[0] == host))

    def _overloaded(self) -> RejectedInput:
        return RejectedInput(
            Reason.OVERLOADED,
            f"{self.max_inflight_writes} writes are already in flight "
            f"(server.max_inflight_writes); retry after {RETRY_AFTER} s",
        )

    async def _refuse(
        self, send: Send, rejection: RejectedInput, headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer a rejection as the app's handlers do (api/handlers.py), before the body is
        read: it counts one event, as a request that was not parsed does."""
        self.telemetry.count_rejected(rejection.reason, rejection.events)
        await _send_json(send, rejection.status_code, rejection.body(), headers)


def _not_here(write_listener: tuple[str, int]) -> RejectedInput:
    host, port = write_listener
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return RejectedInput(
        Reason.FORBIDDEN,
        f"writes are accepted only on the write listener ({where}, "
        "server.write_listen_address), not on this one",
    )


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    content = json.dumps(body).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode("ascii")),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


class ExporterServer(uvicorn.Server):
    """uvicorn's server over the sockets of :func:`bind`, with the drain on SIGTERM and a clean
    exit after a signal (see the module's docstring)."""

    def __init__(
        self,
        config: ExporterConfig,
        listeners: list[socket.socket],
        *,
        drain: float,
        on_stopping: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self.listeners = listeners
        self.drain = drain
        self.on_stopping = on_stopping
        self.drain_until: float | None = None
        self._drain_logged = False

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        super().run(sockets=self.listeners if sockets is None else sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # uvicorn announces only the listeners it opened itself; these are ours.
        for position, sock in enumerate(sockets or []):
            url = _url(sock.getsockname(), https=self.config.ssl is not None)
            if position == 0:
                log.info("model-exporter running on %s (metrics, status and health)", url)
            else:
                log.info("write API served on %s (and only there)", url)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_stopping()
        if sig == signal.SIGTERM and self.drain > 0 and self.drain_until is None:
            self.drain_until = time.monotonic() + self.drain
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and not self.should_exit:
            if not self._drain_logged:
                self._drain_logged = True
                log.info("SIGTERM: not ready; draining for %g s before closing", self.drain)
            if time.monotonic() >= self.drain_until:
                self.should_exit = True
        return await super().on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without raising the signal again after the stop: a stop on SIGTERM is a
        clean exit (status 0), not a death by the signal."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _url(sockname: Any, *, https: bool) -> str:
    host, port = str(sockname[0]), int(sockname[1])
    return f"{'https' if https else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def bind(settings: Settings) -> list[socket.socket]:
    """The listening sockets: ``host:port``, then ``server.write_listen_address`` if set.

    Raises :class:`OSError` naming the address when one cannot be bound.
    """
    wanted = [(settings.host, settings.port, "host and port")]
    if settings.server.write_listener is not None:
        wanted.append((*settings.server.write_listener, "server.write_listen_address"))
    sockets: list[socket.socket] = []
    try:
        for host, port, key in wanted:
            try:
                sockets.append(_listen(host, port))
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot listen on {host}:{port} ({key}): {exc.strerror}"
                ) from exc
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def build_server(
    app: FastAPI,
    settings: Settings,
    listeners: list[socket.socket],
    *,
    options: Mapping[str, Any] | None = None,
) -> ExporterServer:
    """uvicorn (one worker) serving ``app`` from ``listeners``, with the bounds of
    ``settings.server`` and ``settings.shutdown``; ``options`` are more ``uvicorn.Config``
    keywords (e.g. TLS)."""
    ctx: Context = app.state.ctx
    stats = ServingStats()
    app.state.registry.register(ServingCollector(stats, settings.server))
    write_listener = None
    if len(listeners) > 1:  # as bound: the port may have been 0
        write_listener = _address(listeners[1].getsockname())
    admitted = Admission(
        app,
        ctx.telemetry,
        stats,
        max_inflight_writes=settings.server.max_inflight_writes,
        write_listener=write_listener,
    )
    config = ExporterConfig(
        admitted,
        bounds=settings.server,
        stats=stats,
        # One worker, always: the state lives in this process's memory, and
        # prometheus_client's custom collectors do not work in its multiprocess mode.
        workers=1,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        timeout_keep_alive=math.ceil(settings.server.keep_alive_timeout),
        timeout_graceful_shutdown=math.ceil(settings.shutdown.grace),
        **(options or {}),
    )

    def stopping() -> None:
        ctx.stopping = True

    server = ExporterServer(config, listeners, drain=settings.shutdown.drain, on_stopping=stopping)

    def request_exit() -> None:  # starting failed (exporter.startup): stop at once
        server.should_exit = True

    ctx.request_exit = request_exit
    return server


def _address(sockname: Any) -> tuple[str, int]:
    return str(sockname[0]), int(sockname[1])


def serve(app: FastAPI, settings: Settings, *, options: Mapping[str, Any] | None = None) -> int:
    """Serve ``app`` until stopped; the exit status: 0 after a stop, 1 if a listener cannot
    be opened, 2 if starting failed (a configured comparison the restored state refuses)."""
    try:
        listeners = bind(settings)
    except OSError as exc:
        print(f"model-exporter: {exc.strerror}", file=sys.stderr)
        return 1
    build_server(app, settings, listeners, options=options).run()
    failed = app.state.ctx.failure is not None  # logged where it happened
    return 2 if failed else 0
