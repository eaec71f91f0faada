"""Quality of predicted probabilities: ranking (ROC AUC, average precision), proper scoring
rules (log loss, Brier score) and calibration (expected calibration error, reliability curve).

Two representations of a window's scored outcomes, both pure numpy:

* the outcomes themselves, ``(scores, truth)``: exact, as scikit-learn computes them;
* sums and histograms, which a sliding window can keep at any rate in bounded memory. The
  sums-based scores (log loss, Brier, calibration) are exact from them. The rank-based ones are
  computed with every score replaced by its bin (:func:`rank_bins`), so outcomes in one bin
  count as tied, and each comes with a bound on its distance to the exact value
  (:func:`roc_auc_binned`, :func:`average_precision_binned`).

Binary models score the positive class: ``scores`` is ``(n, 1)`` (the positive class's
probability) and ``truth`` 1 for the positive class, else 0. Multiclass models score every
class: ``scores`` is ``(n, K)`` and ``truth`` the true class's index; ranking is one class
against the rest, macro-averaged over the classes that have both positives and negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.special import digamma

from exporter.typedefs import FloatArray, IntArray

#: Probabilities are clipped to [EPS, 1 - EPS] for the log loss, as scikit-learn does for
#: float64 (``np.finfo(np.float64).eps``): a confident miss costs about 36, not infinity.
EPS: Final = float(np.finfo(np.float64).eps)
#: Rank bins are equally wide in log-odds over [-LOGIT_SPAN, LOGIT_SPAN] (scores within
#: ~6e-6 of 0 or 1 share the end bins): fine where confident models put their scores.
LOGIT_SPAN: Final = 12.0


# -- per outcome ---------------------------------------------------------------------------------


def true_class_probability(scores: FloatArray, truth: IntArray) -> FloatArray:
    """The probability each outcome gave its true class (binary: ``s`` or ``1 - s``)."""
    if scores.shape[1] == 1:
        s = scores[:, 0]
        return np.where(truth == 1, s, 1.0 - s)
    return scores[np.arange(truth.shape[0]), truth]


def log_losses(scores: FloatArray, truth: IntArray) -> FloatArray:
    """Each outcome's log loss, ``-ln p(true class)`` with p clipped to [EPS, 1 - EPS]."""
    p = true_class_probability(scores, truth)
    out: FloatArray = -np.log(np.clip(p, EPS, 1.0 - EPS))
    return out


def brier_scores(scores: FloatArray, truth: IntArray) -> FloatArray:
    """Each outcome's Brier score: binary ``(s - y)^2``; multiclass the sum over classes of
    ``(p_k - [k = truth])^2`` (scikit-learn's definitions: 0..1 and 0..2)."""
    if scores.shape[1] == 1:
        out: FloatArray = (scores[:, 0] - truth) ** 2
        return out
    onehot = np.zeros_like(scores)
    onehot[np.arange(truth.shape[0]), truth] = 1.0
    summed: FloatArray = np.sum((scores - onehot) ** 2, axis=1)
    return summed


def confidence_and_hit(scores: FloatArray, truth: IntArray) -> tuple[FloatArray, FloatArray]:
    """What the reliability curve bins: binary, the positive class's score and whether the
    class was positive (scikit-learn's ``calibration_curve``); multiclass, the top class's
    probability and whether it was the true class (top-label calibration, Guo et al. 2017;
    ties go to the lowest class index, as ``np.argmax``)."""
    if scores.shape[1] == 1:
        return scores[:, 0], truth.astype(np.float64)
    top = np.argmax(scores, axis=1)
    return scores[np.arange(truth.shape[0]), top], (top == truth).astype(np.float64)


