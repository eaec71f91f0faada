"""Grafana dashboards as code: a fleet overview and a model detail board.

Stable uids, a ``datasource`` variable (never ``__inputs``, which file provisioning does not
resolve), ``model`` / ``model_version`` / ``window`` variables from ``label_values`` and
``$__rate_interval`` in every rate. ``tests/test_deploy.py`` parses every query and checks that
each metric it names exists in a golden exposition; the end-to-end test runs every query against
a real Prometheus scraping a real exporter.
"""

from __future__ import annotations

import json
from typing import Any

from exporter.monitoring.rules import Thresholds

DS = {"type": "prometheus", "uid": "${datasource}"}
OVERVIEW_UID = "model-exporter-overview"
MODEL_UID = "model-exporter-model"

Panel = dict[str, Any]


def _variables(model_multi: bool) -> list[dict[str, Any]]:
    def query(name: str, expr: str, multi: bool, label: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": expr, "refId": f"{name}-values"},
            "definition": expr,
            "refresh": 2,
            "sort": 1,
            "multi": multi,
            "includeAll": multi,
            "current": {},
            "options": [],
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "refresh": 1,
        },
        query("model", "label_values(model_info, model)", model_multi, "Model"),
        query(
            "model_version",
            'label_values(model_predictions_total{model=~"$model"}, model_version)',
            True,
            "Version",
        ),
        query("window", "label_values(model_window_predictions, window)", False, "Window"),
    ]


class _Board:
    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self._y = 0
        self._x = 0
        self._row_h = 0

    def add(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str | None = None,
        description: str = "",
        instant: bool = False,
        options: dict[str, Any] | None = None,
        field_config: dict[str, Any] | None = None,
        transformations: list[dict[str, Any]] | None = None,
        overrides: list[dict[str, Any]] | None = None,
    ) -> None:
        if self._x + w > 24:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        defaults: dict[str, Any] = {}
        if unit:
            defaults["unit"] = unit
        if field_config:
            defaults.update(field_config)
        panel: Panel = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": expr,
                    "legendFormat": legend,
                    "instant": instant,
                    "range": not instant,
                    **({"format": "table"} if instant else {}),
                    **({"format": "heatmap"} if kind == "heatmap" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        self._x += w
        self._row_h = max(self._row_h, h)

    def row(self, title: str) -> None:
        if self._x:
            self._x, self._y = 0, self._y + self._row_h
            self._row_h = 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self._y += 1


#: The columns a table or bar chart of instant series hides: time and the selected labels.
_HIDDEN = ("Time", "__name__", "job", "instance", "model", "window")


def _organize(
    rename: dict[str, str] | None = None, *, merge: bool = False, hide: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The transformations of an instant table: merge the queries (one row per series),
    hide :data:`_HIDDEN` (and ``hide``), rename the value columns."""
    options: dict[str, Any] = {"excludeByName": dict.fromkeys((*_HIDDEN, *hide), True)}
    if rename:
        options["renameByName"] = rename
    steps: list[dict[str, Any]] = [{"id": "merge", "options": {}}] if merge else []
    return [*steps, {"id": "organize", "options": options}]


def _threshold_line(value: float) -> dict[str, Any]:
    return {
        "min": 0,
        "max": 1,
        "custom": {"thresholdsStyle": {"mode": "line+area"}},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "transparent", "value": value}],
        },
    }


def _zero_line() -> dict[str, Any]:
    """A dashed line at 0: a difference (challenger minus champion, live minus baseline)."""
    return {
        "custom": {"thresholdsStyle": {"mode": "dashed"}},
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "transparent", "value": None}, {"color": "red", "value": 0}],
        },
    }


def _bounds_dashed(pattern: str) -> dict[str, Any]:
    """Series whose legend matches ``pattern`` (an interval's bounds) drawn dashed."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def _pvalue_field(alpha: float) -> dict[str, Any]:
    """An always-valid p-value on a log axis, red below the alerts' level."""
    return {
        "max": 1,
        "custom": {
            "scaleDistribution": {"type": "log", "log": 10},
            "thresholdsStyle": {"mode": "line+area"},
        },
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "transparent", "value": alpha}],
        },
    }


