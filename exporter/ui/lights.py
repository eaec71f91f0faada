"""Red, amber and green on the status pages: the shipped alerts' own conditions, evaluated now.

Each light is one alert rule of :mod:`exporter.monitoring.rules` with the thresholds it was
generated from (``ui.thresholds_file``, the format of ``generate --thresholds``), applied to
the value the exporter holds at this moment:

* **red**: the alert's expression holds now. The alert fires once it has held for its ``for:``
  duration, which only Prometheus knows, so red means "pending or firing";
* **green**: the expression does not hold;
* **amber**: it cannot be told yet (too few labeled predictions for the value to exist, no
  reference to test drift against, too little history for a rule over the last minutes).

Every light names its rule and condition, so the page says why it is red. Pure: values in,
lights out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.monitoring.rules import Thresholds

Level = Literal["red", "amber", "green"]


@dataclass(frozen=True, slots=True)
class Light:
    level: Level
    rule: str  # the alert's name
    condition: str  # its expression, in words a reader of the rules file recognises
    reason: str  # why this level, with the value

    @property
    def text(self) -> str:
        return f"{self.rule}: {self.condition} ({self.reason})"


def _below(
    rule: str, metric: str, value: float | None, limit: float, duration: str, missing: str
) -> Light:
    condition = f"{metric} < {limit} for {duration}"
    if value is None:
        return Light("amber", rule, condition, missing)
    if value < limit:
        return Light("red", rule, condition, f"now {_short(value, limit)} < {limit}")
    return Light("green", rule, condition, f"now {value:.4g}")


def _short(value: float, limit: float) -> str:
    """``value`` in 4 significant digits, more where 4 would print it as ``limit``.

    >>> _short(0.8123456, 0.9), _short(0.89999, 0.9)
    ('0.8123', '0.89999')
    """
    for digits in (4, 8, 17):
        text = f"{value:.{digits}g}"
        if float(text) != limit:
            return text
    return repr(value)


def accuracy(value: float | None, t: Thresholds, min_samples: int) -> Light:
    return _below(
        "ModelAccuracyDrop",
        "model_accuracy",
        value,
        t.accuracy_below,
        t.accuracy_for,
        f"no value: fewer than {min_samples} labeled predictions in the window",
    )


def f1(value: float | None, average: str, t: Thresholds, min_samples: int) -> Light:
    return _below(
        "ModelF1Drop",
        f'model_f1_score{{average="{average}"}}',
        value,
        t.f1_below,
        t.f1_for,
        f"no value: fewer than {min_samples} labeled predictions in the window",
    )


def estimated_accuracy(value: float | None, t: Thresholds, min_samples: int) -> Light:
    return _below(
        "ModelEstimatedAccuracyDrop",
        "model_estimated_accuracy",
        value,
        t.estimated_accuracy_below,
        t.estimated_accuracy_for,
        f"no value: fewer than {min_samples} scored predictions in the window",
    )


def feature_drift(drifted: int | None, tested: int, t: Thresholds) -> Light:
    condition = f"model_drift_features_drifted > 0 for {t.feature_drift_for}"
    if drifted is None or tested == 0:
        why = (
            "not tested yet: no reference, or too few values"
            if drifted is None
            else ("no feature tested yet: no reference, or too few values")
        )
        return Light("amber", "ModelFeatureDrift", condition, why)
    if drifted > 0:
        return Light("red", "ModelFeatureDrift", condition, f"{drifted} of {tested} drifted")
    return Light("green", "ModelFeatureDrift", condition, f"0 of {tested} drifted")


def prediction_drift(drifted: bool | None, t: Thresholds) -> Light:
    condition = f"model_prediction_drift_detected == 1 for {t.prediction_drift_for}"
    if drifted is None:
        return Light("amber", "ModelPredictionDrift", condition, "not tested yet")
    if drifted:
        return Light("red", "ModelPredictionDrift", condition, "the predictions drifted")
    return Light("green", "ModelPredictionDrift", condition, "no drift")


def concept_drift(
    last_detection: float | None, now: float, lookback: float, t: Thresholds
) -> Light:
    """Red while the last detection lies within the lookback: the detections counter then
    increased over it (``increase(...[lookback]) > 0``)."""
    condition = (
        f"increase(model_concept_drift_detections_total[{t.concept_drift_lookback}]) > 0 "
        f"for {t.concept_drift_for}"
    )
    if last_detection is not None and now - last_detection <= lookback:
        ago = max(0.0, now - last_detection)
        return Light("red", "ModelConceptDrift", condition, f"detection {ago:.0f} s ago")
    return Light("green", "ModelConceptDrift", condition, "no detection in the lookback")


def no_predictions(flowing: bool | None, t: Thresholds) -> Light:
    """``flowing``: did the model count a prediction in the last 15 minutes (None: the
    history does not reach back that far)."""
    condition = f"rate(model_predictions_total[15m]) == 0 for {t.no_predictions_for}"
    if flowing is None:
        return Light("amber", "ModelNoPredictions", condition, "less than 15m of history")
    if not flowing:
        return Light("red", "ModelNoPredictions", condition, "no prediction in 15m")
    return Light("green", "ModelNoPredictions", condition, "predictions flow")


def ground_truth_stale(flowing: bool | None, labeled: bool | None, t: Thresholds) -> Light:
    """``labeled``: was a label joined over the last ``ground_truth_stale_after``."""
    after = t.ground_truth_stale_after
    condition = f"predictions flow and no label joined in {after} for {t.ground_truth_stale_for}"
    if flowing is False:
        return Light("green", "ModelGroundTruthStale", condition, "no predictions flow")
    if flowing is None or labeled is None:
        return Light("amber", "ModelGroundTruthStale", condition, f"less than {after} of history")
    if not labeled:
        return Light("red", "ModelGroundTruthStale", condition, f"no label joined in {after}")
    return Light("green", "ModelGroundTruthStale", condition, "labels arrive")


def challenger(
    pvalue: float | None,
    lower: float | None,
    upper: float | None,
    labeled: tuple[int, int],
    higher_is_better: bool,
    t: Thresholds,
) -> tuple[str, Light]:
    """The comparison's verdict on one challenger, as ModelChallengerWorse and
    ModelChallengerBetter decide it: (verdict, light). Red: worse; green: better or not
    (yet) different; amber: still in the burn-in or short of labels."""
    alpha, need = t.sequential_alpha, t.comparison_min_labels
    condition = (
        f"always-valid p < {alpha}, confidence sequence on one side of 0, "
        f"both arms >= {need} labeled predictions"
    )
    if pvalue is None or lower is None or upper is None or min(labeled) < need:
        return "undecided", Light(
            "amber", "ModelChallengerWorse", condition, "burn-in: too few labeled predictions"
        )
    worse_side = upper < 0 if higher_is_better else lower > 0
    better_side = lower > 0 if higher_is_better else upper < 0
    if pvalue < alpha and worse_side:
        return "worse", Light("red", "ModelChallengerWorse", condition, f"p = {pvalue:.2g}")
    if pvalue < alpha and better_side:
        return "better", Light("green", "ModelChallengerBetter", condition, f"p = {pvalue:.2g}")
    return "no difference yet", Light(
        "green", "ModelChallengerWorse", condition, f"p = {pvalue:.2g}"
    )
