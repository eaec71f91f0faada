"""Send predictions and labels to a model-exporter from a model server, in two lines.

::

    from exporter.client import MonitorClient
    monitor = MonitorClient("http://127.0.0.1:17090", model="fraud", model_version="v2")
    monitor.log_prediction("req-1", {"amount": 12.5, "country": "DE"}, 1)   # ~3 us, never raises
    monitor.log_label("req-1", 0)                                           # hours later

Guarantees, for the model's request path:

* ``log_*`` never raise and never block: they append to a bounded in-memory queue and return.
  When the queue is full, the new item is dropped and counted (``stats().dropped_queue_full``);
  memory stays bounded.
* A background thread sends batches (``batch_size`` items, or whatever is queued after
  ``flush_interval`` seconds), retries network errors, 5xx and 429 with exponential backoff and
  jitter (honouring ``Retry-After``), and gives up on a batch after ``max_retries`` (counted).
  A 4xx other than 429 is the caller's mistake: the batch is dropped, counted and logged once.
* ``flush()`` waits until everything queued so far was sent; ``close()`` flushes (bounded by a
  timeout) and stops the thread; both run at interpreter exit.

Only the standard library is needed (msgspec, when installed, encodes faster): importing this
module pulls in neither numpy, scipy nor FastAPI (``tests/test_client.py`` checks it).
"""

from __future__ import annotations

import atexit
import json
import logging
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exporter.client._transport import Response, Transport, TransportError

__all__ = [
    "AsyncMonitorClient",
    "ClientStats",
    "MonitorClient",
    "MonitorError",
]

log = logging.getLogger("exporter.client")

Value = float | int | str | bool | None


class MonitorError(Exception):
    """A synchronous call (``set_reference``) failed; the message says why."""


@dataclass
class ClientStats:
    """Counters of one client since it started."""

    queued: int = 0  # items waiting now
    sent_events: int = 0  # predictions and labels the exporter accepted
    batches_sent: int = 0
    retries: int = 0
    dropped_queue_full: int = 0  # refused because the queue was full
    dropped_rejected: int = 0  # in batches the exporter refused with a 4xx
    dropped_failed: int = 0  # in batches given up after max_retries
    last_error: str | None = None


@dataclass(slots=True)
class _Item:
    kind: str  # "prediction" or "label"
    model: str
    version: str | None
    body: dict[str, Any]


@dataclass
class _Batch:
    kind: str
    model: str
    version: str | None
    bodies: list[dict[str, Any]] = field(default_factory=list)


