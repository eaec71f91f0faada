"""Prometheus alerting and recording rules for model-exporter, rendered from one set of
thresholds (documented in ``docs/runbook.md``, one section per alert)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from exporter.config import (
    describe_validation_error,
    format_duration,
    parse_duration,
    read_yaml_mapping,
)
from exporter.errors import ConfigError

MODEL_ALERTS = (
    "ModelAccuracyDrop",
    "ModelF1Drop",
    "ModelFeatureDrift",
    "ModelPredictionDrift",
    "ModelConceptDrift",
    "ModelEstimatedAccuracyDrop",
    "ModelGroundTruthStale",
    "ModelNoPredictions",
)
#: On a declared comparison (its sequential gauges) and on the holdout baseline.
COMPARISON_ALERTS = (
    "ModelChallengerWorse",
    "ModelChallengerBetter",
    "ModelBelowHoldoutBaseline",
)
EXPORTER_ALERTS = (
    "ModelExporterDown",
    "ModelExporterAbsent",
    "ModelExporterCollectorFailing",
    "ModelExporterRejectedEvents",
)


def _fires_below(value: float) -> float:
    if not 0 < value <= 1:
        fate = "never" if value <= 0 else "always"
        raise ValueError(
            "must be a ratio in (0, 1] such as 0.85 for 85%: "
            f"an alert on values below it would {fate} fire"
        )
    return value


def _fires_above(value: float) -> float:
    if not 0 <= value < 1:
        fate = "never" if value >= 1 else "always"
        raise ValueError(
            "must be a ratio in [0, 1) such as 0.05 for 5%: "
            f"an alert on values above it would {fate} fire"
        )
    return value


def _significance_level(value: float) -> float:
    if not 0 < value < 1:
        fate = "never" if value <= 0 else "always"
        raise ValueError(
            "must be a significance level in (0, 1) such as 0.05: an alert on p-values below "
            f"it would {fate} fire"
        )
    return value


def _labeled_count(value: int) -> int:
    if value < 1:
        raise ValueError("must be a whole number of labeled predictions of at least 1 such as 100")
    return value


def _positive_duration(value: object) -> str:
    """A positive duration, spelled as Prometheus reads it (``90`` seconds is ``1m30s``)."""
    spelled = format_duration(parse_duration(value))
    if spelled == "0s":
        raise ValueError("must be a positive duration such as '15m'")
    return spelled


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"must be a regular expression: {exc}") from None
    return value


_Finite = Field(strict=True, allow_inf_nan=False)  # a number: not a string, not a boolean
#: Ratios an alert fires below (it could never fire at 0 and would always fire above 1) ...
_RatioBelow = Annotated[float, _Finite, AfterValidator(_fires_below)]
#: ... and ratios it fires above (always at less than 0, never from 1).
_RatioAbove = Annotated[float, _Finite, AfterValidator(_fires_above)]
_RuleDuration = Annotated[str, BeforeValidator(_positive_duration)]
#: The level an always-valid p-value is compared with (at 0 nothing fires, at 1 nearly all).
_Alpha = Annotated[float, _Finite, AfterValidator(_significance_level)]
#: A minimum of labeled predictions: a whole number (not 100.0, "100" or true), at least 1.
_LabeledCount = Annotated[int, Field(strict=True), AfterValidator(_labeled_count)]


class Thresholds(BaseModel):
    """Every threshold and duration of the shipped alerts, in one place, each range-checked so
    that every alert can both fire and stay quiet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy_below: _RatioBelow = 0.9  # the seed's rule: model_accuracy < 0.9 for 1h
    accuracy_for: _RuleDuration = "1h"
    f1_below: _RatioBelow = 0.8
    f1_for: _RuleDuration = "1h"
    feature_drift_for: _RuleDuration = "15m"
    prediction_drift_for: _RuleDuration = "15m"
    # a concept-drift detection keeps ModelConceptDrift firing this long
    concept_drift_lookback: _RuleDuration = "30m"
    concept_drift_for: _RuleDuration = "1m"
    # the label-free estimate (CBPE) below this: fires before the labels come
    estimated_accuracy_below: _RatioBelow = 0.9
    estimated_accuracy_for: _RuleDuration = "30m"
    # no label joined for this long while predictions flow
    ground_truth_stale_after: _RuleDuration = "2h"
    ground_truth_stale_for: _RuleDuration = "15m"
    no_predictions_for: _RuleDuration = "15m"
    exporter_down_for: _RuleDuration = "5m"
    exporter_absent_for: _RuleDuration = "10m"
    collector_failing_for: _RuleDuration = "10m"
    rejected_ratio_above: _RatioAbove = 0.05  # share of events refused with a 4xx
    rejected_for: _RuleDuration = "15m"
    # Comparisons and the holdout baseline: always-valid (sequential) p-values only.
    sequential_alpha: _Alpha = 0.05
    comparison_min_labels: _LabeledCount = 100  # per arm, since the comparison started
    challenger_for: _RuleDuration = "15m"
    baseline_min_labels: _LabeledCount = 100
    baseline_for: _RuleDuration = "15m"
    # Regex for the `job` label of `up`: "model-exporter" (static config) and
    # "<namespace>/model-exporter" (prometheus-operator PodMonitor) both match.
    exporter_job: Annotated[str, Field(min_length=1), AfterValidator(_regex)] = ".*model-exporter"
    runbook_base: Annotated[str, Field(min_length=1)] = (
        "https://github.com/model-exporter/model-exporter/blob/main/docs/runbook.md"
    )

    @classmethod
    def load(cls, path: Path | None) -> Thresholds:
        """The defaults overridden by the YAML file at ``path``.

        Raises :class:`ConfigError`, in one line naming each bad key (``thresholds.f1_below``)
        and its value.
        """
        if path is None:
            return cls()
        data = read_yaml_mapping(path, "thresholds file")
        where = f"thresholds file {str(path)!r}"
        unknown = sorted(str(key) for key in set(data) - set(cls.model_fields))
        if unknown:
            raise ConfigError(
                f"{where}: unknown thresholds {unknown}; known: {sorted(cls.model_fields)}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = describe_validation_error(exc, root="thresholds.")
            raise ConfigError(f"{where}: {problems}") from None

    def scaled(self, factor: float) -> Thresholds:
        """The same rules with every ``for`` duration multiplied (the end-to-end test's copy)."""
        changes: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name.endswith("_for"):
                seconds = max(1.0, parse_duration(getattr(self, name)) * factor)
                changes[name] = format_duration(round(seconds))
        return self.model_copy(update=changes)


def _promql_string(value: str) -> str:
    """``value`` as a PromQL string literal (its escapes are JSON's)."""
    return json.dumps(value, ensure_ascii=False)


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    description: str,
    t: Thresholds,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": f"{t.runbook_base}#{name.lower()}",
        },
    }


