"""Prometheus adapter: custom collectors that build fresh metric families on every scrape.

They read snapshots of the models (:mod:`exporter.snapshot`), the drift worker's cache and the
exporter's telemetry; they never compute statistics themselves beyond turning a snapshot into
samples. :mod:`exporter.exposition` encodes them for ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector

from exporter.collectors.base import ServiceCollector, Timings
from exporter.collectors.exporter import exporter_families
from exporter.collectors.models import PARTS, ModelCollector
from exporter.drift_worker import DriftCache
from exporter.history import History
from exporter.sequential_tracker import SequentialTracker
from exporter.store import Store
from exporter.telemetry import Telemetry


def build_registry(
    store: Store,
    telemetry: Telemetry,
    drift: DriftCache,
    registry: CollectorRegistry | None = None,
    sequential: SequentialTracker | None = None,
    history: History | None = None,
) -> tuple[CollectorRegistry, ModelCollector]:
    """Register the exporter's collectors in ``registry`` (by default a new one: never the
    global registry); returns it and the model collector (which the exposition caches)."""
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
    timings = Timings([*PARTS, "exporter"])
    models = ModelCollector(store, drift, timings, sequential)
    registry.register(models)
    registry.register(
        ServiceCollector(lambda: exporter_families(store, telemetry, history), timings)
    )
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry, models
