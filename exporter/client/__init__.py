"""Send predictions and labels to a model-exporter from a model server, in two lines.

::

    from exporter.client import MonitorClient
    monitor = MonitorClient("http://127.0.0.1:17090", model="fraud", model_version="v2")
    monitor.log_prediction("req-1", {"amount": 12.5, "country": "DE"}, 1)   # ~4 us, never raises
    monitor.log_label("req-1", 0)                                           # hours later

Guarantees, for the model's request path:

* ``log_*`` never raise and never block: they append to a bounded in-memory queue and return.
  When the queue is full, the new item is dropped and counted (``stats().dropped_queue_full``);
  memory stays bounded.
* Values are checked on the caller's thread, cheaply (:mod:`exporter.client._normalise`): what
  the API defines is normalised (NaN features are sent as missing, numpy scalars as numbers, int
  ids as strings); what no exporter would accept is refused there (``log_*`` returns False).
* A background thread sends batches (``batch_size`` items, or whatever is queued after
  ``flush_interval`` seconds), retries network errors, 5xx and 429 with exponential backoff and
  jitter (honouring ``Retry-After``), and gives up on a batch after ``max_retries`` (counted).
* A 4xx loses only what the exporter refuses (:mod:`exporter.client._delivery`): the event it
  names is dropped and the rest sent again; a refusal that names none is narrowed down by
  bisection; a 413 is split. Labels refused as ``unknown_model`` are tried again for
  ``unknown_model_retry`` seconds, as the model's first predictions may be on their way
  (:mod:`exporter.client._waiting`).
* Every drop is counted (``stats()``: ``dropped_rejected`` by reason in
  ``rejected_by_reason``), and the first few of each reason are logged with the exporter's
  message (:mod:`exporter.client._stats`).
* ``flush()`` waits until everything queued so far was sent; ``close()`` flushes (bounded by a
  timeout) and stops the thread; both run at interpreter exit.

Only the standard library is needed (msgspec, when installed, encodes faster): importing this
module pulls in neither numpy, scipy nor FastAPI (``tests/test_client.py`` checks it).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.client import _normalise as normalise
from exporter.client._delivery import Backoff, Batch, Delivery, Kind, encoder
from exporter.client._normalise import Refused, Value
from exporter.client._stats import ClientStats, Tally
from exporter.client._transport import Transport, TransportError, dumps
from exporter.client._waiting import Held, WaitingLabels
from exporter.errors import Reason

__all__ = [
    "AsyncMonitorClient",
    "ClientStats",
    "MonitorClient",
    "MonitorError",
]

log = logging.getLogger("exporter.client")


class MonitorError(Exception):
    """A synchronous call (``set_reference``) failed; the message says why."""


@dataclass(slots=True)
class _Item:
    kind: Kind
    model: str
    version: str | None
    body: dict[str, Any]


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
    unknown_model_retry : float
        Seconds labels refused with 404 ``unknown_model`` are tried again (with the same
        backoff), in case the model's first predictions are still on their way; then they are
        dropped, counted under ``unknown_model``. 0: drop them at once.
    token : str, optional
        A write token of the exporter (``auth.write_tokens_file``), sent with every request
        as ``Authorization: Bearer <token>``. Needed once the exporter has write tokens, or
        to reach it from another address than loopback. A request the exporter refuses as
        ``unauthorized`` (401) or ``forbidden`` (403) is dropped whole and logged as an error
        (:mod:`exporter.client._stats`).
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
        unknown_model_retry: float = 60.0,
        flush_on_exit: bool = True,
        token: str | None = None,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        if flush_interval <= 0 or timeout <= 0:
            raise ValueError("flush_interval and timeout must be > 0")
        if unknown_model_retry < 0:
            raise ValueError(f"unknown_model_retry must be >= 0, got {unknown_model_retry!r}")
        self.url = url.rstrip("/")
        self.model = model
        self.model_version = model_version
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.unknown_model_retry = unknown_model_retry
        self._timeout = timeout
        self._token = token
        self._transport = Transport(self.url, timeout, token)
        self._queue: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._flushing = 0  # flush() calls waiting
        self._tally = Tally()
        self._closing = False
        self._stop = threading.Event()
        delays = Backoff(backoff, max_backoff)
        self._waiting = WaitingLabels(unknown_model_retry, delays)  # under self._lock
        self._delivery = Delivery(
            self._transport,
            self._tally,
            max_retries=max_retries,
            backoff=delays,
            stop=self._stop,
            encode=encoder(),
        )
        self._thread = threading.Thread(target=self._run, name="model-exporter-client", daemon=True)
        self._thread.start()
        if flush_on_exit:
            atexit.register(_close_at_exit, weakref.ref(self))

    # -- the request path: never raises, never blocks ------------------------------------------

    def log_prediction(
        self,
        id: str | int,
        features: Mapping[str, Value],
        prediction: Value,
        *,
        label: Value = None,
        timestamp: float | str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        score: float | None = None,
        probabilities: Mapping[Any, float] | None = None,
    ) -> bool:
        """Queue one prediction (``label`` optional inline ground truth; ``score`` a binary
        model's positive-class probability, or ``probabilities`` one per class). False if
        dropped: refused (see :mod:`exporter.client._normalise`) or the queue is full; counted.

        ``features`` is kept by reference until sent (unless a value had to be converted): do
        not mutate it afterwards.
        """
        try:
            body: dict[str, Any] = {
                "id": normalise.identifier(id),
                "features": normalise.features(features),
                "prediction": normalise.outcome(prediction, "prediction"),
            }
            if label is not None and (inline := normalise.inline_label(label)) is not None:
                body["label"] = inline
            if timestamp is not None:
                body["timestamp"] = normalise.moment(timestamp)
            if score is not None:
                body["score"] = normalise.score(score)
            if probabilities is not None:
                body["probabilities"] = normalise.probabilities(probabilities)
            name = normalise.name(model or self.model, "model")
            version = normalise.version(model_version or self.model_version)
        except Exception as exc:  # a refusal; never raise into the caller
            self._tally.refused_at_call("prediction", exc)
            return False
        return self._put(_Item("prediction", name, version, body))

    def log_predictions(self, events: Iterable[Mapping[str, Any]], **kw: str | None) -> int:
        """Queue many ``{"id", "features", "prediction", "label"?, "timestamp"?, "score"?,
        "probabilities"?}``; returns how many were queued."""
        queued = 0
        for event in events:
            get: Callable[[str], Any] = event.get if isinstance(event, Mapping) else _nothing
            queued += self.log_prediction(
                get("id"),
                get("features"),
                get("prediction"),
                label=get("label"),
                timestamp=get("timestamp"),
                score=get("score"),
                probabilities=get("probabilities"),
                **kw,
            )
        return queued

    def log_label(
        self,
        id: str | int,
        label: Value,
        *,
        timestamp: float | str | None = None,
        model: str | None = None,
    ) -> bool:
        """Queue the ground truth of an earlier prediction. False if dropped (counted)."""
        try:
            body: dict[str, Any] = {
                "id": normalise.identifier(id),
                "label": normalise.outcome(label, "label"),
            }
            if timestamp is not None:
                body["timestamp"] = normalise.moment(timestamp)
            name = normalise.name(model or self.model, "model")
        except Exception as exc:  # a refusal; never raise into the caller
            self._tally.refused_at_call("label", exc)
            return False
        return self._put(_Item("label", name, None, body))

    def log_labels(
        self, labels: Iterable[tuple[str | int, Value]], *, model: str | None = None
    ) -> int:
        """Queue many ``(id, label)`` pairs; returns how many were queued."""
        queued = 0
        for pair in labels:
            try:
                ident, label = pair
            except (TypeError, ValueError) as exc:  # not an (id, label) pair
                self._tally.refused_at_call("label", exc)
                continue
            queued += self.log_label(ident, label, model=model)
        return queued

    def _put(self, item: _Item) -> bool:
        try:
            with self._lock:
                held = len(self._queue) + self._waiting.events
                full = self._closing or held >= self.max_queue
                if not full:
                    self._queue.append(item)
                    if len(self._queue) >= self.batch_size:
                        self._wake.notify()
            if full:
                self._tally.queue_full()
            return not full
        except Exception:  # pragma: no cover - never let monitoring break a prediction
            return False

    # -- control ------------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        with self._lock:
            queued = len(self._queue) + self._waiting.events
        return self._tally.snapshot(queued)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout.

        Labels waiting for their model to be known (``unknown_model_retry``) are waited for.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._flushing += 1  # the sender sends what is queued without waiting
            self._wake.notify()
            try:
                while self._queue or self._in_flight or self._waiting:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush (at most ``timeout`` seconds), then stop the background thread; labels still
        waiting for their model are dropped (counted under ``unknown_model``)."""
        if self._stop.is_set():
            return
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._stop.set()  # before the notify: the sender must not sleep again
            self._wake.notify()
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
        Values are normalised as feature values are (NaN is missing, numpy scalars plain).

        Raises :class:`MonitorError` if the exporter refuses it or cannot be reached.
        """
        name = model or self.model
        if not name:
            raise MonitorError("set_reference needs a model name")
        try:
            payload = normalise.reference(features, predictions, labels)
        except Refused as refusal:
            raise MonitorError(f"reference refused before sending: {refusal}") from None
        path = f"/v1/models/{_quote(name)}/reference"
        version = model_version or self.model_version
        if version:
            path += f"?model_version={_quote(version)}"
        # The sender thread owns the other transport.
        transport = Transport(self.url, self._timeout, self._token)
        try:
            response = transport.request("PUT", path, dumps(payload))
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
                if not self._queue and self._stop.is_set():
                    break
                self._sleep()
                items = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self.batch_size))
                ]
                due = self._waiting.due(time.monotonic())
                self._in_flight = len(items) + sum(len(h.batch.events) for h in due)
            if items or due:
                try:
                    self._send(items, due)
                except Exception as exc:  # pragma: no cover - keep the thread alive, count it
                    log.exception("model-exporter client: unexpected error")
                    self._tally.lost(self._in_flight, repr(exc))
            with self._lock:
                self._in_flight = 0
                if not self._queue and not self._waiting:
                    self._idle.notify_all()
        with self._lock:
            held = self._waiting.drain()
            self._idle.notify_all()
        for h in held:
            self._tally.refused(
                h.batch, Reason.UNKNOWN_MODEL.value, "the client closed while they waited"
            )

    def _sleep(self) -> None:
        """Wait (the lock held) for a full batch, the flush interval, held labels coming due,
        or a wake-up (``flush``, ``close``)."""
        if self._queue and (self._closing or self._flushing or len(self._queue) >= self.batch_size):
            return
        timeout = self.flush_interval
        due = self._waiting.next_due()
        if due is not None:
            timeout = min(timeout, due - time.monotonic())
        if timeout > 0:
            self._wake.wait(timeout)

    def _send(self, items: list[_Item], due: list[Held]) -> None:
        groups: dict[tuple[Kind, str, str | None], list[dict[str, Any]]] = {}
        for item in items:
            groups.setdefault((item.kind, item.model, item.version), []).append(item.body)
        batches = [self._delivery.batch(*key, bodies) for key, bodies in groups.items()]
        # Predictions first: their labels may be in the same drain.
        for batch in sorted(batches, key=lambda b: b.kind != "prediction"):
            self._deliver(batch)
        for held in due:
            self._deliver(held.batch, held)

    def _deliver(self, batch: Batch, before: Held | None = None) -> None:
        if not batch.events:
            return
        sent_before = self._tally.sent_events
        held = self._delivery.send(batch, hold_unknown_model=batch.kind == "label")
        known = batch.kind == "prediction" and self._tally.sent_events > sent_before
        with self._lock:
            if known:  # a prediction of the model arrived: its held labels may go now
                self._waiting.wake(batch.model, time.monotonic())
            kept = held is None or self._waiting.hold(held, time.monotonic(), before)
        if held is not None and not kept:
            self._tally.refused(
                held,
                Reason.UNKNOWN_MODEL.value,
                f"still unknown after unknown_model_retry ({self.unknown_model_retry:g} s)",
            )


def _nothing(key: str) -> None:
    """What a malformed event (not a mapping) holds under every key."""


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
