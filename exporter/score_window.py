"""Scored outcomes over a sliding window: what ROC AUC, average precision, log loss, Brier
score and calibration need, in bounded memory.

A :class:`ScoreWindow` shares :class:`~exporter.window.TimeBuckets` with the quality windows
(outcomes by label time) and keeps per bucket:

* ``(count, sum of log loss, sum of Brier score)`` and the reliability bins' ``(count, sum of
  confidence, sum of hits)``: the sums-based scores are exact at any rate;
* rank histograms ``(K, 2, bins)`` (per class scored: its outcomes' scores by rank bin, split by
  whether the class was the true one): the rank-based scores at any rate, within a bound;
* the outcomes themselves, ``(scores, truth)``, while the window holds at most ``exact_capacity``
  of them: the rank-based scores exactly. A bucket that would take the window over it gives its
  outcomes up (it is *incomplete*); the window is exact again once every incomplete bucket has
  left it.

Binary windows keep one score per outcome (the positive class's); multiclass windows one per
class, widened with zeros as classes appear (a class unknown when the prediction was made had
probability 0). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from exporter.persist.plain import State, pack, unpack
from exporter.stats.scores import (
    ScoreQuality,
    brier_scores,
    calibration_bin,
    confidence_and_hit,
    log_losses,
    rank_bins,
    ranking_binned,
    ranking_exact,
    reliability,
)
from exporter.typedefs import FloatArray, IntArray
from exporter.window import TimeBuckets


@dataclass(frozen=True)
class ScoreCounts:
    """A copy of one window's scored outcomes (what :class:`ScoreWindow` keeps, summed over its
    live buckets); ``outcomes`` is set while the window is exact.

    Not slotted: :meth:`quality` is derived once per copy (the collectors of one scrape, the
    quality and the baseline families, each ask for it; the ranking sorts cost most)."""

    count: int
    log_loss_sum: float
    brier_sum: float
    calibration: FloatArray  # (bins, 3): count, sum of confidence, sum of hits
    ranks: IntArray  # (K, 2, rank bins)
    outcomes: tuple[FloatArray, IntArray] | None  # (scores (n, K), truth (n,)) when exact

    def quality(self) -> ScoreQuality | None:
        """The scores of these outcomes (None without any)."""
        return self._quality

    @cached_property
    def _quality(self) -> ScoreQuality | None:
        if self.count == 0:
            return None
        if self.outcomes is not None:
            auc, ap = ranking_exact(*self.outcomes)
        else:
            auc, ap = ranking_binned(self.ranks)
        return ScoreQuality(
            outcomes=self.count,
            log_loss=self.log_loss_sum / self.count,
            brier_score=self.brier_sum / self.count,
            roc_auc=auc,
            average_precision=ap,
            reliability=reliability(self.calibration),
            exact=self.outcomes is not None,
        )


@dataclass(frozen=True, slots=True)
class ScoredOutcomes:
    """A batch of scored outcomes with what every window adds of each, computed once for all
    of a version's windows (:func:`scored`)."""

    scores: FloatArray  # (n, K): K = 1 (binary) or the classes, covering every true class
    truth: IntArray  # binary: 1 positive / 0; multiclass: the true class's index
    losses: FloatArray  # log loss of each
    briers: FloatArray  # Brier score of each
    calibration: IntArray  # reliability bin of each
    confidence: FloatArray
    hit: FloatArray
    #: (n, K): per scored class, ``k * 2 * bins + [class is true] * bins + rank bin``, the
    #: outcome's cell of that class's rank histograms.
    ranks: IntArray


def scored(
    scores: FloatArray, truth: IntArray, *, binary: bool, rank_bins: int, calibration_bins: int
) -> ScoredOutcomes:
    """``scores`` (n, 1) with truth 1/0 (binary), or (n, K) with the true class's index, and
    what the windows add of each."""
    if not binary:
        scores = _widen(scores, int(truth.max()) + 1)
    confidence, hit = confidence_and_hit(scores, truth)
    k = scores.shape[1]
    is_class = truth[:, None] == (np.ones(1, np.int64) if binary else np.arange(k))
    ranks = (
        np.arange(k, dtype=np.int64) * (2 * rank_bins)
        + is_class.astype(np.int64) * rank_bins
        + rank_bins_of(scores, rank_bins)
    )
    return ScoredOutcomes(
        scores=scores,
        truth=truth,
        losses=log_losses(scores, truth),
        briers=brier_scores(scores, truth),
        calibration=calibration_bin(confidence, calibration_bins),
        confidence=confidence,
        hit=hit,
        ranks=ranks,
    )


