"""What readers compute from a snapshot, outside any lock: quality scores per window.

Shared by the Prometheus collectors and the status API, so both show the same numbers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.estimate_window import EstimateCounts
from exporter.snapshot import WindowCounts
from exporter.stats.cbpe import EstimatedScores, estimated_scores
from exporter.stats.performance import (
    Average,
    ClassificationScores,
    RegressionScores,
    classification_scores,
    regression_scores,
)
from exporter.stats.scores import ScoreQuality


@dataclass(frozen=True, slots=True)
class WindowQuality:
    window: str
    predictions: int
    labeled: int
    #: None while the window holds fewer than ``quality.min_samples`` labeled predictions.
    scores: ClassificationScores | RegressionScores | None
    #: The quality of the predicted probabilities: None while fewer than
    #: ``quality.min_samples`` labeled predictions in the window had a score.
    probabilities: ScoreQuality | None = None


def window_quality(
    counts: WindowCounts, positive_index: int | None, min_samples: int
) -> WindowQuality:
    """Scores of one window, once it holds ``min_samples`` labeled predictions."""
    scores: ClassificationScores | RegressionScores | None = None
    if counts.labeled >= min_samples:
        if counts.errors is not None:
            e = counts.errors
            scores = regression_scores(e.count, e.abs_sum, e.sq_sum)
        elif counts.confusion is not None:
            scores = classification_scores(counts.confusion, positive_class=positive_index)
    probabilities = None
    if counts.scores is not None and counts.scores.count >= min_samples:
        probabilities = counts.scores.quality()
    return WindowQuality(counts.window, counts.predictions, counts.labeled, scores, probabilities)


@dataclass(frozen=True, slots=True)
class EstimateCheck:
    """Realised minus estimated quality over the same labeled, scored predictions."""

    predictions: int
    accuracy: float
    f1: dict[Average, float]


@dataclass(frozen=True, slots=True)
class WindowEstimate:
    """The label-free estimate of one window (None while fewer than ``quality.min_samples``
    scored predictions), and its check against the labels that came (None likewise)."""

    predictions: int
    scores: EstimatedScores | None
    checked: int
    check: EstimateCheck | None


def window_estimate(counts: WindowCounts, min_samples: int) -> WindowEstimate | None:
    """The estimate of a window with a scored reference; None without one."""
    if counts.estimate is None:
        return None
    positive = 1 if counts.estimate.binary else None  # binary windows: (negative, positive)
    n = counts.estimate.predictions
    scores = None
    if n >= min_samples:
        scores = estimated_scores(counts.estimate.expected, positive_class=positive)
    check = counts.estimate_check
    checked = 0 if check is None else check.predictions
    return WindowEstimate(n, scores, checked, _check(check, positive, min_samples))


def _check(
    check: EstimateCounts | None, positive: int | None, min_samples: int
) -> EstimateCheck | None:
    if check is None or check.realised is None or check.predictions < min_samples:
        return None
    estimated = estimated_scores(check.expected, positive_class=positive)
    realised = classification_scores(check.realised, positive_class=positive)
    return EstimateCheck(
        predictions=check.predictions,
        accuracy=realised.accuracy - estimated.accuracy,
        f1={
            avg: realised.f1[avg] - estimated.f1[avg] for avg in estimated.f1 if avg in realised.f1
        },
    )
