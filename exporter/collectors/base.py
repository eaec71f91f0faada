"""Each collector timed and isolated, after node_exporter's ``scrape_collector_*`` metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("exporter.collectors")


class Timings:
    """The last duration and success of each named collector (part of a scrape).

    Concurrent scrapes overwrite each other's figures: the gauges show the latest."""

    def __init__(self, names: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, bool]] = dict.fromkeys(names, (0.0, True))

    def record(self, name: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self._last[name] = (seconds, ok)

    @contextmanager
    def timed(self, name: str, errors: list[str]) -> Iterator[None]:
        """Time a block; it failed if it raised (logged, swallowed) or ``errors`` is not empty
        at its end (what the block appended is logged)."""
        started = time.perf_counter()
        before = len(errors)
        try:
            yield
        except Exception:
            log.exception("collector %s failed", name)
            errors.append(f"collector {name} raised")
        for error in errors[before:]:
            log.error("collector %s: %s", name, error)
        self.record(name, time.perf_counter() - started, not errors)

    def families(self) -> list[Metric]:
        duration = GaugeMetricFamily(
            "model_exporter_collector_duration_seconds",
            "Time the collector took in this scrape (each model's encoded output is reused "
            "until that model changes).",
            labels=["collector"],
        )
        success = GaugeMetricFamily(
            "model_exporter_collector_success",
            "1 if the collector succeeded in this scrape for every model, 0 if any part failed "
            "(the failing part is logged; the rest is still exported).",
            labels=["collector"],
        )
        with self._lock:
            last = sorted(self._last.items())
        for name, (seconds, ok) in last:
            duration.add_metric([name], seconds)
            success.add_metric([name], 1.0 if ok else 0.0)
        return [duration, success]


class ServiceCollector(Collector):
    """The exporter's own families (timed as ``exporter``), then every collector's timing.

    Registered after the model collector, so a scrape reports its own timings."""

    def __init__(self, families: Callable[[], Iterable[Metric]], timings: Timings) -> None:
        self._families = families
        self._timings = timings

    def describe(self) -> Iterable[Metric]:
        return []  # collected per scrape; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        errors: list[str] = []
        families: list[Metric] = []
        with self._timings.timed("exporter", errors):
            families = list(self._families())
        yield from families
        yield from self._timings.families()
