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
  started, baseline), of one model incarnation (:attr:`~exporter.snapshot.ModelSnapshot.uid`):
  a replaced comparison starts afresh, and so does a model that was removed and registered
  again, even with an equal comparison declared at the same second; a model that is gone, has
  no comparison, or no task yet drops its states.
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
* A look's two parts, the comparison and the baselines, are independent: one that fails is
  logged and keeps its last states while the other's are stored, and the snapshot is not
  marked seen, so the next look tries again. A state whose counts went down (which the keys
  below rule out; defence in depth) starts again from these counts, logged at warning, rather
  than failing every look.

Holdout baselines (:mod:`exporter.baseline_view`) are tracked the same way, per model, in
:class:`BaselineStates` with a serial of their own: one
:class:`~exporter.stats.sequential.OneSidedState` per version whose reference is a holdout,
fed the labeled outcomes since then, keyed by a :class:`BaselineKey`: the model's and the
version's uids and the revision the reference was set at. A new reference, a version that now
uses another one, and a version (or model) removed and created again all start afresh: a
re-created version using the model-wide reference has the same name and ``set_at`` as its
predecessor but counts from zero, so its name alone would feed it the old version's state.

Written by one thread (the worker's); read by any. No HTTP, no Prometheus.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from exporter.baseline_view import Tolerances, baselines, margin
from exporter.config import QualitySettings, SequentialComparisonSettings
from exporter.persist.plain import State
from exporter.snapshot import (
    ArmCounts,
    ComparisonInfo,
    ModelSnapshot,
    comparison_of,
    comparison_state,
)
from exporter.stats.sequential import (
    Estimate,
    Margin,
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

T = TypeVar("T")


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
    model: int = 0  # the uid of the model they were computed for

    def of(
        self, comparison: ComparisonInfo | None, model: int | None = None
    ) -> tuple[tuple[str, SequentialState], ...]:
        """The states if they belong to ``comparison`` (the reader's snapshot's) and, when
        given, to the model of uid ``model`` (a model removed and registered again between two
        looks has a new uid), else none."""
        if comparison is None or comparison != self.comparison:
            return ()
        return self.states if model is None or model == self.model else ()


NOTHING = SequentialStates(0)


@dataclass(frozen=True, slots=True)
class BaselineKey:
    """What one baseline test belongs to: a model and a version, each as created (their uids),
    and the revision the version's reference was set at."""

    model: int
    version: int
    set_at: int


@dataclass(frozen=True, slots=True)
class BaselineStates:
    """A model's holdout-baseline tests: ``(version, key, state)`` in the snapshot's order.

    ``serial`` 0 means nothing was ever tracked for the model."""

    serial: int
    states: tuple[tuple[str, BaselineKey, OneSidedState], ...] = ()

    def of(self, version: str, set_at: int) -> OneSidedState | None:
        """The state of the version of that name at the last look, if it belongs to the
        reference set at ``set_at``."""
        for name, key, state in self.states:
            if name == version and key.set_at == set_at:
                return state
        return None

    def at(self, key: BaselineKey) -> OneSidedState | None:
        """The state of exactly that version incarnation and reference."""
        for _, k, state in self.states:
            if k == key:
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
        """One look at a model: each challenger's state fed the counts since the start, each
        holdout baseline's test the outcomes since its reference was set (each part stored
        even if the other fails)."""
        compared = _attempt(self._look_at_comparison, snapshot, "comparison")
        tested = _attempt(self._look_at_baselines, snapshot, "baselines")
        with self._lock:
            if compared is not None:
                self._models[snapshot.name] = compared
            if tested is not None:
                self._baselines[snapshot.name] = tested
            if compared is not None and tested is not None:
                self._seen[snapshot.name] = snapshot.key

    def _look_at_comparison(self, snapshot: ModelSnapshot) -> SequentialStates:
        """Each challenger's state fed the counts since the comparison started."""
        previous = self.states(snapshot.name)
        comparison = snapshot.comparison
        estimates = (
            [estimate(snapshot, comparison, name) for name in comparison.challengers]
            if comparison is not None and snapshot.task is not None
            else []
        )
        if comparison is None or not estimates or None in estimates:
            if previous.comparison is None:
                return previous
            return self._next(None, (), snapshot.uid)
        same = previous.model == snapshot.uid and previous.comparison == comparison
        old = dict(previous.states) if same else {}
        states = tuple(
            (name, self._fed(old.get(name), e, f"model={snapshot.name} challenger={name}"))
            for name, e in zip(comparison.challengers, estimates, strict=True)
            if e is not None
        )
        if same and states == previous.states:
            return previous
        return self._next(comparison, states, snapshot.uid)

    def _look_at_baselines(self, snapshot: ModelSnapshot) -> BaselineStates:
        """Each holdout baseline's test fed the outcomes since its reference was set."""
        previous = self.baselines(snapshot.name)
        states = []
        for version, baseline in baselines(snapshot):
            key = BaselineKey(snapshot.uid, version.uid, baseline.set_at)
            where = f"model={snapshot.name} baseline of version={version.name}"
            fed = self._tested(previous.at(key), margin(version, baseline, self.tolerances), where)
            states.append((version.name, key, fed))
        if tuple(states) == previous.states:
            return previous
        with self._lock:
            return BaselineStates(next(self._serials), tuple(states))

    def _fed(self, state: SequentialState | None, e: Estimate, where: str) -> SequentialState:
        """``state`` (a new one if None) fed ``e``; a new one too if its counts went down."""
        if state is not None and (
            int(e.samples_a) < state.samples_a or int(e.samples_b) < state.samples_b
        ):
            log.warning("sequential state of %s restarted: its counts went down", where)
            state = None
        return (state if state is not None else SequentialState(self.settings)).update(e)

    def _tested(self, state: OneSidedState | None, m: Margin, where: str) -> OneSidedState:
        """``state`` (a new one if None) fed ``m``; a new one too if its counts went down."""
        if state is not None and int(m.samples) < state.samples:
            log.warning("sequential state of %s restarted: its counts went down", where)
            state = None
        return (state if state is not None else OneSidedState(self.settings)).update(m)

    def to_state(self) -> State:
        """Every model's states as of the last look (the settings are the configured ones)."""
        with self._lock:
            models, tested = dict(self._models), dict(self._baselines)
        return {
            "comparisons": {
                name: {
                    "comparison": None if s.comparison is None else comparison_state(s.comparison),
                    "model": s.model,
                    "states": [[c, _fields(state)] for c, state in s.states],
                }
                for name, s in models.items()
            },
            "baselines": {
                name: [
                    [version, [key.model, key.version, key.set_at], _fields(state)]
                    for version, key, state in b.states
                ]
                for name, b in tested.items()
            },
        }

    def load_state(self, state: State) -> None:
        """Replace the states by those saved; the next look goes on from them."""
        models, tested = {}, {}
        for name, saved in state["comparisons"].items():
            comparison = saved["comparison"]
            models[name] = SequentialStates(
                next(self._serials),
                None if comparison is None else comparison_of(comparison),
                tuple(
                    (str(c), SequentialState(self.settings, **fields))
                    for c, fields in saved["states"]
                ),
                int(saved["model"]),
            )
        for name, saved in state["baselines"].items():
            tested[name] = BaselineStates(
                next(self._serials),
                tuple(
                    (str(v), BaselineKey(*(int(k) for k in key)), OneSidedState(self.settings, **f))
                    for v, key, f in saved
                ),
            )
        with self._lock:
            self._models, self._baselines, self._seen = models, tested, {}

    def keep_models(self, models: Collection[str]) -> None:
        """Drop the states of models that no longer exist."""
        with self._lock:
            for model in [m for m in self._models | self._baselines if m not in models]:
                self._models.pop(model, None)
                self._baselines.pop(model, None)
                self._seen.pop(model, None)

    def _next(
        self,
        comparison: ComparisonInfo | None,
        states: tuple[tuple[str, SequentialState], ...],
        model: int,
    ) -> SequentialStates:
        with self._lock:
            return SequentialStates(next(self._serials), comparison, states, model)


def _fields(state: SequentialState | OneSidedState) -> dict[str, object]:
    """A state's values but its settings (plain numbers, strings and None)."""
    return {k: getattr(state, k) for k in state.__dataclass_fields__ if k != "settings"}


def _attempt(part: Callable[[ModelSnapshot], T], snapshot: ModelSnapshot, what: str) -> T | None:
    """One part of a look, or None (logged) if it failed: it must not stop the other."""
    try:
        return part(snapshot)
    except Exception:
        log.exception("sequential look at the %s failed for model=%s", what, snapshot.name)
        return None


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
