"""Prometheus adapter: custom collectors that build fresh metric families on every scrape.

They read views of the store (:mod:`exporter.analysis`) and the exporter's telemetry; they never
compute statistics themselves beyond turning a view into samples.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector

from exporter.collectors.base import ScrapeCollector
from exporter.collectors.drift import DriftExposition
from exporter.collectors.exporter import exporter_families
from exporter.collectors.quality import quality_families
from exporter.collectors.traffic import traffic_families
from exporter.store import Store
from exporter.telemetry import Telemetry


def build_registry(
    store: Store,
    telemetry: Telemetry,
    registry: CollectorRegistry | None = None,
    drift: DriftExposition | None = None,
) -> CollectorRegistry:
    """Register the exporter's live collectors in ``registry`` (by default a new one: never
    the global registry) and return it. Drift is encoded apart and cached
    (:class:`DriftExposition`); ``/metrics`` appends it."""
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
    registry.register(
        ScrapeCollector(
            {
                "quality": lambda errors: quality_families(store, errors),
                "traffic": lambda errors: traffic_families(store, errors),
                "exporter": lambda errors: exporter_families(store, telemetry),
            },
            status=drift.status if drift is not None else None,
        )
    )
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
