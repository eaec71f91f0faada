"""The sequential statistics of every split comparison: one owner, looked at by the drift worker.

A :class:`~exporter.stats.sequential.SequentialState` is state (a running minimum of the
p-value, an intersection of bounds), so it needs one owner, like the drift results: the
:class:`SequentialTracker`. Each run of the drift worker is a *look*: for every model whose
snapshot changed it feeds each challenger's state the counts since the comparison started,
i.e. the versions' cumulative counters (:class:`~exporter.snapshot.ArmCounts`) minus their
values when it was declared (:attr:`~exporter.snapshot.ComparisonInfo.baseline`). Readers (the
collectors) get a model's :class:`SequentialStates`, immutable, whose ``serial`` changes
exactly when a state does: the exposition's cache is keyed by it.

Rules:

* The states belong to one declared comparison, compared whole (champion, challengers,
  started, baseline): a replaced comparison starts afresh, and so does a model that was
  removed and registered again; a model that is gone, has no comparison, or no task yet drops
  its states.
* Split mode: classification compares accuracy
  (:func:`~exporter.stats.sequential.proportions`), regression the mean absolute error
  (:func:`~exporter.stats.sequential.mae`). Shadow mode: from the pairs counted since the
  start (:attr:`~exporter.snapshot.ModelSnapshot.pairs`, whose book starts with the
  comparison), a state's two sample counts both being the pairs; classification compares the
  paired accuracy (:func:`~exporter.stats.sequential.paired`), regression the paired absolute
  errors (:func:`~exporter.stats.sequential.paired_mae`).
* A challenger or champion the model does not have yet counts as an empty arm, so its labeled
  count (0) is there from the first look.
* Looks happen at the worker's cadence, not at scrapes: reading the p-value between looks
  reads the last look, which the always-valid guarantee allows (any subset of looks).

Holdout baselines (:mod:`exporter.baseline_view`) are tracked the same way, per model, in
:class:`BaselineStates` with a serial of their own: one
:class:`~exporter.stats.sequential.OneSidedState` per version whose reference is a holdout,
keyed by the version and the revision its reference was set at (a new reference, or a version
that now uses another one, starts afresh), fed the labeled outcomes since then.

Written by one thread (the worker's); read by any. No HTTP, no Prometheus.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass

from exporter.baseline_view import Tolerances, baselines, margin
from exporter.config import QualitySettings, SequentialComparisonSettings
from exporter.snapshot import ArmCounts, ComparisonInfo, ModelSnapshot
from exporter.stats.sequential import (
    Estimate,
    OneSidedState,
    SequentialSettings,
    SequentialState,
    mae,
    paired,
    paired_mae,
    proportions,
)
from exporter.store import Store

log = logging.getLogger("exporter.sequential")


def sequential_settings(config: SequentialComparisonSettings) -> SequentialSettings:
    """The pure module's settings from the ``comparison.sequential`` section."""
    return SequentialSettings(
        alpha=config.alpha,
        planned_labels_per_arm=config.planned_labels_per_arm,
        min_samples=config.min_samples,
        min_expected=config.min_expected,
    )


def baseline_tolerances(config: QualitySettings) -> Tolerances:
    """The holdout baselines' tolerances from the ``quality`` section."""
    return Tolerances(config.baseline_tolerance, config.baseline_mae_tolerance)


@dataclass(frozen=True, slots=True)
class SequentialStates:
    """A model's sequential states, per challenger, for the comparison they belong to.

    ``serial`` 0 (with no comparison) means nothing was ever tracked for the model."""

    serial: int
    comparison: ComparisonInfo | None = None
    states: tuple[tuple[str, SequentialState], ...] = ()  # (challenger, state), declared order

    def of(self, comparison: ComparisonInfo | None) -> tuple[tuple[str, SequentialState], ...]:
        """The states if they belong to ``comparison`` (the reader's snapshot's), else none."""
        return self.states if comparison is not None and comparison == self.comparison else ()


NOTHING = SequentialStates(0)


@dataclass(frozen=True, slots=True)
class BaselineStates:
    """A model's holdout-baseline tests: ``(version, set_at, state)`` in the snapshot's order.

    ``serial`` 0 means nothing was ever tracked for the model."""

    serial: int
    states: tuple[tuple[str, int, OneSidedState], ...] = ()

    def of(self, version: str, set_at: int) -> OneSidedState | None:
        """The version's state if it belongs to the reference set at ``set_at``."""
        for name, at, state in self.states:
            if name == version and at == set_at:
                return state
        return None


NO_BASELINES = BaselineStates(0)


def since_start(snapshot: ModelSnapshot, comparison: ComparisonInfo, version: str) -> ArmCounts:
    """A version's counts since the comparison started (zeros for a version not there yet)."""
    for v in snapshot.versions:
        if v.name == version:
            return ArmCounts.of(v.counters).since(comparison.start_of(version))
    return ArmCounts()


