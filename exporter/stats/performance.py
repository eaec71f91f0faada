"""Classification and regression quality from sufficient statistics.

Everything here works on aggregates a window can keep exactly with bounded memory: a confusion
matrix for classification and ``(count, sum |e|, sum e^2)`` for regression. The formulas follow
``sklearn.metrics`` (``precision_recall_fscore_support`` with ``zero_division=0``) so that a
window's values equal scikit-learn's on the same labels; ``tests/test_stats_performance.py``
checks this against scikit-learn itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from exporter.typedefs import FloatArray, IntArray

Average = Literal["binary", "macro", "weighted"]


@dataclass(frozen=True, slots=True)
class ClassificationScores:
    """Scores of one window.

    ``classes`` are the indices (into the model's class list) present in the window as truth or
    prediction, as scikit-learn's ``unique_labels(y_true, y_pred)``; the per-class arrays align
    with it. ``precision``, ``recall`` and ``f1`` map an average to its value.
    """

    samples: int
    accuracy: float
    precision: dict[Average, float]
    recall: dict[Average, float]
    f1: dict[Average, float]
    classes: IntArray
    class_precision: FloatArray
    class_recall: FloatArray
    class_f1: FloatArray
    class_support: IntArray


def _divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """Element-wise division with 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    zero = denominator == 0
    safe = np.where(zero, 1.0, denominator)
    out: FloatArray = np.where(zero, 0.0, numerator / safe)
    return out


def classification_scores(
    confusion: IntArray, *, positive_class: int | None = None
) -> ClassificationScores:
    """Accuracy, precision, recall and F1 from a confusion matrix.

    Parameters
    ----------
    confusion : (K, K) int array
        ``confusion[i, j]`` counts samples whose true class is ``i`` and predicted class ``j``.
    positive_class : int, optional
        Index of the positive class. When given, the ``"binary"`` average (scores of that class
        alone, as scikit-learn's ``average="binary"``) is included.

    Examples
    --------
    >>> cm = np.array([[5, 1], [2, 2]])
    >>> s = classification_scores(cm, positive_class=1)
    >>> round(s.accuracy, 3), round(s.precision["binary"], 3), round(s.recall["binary"], 3)
    (0.7, 0.667, 0.5)
    """
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    true_sum = cm.sum(axis=1)
    pred_sum = cm.sum(axis=0)
    total = int(true_sum.sum())
    if total == 0:
        raise ValueError("confusion matrix is empty: no samples to score")
    tp = np.diagonal(cm).astype(np.float64)
    present = np.flatnonzero((true_sum + pred_sum) > 0)

    tp_p = tp[present]
    true_p = true_sum[present].astype(np.float64)
    pred_p = pred_sum[present].astype(np.float64)
    precision = _divide(tp_p, pred_p)
    recall = _divide(tp_p, true_p)
    f1 = _divide(2.0 * tp_p, true_p + pred_p)

    averages_p: dict[Average, float] = {
        "macro": float(np.average(precision)),
        "weighted": float(np.average(precision, weights=true_p)),
    }
    averages_r: dict[Average, float] = {
        "macro": float(np.average(recall)),
        "weighted": float(np.average(recall, weights=true_p)),
    }
    averages_f: dict[Average, float] = {
        "macro": float(np.average(f1)),
        "weighted": float(np.average(f1, weights=true_p)),
    }
    if positive_class is not None:
        if not 0 <= positive_class < cm.shape[0]:
            # The positive class has not been seen yet: every count of it is zero.
            tp_b = pred_b = true_b = 0.0
        else:
            tp_b = float(tp[positive_class])
            pred_b = float(pred_sum[positive_class])
            true_b = float(true_sum[positive_class])
        averages_p["binary"] = tp_b / pred_b if pred_b else 0.0
        averages_r["binary"] = tp_b / true_b if true_b else 0.0
        averages_f["binary"] = 2.0 * tp_b / (true_b + pred_b) if true_b + pred_b else 0.0

    return ClassificationScores(
        samples=total,
        accuracy=float(tp.sum()) / total,
        precision=averages_p,
        recall=averages_r,
        f1=averages_f,
        classes=present.astype(np.int64),
        class_precision=precision,
        class_recall=recall,
        class_f1=f1,
        class_support=true_sum[present].astype(np.int64),
    )


@dataclass(frozen=True, slots=True)
class RegressionScores:
    samples: int
    mean_absolute_error: float
    root_mean_squared_error: float


def regression_scores(count: int, sum_abs: float, sum_sq: float) -> RegressionScores:
    """Mean absolute error and root mean squared error from running sums.

    Examples
    --------
    >>> regression_scores(4, 4.0, 6.0)
    RegressionScores(samples=4, mean_absolute_error=1.0, root_mean_squared_error=1.224744871391589)
    """
    if count <= 0:
        raise ValueError("no samples to score")
    return RegressionScores(
        samples=count,
        mean_absolute_error=sum_abs / count,
        root_mean_squared_error=math.sqrt(sum_sq / count),
    )
