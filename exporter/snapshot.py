"""Immutable pictures of a model, taken under its lock and read without it.

Every reader takes one: the Prometheus collectors and the status API a :class:`ModelSnapshot`
(counters, window aggregates, references), the drift worker a :class:`DriftSnapshot` (copies of
the sample reservoirs of the windows whose content changed). Each holds copies, never live
state, so whatever a reader computes from it is consistent with one instant and costs the
writers nothing. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from exporter.concept_watch import ConceptDriftInfo
from exporter.counters import ModelCounters, VersionCounters
from exporter.estimate_window import EstimateCounts
from exporter.persist.plain import State
from exporter.reference import Reference, RowLayout, TargetReference
from exporter.score_window import ScoreCounts
from exporter.typedefs import FeatureKind, IntArray, Task
from exporter.window import Reservoirs


@dataclass(frozen=True, slots=True)
class ErrorSums:
    """Regression errors over a window: count, sum of |error|, sum of error^2."""

    count: int
    abs_sum: float
    sq_sum: float


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One window of one version: exact event counts and the quality aggregate."""

    window: str
    predictions: int  # events in the window, by prediction time
    labeled: int  # joined labels in the window, by label time
    confusion: IntArray | None  # classification: true x predicted class counts
    errors: ErrorSums | None  # regression
    #: classification with scored outcomes: their sums, histograms and (while exact) outcomes
    scores: ScoreCounts | None = None
    #: with a scored reference: the label-free estimate's expected confusion over every scored
    #: prediction (by prediction time), and over the labeled ones with their realised one
    estimate: EstimateCounts | None = None
    estimate_check: EstimateCounts | None = None


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    name: str
    #: Unique within the model while it lives: a version removed and created again gets
    #: another (a model registered again starts them afresh: see :attr:`ModelSnapshot.uid`).
    uid: int
    counters: VersionCounters
    pending: int  # predictions waiting for their label
    windows: tuple[WindowCounts, ...]
    reference: ReferenceInfo
    concept: ConceptDriftInfo | None = None  # None: no detector (off, or no outcome yet)


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """A version's cumulative labeled outcomes: classification's correct and labeled
    predictions (the confusion matrix's diagonal and total), regression's error sums."""

    correct: int = 0
    labeled: int = 0
    error_count: int = 0
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0

    @staticmethod
    def of(counters: VersionCounters) -> ArmCounts:
        outcomes = counters.outcomes
        return ArmCounts(
            correct=int(np.trace(outcomes)),
            labeled=int(outcomes.sum()),
            error_count=counters.error_count,
            abs_error_sum=counters.abs_error_sum,
            sq_error_sum=counters.sq_error_sum,
        )

    def since(self, start: ArmCounts) -> ArmCounts:
        """What was added since the counts were ``start``.

        >>> ArmCounts(9, 10, 0, 0.0, 0.0).since(ArmCounts(4, 5, 0, 0.0, 0.0))
        ArmCounts(correct=5, labeled=5, error_count=0, abs_error_sum=0.0, sq_error_sum=0.0)
        """
        return ArmCounts(
            self.correct - start.correct,
            self.labeled - start.labeled,
            self.error_count - start.error_count,
            # Clipped: float sums can round a hair below what they were.
            max(self.abs_error_sum - start.abs_error_sum, 0.0),
            max(self.sq_error_sum - start.sq_error_sum, 0.0),
        )


def arm_counts_state(counts: ArmCounts) -> list[float]:
    """Saved as ``[correct, labeled, error_count, abs_error_sum, sq_error_sum]``."""
    return [
        counts.correct,
        counts.labeled,
        counts.error_count,
        counts.abs_error_sum,
        counts.sq_error_sum,
    ]


def arm_counts_of(state: list[float]) -> ArmCounts:
    correct, labeled, errors, abs_sum, sq_sum = state
    return ArmCounts(int(correct), int(labeled), int(errors), float(abs_sum), float(sq_sum))


def comparison_state(info: ComparisonInfo) -> State:
    return {
        "champion": info.champion,
        "challengers": list(info.challengers),
        "mode": info.mode,
        "started": info.started,
        "baseline": [[name, arm_counts_state(counts)] for name, counts in info.baseline],
    }