def rank_bins_of(scores: FloatArray, bins: int) -> IntArray:
    """Every score's rank bin, (n, K)."""
    return rank_bins(scores.ravel(), bins).reshape(scores.shape)


class ScoreWindow:
    """Scored outcomes of one version over one sliding window (see the module's docstring).

    ``binary``: outcomes carry the positive class's score and truth 1/0; otherwise a score per
    class and the true class's index.
    """

    def __init__(
        self,
        duration: float,
        buckets: int,
        *,
        binary: bool,
        rank_bins: int,
        calibration_bins: int,
        exact_capacity: int,
    ) -> None:
        self.time = TimeBuckets(duration, buckets)
        self.binary = binary
        self.rank_bins = int(rank_bins)
        self.calibration_bins = int(calibration_bins)
        self.exact_capacity = int(exact_capacity)
        self.classes = 1 if binary else 0  # score columns
        self._sums = np.zeros((buckets, 3))
        self._calibration = np.zeros((buckets, self.calibration_bins, 3))
        #: int32: a bucket would need 2^31 scored outcomes to overflow one count (and halves
        #: the largest part of the window's memory); summed as int64.
        self._ranks = np.zeros((buckets, self.classes, 2, self.rank_bins), dtype=np.int32)
        #: Per slot: its outcomes (scores, truth), or None once it gave them up.
        self._kept: list[tuple[FloatArray, IntArray] | None] = [
            (np.empty((0, self.classes)), np.empty(0, dtype=np.int64)) for _ in range(buckets)
        ]

    def _grow(self, classes: int) -> None:
        if classes <= self.classes:
            return
        ranks = np.zeros((self.time.count, classes, 2, self.rank_bins), dtype=np.int32)
        ranks[:, : self.classes] = self._ranks
        # The outcomes already counted gave the new classes probability 0, and none of them
        # was of a new class (the width covers every true class): negatives in the first bin.
        ranks[:, self.classes :, 0, 0] = np.rint(self._sums[:, :1]).astype(np.int32)
        self._ranks = ranks
        self._kept = [
            None if kept is None else (_widen(kept[0], classes), kept[1]) for kept in self._kept
        ]
        self.classes = classes

    def add(self, times: FloatArray, scores: FloatArray, truth: IntArray, now: float) -> None:
        """Scored outcomes at their label times: ``scores`` (n, 1) and truth 1/0 (binary), or
        (n, K) and the true class's index (multiclass)."""
        if times.shape[0] == 0:
            return
        self.add_scored(
            times,
            scored(
                scores,
                truth,
                binary=self.binary,
                rank_bins=self.rank_bins,
                calibration_bins=self.calibration_bins,
            ),
            now,
        )

    def add_scored(self, times: FloatArray, outcomes: ScoredOutcomes, now: float) -> None:
        """Outcomes :func:`scored` (with this window's bins) at their label times."""
        if times.shape[0] == 0:
            return
        self._grow(outcomes.scores.shape[1])
        scores, ranks = outcomes.scores, outcomes.ranks
        if scores.shape[1] < self.classes:  # narrower than the window: probability 0, no hit
            missing = np.arange(scores.shape[1], self.classes, dtype=np.int64) * (
                2 * self.rank_bins
            )
            ranks = np.concatenate(
                [ranks, np.broadcast_to(missing, (ranks.shape[0], missing.shape[0]))], axis=1
            )
            scores = _widen(scores, self.classes)
        cells = self.classes * 2 * self.rank_bins
        for bucket, idx in self.time.split(times, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._reset(slot)
            self._sums[slot] += (
                idx.shape[0],
                outcomes.losses[idx].sum(),
                outcomes.briers[idx].sum(),
            )
            which = outcomes.calibration[idx]
            bins = self.calibration_bins
            self._calibration[slot, :, 0] += np.bincount(which, minlength=bins)
            self._calibration[slot, :, 1] += np.bincount(which, outcomes.confidence[idx], bins)
            self._calibration[slot, :, 2] += np.bincount(which, outcomes.hit[idx], bins)
            counts = np.bincount(ranks[idx].ravel(), minlength=cells)
            self._ranks[slot] += counts.reshape(self.classes, 2, self.rank_bins).astype(np.int32)
            self._keep(slot, scores[idx], outcomes.truth[idx], now)

    def _reset(self, slot: int) -> None:
        self._sums[slot] = 0.0
        self._calibration[slot] = 0.0
        self._ranks[slot] = 0
        self._kept[slot] = (np.empty((0, self.classes)), np.empty(0, dtype=np.int64))

    def _keep(self, slot: int, scores: FloatArray, truth: IntArray, now: float) -> None:
        kept = self._kept[slot]
        if kept is None:
            return
        live = self.time.kept(now).tolist()
        held = 0
        for s, k in enumerate(self._kept):
            if not live[s]:  # an expired bucket's outcomes: free them now
                self._kept[s] = (np.empty((0, self.classes)), np.empty(0, dtype=np.int64))
            elif k is not None:
                held += k[1].shape[0]
        if held + truth.shape[0] > self.exact_capacity:
            self._kept[slot] = None  # this bucket's outcomes no longer fit: binned only
            return
        self._kept[slot] = (np.concatenate([kept[0], scores]), np.concatenate([kept[1], truth]))

    def counts(self, now: float) -> ScoreCounts:
        """A copy of the live buckets' sums and histograms, and their outcomes if every live
        bucket holding some kept them."""
        live = self.time.live(now)
        sums = self._sums[live].sum(axis=0)
        slots = np.flatnonzero(live & (self._sums[:, 0] > 0)).tolist()
        parts = [self._kept[s] for s in slots]
        outcomes: tuple[FloatArray, IntArray] | None = None
        if all(p is not None for p in parts):
            kept = [p for p in parts if p is not None]
            outcomes = (
                np.concatenate([_widen(k[0], self.classes) for k in kept])
                if kept
                else np.empty((0, self.classes)),
                np.concatenate([k[1] for k in kept]) if kept else np.empty(0, dtype=np.int64),
            )
        return ScoreCounts(
            count=int(np.rint(sums[0])),
            log_loss_sum=float(sums[1]),
            brier_sum=float(sums[2]),
            calibration=self._calibration[live].sum(axis=0),
            ranks=self._ranks[live].sum(axis=0, dtype=np.int64),
            outcomes=outcomes,
        )

    def live_buckets(self, now: float) -> int:
        """Live buckets holding scored outcomes (see ``QualityWindow.live_buckets``)."""
        return int(np.count_nonzero(self._sums[self.time.live(now), 0]))

    def to_state(self) -> State:
        return {
            "time": self.time.to_state(),
            "binary": self.binary,
            "classes": self.classes,
            "sums": pack(self._sums),
            "calibration": pack(self._calibration),
            "ranks": pack(self._ranks.astype(np.int64)),
            "kept": [
                None if k is None else {"scores": pack(k[0]), "truth": pack(k[1])}
                for k in self._kept
            ],
        }

    @classmethod
    def from_state(
        cls,
        state: State,
        duration: float,
        buckets: int,
        *,
        rank_bins: int,
        calibration_bins: int,
        exact_capacity: int,
    ) -> ScoreWindow:
        window = cls(
            duration,
            buckets,
            binary=bool(state["binary"]),
            rank_bins=rank_bins,
            calibration_bins=calibration_bins,
            exact_capacity=exact_capacity,
        )
        window.time.load_state(state["time"])
        classes = int(state["classes"])
        sums, calibration, ranks = (
            unpack(state["sums"]),
            unpack(state["calibration"]),
            unpack(state["ranks"]),
        )
        kept: list[tuple[FloatArray, IntArray] | None] = [
            None if k is None else (unpack(k["scores"]), unpack(k["truth"]).astype(np.int64))
            for k in state["kept"]
        ]
        if (
            sums.shape != (buckets, 3)
            or calibration.shape != (buckets, calibration_bins, 3)
            or ranks.shape != (buckets, classes, 2, rank_bins)
            or len(kept) != buckets
            or any(k is not None and k[0].shape != (k[1].shape[0], classes) for k in kept)
        ):
            raise ValueError("saved score buckets do not fit the configured window")
        window.classes = classes
        window._sums, window._calibration, window._ranks = sums, calibration, ranks.astype(np.int32)
        window._kept = kept
        return window


def _widen(scores: FloatArray, classes: int) -> FloatArray:
    """Scores with zero columns added up to ``classes``."""
    if scores.shape[1] >= classes:
        return scores
    out = np.zeros((scores.shape[0], classes))
    out[:, : scores.shape[1]] = scores
    return out
