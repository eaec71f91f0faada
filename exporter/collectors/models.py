"""Every model's quality, traffic, drift and comparison families, from one snapshot of each
model."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.collectors.base import Timings
from exporter.collectors.baseline import baseline_families
from exporter.collectors.comparison import (
    comparison_families,
    pair_families,
    sequential_families,
)
from exporter.collectors.concept import concept_families
from exporter.collectors.drift import drift_families
from exporter.collectors.estimates import estimate_families
from exporter.collectors.quality import quality_families
from exporter.collectors.scores import score_families
from exporter.collectors.traffic import traffic_families
from exporter.drift_worker import DriftCache, DriftResult, WindowKey
from exporter.sequential_tracker import (
    BaselineStates,
    SequentialStates,
    SequentialTracker,
    baseline_tolerances,
    sequential_settings,
)
from exporter.snapshot import ModelSnapshot
from exporter.store import Store

log = logging.getLogger("exporter.collectors")

#: The parts of a model's families, each timed and isolated as a collector of its own.
PARTS = ("quality", "traffic", "drift", "comparison", "baseline")

Results = Mapping[str, Mapping[WindowKey, DriftResult]]
Sequential = Mapping[str, SequentialStates]
Baselines = Mapping[str, BaselineStates]


class ModelCollector(Collector):
    """Quality, traffic, drift, comparisons and holdout baselines of every model.

    A scrape takes each model's lock once, for one :class:`~exporter.snapshot.ModelSnapshot`
    that every part reads, so what they show of a model is consistent. Drift comes from
    the drift worker's cache, for the versions the snapshot shows, and so do the sequential
    comparison statistics and the baselines' tests, from the worker's tracker (without one, a
    tracker that never looks: no sequential series). A model whose snapshot fails is logged
    and left out (every part then reports failure); the others are exported.
    """

    def __init__(
        self,
        store: Store,
        drift: DriftCache,
        timings: Timings,
        sequential: SequentialTracker | None = None,
    ) -> None:
        self.store = store
        self.drift = drift
        self.sequential = sequential or SequentialTracker(
            sequential_settings(store.settings.comparison.sequential),
            baseline_tolerances(store.settings.quality),
        )
        self.timings = timings
        self.min_samples = store.settings.quality.min_samples
        self.comparison_min_samples = store.settings.comparison.min_samples
        self._quiet = threading.local()

    def describe(self) -> Iterable[Metric]:
        return []  # collected per scrape; nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        if getattr(self._quiet, "on", False):
            return
        failed: list[str] = []
        snapshots = self.snapshots(failed)
        results = self.results(snapshots)
        states = self.sequential_states(snapshots)
        tested = self.baseline_states(snapshots)
        for name in PARTS:
            errors = list(failed)
            families: list[Metric] = []
            with self.timings.timed(name, errors):
                families = self.part(name, snapshots, results, states, tested)
            yield from families

    @contextmanager
    def silenced(self) -> Iterator[None]:
        """Within the block, :meth:`collect` yields nothing (in this thread): the exposition
        encodes the rest of the registry while it serves these families from its cache."""
        self._quiet.on = True
        try:
            yield
        finally:
            self._quiet.on = False

    def snapshots(
        self, errors: list[str], latest: Mapping[str, ModelSnapshot] | None = None
    ) -> list[ModelSnapshot]:
        """One snapshot per model, its lock taken once; with ``latest`` (the caller's copies),
        a model that has not changed since gives its copy back and nothing is copied."""
        now = self.store.clock()
        out = []
        for state in self.store.models():
            previous = latest.get(state.name) if latest is not None else None
            try:
                if previous is None:
                    out.append(state.snapshot(now))
                else:
                    out.append(state.snapshot_if_changed(now, previous.key) or previous)
            except Exception:
                log.exception("cannot take a snapshot of model %s", state.name)
                errors.append(f"model {state.name}: snapshot failed")
        return out

    def results(
        self, snapshots: Sequence[ModelSnapshot]
    ) -> dict[str, dict[WindowKey, DriftResult]]:
        return {s.name: self.drift.results(s.name) for s in snapshots}

    def sequential_states(self, snapshots: Sequence[ModelSnapshot]) -> dict[str, SequentialStates]:
        return {s.name: self.sequential.states(s.name) for s in snapshots}

    def baseline_states(self, snapshots: Sequence[ModelSnapshot]) -> dict[str, BaselineStates]:
        return {s.name: self.sequential.baselines(s.name) for s in snapshots}

    def part(
        self,
        name: str,
        snapshots: Sequence[ModelSnapshot],
        results: Results,
        sequential: Sequential,
        baselines: Baselines,
    ) -> list[Metric]:
        """The families of one part, for these models (all of them, in a fixed order, even
        when empty)."""
        if name == "quality":
            return [
                *quality_families(snapshots, self.min_samples),
                *score_families(snapshots, self.min_samples),
                *estimate_families(snapshots, self.min_samples),
                *concept_families(snapshots),
            ]
        if name == "traffic":
            return traffic_families(snapshots)
        if name == "comparison":
            return [
                *comparison_families(snapshots, self.comparison_min_samples),
                *sequential_families(snapshots, sequential),
                *pair_families(snapshots),
            ]
        if name == "baseline":
            return baseline_families(snapshots, baselines, self.min_samples)
        return drift_families(snapshots, results)
