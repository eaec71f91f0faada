"""Concept drift per model version: the detector on its error stream (exporter.concept_watch)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.snapshot import ModelSnapshot

LABELS = ["model", "model_version", "detector"]


def concept_families(snapshots: Sequence[ModelSnapshot]) -> list[Metric]:
    """Every concept-drift family (always all of them, in one order) for these models. A
    version has them from its first joined outcome, unless concept_drift.detector is off."""
    detections = CounterMetricFamily(
        "model_concept_drift_detections",
        "Changes the concept-drift detector found in the version's error stream (1/0 for a "
        "wrong/right classification, the absolute error of a regression), in the order the "
        "labels were joined. The detector starts afresh after each.",
        labels=LABELS,
    )
    last = GaugeMetricFamily(
        "model_concept_drift_last_detection_timestamp_seconds",
        "Label time (Unix seconds) of the outcome at which the detector last found a change; "
        "absent until it first does.",
        labels=LABELS,
    )
    estimate = GaugeMetricFamily(
        "model_concept_drift_error_estimate",
        "The detector's mean error since its last change (error rate 0..1 for a classifier, "
        "mean absolute error for a regression), over model_concept_drift_outcomes outcomes.",
        labels=LABELS,
    )
    outcomes = GaugeMetricFamily(
        "model_concept_drift_outcomes",
        "Joined outcomes the detector has seen since its last change (or its start).",
        labels=LABELS,
    )
    warning = GaugeMetricFamily(
        "model_concept_drift_warning",
        "1 while DDM is in its warning zone (error rate above the best one by "
        "concept_drift.ddm.warning_threshold deviations), else 0. DDM only.",
        labels=LABELS,
    )
    for snapshot in snapshots:
        for version in snapshot.versions:
            info = version.concept
            if info is None:
                continue
            key = [snapshot.name, version.name, info.detector]
            detections.add_metric(key, info.detections)
            if info.last_detection is not None:
                last.add_metric(key, info.last_detection)
            estimate.add_metric(key, info.estimate)
            outcomes.add_metric(key, info.outcomes)
            if info.detector == "ddm":
                warning.add_metric(key, 1.0 if info.warning else 0.0)
    return [detections, last, estimate, outcomes, warning]