def _dashboard(
    uid: str, title: str, description: str, board: _Board, multi: bool
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["model-exporter", "ml"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": _variables(model_multi=multi)},
        "annotations": {
            "list": [
                {
                    "name": "Model alerts",
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "red",
                    "expr": 'ALERTS{alertstate="firing", alertname=~"Model.*", model=~"$model"}',
                    "titleFormat": "{{ alertname }}",
                    "textFormat": "{{ model }} {{ model_version }}",
                }
            ]
        },
        "links": [
            {"title": "Overview", "type": "link", "url": f"/d/{OVERVIEW_UID}"},
            {"title": "Model detail", "type": "link", "url": f"/d/{MODEL_UID}"},
        ],
        "panels": board.panels,
    }


SEL = 'model=~"$model", model_version=~"$model_version"'
WSEL = f'{SEL}, window="$window"'


MSEL = 'model=~"$model"'
# comparisons carry model, champion, challenger (and window), never model_version
CWSEL = f'{MSEL}, window="$window"'
ARMS = "{{challenger}} vs {{champion}}"


def _rate(metric: str, selector: str = SEL) -> str:
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def _delay_quantile(q: float) -> str:
    bucket = _rate("model_label_delay_seconds_bucket")
    return f"histogram_quantile({q}, sum by (model, le) ({bucket}))"


def overview() -> dict[str, Any]:
    b = _Board()
    _fleet_quality_row(b)
    _fleet_traffic_row(b)
    _fleet_drift_row(b)
    _fleet_comparison_row(b)
    _fleet_exporter_row(b)
    return _dashboard(
        OVERVIEW_UID,
        "Model exporter / Fleet overview",
        "Every monitored model: quality, traffic, label delay, drift and firing alerts.",
        b,
        True,
    )


def _fleet_quality_row(b: _Board) -> None:
    """Accuracy and F1 of every model (the alert threshold drawn), fleet-wide, labeled counts."""
    b.row("Quality")
    b.add(
        "timeseries",
        "Accuracy by model (0.9 = alert threshold)",
        [(f"model_accuracy{{{WSEL}}}", "{{model}} {{model_version}}")],
        unit="percentunit",
        field_config=_threshold_line(0.9),
        description="Rolling accuracy over the selected window; absent below "
        "quality.min_samples labeled predictions. ModelAccuracyDrop fires below 0.9 for 1h.",
    )
    b.add(
        "timeseries",
        "F1 by model (binary: positive class; multiclass: macro)",
        [
            (
                f'model_f1_score{{{WSEL}, average="binary"}} or (model_f1_score{{{WSEL}, '
                f'average="macro"}} unless on (model, model_version, window) '
                f'model_f1_score{{{WSEL}, average="binary"}})',
                "{{model}} {{model_version}} {{average}}",
            )
        ],
        unit="percentunit",
        field_config=_threshold_line(0.8),
    )
    b.add(
        "timeseries",
        "Fleet accuracy and macro F1, last hour, all replicas",
        [
            (
                f"model_version:model_accuracy:ratio1h{{{SEL}}}",
                "accuracy {{model}} {{model_version}}",
            ),
            (
                f"model_version:model_f1_score:macro1h{{{SEL}}}",
                "macro F1 {{model}} {{model_version}}",
            ),
        ],
        unit="percentunit",
        w=12,
        description="From the recording rules over model_outcomes_total summed across replicas.",
    )
    b.add(
        "timeseries",
        "Labeled predictions in the window",
        [(f"model_window_labeled_predictions{{{WSEL}}}", "{{model}} {{model_version}}")],
        description="Quality values need quality.min_samples of them.",
    )


def _fleet_traffic_row(b: _Board) -> None:
    """Predictions and joined labels per second, and the label delay."""
    b.row("Traffic and labels")
    b.add(
        "timeseries",
        "Predictions per second",
        [
            (
                f"sum by (model, model_version) ({_rate('model_predictions_total')})",
                "{{model}} {{model_version}}",
            )
        ],
        unit="reqps",
        w=8,
    )
    b.add(
        "timeseries",
        "Labels joined per second",
        [
            (
                f"sum by (model, model_version) ({_rate('model_labels_total')})",
                "{{model}} {{model_version}}",
            )
        ],
        unit="reqps",
        w=8,
    )
    b.add(
        "timeseries",
        "Label delay (median and p90)",
        [
            (
                _delay_quantile(0.5),
                "p50 {{model}}",
            ),
            (
                _delay_quantile(0.9),
                "p90 {{model}}",
            ),
        ],
        unit="s",
        w=8,
    )


def _fleet_drift_row(b: _Board) -> None:
    """Drifted features and predictions, and the alerts firing."""
    b.row("Drift and alerts")
    b.add(
        "timeseries",
        "Drifted features (adjusted p-value at most drift.alpha, with hysteresis)",
        [(f"model_drift_features_drifted{{{WSEL}}}", "{{model}} {{model_version}}")],
        w=8,
        field_config={"min": 0, "decimals": 0},
    )
    b.add(
        "timeseries",
        "Prediction drift (PSI of the outputs)",
        [(f"model_prediction_drift_psi{{{WSEL}}}", "{{model}} {{model_version}}")],
        w=8,
    )
    b.add(
        "table",
        "Firing model alerts",
        [('ALERTS{alertstate="firing", alertname=~"Model.*"}', "")],
        w=8,
        instant=True,
        transformations=[
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}},
            }
        ],
    )


