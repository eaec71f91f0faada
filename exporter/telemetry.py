"""The exporter's own counters: events received and rejected, drift worker runs.

Plain integers behind a lock, exported by :func:`exporter.collectors.exporter.exporter_families`.
Every rejection reason is pre-set to zero so that ``rate()`` and alerts see the series from the
first scrape, not only after the first rejection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from exporter.errors import Reason

EVENT_KINDS = ("prediction", "label", "reference")


@dataclass
class DriftWorkerStats:
    runs: int = 0
    computations: int = 0
    failures: int = 0
    last_duration: float = 0.0
    last_run: float = 0.0


#: How a start went with the state snapshot (state.path): everything restored (a shutdown
#: snapshot), restored with counters from zero (a periodic one: the stop was unclean), moved
#: aside (unreadable), failed (an I/O error), or none to restore.
RESTORE_OUTCOMES = ("restored", "restored_without_counters", "moved_aside", "failed", "none")


@dataclass
class StateStats:
    """Snapshots of the state: the last successful one, failures, restores by outcome."""

    size: int = 0
    duration: float = 0.0
    written_at: float = 0.0
    snapshots: int = 0
    failures: int = 0
    restores: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESTORE_OUTCOMES, 0))


@dataclass
class Telemetry:
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_KINDS, 0))
    rejected: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))
    drift: DriftWorkerStats = field(default_factory=DriftWorkerStats)
    #: None while snapshots are off (no state.path).
    state: StateStats | None = None

    def count_received(self, kind: str, events: int) -> None:
        with self._lock:
            self.received[kind] += events

    def count_rejected(self, reason: Reason, events: int) -> None:
        with self._lock:
            self.rejected[reason] += events

    def count_drift_run(self, computations: int, failures: int, duration: float) -> None:
        with self._lock:
            self.drift.runs += 1
            self.drift.computations += computations
            self.drift.failures += failures
            self.drift.last_duration = duration
            self.drift.last_run = time.time()

    def count_snapshot(self, size: int, duration: float, written_at: float) -> None:
        with self._lock:
            state = self.state = self.state or StateStats()
            state.size, state.duration, state.written_at = size, duration, written_at
            state.snapshots += 1

    def count_snapshot_failure(self) -> None:
        with self._lock:
            state = self.state = self.state or StateStats()
            state.failures += 1

    def count_restore(self, outcome: str) -> None:
        with self._lock:
            state = self.state = self.state or StateStats()
            state.restores[outcome] += 1

    def state_stats(self) -> StateStats | None:
        with self._lock:
            state = self.state
            return None if state is None else replace(state, restores=dict(state.restores))

    def to_state(self) -> dict[str, dict[str, int]]:
        """The event counts (the drift worker's are the process's own)."""
        with self._lock:
            rejected = {reason.value: n for reason, n in self.rejected.items()}
            return {"received": dict(self.received), "rejected": rejected}

    def load_state(self, state: dict[str, dict[str, int]]) -> None:
        """Carry on from saved counts (a reason unknown to this version is left out), added
        to those counted since the start (requests refused while restoring)."""
        received = {kind: int(state["received"].get(kind, 0)) for kind in EVENT_KINDS}
        known = {reason.value: reason for reason in Reason}
        rejected = dict.fromkeys(Reason, 0)
        for value, count in state["rejected"].items():
            if value in known:
                rejected[known[value]] = int(count)
        with self._lock:
            for kind, count in received.items():
                self.received[kind] = self.received.get(kind, 0) + count
            for reason, count in rejected.items():
                self.rejected[reason] = self.rejected.get(reason, 0) + count

    def snapshot(self) -> tuple[dict[str, int], dict[Reason, int], DriftWorkerStats]:
        with self._lock:
            drift = DriftWorkerStats(**vars(self.drift))
            return dict(self.received), dict(self.rejected), drift
