"""The client's counters: what became of every event logged, drops by reason, and the log lines.

Drops are logged, but only the first :data:`LOGGED_PER_REASON` of each reason (of each way of
failing, for ``failed``): a misbehaving caller cannot flood the log, and every distinct problem
still shows up in it with the exporter's own message.

A refusal of the client's credentials (401 ``unauthorized``, 403 ``forbidden``: a missing or
wrong ``token``, or a peer the exporter does not accept writes from) is not one event's fault:
every later request will be refused the same way until the configuration is fixed. Such drops
are logged as errors, with what to do, and never fall silent: the first at once, then one line
every :data:`AUTH_LOG_INTERVAL` seconds with the count so far, for as long as they go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from exporter.client._delivery import Batch
from exporter.client._normalise import Refused
from exporter.errors import Reason

log = logging.getLogger("exporter.client")

#: Drops logged per reason; further ones are only counted.
LOGGED_PER_REASON = 5
#: Seconds between two error lines about refused credentials (:meth:`Tally.refused`).
AUTH_LOG_INTERVAL = 60.0
#: Reasons (and statuses from something else than the exporter) that refuse the credentials.
_AUTH_REASONS = frozenset(
    {Reason.UNAUTHORIZED.value, Reason.FORBIDDEN.value, "http_401", "http_403"}
)
_AUTH_HINT = (
    "the exporter refuses this client's writes: give MonitorClient the exporter's write token "
    "(token=..., or --token / $MODEL_EXPORTER_TOKEN for replay and demo), or one allowed "
    "this model"
)


@dataclass
class ClientStats:
    """Counters of one client since it started.

    Once :meth:`~exporter.client.MonitorClient.flush` returned True, every event logged is in
    exactly one of ``sent_events``, ``dropped_queue_full``, ``dropped_rejected`` and
    ``dropped_failed``.
    """

    queued: int = 0  # waiting now: queued, or labels waiting for their model to be known
    sent_events: int = 0  # predictions and labels the exporter accepted
    batches_sent: int = 0  # requests the exporter accepted
    requests: int = 0  # HTTP requests made, retries included
    retries: int = 0  # requests made again after a network error, a 5xx or a 429
    dropped_queue_full: int = 0  # refused because the queue was full
    dropped_rejected: int = 0  # refused: at call time, or by the exporter with a 4xx
    dropped_failed: int = 0  # given up: no answer, 5xx or 429 after max_retries, or closing
    #: ``dropped_rejected`` by reason: the exporter's (``invalid_field``, ``unknown_model``,
    #: ...), ``http_<status>`` for a 4xx without one, ``too_many_refusals`` (see
    #: :mod:`exporter.client._delivery`).
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


class Tally:
    """The counters of one client, thread-safe: told by the caller's thread (refusals, a full
    queue) and by the sender (it is the :class:`~exporter.client._delivery.Sink`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._stats = ClientStats()
        self._logged: dict[str, int] = {}
        self._clock = clock
        self._auth_logged: dict[str, float] = {}  # reason -> when last logged

    def snapshot(self, queued: int) -> ClientStats:
        with self._lock:
            by_reason = dict(self._stats.rejected_by_reason)
            return replace(self._stats, queued=queued, rejected_by_reason=by_reason)

    def queue_full(self) -> None:
        with self._lock:
            self._stats.dropped_queue_full += 1
        self._log("queue_full", "an event: the queue is full")

    def refused_at_call(self, kind: str, exc: Exception) -> None:
        """One event refused on the caller's thread: a :class:`Refused`, or any other error
        reading it (counted as ``invalid_field``)."""
        if not isinstance(exc, Refused):
            message = f"could not be read: {type(exc).__name__}: {exc}"
            exc = Refused(Reason.INVALID_FIELD, kind, None, message)
        self._reject(1, exc.reason.value, f"a {kind} ({exc.reason.value}): {exc}")

    @property
    def sent_events(self) -> int:
        with self._lock:
            return self._stats.sent_events

    def requested(self) -> None:
        with self._lock:
            self._stats.requests += 1

    def sent(self, batch: Batch) -> None:
        with self._lock:
            self._stats.sent_events += len(batch.events)
            self._stats.batches_sent += 1

    def retrying(self, error: str) -> None:
        with self._lock:
            self._stats.retries += 1
            self._stats.last_error = error

    def refused(self, batch: Batch, reason: str, detail: str) -> None:
        message = (
            f"{_count(batch)} of model {batch.model!r} refused by the exporter ({reason}): {detail}"
        )
        if reason in _AUTH_REASONS:
            total = self._add_rejected(len(batch.events), reason, message)
            self._log_refused_credentials(reason, total, message)
        else:
            self._reject(len(batch.events), reason, message)

    def failed(self, batch: Batch, error: str) -> None:
        self.lost(len(batch.events), f"{_count(batch)} of model {batch.model!r}: {error}")

    def lost(self, count: int, error: str) -> None:
        """``count`` events given up (not refused): the exporter could not be reached, ..."""
        with self._lock:
            self._stats.dropped_failed += count
            self._stats.last_error = error
        self._log("failed", error)

    def _reject(self, count: int, reason: str, message: str) -> None:
        self._add_rejected(count, reason, message)
        self._log(reason, message)

    def _add_rejected(self, count: int, reason: str, message: str) -> int:
        """Count ``count`` events refused for ``reason``; returns how many were so far."""
        with self._lock:
            stats = self._stats
            stats.dropped_rejected += count
            total = stats.rejected_by_reason[reason] = (
                stats.rejected_by_reason.get(reason, 0) + count
            )
            stats.last_error = message
            return total

    def _log_refused_credentials(self, reason: str, total: int, message: str) -> None:
        """An error line, at most one per :data:`AUTH_LOG_INTERVAL` for each reason."""
        with self._lock:
            now = self._clock()
            last = self._auth_logged.get(reason)
            if last is not None and now - last < AUTH_LOG_INTERVAL:
                return
            self._auth_logged[reason] = now
        log.error(
            "model-exporter client dropped %s (%d refused as %s so far); %s",
            message,
            total,
            reason,
            _AUTH_HINT,
        )

    def _log(self, key: str, message: str) -> None:
        with self._lock:
            seen = self._logged.get(key, 0)
            self._logged[key] = seen + 1
        if seen < LOGGED_PER_REASON:
            last = seen + 1 == LOGGED_PER_REASON
            log.warning(
                "model-exporter client dropped %s%s",
                message,
                " (further such drops are only counted)" if last else "",
            )


def _count(batch: Batch) -> str:
    n = len(batch.events)
    return f"{n} {batch.kind}{'s' if n != 1 else ''}"