def comparison_of(state: State) -> ComparisonInfo:
    mode = state["mode"]
    if mode not in ("split", "shadow"):
        raise ValueError(f"unknown comparison mode {mode!r}")
    return ComparisonInfo(
        str(state["champion"]),
        tuple(state["challengers"]),
        mode,
        float(state["started"]),
        tuple((str(name), arm_counts_of(counts)) for name, counts in state["baseline"]),
    )


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """Which reference a version's drift uses."""

    source: str  # upload, file, first_events, previous_window, or collecting
    scope: str  # "model" (every version) or "version"
    rows: int
    target_rows: int  # rows a first-events reference is being collected to
    reference: Reference | None
    #: The model's revision when this reference was set (tells one upload from the next) and
    #: the version's cumulative counts then: its holdout baseline's counts run from these.
    set_at: int = 0
    start: ArmCounts = ArmCounts()


@dataclass(frozen=True, slots=True)
class ComparisonInfo:
    """A declared comparison: each challenger version against the champion version.

    ``mode`` is ``split`` (independent traffic) or ``shadow`` (every challenger predicts the same
    requests as the champion); ``started`` (epoch seconds) is when it was declared, from which
    its sequential statistics run. ``baseline`` holds, per version it names, the version's
    cumulative counts when it was declared (zeros for a version that did not exist yet): the
    counts since the start are the version's counts minus these."""

    champion: str
    challengers: tuple[str, ...]
    mode: Literal["split", "shadow"]
    started: float
    baseline: tuple[tuple[str, ArmCounts], ...] = ()

    def start_of(self, version: str) -> ArmCounts:
        """The version's counts when the comparison was declared."""
        for name, counts in self.baseline:
            if name == version:
                return counts
        return ArmCounts()


@dataclass(frozen=True, slots=True)
class PairCounts:
    """Champion/challenger pairs of a shadow comparison: ``b`` the champion better (right and
    the challenger wrong; regression: a smaller absolute error), ``c`` the reverse, ``n`` all
    pairs (ties too); ``loss_sum`` and ``loss_sq_sum`` the sums of ``d`` and ``d^2`` over them,
    ``d`` the challenger's loss minus the champion's (loss: 1 wrong, 0 right; regression: the
    absolute error)."""

    b: int = 0
    c: int = 0
    n: int = 0
    loss_sum: float = 0.0
    loss_sq_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class PairWindowCounts:
    """One challenger's pairs: per window (label, counts), and since the comparison started."""

    challenger: str
    windows: tuple[tuple[str, PairCounts], ...]
    total: PairCounts


@dataclass(frozen=True, slots=True)
class PairsSnapshot:
    """The pairs of a shadow comparison (:class:`~exporter.pairs.PairBook`)."""

    champion: str
    challengers: tuple[PairWindowCounts, ...]
    waiting: int  # ids waiting for a pair
    dropped: tuple[tuple[str, int], ...]  # (reason, ids that left with a pair lost)

    def of(self, challenger: str) -> PairWindowCounts | None:
        for counts in self.challengers:
            if counts.challenger == challenger:
                return counts
        return None


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """Everything the collectors and the status API show of one model, at ``taken_at``."""

    name: str
    taken_at: float
    #: Equal keys mean equal content: the model's revision (bumped by every change but the
    #: passage of time), per version the live buckets holding data (which time changes), and
    #: the model's :attr:`uid`.
    key: tuple[object, ...]
    task: Task | None
    task_declared: bool
    positive_index: int | None
    positive_label: str | None
    classes: tuple[str, ...]
    features: tuple[tuple[str, FeatureKind | None], ...]
    counters: ModelCounters
    pending_labels: int
    versions: tuple[VersionSnapshot, ...]
    comparison: ComparisonInfo | None = None
    #: A shadow comparison's pairs (classification); None otherwise.
    pairs: PairsSnapshot | None = None

    @property
    def revision(self) -> int:
        revision = self.key[0]
        assert isinstance(revision, int)
        return revision

    @property
    def uid(self) -> int:
        """Tells this model apart from an earlier one of the same name (unique in the store)."""
        uid = self.key[2]
        assert isinstance(uid, int)
        return uid


@dataclass(frozen=True, slots=True)
class DriftInput:
    """What one window's drift computation needs."""

    version: str
    window: str
    key: tuple[int, ...]  # equal keys: same sample and reference, so the same result
    rows: Reservoirs  # column 0 the prediction, then the features (see RowLayout)
    labels: Reservoirs  # joined labels (one column) by label time
    previous: tuple[Reservoirs, Reservoirs] | None  # rolling reference: the window before
    reference: Reference | None
    reference_source: str | None
    label_reference: TargetReference | None


@dataclass(frozen=True, slots=True)
class DriftSnapshot:
    model: str
    layout: RowLayout
    versions: tuple[str, ...]  # every version the model has now
    windows: tuple[DriftInput, ...]  # the windows whose key is not among those already known
