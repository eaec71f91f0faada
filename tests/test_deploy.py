"""The shipped monitoring stack, checked offline with the real tools: promtool, amtool,
hadolint, kubernetes-validate, the compose schema, a PromQL parser and a golden exposition."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import promql_parser
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from exporter.errors import ConfigError
from exporter.monitoring import dashboards
from exporter.monitoring.rules import (
    COMPARISON_ALERTS,
    EXPORTER_ALERTS,
    MODEL_ALERTS,
    Thresholds,
    rule_groups,
)
from tests.golden import GOLDEN, differences, metric_names, normalise
from tests.helpers import ROOT, promtool_check_metrics, require_binary
from tests.test_exposition import populated

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "model-exporter.rules.yml"
#: How the challenger alerts match the series of one comparison on one exporter.
ONE_COMPARISON = "on (job, instance, model, champion, challenger)"
#: A direction of the challenger alerts, as rendered into the rules file (its indentation).
BRANCH = "(model_comparison_sequential_difference_{bound}\n           and " + ONE_COMPARISON


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_generated_files_are_current() -> None:
    result = run(sys.executable, "-m", "exporter", "generate", "--check")
    assert result.returncode == 0, result.stderr


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = require_binary("promtool")
    check = run(promtool, "check", "rules", str(RULES))
    assert check.returncode == 0 and "SUCCESS: 23 rules found" in check.stdout, check.stdout
    tests = run(promtool, "test", "rules", "model-exporter.rules.test.yml", cwd=RULES.parent)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr
    config = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.parametrize(
    ("where", "old", "new"),
    [
        # A wrong expectation in the unit tests ...
        (
            "tests",
            "description: Model fraud v1 accuracy is 85% over the last 1h window.",
            "description: Model fraud v1 accuracy is 86% over the last 1h window.",
        ),
        ("tests", "model: churn, champion: v1, challenger: v2}", "model: churn, champion: v1}"),
        # ... or a rule that lost its burn-in guard, its direction or its strict comparison,
        # took the direction from the difference's sign (the running p-value outlives a
        # difference that moved) or another replica's bounds ...
        (
            "rules",
            "(arm) (model_comparison_sequential_labeled_predictions >= 100) == 2",
            "(arm) (model_comparison_sequential_labeled_predictions >= 0) > 0",
        ),
        *(
            (
                "rules",
                BRANCH.format(bound=bound) + f" model_comparison_sequential_{metric})",
                f"(model_comparison_sequential_{metric} {sign})",
            )
            for bound, metric, sign in (
                ("upper < 0", "accuracy_difference", "< 0"),  # worse
                ("lower > 0", "mean_absolute_error_difference", "> 0"),
                ("lower > 0", "accuracy_difference", "> 0"),  # better
                ("upper < 0", "mean_absolute_error_difference", "< 0"),
            )
        ),
        ("rules", ONE_COMPARISON, "on (model, champion, challenger)"),
        ("rules", "difference_upper < 0\n", "difference_upper <= 0\n"),
        ("rules", "difference_upper < 0\n", "difference_lower < 0\n"),
        (
            "rules",
            "(arm) (model_comparison_sequential_labeled_predictions >= 100)",
            "(arm) (model_comparison_sequential_labeled_predictions >= 99)",
        ),
        ("rules", "labeled_predictions >= 100\n", "labeled_predictions >= 99\n"),
        (
            "rules",
            "model_comparison_sequential_pvalue < 0.05",
            "model_comparison_sequential_pvalue <= 0.05",
        ),
        (
            "rules",
            "and model_baseline_sequential_labeled_predictions >= 100",
            "or model_baseline_sequential_labeled_predictions < 0",
        ),
        # ModelEstimatedAccuracyDrop: the strict comparison, the for.
        ("rules", "model_estimated_accuracy < 0.9", "model_estimated_accuracy <= 0.9"),
        (
            "rules",
            "for: 30m\n    labels:\n      severity: warning\n    annotations:\n"
            "      summary: Model accuracy estimated",
            "for: 20m\n    labels:\n      severity: warning\n    annotations:\n"
            "      summary: Model accuracy estimated",
        ),
        # ModelConceptDrift: a shorter lookback, a reset read as a detection, the for.
        ("rules", "_total[30m]) > 0", "_total[20m]) > 0"),
        ("rules", "_total[30m]) > 0", "_total[30m]) >= 0"),
        (
            "rules",
            "increase(model_concept_drift_detections_total[30m])",
            "changes(model_concept_drift_detections_total[30m])",
        ),
        (
            "rules",
            "for: 15m\n    labels:\n      severity: info",
            "for: 10m\n    labels:\n      severity: info",
        ),
    ],
)
def test_promtool_unit_tests_can_fail(tmp_path: Path, where: str, old: str, new: str) -> None:
    """Each mutation makes promtool fail: the unit tests check what they claim to."""
    promtool = require_binary("promtool")
    tests = (RULES.parent / "model-exporter.rules.test.yml").read_text()
    rules = RULES.read_text()
    if where == "tests":
        assert old in tests
        tests = tests.replace(old, new)
    else:
        assert old in rules
        rules = rules.replace(old, new)
    (tmp_path / "model-exporter.rules.yml").write_text(rules)
    (tmp_path / "t.yml").write_text(tests)
    assert run(promtool, "test", "rules", "t.yml", cwd=tmp_path).returncode != 0


def test_seed_rule_is_verbatim_and_every_alert_is_complete() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert set(alerts) == set(MODEL_ALERTS) | set(COMPARISON_ALERTS) | set(EXPORTER_ALERTS)
    seed = alerts["ModelAccuracyDrop"]
    assert seed["expr"] == "model_accuracy < 0.9" and seed["for"] == "1h"
    assert seed["labels"] == {"severity": "critical"}
    assert seed["annotations"]["summary"] == "Model accuracy dropped below 90%"
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {h[3:].strip().lower() for h in runbook.splitlines() if h.startswith("## ")}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
        assert rule["annotations"]["runbook_url"].endswith(f"#{name.lower()}")
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"
    for field in Thresholds.model_fields:
        assert f"`{field}`" in runbook, f"docs/runbook.md does not document {field}"
    records = [r["record"] for g in groups for r in g["rules"] if "record" in r]
    assert all(re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r) for r in records), records


def test_fleet_recording_rule_values_match_sklearn() -> None:
    """The numbers in the promtool recording-rule test are scikit-learn's on the same outcomes."""
    counts = {(1, 1): 720, (1, 0): 360, (0, 0): 1140, (0, 1): 60}
    y_true = np.concatenate([np.full(n, a) for (a, _), n in counts.items()])
    y_pred = np.concatenate([np.full(n, p) for (_, p), n in counts.items()])
    text = (RULES.parent / "model-exporter.rules.test.yml").read_text()
    expected = {
        "model_version:model_accuracy:ratio1h": accuracy_score(y_true, y_pred),
        "model_version:model_f1_score:macro1h": f1_score(y_true, y_pred, average="macro"),
    }
    for record, value in expected.items():
        found = re.search(re.escape(record) + r"\{[^}]*\}\'\n\s+value: ([0-9.]+)", text)
        assert found, record
        assert float(found.group(1)) == pytest.approx(value, abs=1e-12)