def alerting_rules(t: Thresholds) -> list[dict[str, Any]]:
    """The model alerts, then the exporter's own."""
    models = _model_alerts(t)
    # The estimate's alert after the concept-drift one, as MODEL_ALERTS lists them.
    at = [rule["alert"] for rule in models].index("ModelConceptDrift") + 1
    return [*models[:at], _estimate_alert(t), *models[at:], *_exporter_alerts(t)]


def _estimate_alert(t: Thresholds) -> dict[str, Any]:
    """The label-free estimate of accuracy fell: the labels that would confirm it may be days
    away."""
    mv = "{{ $labels.model }} {{ $labels.model_version }}"
    return _alert(
        "ModelEstimatedAccuracyDrop",
        f"model_estimated_accuracy < {t.estimated_accuracy_below}",
        t.estimated_accuracy_for,
        "warning",
        f"Model accuracy estimated below {t.estimated_accuracy_below:.0%} (no labels needed)",
        f"Model {mv} accuracy is estimated at {{{{ $value | humanizePercentage }}}} over the "
        "last {{ $labels.window }} window, from its calibrated probabilities; "
        "model_estimated_accuracy_error shows how far the estimate was off where labels came.",
        t,
    )


def _model_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Quality, drift, concept drift and the flow of predictions and labels."""
    mv = "{{ $labels.model }} {{ $labels.model_version }}"
    labels_gone = t.ground_truth_stale_after
    return [
        _alert(
            "ModelAccuracyDrop",
            f"model_accuracy < {t.accuracy_below}",
            t.accuracy_for,
            "critical",
            f"Model accuracy dropped below {t.accuracy_below:.0%}",
            f"Model {mv} accuracy is {{{{ $value | humanizePercentage }}}} over the last "
            "{{ $labels.window }} window.",
            t,
        ),
        _alert(
            "ModelF1Drop",
            f'model_f1_score{{average="binary"}} < {t.f1_below}\n'
            f'or (model_f1_score{{average="macro"}} < {t.f1_below}\n'
            '    unless on (model, model_version, window) model_f1_score{average="binary"})',
            t.f1_for,
            "warning",
            f"Model F1 score dropped below {t.f1_below}",
            f'Model {mv} F1 ({{{{ $labels.average }}}}) is {{{{ $value | printf "%.3f" }}}} '
            "over the last {{ $labels.window }} window.",
            t,
        ),
        _alert(
            "ModelFeatureDrift",
            "model_drift_features_drifted > 0",
            t.feature_drift_for,
            "warning",
            "Model input features drifted",
            f"{{{{ $value }}}} features of model {mv} drifted over the last "
            "{{ $labels.window }} window (adjusted p-value at most drift.alpha, held until "
            "drift.release_alpha); see model_feature_drift_detected for which.",
            t,
        ),
        _alert(
            "ModelPredictionDrift",
            "model_prediction_drift_detected == 1",
            t.prediction_drift_for,
            "warning",
            "Model predictions drifted",
            f"The distribution of model {mv}'s predictions over the last {{{{ $labels.window }}}} "
            "window differs from the reference.",
            t,
        ),
        _alert(
            "ModelConceptDrift",
            f"increase(model_concept_drift_detections_total[{t.concept_drift_lookback}]) > 0",
            t.concept_drift_for,
            "warning",
            "The model's error stream changed (concept drift)",
            f"The {{{{ $labels.detector }}}} detector found a change in the errors of model {mv} "
            f"in the last {t.concept_drift_lookback}; model_concept_drift_error_estimate is "
            "its error since then. Compare with model_accuracy (or the regression errors).",
            t,
        ),
        _alert(
            "ModelGroundTruthStale",
            "(sum by (model, model_version) (rate(model_predictions_total[15m])) > 0)\n"
            "and on (model, model_version)\n"
            f"(sum by (model, model_version) (increase(model_labels_total[{labels_gone}])) == 0)",
            t.ground_truth_stale_for,
            "warning",
            "Predictions flow but no ground truth arrives",
            f"Model {mv} is serving predictions, but no label was joined to them for "
            f"{labels_gone}: quality metrics are blind.",
            t,
        ),
        _alert(
            "ModelNoPredictions",
            "sum by (model) (rate(model_predictions_total[15m])) == 0",
            t.no_predictions_for,
            "warning",
            "A model receives no predictions",
            "Model {{ $labels.model }} reported no prediction in the last 15 minutes.",
            t,
        ),
    ]


def _exporter_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """The exporter's own health: scraped, present, collecting, not refusing much."""
    job = f"job=~{_promql_string(t.exporter_job)}"
    return [
        _alert(
            "ModelExporterDown",
            f"up{{{job}}} == 0",
            t.exporter_down_for,
            "critical",
            "model-exporter cannot be scraped",
            "Prometheus cannot scrape {{ $labels.instance }} (job {{ $labels.job }}): model "
            "quality and drift are not monitored there.",
            t,
        ),
        _alert(
            "ModelExporterAbsent",
            f"absent(up{{{job}}})",
            t.exporter_absent_for,
            "critical",
            "No model-exporter target is known to Prometheus",
            f"No target of a job matching {t.exporter_job} exists: service discovery or the "
            "scrape configuration lost the exporter.",
            t,
        ),
        _alert(
            "ModelExporterCollectorFailing",
            "model_exporter_collector_success == 0",
            t.collector_failing_for,
            "warning",
            "A model-exporter collector fails",
            "Collector {{ $labels.collector }} on {{ $labels.instance }} fails: some metrics "
            "are missing (the exporter's log says which model).",
            t,
        ),
        _alert(
            "ModelExporterRejectedEvents",
            "sum by (job, instance) (rate(model_exporter_events_rejected_total[10m]))\n"
            "/ (sum by (job, instance) (rate(model_exporter_events_received_total[10m]))\n"
            "   + sum by (job, instance) (rate(model_exporter_events_rejected_total[10m])))\n"
            f"> {t.rejected_ratio_above}",
            t.rejected_for,
            "warning",
            "model-exporter rejects many events",
            "{{ $value | humanizePercentage }} of the events sent to {{ $labels.instance }} are "
            "refused; model_exporter_events_rejected_total{reason} says why.",
            t,
        ),
    ]