def calibration_bin(confidence: FloatArray, bins: int) -> IntArray:
    """The reliability bin of each value: ``bins`` equal bins of [0, 1], each closed on the
    right ((0.1, 0.2] is one) and the first holding 0, as scikit-learn's ``calibration_curve``
    with ``strategy="uniform"``."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    out: IntArray = np.searchsorted(edges[1:-1], confidence).astype(np.int64)
    return out


def rank_bins(scores: FloatArray, bins: int) -> IntArray:
    """The rank bin of each score: ``bins`` bins equally wide in log-odds over
    [-LOGIT_SPAN, LOGIT_SPAN], in the order of the scores (a higher score never falls in a
    lower bin). The width in probability is about ``s (1 - s) * 2 * LOGIT_SPAN / bins``: finer
    towards 0 and 1, where confident models place most outcomes."""
    with np.errstate(divide="ignore"):
        logit = np.log(scores) - np.log1p(-scores)
    position = (logit + LOGIT_SPAN) * (bins / (2.0 * LOGIT_SPAN))
    out: IntArray = np.clip(np.floor(position), 0, bins - 1).astype(np.int64)
    return out


# -- exact (from the outcomes) -------------------------------------------------------------------


def roc_auc(scores: FloatArray, positive: IntArray | FloatArray) -> float | None:
    """ROC AUC of one score against 0/1 truth, ties counted half (the Mann-Whitney U over
    positives times negatives: what scikit-learn's trapezoidal ``roc_auc_score`` equals).
    None without positives or without negatives."""
    pos = np.asarray(positive, dtype=bool)
    n_pos = int(np.count_nonzero(pos))
    n_neg = pos.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    # Average ranks (1-based) of tied runs.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], ranked.shape[0]]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.repeat(mean_rank, ends - starts)
    positive_ranks = float(np.sum(ranks[pos[order]]))
    return float((positive_ranks - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(scores: FloatArray, positive: IntArray | FloatArray) -> float | None:
    """Average precision, ``sum_t (R_t - R_{t-1}) P_t`` over the distinct scores as
    thresholds, from the highest (scikit-learn's ``average_precision_score``). None without
    positives."""
    pos = np.asarray(positive, dtype=bool)
    if not pos.any():
        return None
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    hits = pos[order].astype(np.int64)
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the end of each tied run
    tps = np.cumsum(hits)[last]
    seen = (np.flatnonzero(last) + 1).astype(np.float64)
    return _precision_weighted(tps, seen)


def _precision_weighted(tps: IntArray, seen: FloatArray) -> float:
    """``sum (R_t - R_{t-1}) P_t`` from cumulative true positives and outcomes per threshold."""
    total = float(tps[-1])
    gained = np.diff(np.r_[0, tps]).astype(np.float64)
    return float(np.sum(gained / total * (tps / seen)))


# -- binned (from histograms) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bounded:
    """A rank-based score from binned scores and the largest distance to the exact value
    that the bins allow (0 when no bin holds both a positive and a negative)."""

    value: float
    max_error: float


def roc_auc_binned(positives: IntArray, negatives: IntArray) -> Bounded | None:
    """ROC AUC from counts per rank bin (ascending scores), ties within a bin counted half.

    The exact AUC orders the outcomes within each bin somehow: it differs from this value by
    at most half the share of positive-negative pairs that share a bin,
    ``sum_b pos_b neg_b / (2 P N)``. None without positives or negatives."""
    pos = positives.astype(np.float64)
    neg = negatives.astype(np.float64)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    below = np.cumsum(neg) - neg
    pairs = n_pos * n_neg
    value = float(np.sum(pos * (below + neg / 2.0))) / pairs
    return Bounded(value, float(np.sum(pos * neg)) / (2.0 * pairs))


def average_precision_binned(positives: IntArray, negatives: IntArray) -> Bounded | None:
    """Average precision with the outcomes of each rank bin (descending) in an unknown order.

    The value: within a bin, the outcomes are taken in a random order, in which the j-th of
    its ``pos_b`` positives has on average ``j neg_b / (pos_b + 1)`` of its negatives before
    it; its precision is then ``(tp + j) / (tp + fp + j k)`` with ``k = 1 + neg_b / (pos_b +
    1)``, and the sum over j has a closed form in the digamma function:
    ``(pos_b + (tp - x) (psi(pos_b + 1 + x) - psi(1 + x))) / k`` with ``x = (tp + fp) / k``.
    A bin of one outcome is exact. Counting each bin as one threshold instead (every positive
    at the bin's end) is biased low: about 1e-3 on 3,600 outcomes in 1,024 bins.

    Bound: each positive contributes ``1/P`` times the precision at the end of its tied run.
    Within bin b, that precision is at least ``(tp + 1) / (tp + 1 + fp + neg_b)`` (the first
    positive after every negative of the bin) and at most ``(tp + pos_b) / (tp + pos_b + fp)``;
    the exact value lies between the sums of these, and ``max_error`` is the larger distance
    from the value to either end."""
    pos = positives[::-1].astype(np.float64)
    neg = negatives[::-1].astype(np.float64)
    total = float(pos.sum())
    if total == 0:
        return None
    tp_after = np.cumsum(pos)
    fp_after = np.cumsum(neg)
    tp_before, fp_before = tp_after - pos, fp_after - neg
    has = pos > 0
    a, b = tp_before[has], pos[has]
    k = 1.0 + neg[has] / (b + 1.0)
    x = (tp_before + fp_before)[has] / k
    summed = (b + (a - x) * (digamma(b + 1.0 + x) - digamma(1.0 + x))) / k
    weight = b / total
    value = float(np.sum(summed) / total)
    low = (a + 1) / (a + 1 + fp_before[has] + neg[has])
    high = tp_after[has] / (tp_after[has] + fp_before[has])
    lower, upper = float(np.sum(weight * low)), float(np.sum(weight * high))
    return Bounded(value, max(value - lower, upper - value, 0.0))


# -- calibration ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reliability:
    """The reliability curve's bins: equal bins of [0, 1] by their upper edge, with the
    outcomes in each, their mean confidence and the share of hits (NaN for an empty bin)."""

    upper_edges: FloatArray
    counts: IntArray
    mean_confidence: FloatArray
    hit_rate: FloatArray

    @property
    def expected_calibration_error(self) -> float | None:
        """``sum_b (n_b / N) |hit rate_b - mean confidence_b|``; None without outcomes."""
        total = int(self.counts.sum())
        if total == 0:
            return None
        full = self.counts > 0
        gap = np.abs(self.hit_rate[full] - self.mean_confidence[full])
        return float(np.sum(self.counts[full] / total * gap))


def reliability(sums: FloatArray) -> Reliability:
    """The curve from per-bin ``(count, sum of confidence, sum of hits)`` rows."""
    bins = sums.shape[0]
    counts = np.rint(sums[:, 0]).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums[:, 1] / sums[:, 0], np.nan)
        rate = np.where(counts > 0, sums[:, 2] / sums[:, 0], np.nan)
    return Reliability(np.linspace(0.0, 1.0, bins + 1)[1:], counts, mean, rate)


def calibration_sums(confidence: FloatArray, hit: FloatArray, bins: int) -> FloatArray:
    """Per-bin ``(count, sum of confidence, sum of hits)`` of these outcomes, ``(bins, 3)``."""
    which = calibration_bin(confidence, bins)
    return np.stack(
        [
            np.bincount(which, minlength=bins).astype(np.float64),
            np.bincount(which, weights=confidence, minlength=bins),
            np.bincount(which, weights=hit, minlength=bins),
        ],
        axis=1,
    )


# -- a window's summary --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreQuality:
    """The probabilistic quality of a window's scored, labeled outcomes.

    ``exact`` says whether the rank-based scores come from the outcomes themselves (their
    ``max_error`` is then 0) or from rank bins. A rank-based score is None where it is not
    defined (one class only in the window)."""

    outcomes: int
    log_loss: float
    brier_score: float
    roc_auc: Bounded | None
    average_precision: Bounded | None
    reliability: Reliability
    exact: bool

    @property
    def expected_calibration_error(self) -> float | None:
        return self.reliability.expected_calibration_error


def ranking_exact(scores: FloatArray, truth: IntArray) -> tuple[Bounded | None, Bounded | None]:
    """ROC AUC and average precision from the outcomes: binary, of the positive class's score;
    multiclass, one class against the rest, macro-averaged over the classes with positives and
    negatives (scikit-learn's ``multi_class="ovr"``; a class absent from the window is left
    out rather than failing, as scikit-learn does)."""
    if scores.shape[1] == 1:
        positive = truth == 1
        return _exact(roc_auc(scores[:, 0], positive)), _exact(
            average_precision(scores[:, 0], positive)
        )
    aucs: list[float] = []
    aps: list[float] = []
    for k in range(scores.shape[1]):
        positive = truth == k
        auc = roc_auc(scores[:, k], positive)
        if auc is None:
            continue
        aucs.append(auc)
        ap = average_precision(scores[:, k], positive)
        assert ap is not None  # the class has positives
        aps.append(ap)
    if not aucs:
        return None, None
    return Bounded(float(np.mean(aucs)), 0.0), Bounded(float(np.mean(aps)), 0.0)


def _exact(value: float | None) -> Bounded | None:
    return None if value is None else Bounded(value, 0.0)


def ranking_binned(histograms: IntArray) -> tuple[Bounded | None, Bounded | None]:
    """ROC AUC and average precision from rank histograms ``(K, 2, bins)`` (``[k, 1]``: the
    outcomes whose class is k, ``[k, 0]``: the others; binary has K = 1, the positive class),
    macro-averaged over the classes with positives and negatives, bounds likewise."""
    aucs: list[Bounded] = []
    aps: list[Bounded] = []
    for k in range(histograms.shape[0]):
        auc = roc_auc_binned(histograms[k, 1], histograms[k, 0])
        if auc is None:
            continue
        aucs.append(auc)
        ap = average_precision_binned(histograms[k, 1], histograms[k, 0])
        assert ap is not None
        aps.append(ap)
    if not aucs:
        return None, None
    return _mean(aucs), _mean(aps)


def _mean(values: list[Bounded]) -> Bounded:
    return Bounded(
        float(np.mean([v.value for v in values])), float(np.mean([v.max_error for v in values]))
    )
