"""Delivering one batch: whatever the exporter accepts arrives, only what it refuses is dropped.

A :class:`Batch` holds the events of one kind (predictions or labels) for one model and
version, each encoded once as JSON: a request's body joins any subset of them, so sending part
of a batch again costs no encoding. The exporter's answer to a request decides the next one:

======================================  =========================================================
answer                                  next
======================================  =========================================================
200                                     delivered
429, 5xx, no answer                     the same request after a backoff (``Retry-After`` wins);
                                        once the batch has had ``max_retries`` retries, what is
                                        left of it is given up (``failed``)
413 (``body_too_large``,                split in halves, each sent on its own
``batch_too_large``)
4xx naming an event (its ``field`` is   that event is dropped under the exporter's ``reason``;
``events[3].prediction``,               the rest is sent again at once
``labels[7].label``, ...)
404 ``unknown_model`` for labels, when  handed back to the caller, which holds them for a while
the caller holds them                   (:mod:`exporter.client._waiting`)
4xx naming no event, for a reason one   bisected: halves sent on their own; a single event
event can cause (``too_many_features``  refused is dropped under the exporter's reason
from an exporter that does not name
the event, ...)
401 ``unauthorized``,                   all of it dropped under that reason, never bisected (no
403 ``forbidden`` (the credentials)     event is at fault), and logged as an error for as long
                                        as it goes on (:mod:`exporter.client._stats`)
any other 4xx: the whole request        all of it dropped under that reason
(``unknown_model``, ``too_many_models``,
``unknown_path``, a ``field`` outside
the events, ...)
4xx from something else than the        all of it dropped, under ``http_<status>``
exporter (no ``reason``: a proxy)
======================================  =========================================================

Sending again is safe: the exporter validates a whole request before it commits any of it (a
refused request changes nothing, and it stops at the first bad event), and it answers 200 to
ids it has already seen, counted as ``duplicates``, never twice.

The cost is bounded. A refusal that names an event removes it, so k bad events named one by one
cost k + 1 requests, at most n + 1 for a batch of n, and no good event is given up for them.
Bisection is what could run long: a batch may be bisected at most :func:`refusal_budget`
``(n) = 16 + 2 * ceil(log2 n)`` times (34 for 500 events; one bad event that no answer names
costs about 2 log2 n + 1; a batch costs at most twice the budget, plus one, in bisections and
the single events they isolate); the bisection that spends the budget ends the batch, and the events
not yet delivered are dropped under :data:`TOO_MANY_REFUSALS` rather than sent again and again.
A 413 costs the halvings it asks for (2n / m requests when m events fit in one), and the
batch's retries (429, 5xx, no answer) are at most ``max_retries``.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from exporter.client._transport import Rejection, Response, TransportError
from exporter.errors import Reason

Kind = Literal["prediction", "label"]

#: The reason of events dropped because their batch spent its request budget.
TOO_MANY_REFUSALS = "too_many_refusals"

#: Reasons one event can cause: a refusal for one of them that names no event is bisected.
#: Any other reason (``unknown_model``, ``too_many_models``, ``unknown_path``, ``invalid_name``,
#: ``malformed_json``, one this client does not know...) refuses the request as a whole:
#: splitting it would only repeat it.
_ONE_EVENT_CAN_CAUSE = frozenset(
    {
        Reason.INVALID_FIELD.value,
        Reason.NON_FINITE.value,
        Reason.STRING_TOO_LONG.value,
        Reason.TOO_MANY_FEATURES.value,
        Reason.TOO_MANY_CLASSES.value,
        Reason.TASK_MISMATCH.value,
        Reason.INVALID_TIMESTAMP.value,
        Reason.DUPLICATE_ID.value,
        Reason.UNKNOWN_ID.value,
    }
)


def refusal_budget(events: int) -> int:
    """Bisections (refusals that name no event) one batch of ``events`` may cost.

    >>> refusal_budget(1), refusal_budget(500), refusal_budget(10_000)
    (16, 34, 44)
    """
    return 16 + 2 * math.ceil(math.log2(max(1, events)))


def _stdlib_encoder() -> Callable[[Any], bytes]:
    encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    return lambda value: encoder.encode(value).encode()


def encoder() -> Callable[[Any], bytes]:
    """JSON encoding of one event: msgspec's when it is installed (about 10x faster: less time
    holding the GIL in the sender thread), else the standard library's."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is installed with the exporter
        return _stdlib_encoder()
    return msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Batch:
    """Events of one kind for one model (and version), each already encoded as JSON."""

    kind: Kind
    model: str
    version: str | None
    events: list[bytes]

    @property
    def items(self) -> str:
        """The array of the request body that holds the events (and that rejections name)."""
        return "events" if self.kind == "prediction" else "labels"

    @property
    def path(self) -> str:
        return "/v1/predictions" if self.kind == "prediction" else "/v1/labels"

    def part(self, events: list[bytes]) -> Batch:
        return replace(self, events=events)

    def body(self, encode: Callable[[Any], bytes]) -> bytes:
        head: dict[str, str] = {"model": self.model}
        if self.version is not None and self.kind == "prediction":
            head["model_version"] = self.version
        start = encode(head)[:-1] + f',"{self.items}":['.encode()
        return start + b",".join(self.events) + b"]}"


class Poster(Protocol):
    """What sends a request: :class:`~exporter.client._transport.Transport`, or a test's fake."""

    def request(self, method: str, path: str, body: bytes) -> Response: ...


