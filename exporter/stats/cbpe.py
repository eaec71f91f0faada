"""Confidence-based performance estimation (CBPE, as NannyML publishes it): quality estimated
from calibrated probabilities, without labels.

1. **Calibrate** on a reference with labels: for each class, an isotonic regression of "the
   label is this class" on the class's score (:class:`Isotonic`, fitted with scikit-learn's
   ``IsotonicRegression(out_of_bounds="clip")`` and applied as its ``predict`` does, by linear
   interpolation between its thresholds). A multiclass row is divided by its sum afterwards.
2. **Expect** the confusion matrix of any set of predictions: a prediction of class j whose
   calibrated probabilities are p adds p_k to cell (k, j) for every class k
   (:func:`expected_confusion`). Its sums are the expected true positives, false positives and
   false negatives of NannyML's estimators: for class k, ``E[TP] = sum_{pred=k} p_k``,
   ``E[FP] = sum_{pred=k} (1 - p_k)``, ``E[FN] = sum_{pred!=k} p_k``.
3. **Score** the expected matrix as a realised one (:func:`estimated_scores`): accuracy the
   expected share on the diagonal; precision, recall and F1 per class from the expected counts
   (F1 as ``2 E[TP] / (2 E[TP] + E[FP] + E[FN])``), their macro and support-weighted
   averages, and the positive class's for a binary model.

Everything here is sums, so a window keeps the expected matrix per bucket and the estimate is
exact at any rate. Pure numpy; scikit-learn only fits the calibrator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exporter.stats.performance import Average
from exporter.typedefs import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Isotonic:
    """A fitted isotonic calibration: ``apply`` interpolates linearly between the thresholds
    and clips beyond them (scikit-learn's ``IsotonicRegression.predict`` with
    ``out_of_bounds="clip"``)."""

    x: FloatArray
    y: FloatArray

    @classmethod
    def fit(cls, scores: FloatArray, hits: FloatArray) -> Isotonic:
        """Fit "hit" (1/0) on the scores, increasing, within [0, 1]."""
        from sklearn.isotonic import IsotonicRegression

        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
        model.fit(scores, hits)
        return cls(
            np.asarray(model.X_thresholds_, dtype=np.float64),
            np.asarray(model.y_thresholds_, dtype=np.float64),
        )

    def apply(self, scores: FloatArray) -> FloatArray:
        out: FloatArray = np.interp(scores, self.x, self.y)
        return out


def calibrate(scores: FloatArray, calibrators: list[Isotonic | None]) -> FloatArray:
    """Calibrated probabilities (n, K): column k through ``calibrators[k]`` (None: as it is);
    with more than one column, each row is then divided by its sum (a row whose calibrated
    probabilities are all 0 keeps its raw ones)."""
    out = scores.copy()
    for k, calibrator in enumerate(calibrators):
        if calibrator is not None:
            out[:, k] = calibrator.apply(scores[:, k])
    if out.shape[1] > 1:
        total = out.sum(axis=1, keepdims=True)
        out = np.where(total > 0, out / np.where(total > 0, total, 1.0), scores)
    return out


def expected_confusion(probabilities: FloatArray, predicted: IntArray, classes: int) -> FloatArray:
    """The expected confusion matrix (true x predicted, ``classes`` x ``classes``) of
    predictions of class ``predicted[i]`` whose probability of class k is
    ``probabilities[i, k]`` (columns beyond those given: 0)."""
    out = np.zeros((classes, classes))
    width = probabilities.shape[1]
    for j in np.unique(predicted).tolist():
        out[:width, j] += probabilities[predicted == j].sum(axis=0)
    return out


@dataclass(frozen=True, slots=True)
class EstimatedScores:
    """Quality estimated from an expected confusion matrix over ``predictions``."""

    predictions: int
    accuracy: float
    precision: dict[Average, float]
    recall: dict[Average, float]
    f1: dict[Average, float]


def estimated_scores(expected: FloatArray, *, positive_class: int | None) -> EstimatedScores:
    """Accuracy, precision, recall and F1 (macro, weighted by expected support, and binary for
    ``positive_class``) of an expected confusion matrix; 0 where a denominator is 0, as
    scikit-learn's ``zero_division=0``. The averages run over every class of the matrix that
    has expected support or predictions."""
    total = float(expected.sum())
    tp = np.diagonal(expected)
    predicted = expected.sum(axis=0)
    support = expected.sum(axis=1)
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2.0 * tp, predicted + support)
    present = (predicted > 0) | (support > 0)
    weights = support[present] / support[present].sum() if support[present].sum() > 0 else None

    def averaged(values: FloatArray) -> dict[Average, float]:
        out: dict[Average, float] = {"macro": float(values[present].mean())}
        out["weighted"] = float(np.sum(values[present] * weights)) if weights is not None else 0.0
        if positive_class is not None:
            out["binary"] = float(values[positive_class])
        return out

    return EstimatedScores(
        predictions=int(np.rint(total)),
        accuracy=float(tp.sum() / total),
        precision=averaged(precision),
        recall=averaged(recall),
        f1=averaged(f1),
    )


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    safe = np.where(denominator > 0, denominator, 1.0)
    out: FloatArray = np.where(denominator > 0, numerator / safe, 0.0)
    return out
