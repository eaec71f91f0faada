"""Each collector timed and isolated, after node_exporter's ``scrape_collector_*`` metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("exporter.collectors")

#: A collector function: yields metric families, appends a description of each partial failure
#: (e.g. one model whose view could not be built) to the list it is given.
FamilyFunction = Callable[[list[str]], Iterable[Metric]]


class ScrapeCollector(Collector):
    """Runs named collector functions; one failing never blanks the others' metrics."""

    def __init__(
        self,
        collectors: dict[str, FamilyFunction],
        status: Callable[[], list[tuple[str, float, bool]]] | None = None,
    ) -> None:
        self._collectors = collectors
        #: Duration and success of collectors that run outside this one (the cached drift).
        self._status = status

    def describe(self) -> Iterable[Metric]:
        return []  # collected per scrape; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        duration = GaugeMetricFamily(
            "model_exporter_collector_duration_seconds",
            "Time the collector took in this scrape (drift: when its results last changed; "
            "its encoded output is reused until then).",
            labels=["collector"],
        )
        success = GaugeMetricFamily(
            "model_exporter_collector_success",
            "1 if the collector succeeded in this scrape for every model, 0 if any part failed "
            "(the failing part is logged; the rest is still exported).",
            labels=["collector"],
        )
        for name, function in self._collectors.items():
            started = time.perf_counter()
            errors: list[str] = []
            try:
                families = list(function(errors))
            except Exception:
                log.exception("collector %s failed", name)
                families, errors = [], ["collector raised"]
            for error in errors:
                log.error("collector %s: %s", name, error)
            yield from families
            duration.add_metric([name], time.perf_counter() - started)
            success.add_metric([name], 0.0 if errors else 1.0)
        for name, seconds, ok in self._status() if self._status else ():
            duration.add_metric([name], seconds)
            success.add_metric([name], 1.0 if ok else 0.0)
        yield duration
        yield success
