"""Counters Prometheus can sum across replicas, and the state of the join buffers."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from exporter.counters import LABEL_DELAY_BUCKETS
from exporter.snapshot import ModelSnapshot

MV = ["model", "model_version"]


def traffic_families(snapshots: Sequence[ModelSnapshot]) -> list[Metric]:
    """Every traffic family (always all of them, in one order) for these models."""
    info = GaugeMetricFamily(
        "model_info",
        "1 for every monitored model; task is binary, multiclass, regression or unknown "
        "(before the first prediction).",
        labels=["model", "task"],
    )
    predictions = CounterMetricFamily(
        "model_predictions",
        "Prediction events accepted (duplicates of an id already seen are not counted).",
        labels=MV,
    )
    labels = CounterMetricFamily(
        "model_labels",
        "Ground-truth labels joined to a prediction of this version (inline or later).",
        labels=MV,
    )
    labels_received = CounterMetricFamily(
        "model_labels_received",
        "Ground-truth labels received on /v1/labels, joined or not.",
        labels=["model"],
    )
    outcomes = CounterMetricFamily(
        "model_outcomes",
        "Joined predictions by true (actual) and predicted class; correct is true when they "
        "are equal. Sum over replicas and take increase() for fleet-wide accuracy, precision "
        "and recall.",
        labels=[*MV, "actual", "predicted", "correct"],
    )
    abs_error = SummaryMetricFamily(
        "model_absolute_error",
        "Absolute errors of joined regression predictions (sum and count; the target's unit).",
        labels=MV,
    )
    sq_error = SummaryMetricFamily(
        "model_squared_error",
        "Squared errors of joined regression predictions (sum and count).",
        labels=MV,
    )
    delay = HistogramMetricFamily(
        "model_label_delay_seconds",
        "Time from a prediction to its ground-truth label, at join time; delays below 0 or "
        "above join.prediction_ttl are left out (model_label_delays_excluded_total).",
        labels=MV,
    )
    delays_excluded = CounterMetricFamily(
        "model_label_delays_excluded",
        "Joined labels whose delay is left out of model_label_delay_seconds: reason negative "
        "(the label's time is before the prediction's) or beyond_ttl (longer than "
        "join.prediction_ttl: event times far from arrival, e.g. a replay).",
        labels=[*MV, "reason"],
    )
    pending = GaugeMetricFamily(
        "model_pending_predictions",
        "Predictions waiting for their label (bounded by join.max_pending_predictions).",
        labels=MV,
    )
    pending_labels = GaugeMetricFamily(
        "model_pending_labels",
        "Labels that arrived before their prediction and wait for it "
        "(bounded by join.max_pending_labels).",
        labels=["model"],
    )
    expired = CounterMetricFamily(
        "model_predictions_expired",
        "Predictions dropped from the join buffer without a label: reason ttl "
        "(join.prediction_ttl passed) or capacity (buffer full, oldest evicted).",
        labels=[*MV, "reason"],
    )
    labels_expired = CounterMetricFamily(
        "model_labels_expired",
        "Labels dropped while waiting for their prediction: reason ttl or capacity (and "
        "task_mismatch: sent before the model's first prediction, not fitting its task).",
        labels=["model", "reason"],
    )
    duplicates = CounterMetricFamily(
        "model_duplicate_events",
        "Events ignored because their id was already seen: kind prediction (e.g. a retried "
        "batch) or label (a second label for one prediction; the first one counts).",
        labels=["model", "kind"],
    )
    outside = CounterMetricFamily(
        "model_events_outside_windows",
        "Events accepted but older than every window on arrival (e.g. a replay of old logs): "
        "counted in model_predictions_total or model_labels_total, in no window. kind "
        "prediction (by prediction time) or label (a joined label, by label time).",
        labels=[*MV, "kind"],
    )
    unusable = CounterMetricFamily(
        "model_scores_unusable",
        "Scores accepted with a prediction that could not be used when its label joined: a "
        "binary model's score joined after the model turned multiclass (a third class came), "
        "which has no probability for the other classes. The outcome itself counts as usual.",
        labels=MV,
    )
    mismatches = CounterMetricFamily(
        "model_feature_type_mismatches",
        "Feature values whose type contradicts the feature's kind (e.g. a string for a numeric "
        "feature); they are treated as missing.",
        labels=["model", "feature"],
    )
    pooled = CounterMetricFamily(
        "model_feature_categories_pooled",
        "Categorical values pooled into one bin because the feature already tracks "
        "drift.max_categories categories.",
        labels=["model", "feature"],
    )
    reference_rows = GaugeMetricFamily(
        "model_reference_rows",
        "Rows in the drift reference of the version. source: upload, file, first_events, or "
        "collecting while the first drift.reference_size predictions are gathered (a rolling "
        "previous_window reference is not listed: it changes with every window).",
        labels=["model", "model_version", "source"],
    )
    bounds = [*(f"{b:g}" for b in LABEL_DELAY_BUCKETS), "+Inf"]
    for m in snapshots:
        c = m.counters
        info.add_metric([m.name, m.task or "unknown"], 1.0)
        labels_received.add_metric([m.name], c.labels_received)
        pending_labels.add_metric([m.name], m.pending_labels)
        for reason, count in c.labels_expired.items():
            labels_expired.add_metric([m.name, reason], count)
        duplicates.add_metric([m.name, "prediction"], c.duplicate_predictions)
        duplicates.add_metric([m.name, "label"], c.duplicate_labels)
        for feature, count in c.type_mismatches.items():
            mismatches.add_metric([m.name, feature], count)
        for feature, count in c.categories_pooled.items():
            pooled.add_metric([m.name, feature], count)
        for v in m.versions:
            key = [m.name, v.name]
            vc = v.counters
            if v.reference.source != "previous_window":
                reference_rows.add_metric([*key, v.reference.source], v.reference.rows)
            predictions.add_metric(key, vc.predictions)
            labels.add_metric(key, vc.labels)
            pending.add_metric(key, v.pending)
            for reason, count in vc.expired.items():
                expired.add_metric([*key, reason], count)
            cumulative = vc.delay_counts.cumsum().tolist()
            delay.add_metric(key, list(zip(bounds, cumulative, strict=True)), vc.delay_sum)
            for reason, count in vc.delays_excluded.items():
                delays_excluded.add_metric([*key, reason], count)
            for kind, count in vc.outside_windows.items():
                outside.add_metric([*key, kind], count)
            unusable.add_metric(key, vc.scores_unusable)
            if m.task == "regression":
                abs_error.add_metric(key, vc.error_count, vc.abs_error_sum)
                sq_error.add_metric(key, vc.error_count, vc.sq_error_sum)
                continue
            k = vc.outcomes.shape[0]
            for a in range(k):
                for p in range(k):
                    count = int(vc.outcomes[a, p])
                    if count:
                        correct = "true" if a == p else "false"
                        outcomes.add_metric([*key, m.classes[a], m.classes[p], correct], count)
    return [
        info,
        predictions,
        labels,
        labels_received,
        outcomes,
        abs_error,
        sq_error,
        delay,
        delays_excluded,
        pending,
        pending_labels,
        expired,
        labels_expired,
        duplicates,
        outside,
        unusable,
        mismatches,
        pooled,
        reference_rows,
    ]