def _fleet_comparison_row(b: _Board) -> None:
    """Declared comparisons and holdout baselines: the always-valid verdicts."""
    b.row("Comparisons and holdout baseline (always-valid verdicts)")
    alpha = Thresholds().sequential_alpha
    b.add(
        "timeseries",
        f"Challenger vs champion: always-valid p-value (verdict below {alpha})",
        [(f"model_comparison_sequential_pvalue{{{MSEL}}}", f"{{{{model}}}} {ARMS}")],
        field_config=_pvalue_field(alpha),
        description="Since each comparison started. ModelChallengerWorse or "
        "ModelChallengerBetter fires when it stays below the level for challenger_for, with "
        "comparison_min_labels labels per arm; the confidence-sequence bounds say which "
        "(wholly on one side of 0), not the difference's current sign.",
    )
    b.add(
        "timeseries",
        "Live minus holdout baseline accuracy",
        [(f"model_baseline_accuracy_difference{{{WSEL}}}", "{{model}} {{model_version}}")],
        unit="percentunit",
        field_config=_zero_line(),
        description="Per window; ModelBelowHoldoutBaseline uses the always-valid test "
        "(model_baseline_sequential_pvalue), not this gap.",
    )


def _fleet_exporter_row(b: _Board) -> None:
    """The exporter's own health: rejected events, pending joins, collector durations."""
    b.row("Exporter health")
    b.add(
        "timeseries",
        "Rejected events per second by reason",
        [
            (
                "sum by (reason) (rate(model_exporter_events_rejected_total[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
        w=8,
    )
    b.add(
        "timeseries",
        "Pending joins",
        [
            (f"model_pending_predictions{{{SEL}}}", "predictions {{model}} {{model_version}}"),
            ('model_pending_labels{model=~"$model"}', "early labels {{model}}"),
        ],
        w=8,
    )
    b.add(
        "timeseries",
        "Collector duration",
        [("model_exporter_collector_duration_seconds", "{{instance}} {{collector}}")],
        unit="s",
        w=8,
    )


def model_detail() -> dict[str, Any]:
    b = _Board()
    _quality_row(b)
    _scores_row(b)
    _estimate_row(b)
    _concept_row(b)
    _feature_drift_row(b)
    _data_quality_row(b)
    _sample_row(b)
    _version_row(b)
    _comparison_rows(b)
    return _dashboard(
        MODEL_UID,
        "Model exporter / Model detail",
        "One model: quality over time and per class, feature drift and data quality, samples, "
        "versions side by side.",
        b,
        False,
    )


def _quality_row(b: _Board) -> None:
    """Accuracy, precision, recall and F1 over time, per class, regression errors."""
    b.row("Quality over time")
    b.add(
        "timeseries",
        "Accuracy (red below the 0.9 alert threshold)",
        [(f"model_accuracy{{{WSEL}}}", "{{model_version}}")],
        unit="percentunit",
        field_config=_threshold_line(0.9),
        w=12,
    )
    b.add(
        "timeseries",
        "Precision, recall and F1",
        [
            (f"model_precision{{{WSEL}}}", "precision {{average}} {{model_version}}"),
            (f"model_recall{{{WSEL}}}", "recall {{average}} {{model_version}}"),
            (f"model_f1_score{{{WSEL}}}", "F1 {{average}} {{model_version}}"),
        ],
        unit="percentunit",
        w=12,
    )
    b.add(
        "timeseries",
        "F1 per class",
        [(f"model_class_f1_score{{{WSEL}}}", "{{class}} {{model_version}}")],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Recall per class",
        [(f"model_class_recall{{{WSEL}}}", "{{class}} {{model_version}}")],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Regression errors (MAE, RMSE)",
        [
            (f"model_mean_absolute_error{{{WSEL}}}", "MAE {{model_version}}"),
            (f"model_root_mean_squared_error{{{WSEL}}}", "RMSE {{model_version}}"),
        ],
        w=8,
    )


def _scores_row(b: _Board) -> None:
    """Ranking, proper scoring rules and calibration of the predicted probabilities."""
    b.row("Scores and calibration")
    b.add(
        "timeseries",
        "ROC AUC and average precision",
        [
            (f"model_roc_auc{{{WSEL}}}", "ROC AUC {{model_version}}"),
            (f"model_average_precision{{{WSEL}}}", "average precision {{model_version}}"),
        ],
        description="Of the labeled predictions that carried a score or probabilities. Exact "
        "up to quality.max_exact_scores outcomes a window, then within "
        "model_roc_auc_max_error / model_average_precision_max_error.",
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Log loss and Brier score (lower is better)",
        [
            (f"model_log_loss{{{WSEL}}}", "log loss {{model_version}}"),
            (f"model_brier_score{{{WSEL}}}", "Brier {{model_version}}"),
        ],
        w=8,
    )
    b.add(
        "timeseries",
        "Expected calibration error",
        [(f"model_expected_calibration_error{{{WSEL}}}", "{{model_version}}")],
        description="Mean gap between confidence and observed rate over the reliability bins, "
        "weighted by their predictions (0: calibrated).",
        unit="percentunit",
        w=8,
    )
    b.add(
        "barchart",
        "Reliability now: observed rate and mean confidence per bin",
        [
            (f"model_calibration_bin_observed_rate{{{WSEL}}}", "observed {{model_version}}"),
            (f"model_calibration_bin_mean_confidence{{{WSEL}}}", "confidence {{model_version}}"),
        ],
        description="Bins of confidence by their upper edge; a calibrated model's bars are "
        "equal. Binary: the positive class's score; multiclass: the top class.",
        instant=True,
        options={"xField": "bin"},
        transformations=_organize(
            {"Value #A": "observed rate", "Value #B": "mean confidence"},
            merge=True,
            hide=("model_version",),
        ),
        unit="percentunit",
        w=16,
    )
    b.add(
        "barchart",
        "Predictions per reliability bin",
        [(f"model_calibration_bin_predictions{{{WSEL}}}", "{{model_version}}")],
        instant=True,
        options={"xField": "bin"},
        transformations=_organize(hide=("model_version",)),
        w=8,
    )


def _estimate_row(b: _Board) -> None:
    """The label-free estimate against the realised quality, and how far off it was."""
    b.row("Label-free estimate")
    b.add(
        "timeseries",
        "Accuracy: estimated over every prediction, realised over the labeled",
        [
            (f"model_estimated_accuracy{{{WSEL}}}", "estimated {{model_version}}"),
            (f"model_accuracy{{{WSEL}}}", "realised {{model_version}}"),
        ],
        description="The estimate (CBPE: calibrated probabilities, no labels) covers the "
        "window's predictions by prediction time; the realised accuracy its labels by label "
        "time, which may be days behind.",
        unit="percentunit",
        field_config=_threshold_line(0.9),
        w=12,
    )
    b.add(
        "timeseries",
        "Estimated F1",
        [(f"model_estimated_f1_score{{{WSEL}}}", "{{average}} {{model_version}}")],
        unit="percentunit",
        w=6,
    )
    b.add(
        "timeseries",
        "Estimate's error where labels came (realised - estimated)",
        [(f"model_estimated_accuracy_error{{{WSEL}}}", "accuracy {{model_version}}")],
        description="Over the same labeled predictions: near 0 the estimate can be trusted.",
        field_config=_zero_line(),
        w=6,
    )


def _concept_row(b: _Board) -> None:
    """The concept-drift detector's estimate against 1 - accuracy, and its detections."""
    b.row("Concept drift")
    b.add(
        "timeseries",
        "Error: the detector's estimate since its last change, and 1 - accuracy",
        [
            (f"model_concept_drift_error_estimate{{{SEL}}}", "estimate {{model_version}}"),
            (f"1 - model_accuracy{{{WSEL}}}", "1 - accuracy {{window}} {{model_version}}"),
        ],
        description="The detector runs on every joined label (1 wrong, 0 right; a regression's "
        "absolute error) and starts afresh after each change it finds: its estimate moves "
        "long before the windowed accuracy.",
        w=16,
    )
    b.add(
        "timeseries",
        "Concept-drift detections",
        [
            (
                f"increase(model_concept_drift_detections_total{{{SEL}}}[5m])",
                "{{detector}} {{model_version}}",
            )
        ],
        description="Changes found in the error stream (ModelConceptDrift fires on any).",
        field_config={"custom": {"drawStyle": "bars"}},
        w=8,
    )


def _feature_drift_row(b: _Board) -> None:
    """The drift table now, each feature's verdict over time, PSI per feature."""
    b.row("Feature drift")
    b.add(
        "table",
        "Feature drift now (raw p-values; drifted = adjusted p-value at most drift.alpha)",
        [
            (f"model_feature_drift_ks_pvalue{{{WSEL}}}", ""),
            (f"model_feature_drift_mann_whitney_pvalue{{{WSEL}}}", ""),
            (f"model_feature_drift_chi2_pvalue{{{WSEL}}}", ""),
            (f"model_feature_drift_adjusted_pvalue{{{WSEL}}}", ""),
            (f"model_feature_drift_psi{{{WSEL}}}", ""),
            (f"model_feature_drift_jensen_shannon_distance{{{WSEL}}}", ""),
            (f"model_feature_drift_detected{{{WSEL}}}", ""),
        ],
        w=24,
        h=10,
        instant=True,
        transformations=_organize(
            {
                "Value #A": "KS p-value",
                "Value #B": "Mann-Whitney p-value",
                "Value #C": "chi2 p-value",
                "Value #D": "adjusted p-value",
                "Value #E": "PSI",
                "Value #F": "Jensen-Shannon",
                "Value #G": "drifted",
            },
            merge=True,
        ),
    )
    b.add(
        "state-timeline",
        "Drift verdict per feature over time",
        [(f"model_feature_drift_detected{{{WSEL}}}", "{{feature}} {{model_version}}")],
        w=12,
        h=10,
        field_config={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "stable", "color": "green"},
                        "1": {"text": "drifted", "color": "red"},
                    },
                }
            ]
        },
    )
    b.add(
        "timeseries",
        "PSI per feature",
        [(f"model_feature_drift_psi{{{WSEL}}}", "{{feature}} {{model_version}}")],
        w=12,
        h=10,
        field_config={"custom": {"drawStyle": "line"}},
    )