def estimate(
    snapshot: ModelSnapshot, comparison: ComparisonInfo, challenger: str
) -> Estimate | None:
    """The challenger's difference from the champion since the start, from its counts (None:
    a shadow comparison whose pairs the snapshot lacks)."""
    if comparison.mode == "shadow":
        book = snapshot.pairs
        counts = book.of(challenger) if book is not None else None
        if counts is None:
            return None
        total = counts.total
        if snapshot.task == "regression":
            return paired_mae(total.n, total.loss_sum, total.loss_sq_sum)
        return paired(total.b, total.c, total.n)
    a = since_start(snapshot, comparison, comparison.champion)
    b = since_start(snapshot, comparison, challenger)
    if snapshot.task == "regression":
        return mae(
            a.error_count,
            a.abs_error_sum,
            a.sq_error_sum,
            b.error_count,
            b.abs_error_sum,
            b.sq_error_sum,
        )
    return proportions(a.correct, a.labeled, b.correct, b.labeled)


class SequentialTracker:
    """The :class:`SequentialState` of every (model, champion, challenger, started)."""

    def __init__(self, settings: SequentialSettings, tolerances: Tolerances | None = None) -> None:
        self.settings = settings
        self.tolerances = tolerances or Tolerances()
        self._lock = threading.Lock()
        self._models: dict[str, SequentialStates] = {}
        self._baselines: dict[str, BaselineStates] = {}
        self._seen: dict[str, object] = {}  # model -> key of the snapshot last looked at
        self._serials = itertools.count(1)

    def states(self, model: str) -> SequentialStates:
        with self._lock:
            return self._models.get(model, NOTHING)

    def baselines(self, model: str) -> BaselineStates:
        with self._lock:
            return self._baselines.get(model, NO_BASELINES)

    def seen(self, model: str) -> object:
        """The key of the model's snapshot the last look used (for ``snapshot_if_changed``)."""
        with self._lock:
            return self._seen.get(model)

    def look(self, snapshot: ModelSnapshot) -> None:
        """One look at a model: each challenger's state fed the counts since the start."""
        previous = self.states(snapshot.name)
        comparison = snapshot.comparison
        estimates = (
            [estimate(snapshot, comparison, name) for name in comparison.challengers]
            if comparison is not None and snapshot.task is not None
            else []
        )
        if comparison is None or not estimates or None in estimates:
            current = previous if previous.comparison is None else self._next(None, ())
        else:
            old = dict(previous.of(comparison))
            states = tuple(
                (name, old.get(name, SequentialState(self.settings)).update(e))
                for name, e in zip(comparison.challengers, estimates, strict=True)
                if e is not None
            )
            unchanged = comparison == previous.comparison and states == previous.states
            current = previous if unchanged else self._next(comparison, states)
        tested = self._look_at_baselines(snapshot)
        with self._lock:
            self._models[snapshot.name] = current
            self._baselines[snapshot.name] = tested
            self._seen[snapshot.name] = snapshot.key

    def _look_at_baselines(self, snapshot: ModelSnapshot) -> BaselineStates:
        """Each holdout baseline's test fed the outcomes since its reference was set."""
        previous = self.baselines(snapshot.name)
        states = tuple(
            (
                version.name,
                baseline.set_at,
                (previous.of(version.name, baseline.set_at) or OneSidedState(self.settings)).update(
                    margin(version, baseline, self.tolerances)
                ),
            )
            for version, baseline in baselines(snapshot)
        )
        if states == previous.states:
            return previous
        with self._lock:
            return BaselineStates(next(self._serials), states)

    def keep_models(self, models: Collection[str]) -> None:
        """Drop the states of models that no longer exist."""
        with self._lock:
            for model in [m for m in self._models | self._baselines if m not in models]:
                self._models.pop(model, None)
                self._baselines.pop(model, None)
                self._seen.pop(model, None)

    def _next(
        self, comparison: ComparisonInfo | None, states: tuple[tuple[str, SequentialState], ...]
    ) -> SequentialStates:
        with self._lock:
            return SequentialStates(next(self._serials), comparison, states)


def look_at_models(store: Store, tracker: SequentialTracker) -> None:
    """One look at every model whose snapshot changed since the tracker's last look (an idle
    model costs no copy); a model that fails is logged and skipped."""
    now = store.clock()
    models = store.models()
    for state in models:
        try:
            snapshot = state.snapshot_if_changed(now, tracker.seen(state.name))
            if snapshot is not None:
                tracker.look(snapshot)
        except Exception:  # one bad model must not stop the others
            log.exception("sequential look failed for model=%s", state.name)
    tracker.keep_models({state.name for state in models})
