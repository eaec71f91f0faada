"""Holdout baselines: the quality of each version's holdout reference, the live gap to it per
window, and the always-valid test of "worse than the baseline by more than the tolerance"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.baseline_view import baselines, difference
from exporter.sequential_tracker import BaselineKey, BaselineStates
from exporter.snapshot import ModelSnapshot
from exporter.stats.performance import ClassificationScores
from exporter.views import window_quality

BASE = ["model", "model_version"]
WINDOWED = [*BASE, "window"]

_HOLDOUT = (
    " Of a reference uploaded (or loaded from a file) with the predictions and labels of the "
    "same rows, for each version that uses it."
)
_GUARD = (
    " Absent while the window holds fewer than quality.min_samples labeled predictions "
    "(see model_window_labeled_predictions)."
)
_SINCE = (
    " Over the labeled predictions since the reference was set; updated by the drift worker's runs."
)
_BURN_IN = (
    " Absent until comparison.sequential.min_samples of them (see "
    "model_baseline_sequential_labeled_predictions)."
)
_AVERAGE = "; average is binary (positive class), macro or weighted, as model_f1_score."


def baseline_families(
    snapshots: Sequence[ModelSnapshot],
    states: Mapping[str, BaselineStates],
    min_samples: int,
) -> list[Metric]:
    """Every baseline family (always all of them, in one order) for these models."""
    rows = GaugeMetricFamily(
        "model_baseline_samples",
        "Rows of the holdout reference the baseline quality is scored on (paired prediction "
        "and label)." + _HOLDOUT,
        labels=BASE,
    )
    accuracy = GaugeMetricFamily(
        "model_baseline_accuracy",
        "Accuracy on the holdout reference (0..1)." + _HOLDOUT,
        labels=BASE,
    )
    averaged = [*BASE, "average"]
    precision = GaugeMetricFamily(
        "model_baseline_precision",
        "Precision on the holdout reference" + _AVERAGE + _HOLDOUT,
        labels=averaged,
    )
    recall = GaugeMetricFamily(
        "model_baseline_recall",
        "Recall on the holdout reference" + _AVERAGE + _HOLDOUT,
        labels=averaged,
    )
    f1 = GaugeMetricFamily(
        "model_baseline_f1_score",
        "F1 score on the holdout reference" + _AVERAGE + _HOLDOUT,
        labels=averaged,
    )
    mae = GaugeMetricFamily(
        "model_baseline_mean_absolute_error",
        "Mean absolute error of a regression model on the holdout reference, in the target's "
        "unit." + _HOLDOUT,
        labels=BASE,
    )
    rmse = GaugeMetricFamily(
        "model_baseline_root_mean_squared_error",
        "Root mean squared error of a regression model on the holdout reference, in the "
        "target's unit." + _HOLDOUT,
        labels=BASE,
    )
    accuracy_gap = GaugeMetricFamily(
        "model_baseline_accuracy_difference",
        "Live accuracy over the window minus the holdout baseline's (model_accuracy minus "
        "model_baseline_accuracy; negative: worse)." + _GUARD,
        labels=WINDOWED,
    )
    mae_gap = GaugeMetricFamily(
        "model_baseline_mean_absolute_error_difference",
        "Live mean absolute error over the window minus the holdout baseline's, in the "
        "target's unit (positive: worse)." + _GUARD,
        labels=WINDOWED,
    )
    labeled = GaugeMetricFamily(
        "model_baseline_sequential_labeled_predictions",
        "Labeled predictions since the version's holdout reference was set (exact count); "
        "updated by the drift worker's runs.",
        labels=BASE,
    )
    pvalue = GaugeMetricFamily(
        "model_baseline_sequential_pvalue",
        "Always-valid one-sided p-value of 'live quality worse than the holdout baseline by "
        "more than the tolerance' (accuracy below baseline - quality.baseline_tolerance; "
        "regression: MAE above baseline * (1 + quality.baseline_mae_tolerance)); a mixture "
        "sequential probability ratio test, valid however often it is read, so alerts may use "
        "it." + _SINCE + _BURN_IN,
        labels=BASE,
    )
    for snapshot in snapshots:
        tested = states.get(snapshot.name)
        for version, baseline in baselines(snapshot):
            key = [snapshot.name, version.name]
            rows.add_metric(key, baseline.rows)
            s = baseline.scores
            if isinstance(s, ClassificationScores):
                accuracy.add_metric(key, s.accuracy)
                for family, values in ((precision, s.precision), (recall, s.recall), (f1, s.f1)):
                    for avg, value in values.items():
                        family.add_metric([*key, avg], value)
            else:
                mae.add_metric(key, s.mean_absolute_error)
                rmse.add_metric(key, s.root_mean_squared_error)
            gap = accuracy_gap if isinstance(s, ClassificationScores) else mae_gap
            for counts in version.windows:
                live = window_quality(counts, snapshot.positive_index, min_samples)
                delta = difference(live, baseline)
                if delta is not None:
                    gap.add_metric([*key, live.window], delta)
            state = (
                tested.at(BaselineKey(snapshot.uid, version.uid, baseline.set_at))
                if tested is not None
                else None
            )
            if state is not None:
                labeled.add_metric(key, state.samples)
                if state.pvalue is not None:
                    pvalue.add_metric(key, state.pvalue)
    return [
        rows,
        accuracy,
        precision,
        recall,
        f1,
        mae,
        rmse,
        accuracy_gap,
        mae_gap,
        labeled,
        pvalue,
    ]
