"""Rolling quality per model, version and window: accuracy, precision, recall, F1, errors."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.snapshot import ModelSnapshot
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.views import window_quality

BASE = ["model", "model_version", "window"]

_GUARD = (
    " Absent while the window holds fewer than quality.min_samples labeled predictions "
    "(see model_window_labeled_predictions)."
)


def quality_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """Every quality family (always all of them, in one order) for these models."""
    window_predictions = GaugeMetricFamily(
        "model_window_predictions",
        "Predictions in the window, by prediction time (exact count).",
        labels=BASE,
    )
    window_labeled = GaugeMetricFamily(
        "model_window_labeled_predictions",
        "Predictions joined with their ground-truth label in the window, by label time "
        "(exact count). Quality values need quality.min_samples of them.",
        labels=BASE,
    )
    accuracy = GaugeMetricFamily(
        "model_accuracy",
        "Fraction of labeled predictions that were correct, over the window (0..1)." + _GUARD,
        labels=BASE,
    )
    averaged = [*BASE, "average"]
    precision = GaugeMetricFamily(
        "model_precision",
        "Precision over the window; average is binary (positive class), macro or weighted, "
        "as scikit-learn with zero_division=0." + _GUARD,
        labels=averaged,
    )
    recall = GaugeMetricFamily(
        "model_recall",
        "Recall over the window; average is binary (positive class), macro or weighted, "
        "as scikit-learn with zero_division=0." + _GUARD,
        labels=averaged,
    )
    f1 = GaugeMetricFamily(
        "model_f1_score",
        "F1 score over the window; average is binary (positive class), macro or weighted, "
        "as scikit-learn with zero_division=0." + _GUARD,
        labels=averaged,
    )
    per_class = [*BASE, "class"]
    class_precision = GaugeMetricFamily(
        "model_class_precision",
        "Precision of one class over the window (classes present in the window)." + _GUARD,
        labels=per_class,
    )
    class_recall = GaugeMetricFamily(
        "model_class_recall",
        "Recall of one class over the window (classes present in the window)." + _GUARD,
        labels=per_class,
    )
    class_f1 = GaugeMetricFamily(
        "model_class_f1_score",
        "F1 score of one class over the window (classes present in the window)." + _GUARD,
        labels=per_class,
    )
    class_support = GaugeMetricFamily(
        "model_class_support",
        "Labeled predictions whose true class is this class, over the window." + _GUARD,
        labels=per_class,
    )
    mae = GaugeMetricFamily(
        "model_mean_absolute_error",
        "Mean absolute error of a regression model over the window, in the target's unit." + _GUARD,
        labels=BASE,
    )
    rmse = GaugeMetricFamily(
        "model_root_mean_squared_error",
        "Root mean squared error of a regression model over the window, in the target's unit."
        + _GUARD,
        labels=BASE,
    )
    for snapshot in snapshots:
        for version in snapshot.versions:
            for counts in version.windows:
                w = window_quality(counts, snapshot.positive_index, min_samples)
                key = [snapshot.name, version.name, w.window]
                window_predictions.add_metric(key, w.predictions)
                window_labeled.add_metric(key, w.labeled)
                s = w.scores
                if isinstance(s, RegressionScores):
                    mae.add_metric(key, s.mean_absolute_error)
                    rmse.add_metric(key, s.root_mean_squared_error)
                elif isinstance(s, ClassificationScores):
                    accuracy.add_metric(key, s.accuracy)
                    for avg, value in s.precision.items():
                        precision.add_metric([*key, avg], value)
                    for avg, value in s.recall.items():
                        recall.add_metric([*key, avg], value)
                    for avg, value in s.f1.items():
                        f1.add_metric([*key, avg], value)
                    for j, cls in enumerate(s.classes.tolist()):
                        ck = [*key, snapshot.classes[cls]]
                        class_precision.add_metric(ck, float(s.class_precision[j]))
                        class_recall.add_metric(ck, float(s.class_recall[j]))
                        class_f1.add_metric(ck, float(s.class_f1[j]))
                        class_support.add_metric(ck, float(s.class_support[j]))
    return [
        window_predictions,
        window_labeled,
        accuracy,
        precision,
        recall,
        f1,
        class_precision,
        class_recall,
        class_f1,
        class_support,
        mae,
        rmse,
    ]
