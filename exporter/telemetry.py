"""The exporter's own counters: events received and rejected, drift worker runs.

Plain integers behind a lock, exported by :func:`exporter.collectors.exporter.exporter_families`.
Every rejection reason is pre-set to zero so that ``rate()`` and alerts see the series from the
first scrape, not only after the first rejection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from exporter.errors import Reason

EVENT_KINDS = ("prediction", "label", "reference")


@dataclass
class DriftWorkerStats:
    runs: int = 0
    computations: int = 0
    failures: int = 0
    last_duration: float = 0.0
    last_run: float = 0.0


@dataclass
class Telemetry:
    started: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_KINDS, 0))
    rejected: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))
    drift: DriftWorkerStats = field(default_factory=DriftWorkerStats)

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

    def snapshot(self) -> tuple[dict[str, int], dict[Reason, int], DriftWorkerStats]:
        with self._lock:
            drift = DriftWorkerStats(**vars(self.drift))
            return dict(self.received), dict(self.rejected), drift