def _data_quality_row(b: _Board) -> None:
    """Missing values, values outside the reference, unseen categories."""
    b.row("Data quality")
    b.add(
        "timeseries",
        "Missing values",
        [(f"model_feature_missing_ratio{{{WSEL}}}", "{{feature}}")],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Outside the reference range (numeric)",
        [(f"model_feature_out_of_range_ratio{{{WSEL}}}", "{{feature}}")],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Unseen categories (categorical)",
        [(f"model_feature_unseen_category_ratio{{{WSEL}}}", "{{feature}}")],
        unit="percentunit",
        w=8,
    )


def _sample_row(b: _Board) -> None:
    """Prediction and label drift, the window sample counts, the label delay."""
    b.row("Predictions, labels and samples")
    b.add(
        "timeseries",
        "Prediction and label drift (PSI)",
        [
            (f"model_prediction_drift_psi{{{WSEL}}}", "predictions {{model_version}}"),
            (f"model_label_drift_psi{{{WSEL}}}", "labels {{model_version}}"),
        ],
        w=8,
    )
    b.add(
        "timeseries",
        "Window sample counts",
        [
            (f"model_window_predictions{{{WSEL}}}", "predictions {{model_version}}"),
            (f"model_window_labeled_predictions{{{WSEL}}}", "labeled {{model_version}}"),
            (f"model_drift_window_sample_predictions{{{WSEL}}}", "drift sample {{model_version}}"),
        ],
        w=8,
    )
    b.add(
        "heatmap",
        "Label delay",
        [
            (
                f"sum by (le) (rate(model_label_delay_seconds_bucket{{{SEL}}}[$__rate_interval]))",
                "{{le}}",
            )
        ],
        w=8,
        options={"calculate": False, "yAxis": {"unit": "s"}},
    )


