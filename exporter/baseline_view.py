"""What readers compute of a holdout baseline from a snapshot: its quality, the live gap to it.

A reference uploaded (or loaded from a file) with predictions and labels of the same rows is a
holdout validation set (:class:`~exporter.reference.Holdout`); every version that uses it, its
own upload or the model-wide one, gets:

* the **baseline** quality, scored once per look from the holdout's confusion matrix (or error
  sums) exactly as a window is (:mod:`exporter.stats.performance`, so equal to scikit-learn on
  the reference's raw predictions and labels; the classes are the holdout's own, canonical
  labels as the model's classes are named, the positive class the model's);
* the live-minus-baseline **difference** per window (accuracy; regression: MAE), beside the
  live gauge and under the same ``quality.min_samples`` guard;
* the **margin** that the always-valid one-sided test (:class:`~exporter.stats.sequential.
  OneSidedState`, owned by :class:`~exporter.sequential_tracker.SequentialTracker`) is fed:
  the labeled outcomes since the reference was set (the version's cumulative counts minus those
  recorded then, :attr:`~exporter.snapshot.ReferenceInfo.start`) against the bound ``baseline
  accuracy - quality.baseline_tolerance`` or, for regression, ``baseline MAE * (1 +
  quality.baseline_mae_tolerance)`` (a ratio: an MAE is in the target's unit, so no one absolute
  tolerance fits every model).

No baseline while the model's task is unknown, for a holdout whose classes exceed
``drift.max_categories`` (classification), or whose columns are not all numbers (regression).
Pure: no HTTP, no Prometheus, no state.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.reference import Holdout
from exporter.snapshot import ArmCounts, ModelSnapshot, VersionSnapshot
from exporter.stats.performance import (
    ClassificationScores,
    RegressionScores,
    classification_scores,
    regression_scores,
)
from exporter.stats.sequential import Margin, accuracy_margin, mae_margin
from exporter.typedefs import Task
from exporter.views import WindowQuality

Scores = ClassificationScores | RegressionScores


@dataclass(frozen=True, slots=True)
class Baseline:
    """One version's holdout baseline: its scores and where its live counts start."""

    version: str
    scores: Scores
    rows: int  # the holdout's paired rows the scores come from
    set_at: int  # the model's revision when the reference was set (see ReferenceInfo)
    start: ArmCounts


@dataclass(frozen=True, slots=True)
class Tolerances:
    """How much worse than the baseline the live quality may be (``quality.baseline_*``)."""

    accuracy: float = 0.02
    mae_ratio: float = 0.1


def holdout_scores(holdout: Holdout, task: Task, positive_label: str | None) -> Scores | None:
    """The holdout's quality for a model of ``task`` (None when it cannot be scored so).

    A positive class the holdout never shows scores 0 in the ``binary`` average, as a window
    without it does."""
    if task == "regression":
        if holdout.errors is None:
            return None
        return regression_scores(*holdout.errors)
    if holdout.confusion is None:
        return None
    positive = None
    if positive_label is not None:
        classes = holdout.classes
        positive = classes.index(positive_label) if positive_label in classes else len(classes)
    return classification_scores(holdout.confusion, positive_class=positive)


def version_baseline(snapshot: ModelSnapshot, version: VersionSnapshot) -> Baseline | None:
    """The version's baseline, if its reference is a holdout the model's task can score."""
    info = version.reference
    holdout = info.reference.holdout if info.reference is not None else None
    if holdout is None or snapshot.task is None:
        return None
    scores = holdout_scores(holdout, snapshot.task, snapshot.positive_label)
    if scores is None:
        return None
    return Baseline(version.name, scores, holdout.rows, info.set_at, info.start)


def baselines(snapshot: ModelSnapshot) -> tuple[tuple[VersionSnapshot, Baseline], ...]:
    """Every version of the model that has a baseline, with it, in the snapshot's order."""
    out = []
    for version in snapshot.versions:
        baseline = version_baseline(snapshot, version)
        if baseline is not None:
            out.append((version, baseline))
    return tuple(out)


def difference(live: WindowQuality, baseline: Baseline) -> float | None:
    """Live minus baseline over one window: accuracy, or regression's MAE (None while the
    window has no scores, or when they are not of the baseline's kind)."""
    s, b = live.scores, baseline.scores
    if isinstance(s, ClassificationScores) and isinstance(b, ClassificationScores):
        return s.accuracy - b.accuracy
    if isinstance(s, RegressionScores) and isinstance(b, RegressionScores):
        return s.mean_absolute_error - b.mean_absolute_error
    return None


def bound(baseline: Baseline, tolerances: Tolerances) -> float:
    """The quality the live model must not fall below (accuracy) or rise above (MAE)."""
    b = baseline.scores
    if isinstance(b, RegressionScores):
        return b.mean_absolute_error * (1.0 + tolerances.mae_ratio)
    return b.accuracy - tolerances.accuracy


def margin(version: VersionSnapshot, baseline: Baseline, tolerances: Tolerances) -> Margin:
    """The live margin over the bound since the reference was set (negative: worse)."""
    since = ArmCounts.of(version.counters).since(baseline.start)
    limit = bound(baseline, tolerances)
    if isinstance(baseline.scores, RegressionScores):
        return mae_margin(since.error_count, since.abs_error_sum, since.sq_error_sum, limit)
    return accuracy_margin(since.correct, since.labeled, limit)
