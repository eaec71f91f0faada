"""What readers compute from a snapshot, outside any lock: quality scores per window.

Shared by the Prometheus collectors and the status API, so both show the same numbers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.snapshot import WindowCounts
from exporter.stats.performance import (
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
