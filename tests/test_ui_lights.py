"""The status pages' lights (exporter.ui.lights): each shipped alert's condition evaluated now,
at and around its boundary, at the default and at custom thresholds, and each light's rule and
condition those of an alert the rules file really ships."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from exporter.monitoring.rules import Thresholds, alerting_rules, comparison_alerts
from exporter.ui import lights
from exporter.ui.lights import Light

DEFAULT = Thresholds()
CUSTOM = Thresholds(
    accuracy_below=0.83,
    accuracy_for="90m",
    f1_below=0.77,
    f1_for="2h",
    estimated_accuracy_below=0.86,
    estimated_accuracy_for="45m",
    feature_drift_for="20m",
    prediction_drift_for="25m",
    concept_drift_lookback="45m",
    concept_drift_for="2m",
    ground_truth_stale_after="3h",
    ground_truth_stale_for="30m",
    no_predictions_for="40m",
    sequential_alpha=0.01,
    comparison_min_labels=30,
)
NOW = 1_800_000_000.0
MISSING = "no value: fewer than 50 labeled predictions in the window"

# The three "value below a limit" lights, as (value, thresholds) -> Light.
Below = Callable[[float | None, Thresholds], Light]
BELOW: dict[str, tuple[Below, str, str]] = {
    "accuracy": (
        lambda v, t: lights.accuracy(v, t, 50),
        "model_accuracy",
        MISSING,
    ),
    "f1": (
        lambda v, t: lights.f1(v, "binary", t, 50),
        'model_f1_score{average="binary"}',
        MISSING,
    ),
    "estimated_accuracy": (
        lambda v, t: lights.estimated_accuracy(v, t, 50),
        "model_estimated_accuracy",
        "no value: fewer than 50 scored predictions in the window",
    ),
}


def limit_of(name: str, t: Thresholds) -> tuple[float, str]:
    return {
        "accuracy": (t.accuracy_below, t.accuracy_for),
        "f1": (t.f1_below, t.f1_for),
        "estimated_accuracy": (t.estimated_accuracy_below, t.estimated_accuracy_for),
    }[name]


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize("name", sorted(BELOW))
def test_below_lights_at_their_boundary(name: str, t: Thresholds) -> None:
    light, metric, missing = BELOW[name]
    limit, duration = limit_of(name, t)
    rule = {
        "accuracy": "ModelAccuracyDrop",
        "f1": "ModelF1Drop",
        "estimated_accuracy": "ModelEstimatedAccuracyDrop",
    }[name]
    condition = f"{metric} < {limit} for {duration}"
    # The alert's "<" is strict: the limit itself is green, the next float below it red.
    assert light(limit, t) == Light("green", rule, condition, f"now {limit:.4g}")
    assert light(math.nextafter(limit, 0), t).level == "red"
    assert light(limit - 0.01, t) == Light(
        "red", rule, condition, f"now {limit - 0.01:.4g} < {limit}"
    )
    assert light(limit + 0.01, t) == Light("green", rule, condition, f"now {limit + 0.01:.4g}")
    assert light(1.0, t).level == "green"
    assert light(0.0, t).level == "red"
    assert light(None, t) == Light("amber", rule, condition, missing)


def test_below_light_texts() -> None:
    assert lights.accuracy(0.8512, DEFAULT, 50).text == (
        "ModelAccuracyDrop: model_accuracy < 0.9 for 1h (now 0.8512 < 0.9)"
    )
    assert lights.f1(0.7, "macro", CUSTOM, 20) == Light(
        "red",
        "ModelF1Drop",
        'model_f1_score{average="macro"} < 0.77 for 2h',
        "now 0.7 < 0.77",
    )
    assert lights.accuracy(None, DEFAULT, 7).reason == (
        "no value: fewer than 7 labeled predictions in the window"
    )


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_feature_drift(t: Thresholds) -> None:
    condition = f"model_drift_features_drifted > 0 for {t.feature_drift_for}"

    def light(level: lights.Level, reason: str) -> Light:
        return Light(level, "ModelFeatureDrift", condition, reason)

    assert lights.feature_drift(0, 4, t) == light("green", "0 of 4 drifted")
    assert lights.feature_drift(1, 4, t) == light("red", "1 of 4 drifted")
    assert lights.feature_drift(4, 4, t) == light("red", "4 of 4 drifted")
    not_tested = light("amber", "not tested yet: no reference, or too few values")
    assert lights.feature_drift(None, 4, t) == not_tested
    assert lights.feature_drift(None, 0, t) == not_tested
    none_tested = light("amber", "no feature tested yet: no reference, or too few values")
    assert lights.feature_drift(0, 0, t) == none_tested


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_prediction_drift(t: Thresholds) -> None:
    condition = f"model_prediction_drift_detected == 1 for {t.prediction_drift_for}"
    rule = "ModelPredictionDrift"
    assert lights.prediction_drift(True, t) == Light(
        "red", rule, condition, "the predictions drifted"
    )
    assert lights.prediction_drift(False, t) == Light("green", rule, condition, "no drift")
    assert lights.prediction_drift(None, t) == Light("amber", rule, condition, "not tested yet")


@pytest.mark.parametrize(
    ("t", "lookback"), [(DEFAULT, 1800.0), (CUSTOM, 2700.0)], ids=["default", "custom"]
)
def test_concept_drift_within_and_after_the_lookback(t: Thresholds, lookback: float) -> None:
    condition = (
        f"increase(model_concept_drift_detections_total[{t.concept_drift_lookback}]) > 0 "
        f"for {t.concept_drift_for}"
    )

    def at(last: float | None) -> Light:
        return lights.concept_drift(last, NOW, lookback, t)

    def light(level: lights.Level, reason: str) -> Light:
        return Light(level, "ModelConceptDrift", condition, reason)

    quiet = light("green", "no detection in the lookback")
    assert at(NOW - 120) == light("red", "detection 120 s ago")
    assert at(NOW) == light("red", "detection 0 s ago")
    assert at(NOW - lookback) == light("red", f"detection {lookback:.0f} s ago")
    assert at(NOW - lookback - 0.001) == quiet
    assert at(NOW - 10 * lookback) == quiet
    assert at(None) == quiet
    # A detection stamped a little ahead of this clock (another replica's) is still recent.
    assert at(NOW + 5) == light("red", "detection 0 s ago")


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_no_predictions(t: Thresholds) -> None:
    condition = f"rate(model_predictions_total[15m]) == 0 for {t.no_predictions_for}"
    rule = "ModelNoPredictions"
    assert lights.no_predictions(False, t) == Light("red", rule, condition, "no prediction in 15m")
    assert lights.no_predictions(True, t) == Light("green", rule, condition, "predictions flow")
    assert lights.no_predictions(None, t) == Light(
        "amber", rule, condition, "less than 15m of history"
    )


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize(
    ("flowing", "labeled", "level", "reason"),
    [
        (False, None, "green", "no predictions flow"),
        (False, False, "green", "no predictions flow"),
        (False, True, "green", "no predictions flow"),
        (None, None, "amber", "less than {after} of history"),
        (None, False, "amber", "less than {after} of history"),
        (None, True, "amber", "less than {after} of history"),
        (True, None, "amber", "less than {after} of history"),
        (True, False, "red", "no label joined in {after}"),
        (True, True, "green", "labels arrive"),
    ],
)
def test_ground_truth_stale_truth_table(
    t: Thresholds, flowing: bool | None, labeled: bool | None, level: lights.Level, reason: str
) -> None:
    after = t.ground_truth_stale_after
    condition = f"predictions flow and no label joined in {after} for {t.ground_truth_stale_for}"
    assert lights.ground_truth_stale(flowing, labeled, t) == Light(
        level, "ModelGroundTruthStale", condition, reason.format(after=after)
    )


def challenger_condition(t: Thresholds) -> str:
    return (
        f"always-valid p < {t.sequential_alpha}, confidence sequence on one side of 0, "
        f"both arms >= {t.comparison_min_labels} labeled predictions"
    )


# (p-value, lower, upper) of the difference challenger - champion, and the verdict for a
# metric where higher is better (accuracy) and one where lower is better (MAE).
VERDICTS = [
    # wholly below 0: accuracy fell (worse), the error fell (better)
    ((0.001, -0.08, -0.02), "worse", "better"),
    # wholly above 0
    ((0.001, 0.02, 0.08), "better", "worse"),
    # straddling 0: not different, whatever the p-value
    ((0.001, -0.02, 0.03), "no difference yet", "no difference yet"),
    # a bound exactly on 0: not on one side ("<" and ">" are strict)
    ((0.001, -0.05, 0.0), "no difference yet", "no difference yet"),
    ((0.001, 0.0, 0.05), "no difference yet", "no difference yet"),
    # on one side but the p-value not below alpha (strict)
    ((0.5, -0.08, -0.02), "no difference yet", "no difference yet"),
    # crossed bounds (lower above upper: the difference moved): both alerts' conditions hold,
    # the light shows the worse verdict
    ((0.001, 0.02, -0.02), "worse", "worse"),
]


@pytest.mark.parametrize(("bounds", "accuracy", "mae"), VERDICTS)
def test_challenger_verdicts(bounds: tuple[float, float, float], accuracy: str, mae: str) -> None:
    pvalue, lower, upper = bounds
    condition = challenger_condition(DEFAULT)
    for higher_is_better, verdict in ((True, accuracy), (False, mae)):
        got = lights.challenger(pvalue, lower, upper, (100, 250), higher_is_better, DEFAULT)
        rule = "ModelChallengerBetter" if verdict == "better" else "ModelChallengerWorse"
        level: lights.Level = "red" if verdict == "worse" else "green"
        assert got == (verdict, Light(level, rule, condition, f"p = {pvalue:.2g}"))


def test_challenger_pvalue_at_alpha_is_not_significant() -> None:
    for t in (DEFAULT, CUSTOM):
        alpha = t.sequential_alpha
        at = lights.challenger(alpha, -0.2, -0.1, (500, 500), True, t)
        assert at[0] == "no difference yet"
        assert at[1].level == "green"
        below = lights.challenger(math.nextafter(alpha, 0), -0.2, -0.1, (500, 500), True, t)
        assert below[0] == "worse"
        assert below[1].level == "red"


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_challenger_burn_in(t: Thresholds, higher_is_better: bool) -> None:
    need = t.comparison_min_labels
    burn_in = (
        "undecided",
        Light(
            "amber",
            "ModelChallengerWorse",
            challenger_condition(t),
            "burn-in: too few labeled predictions",
        ),
    )
    # A difference so clear it would be a verdict, were both arms labeled enough.
    lower, upper = (-0.3, -0.2) if higher_is_better else (0.2, 0.3)
    for labeled in [(need - 1, need), (need, need - 1), (0, 10 * need), (need - 1, need - 1)]:
        got = lights.challenger(1e-6, lower, upper, labeled, higher_is_better, t)
        assert got == burn_in
    assert lights.challenger(1e-6, lower, upper, (need, need), higher_is_better, t)[0] == "worse"
    # Missing gauges (not computed yet): burn-in too.
    for values in [(None, lower, upper), (1e-6, None, upper), (1e-6, lower, None)]:
        p, lo, hi = values
        got = lights.challenger(p, lo, hi, (10 * need, 10 * need), higher_is_better, t)
        assert got == burn_in


# The lights against the rules file.


def rules(t: Thresholds) -> dict[str, dict[str, Any]]:
    shipped = [*alerting_rules(t), *comparison_alerts(t)]
    by_name = {rule["alert"]: rule for rule in shipped}
    assert len(by_name) == len(shipped)
    return by_name


def every_light(t: Thresholds) -> list[tuple[Light, list[str], list[str]]]:
    """One light of each kind, the pieces of its alert's ``expr`` its condition names (the
    metric and comparison) and the thresholds both must spell."""
    alpha, need = t.sequential_alpha, t.comparison_min_labels
    challenger = [f"model_comparison_sequential_pvalue < {alpha}", f">= {need}) == 2"]
    return [
        (
            lights.accuracy(0.5, t, 1),
            [f"model_accuracy < {t.accuracy_below}"],
            [str(t.accuracy_below)],
        ),
        (
            lights.f1(0.5, "binary", t, 1),
            [f'model_f1_score{{average="binary"}} < {t.f1_below}'],
            [str(t.f1_below)],
        ),
        (
            lights.f1(0.5, "macro", t, 1),
            [f'model_f1_score{{average="macro"}} < {t.f1_below}'],
            [str(t.f1_below)],
        ),
        (
            lights.estimated_accuracy(0.5, t, 1),
            [f"model_estimated_accuracy < {t.estimated_accuracy_below}"],
            [str(t.estimated_accuracy_below)],
        ),
        (lights.feature_drift(1, 2, t), ["model_drift_features_drifted > 0"], ["> 0"]),
        (lights.prediction_drift(True, t), ["model_prediction_drift_detected == 1"], ["== 1"]),
        (
            lights.concept_drift(NOW, NOW, 60.0, t),
            [f"increase(model_concept_drift_detections_total[{t.concept_drift_lookback}]) > 0"],
            [f"[{t.concept_drift_lookback}]"],
        ),
        (
            lights.no_predictions(False, t),
            ["(rate(model_predictions_total[15m])) == 0"],
            ["[15m]", "== 0"],
        ),
        (
            lights.ground_truth_stale(True, False, t),
            [
                "(rate(model_predictions_total[15m])) > 0)",
                f"(increase(model_labels_total[{t.ground_truth_stale_after}])) == 0)",
            ],
            [t.ground_truth_stale_after],
        ),
        (
            lights.challenger(1e-6, -0.2, -0.1, (need, need), True, t)[1],
            challenger,
            [f"< {alpha}", f">= {need}"],
        ),
        (
            lights.challenger(1e-6, 0.1, 0.2, (need, need), True, t)[1],
            challenger,
            [f"< {alpha}", f">= {need}"],
        ),
    ]


@pytest.mark.parametrize("t", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_every_light_is_a_shipped_alert(t: Thresholds) -> None:
    shipped = rules(t)
    seen: set[str] = set()
    for light, pieces, numbers in every_light(t):
        assert light.rule in shipped, light.rule
        rule = shipped[light.rule]
        seen.add(light.rule)
        for piece in pieces:
            assert piece in rule["expr"], (light.rule, piece)
        for number in numbers:
            assert number in light.condition, (light.rule, number)
            assert number in rule["expr"], (light.rule, number)
        if not light.rule.startswith("ModelChallenger"):
            # "... for <duration>": the alert's own for.
            assert light.condition.endswith(f" for {rule['for']}"), light.condition
    assert seen == {
        "ModelAccuracyDrop",
        "ModelF1Drop",
        "ModelEstimatedAccuracyDrop",
        "ModelFeatureDrift",
        "ModelPredictionDrift",
        "ModelConceptDrift",
        "ModelNoPredictions",
        "ModelGroundTruthStale",
        "ModelChallengerWorse",
        "ModelChallengerBetter",
    }


def test_a_red_reason_never_prints_the_value_as_the_threshold() -> None:
    light = lights.accuracy(0.89999, Thresholds(), 100)
    assert light.level == "red" and light.reason == "now 0.89999 < 0.9"
    assert lights.accuracy(0.8123456, Thresholds(), 100).reason == "now 0.8123 < 0.9"