def test_thresholds_render_and_scale(tmp_path: Path) -> None:
    custom = tmp_path / "t.yml"
    custom.write_text("accuracy_below: 0.85\naccuracy_for: 30m\n")
    t = Thresholds.load(custom)
    rules = {r.get("alert"): r for g in rule_groups(t)["groups"] for r in g["rules"]}
    assert rules["ModelAccuracyDrop"]["expr"] == "model_accuracy < 0.85"
    assert rules["ModelAccuracyDrop"]["for"] == "30m"
    fast = {
        r.get("alert"): r
        for g in rule_groups(Thresholds().scaled(1 / 1800))["groups"]
        for r in g["rules"]
    }
    assert fast["ModelAccuracyDrop"]["for"] == "2s" and fast["ModelFeatureDrift"]["for"] == "1s"
    bad = tmp_path / "bad.yml"
    bad.write_text("accuracy_blow: 0.8\n")
    with pytest.raises(ConfigError, match=r"unknown thresholds \['accuracy_blow'\]; known: "):
        Thresholds.load(bad)


def test_comparison_thresholds_render_into_expressions_and_annotations(tmp_path: Path) -> None:
    custom = tmp_path / "t.yml"
    custom.write_text(
        "sequential_alpha: 0.01\ncomparison_min_labels: 500\nchallenger_for: 30m\n"
        "baseline_min_labels: 250\nbaseline_for: 1h\n"
    )
    groups = rule_groups(Thresholds.load(custom))["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    for name in ("ModelChallengerWorse", "ModelChallengerBetter"):
        rule = rules[name]
        assert rule["expr"].startswith("model_comparison_sequential_pvalue < 0.01\n"), name
        assert rule["expr"].endswith(
            "(model_comparison_sequential_labeled_predictions >= 500) == 2"
        )
        assert rule["for"] == "30m"
        description = rule["annotations"]["description"]
        assert "< 0.01, confidence sequence of the difference wholly on the" in description
        assert "each arm with at least 500 labeled" in description
        # The direction is the bounds', never the difference's sign; every match is explicit.
        assert not re.search(r"_difference [<>]", rule["expr"]), rule["expr"]
        assert not re.search(r"\band (?!" + re.escape(ONE_COMPARISON) + ")", rule["expr"])
    worse, better = rules["ModelChallengerWorse"]["expr"], rules["ModelChallengerBetter"]["expr"]
    accuracy, mae = (
        " model_comparison_sequential_accuracy_difference)",
        " model_comparison_sequential_mean_absolute_error_difference)",
    )
    for expr, (on_accuracy, on_mae) in (
        (worse, ("upper < 0", "lower > 0")),
        (better, ("lower > 0", "upper < 0")),
    ):
        assert f"difference_{on_accuracy}\n     and {ONE_COMPARISON}{accuracy}" in expr
        assert f"difference_{on_mae}\n     and {ONE_COMPARISON}{mae}" in expr
    assert rules["ModelChallengerWorse"]["labels"] == {"severity": "warning"}
    assert rules["ModelChallengerBetter"]["labels"] == {"severity": "info"}
    baseline = rules["ModelBelowHoldoutBaseline"]
    assert baseline["expr"] == (
        "model_baseline_sequential_pvalue < 0.01\n"
        "and model_baseline_sequential_labeled_predictions >= 250"
    )
    assert baseline["for"] == "1h" and baseline["labels"] == {"severity": "warning"}
    assert "< 0.01, at least 250 labeled" in baseline["annotations"]["description"]
    for alert in COMPARISON_ALERTS:  # never the per-window (fixed-sample) p-values
        assert "_sequential_pvalue < " in rules[alert]["expr"]
        assert "model_comparison_accuracy_pvalue" not in rules[alert]["expr"]
    fast = Thresholds.load(custom).scaled(1 / 1800)
    assert (fast.challenger_for, fast.baseline_for) == ("1s", "2s")


#: The kind of every threshold: a ratio an alert fires below or above, a duration, a regex, text.
THRESHOLD_KINDS = {
    "accuracy_below": "ratio_below",
    "f1_below": "ratio_below",
    "estimated_accuracy_below": "ratio_below",
    "rejected_ratio_above": "ratio_above",
    "sequential_alpha": "alpha",
    "comparison_min_labels": "count",
    "baseline_min_labels": "count",
    "ground_truth_stale_after": "duration",
    "concept_drift_lookback": "duration",
    "exporter_job": "regex",
    "runbook_base": "text",
    **{name: "duration" for name in Thresholds.model_fields if name.endswith("_for")},
}
#: Per kind: values that must be refused and the message, values accepted and what they render.
BAD_THRESHOLDS = {
    "ratio_below": [
        (
            85,
            "must be a ratio in (0, 1] such as 0.85 for 85%: an alert on values below it "
            "would always fire",
        ),
        (0, "an alert on values below it would never fire"),
        (-0.5, "would never fire"),
        (1.01, "would always fire"),
        (".nan", "Input should be a finite number"),
        ("'0.8'", "Input should be a valid number"),
        ("true", "Input should be a valid number"),
    ],
    "ratio_above": [
        (
            1,
            "must be a ratio in [0, 1) such as 0.05 for 5%: an alert on values above it "
            "would never fire",
        ),
        (5, "would never fire"),
        (-0.01, "would always fire"),
        (".inf", "Input should be a finite number"),
        ("'5%'", "Input should be a valid number"),
    ],
    "duration": [
        (0, "must be a positive duration such as '15m'"),
        ("0s", "must be a positive duration such as '15m'"),
        (0.0001, "must be a positive duration such as '15m'"),
        ("-5m", "expected a duration such as"),
        ("15 minutes", "expected a duration such as"),
        ("true", "expected a duration such as '5m' or a number of seconds"),
    ],
    "alpha": [
        (
            0,
            "must be a significance level in (0, 1) such as 0.05: an alert on p-values below "
            "it would never fire",
        ),
        (-0.05, "would never fire"),
        (1, "would always fire"),
        (5, "would always fire"),
        (".nan", "Input should be a finite number"),
        ("'0.05'", "Input should be a valid number"),
        ("true", "Input should be a valid number"),
    ],
    "count": [
        (0, "must be a whole number of labeled predictions of at least 1 such as 100"),
        (-100, "at least 1 such as 100"),
        (100.0, "Input should be a valid integer"),
        (99.5, "Input should be a valid integer"),
        ("'100'", "Input should be a valid integer"),
        ("true", "Input should be a valid integer"),
    ],
    "regex": [("'(('", "must be a regular expression"), ("''", "at least 1 character")],
    "text": [("''", "at least 1 character"), (3, "Input should be a valid string")],
}
GOOD_THRESHOLDS = {
    "ratio_below": [(1, 1.0), (0.001, 0.001), (0.5, 0.5)],
    "ratio_above": [(0, 0.0), (0.999, 0.999)],
    "alpha": [(0.001, 0.001), (0.05, 0.05), (0.999, 0.999)],
    "count": [(1, 1), (100, 100), (100_000, 100_000)],
    "duration": [(90, "1m30s"), ("60m", "1h"), ("1h30m", "1h30m"), ("500ms", "500ms")],
    "regex": [("'model-exporter\\.prod'", "model-exporter\\.prod")],
    "text": [("https://example.org/runbook", "https://example.org/runbook")],
}


def test_every_threshold_has_a_kind() -> None:
    assert set(THRESHOLD_KINDS) == set(Thresholds.model_fields)
    assert set(BAD_THRESHOLDS) == set(GOOD_THRESHOLDS) == set(THRESHOLD_KINDS.values())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (key, value, message)
        for key, kind in sorted(THRESHOLD_KINDS.items())
        for value, message in BAD_THRESHOLDS[kind]
    ],
)
def test_bad_thresholds_name_the_key_and_value(tmp_path: Path, key, value, message) -> None:
    path = tmp_path / "t.yml"
    path.write_text(f"{key}: {value}\n")
    shown = repr(yaml.safe_load(f"v: {value}")["v"])
    with pytest.raises(ConfigError) as info:
        Thresholds.load(path)
    assert str(info.value).startswith(
        f"thresholds file '{path}': config key 'thresholds.{key}': "
    ), str(info.value)
    assert message in str(info.value) and str(info.value).endswith(f"(got {shown})")