#: One comparison of one exporter: every sidecar keeps its own comparison state, so ``job`` and
#: ``instance`` keep replicas apart (another replica's bounds or counts never decide).
_ONE_COMPARISON = "on (job, instance, model, champion, challenger)"


def _challenger_alert(t: Thresholds, *, worse: bool) -> dict[str, Any]:
    """Challenger against champion on the sequential gauges (never the per-window p-value,
    a fixed-sample test that repeated reading would make "find" differences in A/A tests).

    The p-value says whether, the confidence sequence which way. Both are running (the p-value
    a minimum, the bounds an intersection), the difference is not: after it moves, its sign
    can contradict the evidence that lowered the p-value. A look's p-value is at most alpha
    iff its interval excludes 0, so "p < alpha and the bounds on the worse side of 0" says
    "the confidence sequence lies wholly on the worse side". Crossed bounds (lower above
    upper: the difference moved) can put one bound on each side, and then both alerts fire.
    ``and`` keeps the left side, so the alert's value is the p-value.
    """
    # Accuracy: higher is better; mean absolute error: lower is better.
    accuracy, mae = ("upper < 0", "lower > 0") if worse else ("lower > 0", "upper < 0")
    verdict = "worse" if worse else "better"
    action = "stop sending it traffic or fix it" if worse else "consider promoting it"
    on = _ONE_COMPARISON
    return _alert(
        "ModelChallengerWorse" if worse else "ModelChallengerBetter",
        f"model_comparison_sequential_pvalue < {t.sequential_alpha}\n"
        f"and {on} (\n"
        f"    (model_comparison_sequential_difference_{accuracy}\n"
        f"     and {on} model_comparison_sequential_accuracy_difference)\n"
        f"  or (model_comparison_sequential_difference_{mae}\n"
        f"     and {on} model_comparison_sequential_mean_absolute_error_difference)\n"
        ")\n"
        f"and {on} count without (arm) "
        f"(model_comparison_sequential_labeled_predictions >= {t.comparison_min_labels}) == 2",
        t.challenger_for,
        "warning" if worse else "info",
        "Challenger significantly worse than the champion"
        if worse
        else "Challenger significantly better than the champion: consider promoting",
        "Model {{ $labels.model }}: challenger {{ $labels.challenger }} is "
        f"{verdict} than champion {{{{ $labels.champion }}}} since the comparison started "
        f'(always-valid p-value {{{{ $value | printf "%.2g" }}}} < {t.sequential_alpha}, '
        f"confidence sequence of the difference wholly on the {verdict} side of 0, each arm "
        f"with at least {t.comparison_min_labels} labeled predictions): {action}. If its bounds "
        "cross (lower above upper), the difference moved during the comparison: restart it.",
        t,
    )


