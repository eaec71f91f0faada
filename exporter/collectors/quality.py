"""Rolling quality per model, version and window: accuracy, precision, recall, F1, errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.analysis import ModelView, model_view
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.store import Store

log = logging.getLogger("exporter.collectors")

BASE = ["model", "model_version", "window"]

_GUARD = (
    " Absent while the window holds fewer than quality.min_samples labeled predictions "
    "(see model_window_labeled_predictions)."
)


def views(store: Store, errors: list[str], *, scores: bool) -> Iterator[ModelView]:
    """A view per model; a model whose view fails is logged, reported and skipped."""
    now = store.clock()
    min_samples = store.settings.quality.min_samples
    for state in store.models():
        try:
            yield model_view(state, now, min_samples, with_scores=scores)
        except Exception:
            log.exception("cannot build the view of model %s", state.name)
            errors.append(f"model {state.name}: view failed")


def quality_families(store: Store, errors: list[str]) -> Iterator[Metric]:
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
    for view in views(store, errors, scores=True):
        for version in view.versions:
            for w in version.windows:
                key = [view.name, version.name, w.window]
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
                        ck = [*key, view.classes[cls]]
                        class_precision.add_metric(ck, float(s.class_precision[j]))
                        class_recall.add_metric(ck, float(s.class_recall[j]))
                        class_f1.add_metric(ck, float(s.class_f1[j]))
                        class_support.add_metric(ck, float(s.class_support[j]))
    yield from (
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
    )