def _json_default(value: Any) -> Any:
    """numpy scalars (and anything with ``.item()`` or ``.tolist()``) without importing numpy."""
    for attr in ("item", "tolist"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(payload: Any) -> bytes:
    return json.dumps(
        payload, default=_json_default, allow_nan=False, separators=(",", ":")
    ).encode()


class MonitorClient:
    """Thread-safe, non-blocking reporter of predictions and labels to one exporter.

    Parameters
    ----------
    url : str
        The exporter, e.g. ``"http://127.0.0.1:17090"``.
    model, model_version : str
        Defaults for every call (each call may override ``model`` and ``model_version``).
    batch_size : int
        Items per request (the exporter accepts up to 10,000 by default).
    flush_interval : float
        Seconds a queued item waits at most before it is sent.
    max_queue : int
        Items held while the exporter is slow or down; beyond, new items are dropped (counted).
    timeout : float
        Seconds per HTTP request.
    max_retries : int
        Retries of one batch on network errors, 5xx and 429 before it is dropped (counted).
    backoff, max_backoff : float
        First retry delay and its cap; each retry doubles it, with +-50 % jitter.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:17090",
        model: str | None = None,
        model_version: str | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        timeout: float = 5.0,
        max_retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        flush_on_exit: bool = True,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        if flush_interval <= 0 or timeout <= 0:
            raise ValueError("flush_interval and timeout must be > 0")
        self.url = url.rstrip("/")
        self.model = model
        self.model_version = model_version
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._timeout = timeout
        self._transport = Transport(self.url, timeout)
        self._queue: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stats = ClientStats()
        self._closing = False
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="model-exporter-client", daemon=True)
        self._thread.start()
        if flush_on_exit:
            atexit.register(_close_at_exit, weakref.ref(self))

    # -- the request path: never raises, never blocks ------------------------------------------

    def log_prediction(
        self,
        id: str,
        features: Mapping[str, Value],
        prediction: Value,
        *,
        label: Value = None,
        timestamp: float | str | None = None,
        model: str | None = None,
        model_version: str | None = None,
    ) -> bool:
        """Queue one prediction (``label`` optional inline ground truth). False if dropped.

        ``features`` is kept by reference until sent: do not mutate it afterwards.
        """
        body: dict[str, Any] = {"id": id, "features": features, "prediction": prediction}
        if label is not None:
            body["label"] = label
        if timestamp is not None:
            body["timestamp"] = timestamp
        return self._put(
            _Item(
                "prediction", model or self.model or "", model_version or self.model_version, body
            )
        )

    def log_predictions(self, events: Iterable[Mapping[str, Any]], **kw: str | None) -> int:
        """Queue many ``{"id", "features", "prediction", "label"?, "timestamp"?}``; returns how
        many were queued."""
        return sum(
            self.log_prediction(
                e["id"],
                e["features"],
                e["prediction"],
                label=e.get("label"),
                timestamp=e.get("timestamp"),
                **kw,
            )
            for e in events
        )

    def log_label(
        self,
        id: str,
        label: Value,
        *,
        timestamp: float | str | None = None,
        model: str | None = None,
    ) -> bool:
        """Queue the ground truth of an earlier prediction. False if dropped."""
        body: dict[str, Any] = {"id": id, "label": label}
        if timestamp is not None:
            body["timestamp"] = timestamp
        return self._put(_Item("label", model or self.model or "", None, body))

    def log_labels(self, labels: Iterable[tuple[str, Value]], *, model: str | None = None) -> int:
        """Queue many ``(id, label)`` pairs; returns how many were queued."""
        return sum(self.log_label(i, y, model=model) for i, y in labels)

    def _put(self, item: _Item) -> bool:
        try:
            with self._lock:
                if self._closing or len(self._queue) >= self.max_queue:
                    self._stats.dropped_queue_full += 1
                    full = True
                else:
                    self._queue.append(item)
                    full = False
                    if len(self._queue) >= self.batch_size:
                        self._wake.notify()
            if full:
                self._warn_once("full", "model-exporter client queue is full: dropping events")
            return not full
        except Exception:  # pragma: no cover - never let monitoring break a prediction
            return False

    # -- control ------------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        with self._lock:
            snapshot = ClientStats(**vars(self._stats))
            snapshot.queued = len(self._queue)
            return snapshot

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._wake.notify()
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 1.0)
                self._wake.notify()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush (at most ``timeout`` seconds), then stop the background thread."""
        if self._stop.is_set():
            return
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._stop.set()
        self._thread.join(timeout)
        self._transport.close()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_reference(
        self,
        features: Mapping[str, Sequence[Value]],
        *,
        predictions: Sequence[Value] | None = None,
        labels: Sequence[Value] | None = None,
        model: str | None = None,
        model_version: str | None = None,
    ) -> dict[str, Any]:
        """Upload the drift reference (synchronously: a set-up call, not for the request path).

        Raises :class:`MonitorError` if the exporter refuses it or cannot be reached.
        """
        payload: dict[str, Any] = {"features": {k: list(v) for k, v in features.items()}}
        if predictions is not None:
            payload["predictions"] = list(predictions)
        if labels is not None:
            payload["labels"] = list(labels)
        name = model or self.model
        if not name:
            raise MonitorError("set_reference needs a model name")
        path = f"/v1/models/{_quote(name)}/reference"
        version = model_version or self.model_version
        if version:
            path += f"?model_version={_quote(version)}"
        transport = Transport(self.url, self._timeout)  # the sender thread owns the other one
        try:
            response = transport.request("PUT", path, _dumps(payload))
        except TransportError as exc:
            raise MonitorError(f"cannot reach the exporter at {self.url}: {exc}") from None
        finally:
            transport.close()
        if response.status != 200:
            raise MonitorError(f"reference refused ({response.status}): {response.detail()}")
        result: dict[str, Any] = json.loads(response.body)
        return result

    # -- the background thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    if self._stop.is_set():
                        return
                    self._wake.wait(self.flush_interval)
                elif len(self._queue) < self.batch_size and not self._closing:
                    self._wake.wait(self.flush_interval)
                items = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self.batch_size))
                ]
                self._in_flight = len(items)
            if items:
                try:
                    self._send(items)
                except Exception as exc:  # pragma: no cover - keep the thread alive, count it
                    log.exception("model-exporter client: unexpected error")
                    with self._lock:
                        self._stats.dropped_failed += len(items)
                        self._stats.last_error = repr(exc)
            with self._lock:
                self._in_flight = 0
                if not self._queue:
                    self._idle.notify_all()
            if self._stop.is_set() and not items:
                return

    def _send(self, items: list[_Item]) -> None:
        batches: dict[tuple[str, str, str | None], _Batch] = {}
        for item in items:
            key = (item.kind, item.model, item.version)
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = _Batch(item.kind, item.model, item.version)
            batch.bodies.append(item.body)
        # Predictions first: their labels may be in the same drain.
        for batch in sorted(batches.values(), key=lambda b: b.kind != "prediction"):
            self._send_batch(batch)

    def _send_batch(self, batch: _Batch) -> None:
        if batch.kind == "prediction":
            payload: dict[str, Any] = {"model": batch.model, "events": batch.bodies}
            if batch.version:
                payload["model_version"] = batch.version
            path = "/v1/predictions"
        else:
            payload = {"model": batch.model, "labels": batch.bodies}
            path = "/v1/labels"
        try:
            body = _dumps(payload)
        except (TypeError, ValueError, OverflowError) as exc:
            self._drop(batch, "dropped_rejected", f"cannot encode as JSON: {exc}")
            return
        attempt = 0
        while True:
            try:
                response: Response | None = self._transport.request("POST", path, body)
                error = None
            except TransportError as exc:
                response, error = None, str(exc)
            if response is not None and response.status == 200:
                with self._lock:
                    self._stats.sent_events += len(batch.bodies)
                    self._stats.batches_sent += 1
                return
            if response is not None and response.status != 429 and response.status < 500:
                rejection = response.rejection()
                self._drop(
                    batch,
                    "dropped_rejected",
                    f"{response.status} {rejection.reason or ''}: {rejection.detail}",
                )
                return
            if attempt >= self.max_retries or self._stop.is_set():
                reason = error or f"{response.status if response else '?'} after retries"
                self._drop(batch, "dropped_failed", reason)
                return
            delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.5)
            if response is not None and response.retry_after is not None:
                delay = min(self.max_backoff, response.retry_after)
            attempt += 1
            with self._lock:
                self._stats.retries += 1
                self._stats.last_error = error or f"HTTP {response.status if response else '?'}"
            if self._stop.wait(delay):
                self._drop(batch, "dropped_failed", "client closed while retrying")
                return

    def _drop(self, batch: _Batch, counter: str, reason: str) -> None:
        with self._lock:
            setattr(self._stats, counter, getattr(self._stats, counter) + len(batch.bodies))
            self._stats.last_error = reason
        self._warn_once(
            counter, f"model-exporter client dropped {len(batch.bodies)} {batch.kind}s: {reason}"
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s (further such drops are only counted)", message)


def _close_at_exit(ref: weakref.ReferenceType[MonitorClient]) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=5.0)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