def comparison_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Verdicts of declared comparisons and of the holdout baseline, from always-valid
    p-values, guarded on the labeled counts (the gauges are also absent during the burn-in)."""
    mv = "{{ $labels.model }} {{ $labels.model_version }}"
    return [
        _challenger_alert(t, worse=True),
        _challenger_alert(t, worse=False),
        _alert(
            "ModelBelowHoldoutBaseline",
            f"model_baseline_sequential_pvalue < {t.sequential_alpha}\n"
            f"and model_baseline_sequential_labeled_predictions >= {t.baseline_min_labels}",
            t.baseline_for,
            "warning",
            "Live quality below the holdout baseline",
            f"Model {mv} is below its holdout baseline by more than the tolerance "
            f'(always-valid p-value {{{{ $value | printf "%.2g" }}}} < {t.sequential_alpha}, '
            f"at least {t.baseline_min_labels} labeled predictions).",
            t,
        ),
    ]


def alert_series(t: Thresholds | None = None) -> frozenset[str]:
    """The ``model_*`` names the shipped alerts read (label names such as ``model_version``
    come along; no family has those names): the series budget never leaves them out."""
    t = t or Thresholds()
    exprs = [rule["expr"] for rule in (*alerting_rules(t), *comparison_alerts(t))]
    words = {word for expr in exprs for word in re.findall(r"[a-z_][a-z0-9_]*", expr)}
    return frozenset(word for word in words if word.startswith("model_"))


_OUT = "model_version:model_outcomes:increase1h"
_ACTUAL = "model_version_class:model_actual:increase1h"
_PREDICTED = "model_version_class:model_predicted:increase1h"
_TP = "model_version_class:model_true_positives:increase1h"


def _by_class(selector: str, label: str) -> str:
    return (
        f"sum without ({label}) (label_replace(sum by (model, model_version, {label}) "
        f'({selector}), "class", "$1", "{label}", "(.*)"))'
    )


def recording_rules() -> list[dict[str, Any]]:
    """Fleet-wide quality over the last hour from the outcome counters of every replica."""
    return [
        {
            "record": _OUT,
            "expr": "sum by (model, model_version, actual, predicted, correct) "
            "(increase(model_outcomes_total[1h]))",
        },
        {
            "record": "model_version:model_accuracy:ratio1h",
            "expr": f'sum by (model, model_version) ({_OUT}{{correct="true"}})\n'
            f"/ sum by (model, model_version) ({_OUT})",
        },
        {"record": _ACTUAL, "expr": _by_class(_OUT, "actual")},
        {"record": _PREDICTED, "expr": _by_class(_OUT, "predicted")},
        {"record": _TP, "expr": _by_class(f'{_OUT}{{correct="true"}}', "actual")},
        {
            "record": "model_version_class:model_f1_score:ratio1h",
            "expr": f"2 * ({_TP} or {_ACTUAL} * 0 or {_PREDICTED} * 0)\n"
            f"/ (({_ACTUAL} or {_PREDICTED} * 0) + ({_PREDICTED} or {_ACTUAL} * 0) > 0)",
        },
        {
            "record": "model_version:model_f1_score:macro1h",
            "expr": "avg by (model, model_version) (model_version_class:model_f1_score:ratio1h)",
        },
        {
            "record": "model_version:model_predictions:rate5m",
            "expr": "sum by (model, model_version) (rate(model_predictions_total[5m]))",
        },
    ]


def rule_groups(t: Thresholds) -> dict[str, Any]:
    return {
        "groups": [
            {"name": "model-exporter-alerts", "rules": alerting_rules(t)},
            {"name": "model-exporter-comparisons", "rules": comparison_alerts(t)},
            {"name": "model-exporter-fleet", "rules": recording_rules()},
        ]
    }


class _Literal(str):
    """Multi-line strings rendered as YAML block scalars (readable PromQL)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _blocks(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _blocks(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_blocks(v) for v in node]
    if isinstance(node, str) and "\n" in node:
        return _Literal(node)
    return node


def to_yaml(document: Any, header: str = "") -> str:
    body = yaml.dump(_blocks(document), Dumper=_Dumper, sort_keys=False, width=1000)
    return header + body


RULES_HEADER = (
    "# Generated by `model-exporter generate` from exporter/monitoring/rules.py: do not edit.\n"
    "# Thresholds and durations: docs/runbook.md (override them with --thresholds FILE).\n"
)


def render_rules(t: Thresholds) -> str:
    return to_yaml(rule_groups(t), RULES_HEADER)


def render_prometheus_rule(t: Thresholds) -> str:
    """The same rules as a prometheus-operator PrometheusRule for Kubernetes."""
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "model-exporter",
            "labels": {"app.kubernetes.io/name": "model-exporter"},
        },
        "spec": rule_groups(t),
    }
    return to_yaml(document, RULES_HEADER)
