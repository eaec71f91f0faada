"""The label-free estimate of quality per model, version and window (CBPE: exporter.views
.window_estimate over exporter.estimate_window), and its check against the labels that came."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.snapshot import ModelSnapshot
from exporter.views import window_estimate

BASE = ["model", "model_version", "window"]

_WHAT = (
    " Estimated without labels from the calibrated probabilities of every scored prediction in "
    "the window (by prediction time; confidence-based performance estimation, the scores "
    "calibrated on the reference's scores and labels). Absent while the window holds fewer "
    "than quality.min_samples scored predictions."
)
_CHECK = (
    " Realised minus estimated, over the same labeled scored predictions in the window (by "
    "label time); absent while fewer than quality.min_samples of them."
)


def estimate_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """Every estimate family (always all of them, in one order) for these models. A version
    has them once its reference has scores and it sent scored predictions."""
    predictions = GaugeMetricFamily(
        "model_window_estimated_predictions",
        "Scored predictions in the window (by prediction time) the label-free estimate covers.",
        labels=BASE,
    )
    accuracy = GaugeMetricFamily(
        "model_estimated_accuracy", "Estimated accuracy (0..1)." + _WHAT, labels=BASE
    )
    averaged = [*BASE, "average"]
    precision = GaugeMetricFamily(
        "model_estimated_precision",
        "Estimated precision; average binary (positive class), macro or weighted." + _WHAT,
        labels=averaged,
    )
    recall = GaugeMetricFamily(
        "model_estimated_recall",
        "Estimated recall; average binary (positive class), macro or weighted." + _WHAT,
        labels=averaged,
    )
    f1 = GaugeMetricFamily(
        "model_estimated_f1_score",
        "Estimated F1 score; average binary (positive class), macro or weighted." + _WHAT,
        labels=averaged,
    )
    checked = GaugeMetricFamily(
        "model_window_estimate_checked_predictions",
        "Labeled scored predictions in the window (by label time) the estimate is checked on.",
        labels=BASE,
    )
    accuracy_error = GaugeMetricFamily(
        "model_estimated_accuracy_error",
        "Accuracy: realised minus estimated." + _CHECK,
        labels=BASE,
    )
    f1_error = GaugeMetricFamily(
        "model_estimated_f1_score_error",
        "F1 score: realised minus estimated, per average." + _CHECK,
        labels=averaged,
    )
    for snapshot in snapshots:
        for version in snapshot.versions:
            for counts in version.windows:
                e = window_estimate(counts, min_samples)
                if e is None:
                    continue
                key = [snapshot.name, version.name, counts.window]
                predictions.add_metric(key, e.predictions)
                checked.add_metric(key, e.checked)
                s = e.scores
                if s is not None:
                    accuracy.add_metric(key, s.accuracy)
                    for family, values in (
                        (precision, s.precision),
                        (recall, s.recall),
                        (f1, s.f1),
                    ):
                        for avg, value in values.items():
                            family.add_metric([*key, avg], value)
                c = e.check
                if c is not None:
                    accuracy_error.add_metric(key, c.accuracy)
                    for avg, value in c.f1.items():
                        f1_error.add_metric([*key, avg], value)
    return [predictions, accuracy, precision, recall, f1, checked, accuracy_error, f1_error]