def _version_row(b: _Board) -> None:
    """Versions side by side: accuracy, traffic share, drifted features."""
    b.row("Version comparison")
    b.add(
        "timeseries",
        "Accuracy by version",
        [('model_accuracy{model=~"$model", window="$window"}', "{{model_version}}")],
        unit="percentunit",
        field_config=_threshold_line(0.9),
        w=8,
    )
    b.add(
        "timeseries",
        "Traffic share by version",
        [
            (
                f"sum by (model_version) ({_rate('model_predictions_total', MSEL)}) "
                f"/ scalar(sum({_rate('model_predictions_total', MSEL)}))",
                "{{model_version}}",
            )
        ],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        "Drifted features by version",
        [('model_drift_features_drifted{model=~"$model", window="$window"}', "{{model_version}}")],
        w=8,
    )


def _comparison_rows(b: _Board) -> None:
    """Champion against each challenger (one legend entry per challenger), shadow mode's pairs,
    then the holdout baseline."""
    alpha = Thresholds().sequential_alpha
    b.row("Champion vs challenger (declared comparison; verdicts since it started)")
    b.add(
        "timeseries",
        "Difference since the start with its confidence sequence (challenger minus champion)",
        [
            (
                f"model_comparison_sequential_accuracy_difference{{{MSEL}}}",
                f"accuracy {ARMS}",
            ),
            (
                f"model_comparison_sequential_mean_absolute_error_difference{{{MSEL}}}",
                f"MAE {ARMS}",
            ),
            (f"model_comparison_sequential_difference_lower{{{MSEL}}}", f"lower {ARMS}"),
            (f"model_comparison_sequential_difference_upper{{{MSEL}}}", f"upper {ARMS}"),
        ],
        field_config=_zero_line(),
        overrides=[_bounds_dashed("^(lower|upper) .*")],
        description="Accuracy: above 0 is better; MAE (regression): below 0 is better. The "
        "bounds only shrink: once they exclude 0 the difference is real at the level of "
        "comparison.sequential.alpha, and they say which way. Lower above upper: the "
        "difference moved during the comparison; restart it. Absent during the burn-in.",
    )
    b.add(
        "timeseries",
        f"Always-valid p-value (alerts below {alpha})",
        [(f"model_comparison_sequential_pvalue{{{MSEL}}}", ARMS)],
        field_config=_pvalue_field(alpha),
        description="Valid however often it is read; only falls. The alerts also need the "
        "bounds wholly on one side of 0 (that side says worse or better) and "
        "comparison_min_labels labels per arm.",
    )
    b.add(
        "timeseries",
        "Labeled predictions per arm since the start",
        [(f"model_comparison_sequential_labeled_predictions{{{MSEL}}}", f"{{{{arm}}}} {ARMS}")],
        field_config={"min": 0, "decimals": 0},
        description="Nothing else is exported until each arm holds "
        "comparison.sequential.min_samples of them.",
    )
    b.add(
        "timeseries",
        "Per-window accuracy difference with its 95% interval (not for alerting)",
        [
            (f"model_comparison_accuracy_difference{{{CWSEL}}}", ARMS),
            (f"model_comparison_accuracy_difference_lower{{{CWSEL}}}", f"lower {ARMS}"),
            (f"model_comparison_accuracy_difference_upper{{{CWSEL}}}", f"upper {ARMS}"),
        ],
        field_config=_zero_line(),
        overrides=[_bounds_dashed("^(lower|upper) .*")],
        description="A fixed-sample view of the selected window: how the difference moves. "
        "Its p-value, re-read at every scrape, would find differences between identical "
        "versions; the verdicts are the sequential panels'.",
    )
    _shadow_panels(b, alpha)
    b.row("Holdout baseline")
    b.add(
        "timeseries",
        "Live minus holdout baseline accuracy",
        [(f"model_baseline_accuracy_difference{{{WSEL}}}", "{{model_version}}")],
        unit="percentunit",
        field_config=_zero_line(),
        w=8,
    )
    b.add(
        "timeseries",
        "Live and holdout accuracy",
        [
            (f"model_accuracy{{{WSEL}}}", "live {{model_version}}"),
            (f"model_baseline_accuracy{{{SEL}}}", "holdout {{model_version}}"),
        ],
        unit="percentunit",
        w=8,
    )
    b.add(
        "timeseries",
        f"Below-baseline test: always-valid p-value (alerts below {alpha})",
        [(f"model_baseline_sequential_pvalue{{{SEL}}}", "{{model_version}}")],
        field_config=_pvalue_field(alpha),
        w=8,
        description="Tests whether live accuracy is below the baseline by more than the "
        "tolerance; ModelBelowHoldoutBaseline also needs baseline_min_labels labeled "
        "predictions (model_baseline_sequential_labeled_predictions).",
    )