class AsyncMonitorClient:
    """The same client for asyncio code: ``log_*`` are plain (non-blocking) methods, safe to
    call from a coroutine; ``flush``, ``aclose`` and ``set_reference`` are awaitable and run
    their waiting in a worker thread, never on the event loop.

    ::

        monitor = AsyncMonitorClient("http://127.0.0.1:17090", model="fraud")
        monitor.log_prediction("req-1", {"amount": 12.5}, 1)
        await monitor.aclose()
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:17090",
        model: str | None = None,
        model_version: str | None = None,
        **options: Any,
    ) -> None:
        self._client = MonitorClient(url, model, model_version, **options)
        self.log_prediction = self._client.log_prediction
        self.log_predictions = self._client.log_predictions
        self.log_label = self._client.log_label
        self.log_labels = self._client.log_labels
        self.stats = self._client.stats

    async def flush(self, timeout: float | None = 10.0) -> bool:
        import asyncio

        return await asyncio.to_thread(self._client.flush, timeout)

    async def aclose(self, timeout: float = 5.0) -> None:
        import asyncio

        await asyncio.to_thread(self._client.close, timeout)

    async def set_reference(
        self, features: Mapping[str, Sequence[Value]], **kw: Any
    ) -> dict[str, Any]:
        import asyncio

        return await asyncio.to_thread(self._client.set_reference, features, **kw)

    async def __aenter__(self) -> AsyncMonitorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
