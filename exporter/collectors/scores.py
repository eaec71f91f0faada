"""The quality of predicted probabilities per model, version and window: ROC AUC, average
precision, log loss, Brier score, calibration (exporter.stats.scores over
exporter.score_window)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.score_window import ScoreCounts
from exporter.snapshot import ModelSnapshot

BASE = ["model", "model_version", "window"]

_GUARD = (
    " Absent while fewer than quality.min_samples labeled predictions in the window had a "
    "score or probabilities (see model_window_scored_predictions)."
)
_RANK = (
    " Binary: the positive class's score; multiclass: one class against the rest, "
    "macro-averaged over the classes with positives and negatives in the window. Exact while "
    "the window holds at most quality.max_exact_scores scored outcomes, else from "
    "quality.rank_bins bins, within "
)


def score_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """Every score family (always all of them, in one order) for these models."""
    families = _ScoreFamilies.make()
    for snapshot in snapshots:
        for version in snapshot.versions:
            for counts in version.windows:
                if counts.scores is not None:
                    key = [snapshot.name, version.name, counts.window]
                    families.add(key, counts.scores, min_samples)
    return families.all()


@dataclass(frozen=True, slots=True)
class _ScoreFamilies:
    scored: GaugeMetricFamily
    auc: GaugeMetricFamily
    auc_error: GaugeMetricFamily
    ap: GaugeMetricFamily
    ap_error: GaugeMetricFamily
    log_loss: GaugeMetricFamily
    brier: GaugeMetricFamily
    ece: GaugeMetricFamily
    bin_count: GaugeMetricFamily
    bin_confidence: GaugeMetricFamily
    bin_observed: GaugeMetricFamily

    @classmethod
    def make(cls) -> _ScoreFamilies:
        scored = GaugeMetricFamily(
            "model_window_scored_predictions",
            "Labeled predictions in the window (by label time) that carried a score or "
            "probabilities (exact count).",
            labels=BASE,
        )
        auc = GaugeMetricFamily(
            "model_roc_auc",
            "Area under the ROC curve of the scored, labeled predictions in the window (0..1)."
            + _RANK
            + "model_roc_auc_max_error."
            + _GUARD,
            labels=BASE,
        )
        auc_error = GaugeMetricFamily(
            "model_roc_auc_max_error",
            "The largest distance of model_roc_auc from the exact value that its bins allow "
            "(0: exact).",
            labels=BASE,
        )
        ap = GaugeMetricFamily(
            "model_average_precision",
            "Average precision of the scored, labeled predictions in the window (0..1)."
            + _RANK
            + "model_average_precision_max_error."
            + _GUARD,
            labels=BASE,
        )
        ap_error = GaugeMetricFamily(
            "model_average_precision_max_error",
            "The largest distance of model_average_precision from the exact value that its bins "
            "allow (0: exact).",
            labels=BASE,
        )
        log_loss = GaugeMetricFamily(
            "model_log_loss",
            "Mean log loss (natural log; probabilities clipped to [2.2e-16, 1 - 2.2e-16], as "
            "scikit-learn) of the scored, labeled predictions in the window." + _GUARD,
            labels=BASE,
        )
        brier = GaugeMetricFamily(
            "model_brier_score",
            "Mean Brier score over the window: binary (score - outcome)^2 (0..1), multiclass the "
            "sum over classes (0..2), as scikit-learn." + _GUARD,
            labels=BASE,
        )
        ece = GaugeMetricFamily(
            "model_expected_calibration_error",
            "Expected calibration error over the window: the mean over quality.calibration_bins "
            "equal bins of [0, 1], weighted by their outcomes, of |observed rate - mean "
            "confidence|. Binary: the positive class's score and rate; multiclass: the top "
            "class's probability and accuracy." + _GUARD,
            labels=BASE,
        )
        binned = [*BASE, "bin"]
        bin_count = GaugeMetricFamily(
            "model_calibration_bin_predictions",
            "Scored, labeled predictions in the reliability bin whose upper edge is bin (bins "
            "closed on the right, the first also holding 0)." + _GUARD,
            labels=binned,
        )
        bin_confidence = GaugeMetricFamily(
            "model_calibration_bin_mean_confidence",
            "Mean confidence (binary: score; multiclass: top probability) of the predictions in "
            "the bin; absent for an empty bin." + _GUARD,
            labels=binned,
        )
        bin_observed = GaugeMetricFamily(
            "model_calibration_bin_observed_rate",
            "Share of the bin's predictions that were hits (binary: positive; multiclass: the top "
            "class was the true one); absent for an empty bin." + _GUARD,
            labels=binned,
        )
        return cls(
            scored,
            auc,
            auc_error,
            ap,
            ap_error,
            log_loss,
            brier,
            ece,
            bin_count,
            bin_confidence,
            bin_observed,
        )

    def all(self) -> list[Metric]:
        return [getattr(self, name) for name in self.__slots__]

    def add(self, key: list[str], scores: ScoreCounts, min_samples: int) -> None:
        """One window's series: the count always, the scores from ``min_samples`` on."""
        self.scored.add_metric(key, scores.count)
        if scores.count < min_samples:
            return
        q = scores.quality()
        assert q is not None  # it has outcomes
        if q.roc_auc is not None:
            self.auc.add_metric(key, q.roc_auc.value)
            self.auc_error.add_metric(key, q.roc_auc.max_error)
        if q.average_precision is not None:
            self.ap.add_metric(key, q.average_precision.value)
            self.ap_error.add_metric(key, q.average_precision.max_error)
        self.log_loss.add_metric(key, q.log_loss)
        self.brier.add_metric(key, q.brier_score)
        calibration = q.expected_calibration_error
        if calibration is not None:
            self.ece.add_metric(key, calibration)
        r = q.reliability
        for j, edge in enumerate(r.upper_edges.tolist()):
            bk = [*key, _edge(edge)]
            self.bin_count.add_metric(bk, int(r.counts[j]))
            if r.counts[j]:
                self.bin_confidence.add_metric(bk, float(r.mean_confidence[j]))
                self.bin_observed.add_metric(bk, float(r.hit_rate[j]))


def _edge(edge: float) -> str:
    """A bin's upper edge as its label, to 12 significant digits (``0.1``, ``0.3``, ``1``)."""
    return f"{edge:.12g}"