@pytest.mark.parametrize(
    ("key", "value", "loaded"),
    [
        (key, value, loaded)
        for key, kind in sorted(THRESHOLD_KINDS.items())
        for value, loaded in GOOD_THRESHOLDS[kind]
    ],
)
def test_good_thresholds_are_kept(tmp_path: Path, key, value, loaded) -> None:
    path = tmp_path / "t.yml"
    path.write_text(f"{key}: {value}\n")
    assert getattr(Thresholds.load(path), key) == loaded


def test_thresholds_at_the_edges_render_rules_promtool_accepts(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "t.yml"
    path.write_text(
        "accuracy_below: 1\nf1_below: 0.001\nrejected_ratio_above: 0\naccuracy_for: 90\n"
        "ground_truth_stale_after: 1h30m\nexporter_job: 'model-exporter\\.prod|\"quoted\"'\n"
        "sequential_alpha: 0.999\ncomparison_min_labels: 1\nbaseline_min_labels: 100000\n"
    )
    out = tmp_path / "out"
    result = run(
        sys.executable, "-m", "exporter", "generate", "--thresholds", str(path), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    rules = out / "prometheus" / "rules" / "model-exporter.rules.yml"
    check = run(promtool, "check", "rules", str(rules))
    assert check.returncode == 0 and "SUCCESS: 23 rules found" in check.stdout, check.stdout
    alerts = {
        r.get("alert"): r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]
    }
    assert alerts["ModelAccuracyDrop"]["expr"] == "model_accuracy < 1.0"
    assert alerts["ModelAccuracyDrop"]["for"] == "1m30s"
    assert (
        alerts["ModelExporterDown"]["expr"]
        == 'up{job=~"model-exporter\\\\.prod|\\"quoted\\""} == 0'
    )
    assert "increase(model_labels_total[1h30m])" in alerts["ModelGroundTruthStale"]["expr"]
    assert alerts["ModelChallengerWorse"]["expr"].startswith(
        "model_comparison_sequential_pvalue < 0.999\n"
    )
    assert "labeled_predictions >= 1) == 2" in alerts["ModelChallengerBetter"]["expr"]
    assert alerts["ModelBelowHoldoutBaseline"]["expr"].endswith(
        "model_baseline_sequential_labeled_predictions >= 100000"
    )


def test_generate_refuses_a_bad_threshold_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("accuracy_below: 85\n")
    out = tmp_path / "out"
    result = run(
        sys.executable, "-m", "exporter", "generate", "--thresholds", str(path), "--out", str(out)
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"model-exporter generate: thresholds file '{path}': config key "
        "'thresholds.accuracy_below': must be a ratio in (0, 1] such as 0.85 for 85%: an alert "
        "on values below it would always fire (got 85)"
    ]
    assert not out.exists()  # nothing written


def test_kubernetes_prometheus_rule_holds_the_same_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    document = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    assert document["kind"] == "PrometheusRule"
    assert document["spec"] == yaml.safe_load(RULES.read_text())
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump(document["spec"]))
    assert run(promtool, "check", "rules", str(extracted)).returncode == 0