def _shadow_panels(b: _Board, alpha: float) -> None:
    """Shadow mode's paired view: discordant pairs and the paired always-valid p-value since the
    start, then the window's pairs. Split comparisons export none of these, so stay empty."""
    better = f"{{{{better}}}} better, {ARMS}"
    b.add(
        "timeseries",
        "Shadow mode: discordant pairs since the start, by the version that was right",
        [(f"model_comparison_sequential_discordant_pairs{{{MSEL}}}", better)],
        field_config={"min": 0, "decimals": 0},
        w=8,
        description="Pairs where exactly one version was right: better=champion the champion "
        "right and the challenger wrong, challenger the reverse (regression: the smaller "
        "absolute error). Pairs both got right or both got wrong say nothing about which is "
        "better.",
    )
    b.add(
        "timeseries",
        f"Shadow mode: always-valid McNemar p-value (alerts below {alpha})",
        [(f"model_comparison_sequential_mcnemar_pvalue{{{MSEL}}}", ARMS)],
        field_config=_pvalue_field(alpha),
        w=8,
        description="The paired test on the discordant pairs since the start, valid however "
        "often it is read; the alerts read it as model_comparison_sequential_pvalue. Absent "
        "during the burn-in. Classification only: a regression model's paired test (on the "
        "pairs' absolute errors) is the comparison row's sequential p-value.",
    )
    b.add(
        "timeseries",
        "Shadow mode: pairs and discordant pairs in the window (not for alerting)",
        [
            (f"model_comparison_pairs{{{CWSEL}}}", f"pairs {ARMS}"),
            (f"model_comparison_discordant_pairs{{{CWSEL}}}", better),
        ],
        field_config={"min": 0, "decimals": 0},
        w=8,
        description="Ids both versions predicted, joined to their label, in the selected "
        "window, and how many of them only one version got right. A fixed-sample view; the "
        "verdict is the always-valid p-value's.",
    )


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, sort_keys=False) + "\n"


def dashboards() -> dict[str, dict[str, Any]]:
    return {"model-exporter-overview.json": overview(), "model-exporter-model.json": model_detail()}


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets, variables, annotations."""
    out: list[str] = []
    for panel in dashboard["panels"]:
        out.extend(t["expr"] for t in panel.get("targets", []))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["query"]["query"])
    out.extend(a["expr"] for a in dashboard["annotations"]["list"])
    return out