class Sink(Protocol):
    """Where the fate of every event is told (the client's counters), as it happens."""

    def requested(self) -> None: ...

    def sent(self, batch: Batch) -> None: ...

    def retrying(self, error: str) -> None: ...

    def refused(self, batch: Batch, reason: str, detail: str) -> None: ...

    def failed(self, batch: Batch, error: str) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``first`` seconds, doubling per attempt up to ``cap``, +-50 % jitter."""

    first: float
    cap: float

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0 ** min(attempt, 64)) * random.uniform(0.5, 1.5)


@dataclass
class _Progress:
    """What one batch has spent so far."""

    refusals: int = 0
    retries: int = 0


class Delivery:
    """Sends batches over one transport (so: from one thread), as the module docstring says.

    ``stop`` ends the waits between retries early: once it is set, a request that fails is not
    retried.
    """

    def __init__(
        self,
        transport: Poster,
        sink: Sink,
        *,
        max_retries: int,
        backoff: Backoff,
        stop: threading.Event,
        encode: Callable[[Any], bytes],
    ) -> None:
        self.transport = transport
        self.sink = sink
        self.max_retries = max_retries
        self.backoff = backoff
        self.stop = stop
        self.encode = encode

    def batch(
        self, kind: Kind, model: str, version: str | None, bodies: list[dict[str, Any]]
    ) -> Batch:
        """These events, encoded; one that cannot be (its features were changed after it was
        logged) is dropped under ``invalid_field``."""
        batch = Batch(kind, model, version, [])
        for body in bodies:
            try:
                batch.events.append(self.encode(body))
            except (TypeError, ValueError, OverflowError) as exc:
                reason = Reason.INVALID_FIELD.value
                self.sink.refused(batch.part([b""]), reason, f"cannot be encoded: {exc}")
        return batch

    def send(self, batch: Batch, *, hold_unknown_model: bool = False) -> Batch | None:
        """Deliver ``batch``; with ``hold_unknown_model``, its events refused as
        ``unknown_model`` are returned (for the caller to try again later) instead of dropped."""
        progress = _Progress()
        budget = refusal_budget(len(batch.events))
        held: list[bytes] = []
        pieces = [batch]  # a stack: the next piece to send is the last
        while pieces:
            piece = pieces.pop()
            response, error = self._post(piece, progress)
            if response is None:
                for rest in [piece, *pieces]:
                    self.sink.failed(rest, error)
                break
            if response.status == 200:
                self.sink.sent(piece)
                continue
            rejection = response.rejection()
            bisects = self._bisects(piece, response.status, rejection)
            progress.refusals += bisects
            if bisects and progress.refusals >= budget:
                for rest in [piece, *pieces]:
                    self.sink.refused(
                        rest,
                        TOO_MANY_REFUSALS,
                        f"given up: its batch of {len(batch.events)} was refused "
                        f"{progress.refusals} times, the most allowed",
                    )
                break
            if hold_unknown_model and rejection.reason == Reason.UNKNOWN_MODEL.value:
                held.extend(piece.events)
                continue
            pieces.extend(reversed(self._after(piece, response.status, rejection)))
        return batch.part(held) if held else None

    def _after(self, piece: Batch, status: int, rejection: Rejection) -> list[Batch]:
        """The pieces to send after ``piece`` was refused (what is dropped is told the sink)."""
        events = piece.events
        half = len(events) // 2
        if status == 413 and half:
            return [piece.part(events[:half]), piece.part(events[half:])]
        reason = rejection.reason or f"http_{status}"  # no reason: not the exporter's answer
        detail = rejection.detail or "(no message)"
        index = rejection.event(piece.items)
        if index is not None and index < len(events):
            self.sink.refused(piece.part([events[index]]), reason, detail)
            rest = events[:index] + events[index + 1 :]
            return [piece.part(rest)] if rest else []
        if self._bisects(piece, status, rejection):
            return [piece.part(events[:half]), piece.part(events[half:])]
        self.sink.refused(piece, reason, detail)
        return []

    @staticmethod
    def _bisects(piece: Batch, status: int, rejection: Rejection) -> bool:
        """Whether the answer to ``piece`` is a refusal that names no event, for a reason one
        of its events can cause: then it is split in halves to find that event."""
        if status == 413 or len(piece.events) < 2 or rejection.field is not None:
            return False
        return rejection.reason in _ONE_EVENT_CAN_CAUSE

    def _post(self, piece: Batch, progress: _Progress) -> tuple[Response | None, str]:
        """The exporter's answer other than 429 and 5xx, or None (and why) when it is given up."""
        body = piece.body(self.encode)
        while True:
            self.sink.requested()
            try:
                response = self.transport.request("POST", piece.path, body)
            except TransportError as exc:
                error = str(exc)
                retry_after = None
            else:
                if response.status != 429 and response.status < 500:
                    return response, ""
                error = f"HTTP {response.status}"
                retry_after = response.retry_after
            if progress.retries >= self.max_retries:
                return None, f"{error} (after {progress.retries} retries)"
            if self.stop.is_set():
                return None, f"{error} (the client is closing)"
            delay = self.backoff.delay(progress.retries)
            if retry_after is not None:
                delay = min(self.backoff.cap, retry_after)
            progress.retries += 1
            self.sink.retrying(error)
            if self.stop.wait(delay):
                return None, f"{error} (the client closed while retrying)"