def test_alertmanager_config_routes_by_severity() -> None:
    amtool = require_binary("amtool")
    config = str(DEPLOY / "alertmanager" / "alertmanager.yml")
    check = run(amtool, "check-config", config)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    for labels, receiver in (
        (["severity=critical", "alertname=ModelAccuracyDrop"], "pager"),
        (["severity=critical", "alertname=ModelExporterDown"], "pager"),
        (["severity=warning", "alertname=ModelFeatureDrift"], "chat"),
        (["severity=info"], "chat"),
        (["alertname=Unlabelled"], "chat"),
    ):
        routed = run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert routed.stdout.strip() == receiver, (labels, routed.stdout, routed.stderr)
    inhibit = yaml.safe_load(Path(config).read_text())["inhibit_rules"][0]
    targets = inhibit["target_matchers"][0]
    for name in (*MODEL_ALERTS, *COMPARISON_ALERTS):  # a down exporter silences them all
        assert name in targets
    assert inhibit["equal"] == ["job"]


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = ROOT / ".venv" / "bin" / "hadolint"
    binary = str(hadolint) if hadolint.exists() else require_binary("hadolint")
    result = run(binary, str(ROOT / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM ") == 2 and "USER 10001" in text and "HEALTHCHECK" in text


def test_compose_file_is_valid_and_wires_the_shipped_files() -> None:
    checker = ROOT / ".venv" / "bin" / "check-jsonschema"
    result = run(str(checker), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"model-exporter", "prometheus", "alertmanager", "grafana"}
    assert compose["services"]["model-exporter"]["command"][0] == "demo"
    named = set(compose.get("volumes", {}))
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named or (ROOT / source).exists(), source
    # The exporter keeps its state on a named volume, where its state.path points.
    exporter = compose["services"]["model-exporter"]
    path = exporter["environment"]["MODEL_EXPORTER_STATE__PATH"]
    assert f"exporter-state:{path}" in exporter["volumes"]


def test_kubernetes_manifests_validate() -> None:
    validator = ROOT / ".venv" / "bin" / "kubernetes-validate"
    core = [
        str(p)
        for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        if yaml.safe_load(p.read_text())["apiVersion"] != "monitoring.coreos.com/v1"
    ]
    result = run(str(validator), "--strict", *core)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(core)
    # The operator's CRDs have no schema offline: check what matters by hand.
    monitor = yaml.safe_load((DEPLOY / "kubernetes" / "podmonitor.yaml").read_text())
    deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {
        p["name"]
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports


def substitute(expr: str) -> str:
    """Grafana's variables and macros replaced by values Prometheus accepts."""
    expr = re.sub(r"label_values\((.*),\s*\w+\)$", r"\1", expr)
    for name, value in (
        ("$__rate_interval", "1m"),
        ("$model_version", ".+"),
        ("$model", ".+"),
        ("$window", "1h"),
    ):
        expr = expr.replace(name, value)
    return expr


def selectors(node) -> list[str]:
    """Metric names selected anywhere in a parsed PromQL expression."""
    found = []
    name = getattr(node, "name", None)
    if isinstance(name, str) and type(node).__name__ == "VectorSelector":
        found.append(name)
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            found += selectors(child)
    for child in getattr(node, "args", None) or []:
        found += selectors(child)
    return found


@pytest.mark.parametrize("name", sorted(dashboards.dashboards()))
def test_dashboard_structure(name: str) -> None:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / name).read_text())
    assert board["uid"] in (dashboards.OVERVIEW_UID, dashboards.MODEL_UID)
    assert "__inputs" not in json.dumps(board)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"datasource", "model", "model_version", "window"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert (
                    "[5m]" not in target["expr"] and "$__rate_interval" in target["expr"]
                ) or "rate(" not in target["expr"]


def _targets(board: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(the title of the row above, target) for every panel target of a dashboard."""
    row, out = "", []
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        out.extend((row, target) for target in panel.get("targets", []))
    return out


def test_comparison_and_baseline_panels() -> None:
    """The model board's comparison row shows the sequential difference with its bounds, the
    always-valid p-value, labels per arm and the per-window difference; its baseline row the gap;
    the overview has both verdicts. Every comparison series is told apart by its arms."""
    boards = dashboards.dashboards()
    detail = _targets(boards["model-exporter-model.json"])
    by_row: dict[str, str] = {}
    for row, target in detail:
        by_row[row] = by_row.get(row, "") + target["expr"] + "\n"
    comparison = next(text for row, text in by_row.items() if row.startswith("Champion vs"))
    for metric in (
        "model_comparison_sequential_accuracy_difference{",
        "model_comparison_sequential_mean_absolute_error_difference{",
        "model_comparison_sequential_difference_lower{",
        "model_comparison_sequential_difference_upper{",
        "model_comparison_sequential_pvalue{",
        "model_comparison_sequential_labeled_predictions{",
        "model_comparison_accuracy_difference{",
        "model_comparison_sequential_discordant_pairs{",
        "model_comparison_sequential_mcnemar_pvalue{",
        "model_comparison_pairs{",
        "model_comparison_discordant_pairs{",
    ):
        assert metric in comparison, metric
    for fixed_sample in ("model_comparison_accuracy_pvalue", "model_comparison_mcnemar_pvalue"):
        assert fixed_sample not in json.dumps(boards)  # never shown as a verdict
    assert "model_baseline_accuracy_difference{" in by_row["Holdout baseline"]
    assert "model_baseline_sequential_pvalue{" in by_row["Holdout baseline"]
    overview = "\n".join(t["expr"] for _, t in _targets(boards["model-exporter-overview.json"]))
    assert "model_comparison_sequential_pvalue{" in overview
    assert "model_baseline_accuracy_difference{" in overview
    for board in boards.values():
        for _, target in _targets(board):
            if target["expr"].startswith("model_comparison_"):
                assert "{{challenger}}" in target["legendFormat"], target
                assert "{{champion}}" in target["legendFormat"], target
                assert "model_version" not in target["expr"], target  # not a comparison label


def test_shadow_mode_panels() -> None:
    """Shadow mode's panels sit in the comparison row, say so in their titles, split the
    discordant pairs by ``better`` and draw the paired p-value like the other always-valid one."""
    board = dashboards.dashboards()["model-exporter-model.json"]
    alpha = Thresholds().sequential_alpha
    row, shadow = "", []
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        elif any("pairs" in t["expr"] or "mcnemar" in t["expr"] for t in panel["targets"]):
            assert row.startswith("Champion vs"), panel["title"]
            shadow.append(panel)
    assert len(shadow) == 3
    for panel in shadow:
        assert panel["title"].startswith("Shadow mode: "), panel["title"]
        for target in panel["targets"]:
            if "discordant" in target["expr"]:
                assert "{{better}}" in target["legendFormat"], target
    (pvalue,) = (p for p in shadow if "mcnemar" in p["targets"][0]["expr"])
    sequential = next(p for p in board["panels"] if p["title"].startswith("Always-valid p-value"))
    assert pvalue["fieldConfig"] == sequential["fieldConfig"]
    defaults = pvalue["fieldConfig"]["defaults"]
    assert defaults["custom"]["scaleDistribution"] == {"type": "log", "log": 10}
    assert defaults["thresholds"]["steps"][1]["value"] == alpha
    assert str(alpha) in pvalue["title"]
    window = [t["expr"] for p in shadow for t in p["targets"] if 'window="$window"' in t["expr"]]
    assert {e.split("{")[0] for e in window} == {
        "model_comparison_pairs",
        "model_comparison_discordant_pairs",
    }


def test_every_dashboard_query_parses_and_uses_real_metrics() -> None:
    golden = metric_names(GOLDEN.read_text())
    recorded = {
        r["record"]
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    checked = 0
    for board in dashboards.dashboards().values():
        for expr in dashboards.queries(board):
            parsed = promql_parser.parse(substitute(expr))
            names = selectors(parsed)
            assert names, expr
            for metric in names:
                assert metric in golden or metric in recorded or metric in ("ALERTS",), (
                    f"{metric} (in {expr!r}) is not exported"
                )
                checked += 1
    assert checked > 40


def test_every_alert_expression_uses_real_metrics() -> None:
    golden = metric_names(GOLDEN.read_text())
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for metric in selectors(promql_parser.parse(rule["expr"])):
                assert metric in golden or ":" in metric or metric == "up", metric


def test_golden_exposition_is_current_and_lint_clean(make_exporter) -> None:
    """The golden file is the exposition of the seeded stream in tests/test_exposition.py."""
    text = populated(make_exporter).metrics_text()
    assert promtool_check_metrics(text).returncode == 0
    current = normalise(text)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(current)
    assert GOLDEN.exists(), "run with UPDATE_GOLDEN=1 to create tests/golden/metrics.txt"
    changed = differences(current, GOLDEN.read_text())
    assert not changed, (
        "the exposition changed; if intended, regenerate: UPDATE_GOLDEN=1 pytest -k golden\n"
        + "\n".join(changed[:20])
    )


def test_the_golden_comparison_tolerates_rounding_only() -> None:
    golden = '# TYPE a gauge\na{x="1"} 0.0034898584348306283\na{x="2"} NaN\n'
    assert differences(golden.replace("8306283", "8312944"), golden) == []  # 2e-13 relative
    assert differences(golden.replace("0.00348", "0.00349"), golden)  # a changed value
    assert differences(golden.replace('x="2"', 'x="3"'), golden)  # a changed series
    assert differences(golden.replace("gauge", "counter"), golden)
    assert differences(golden + 'a{x="4"} 1.0\n', golden)
