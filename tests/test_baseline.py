"""Holdout baselines: the holdout built from a reference's paired rows, its scores against
scikit-learn on the raw values, the live-minus-baseline gaps, the one-sided sequential test
fed the counts since the reference was set (restarted by a new one), and the gauges."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from exporter.baseline_view import Tolerances, baselines, bound, difference, holdout_scores
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.reference import build_reference
from exporter.sequential_tracker import (
    SequentialTracker,
    baseline_tolerances,
    look_at_models,
    sequential_settings,
)
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.stats.sequential import OneSidedState, SequentialSettings, accuracy_margin, mae_margin
from exporter.store import Store
from exporter.views import window_quality
from tests.conftest import Exporter, FakeClock, parse_metrics, sample
from tests.helpers import promtool_check_metrics
from tests.test_comparison_view import classifier_arm, regression_arm, send

TOL = 1e-12
BURN_IN = 30
SETTINGS = SequentialSettings(min_samples=BURN_IN, min_expected=2)


def make_store(task: str = "binary", **quality: Any) -> Store:
    settings = load_settings(
        windows=["1h"],
        models={"m": {"task": task, **({"positive_class": 1} if task == "binary" else {})}},
        comparison={"sequential": {"min_samples": BURN_IN, "min_expected": 2}},
        quality={"min_samples": 20, **quality},
    )
    return Store(settings, clock=FakeClock())


def tracker_of(store: Store) -> SequentialTracker:
    return SequentialTracker(
        sequential_settings(store.settings.comparison.sequential),
        baseline_tolerances(store.settings.quality),
    )


def upload(
    store: Store, predictions: list[Any], labels: list[Any], version: str | None = None
) -> None:
    reference = build_reference(
        {"x": [0.0] * len(labels)},
        settings=store.settings.drift,
        source="upload",
        created=store.clock(),
        predictions=predictions,
        labels=labels,
    )
    store.set_reference("m", version, reference)


def test_holdout_pairs_rows_and_leaves_out_nulls_and_unequal_columns() -> None:
    settings = load_settings().drift
    ref = build_reference(
        {"x": [1.0, 2.0, 3.0, 4.0]},
        settings=settings,
        source="upload",
        created=0.0,
        predictions=["a", "b", None, "a"],
        labels=["a", "a", "b", True],
    )
    assert ref.holdout is not None
    assert ref.holdout.rows == 3 and ref.holdout.classes == ("a", "b", "true")
    assert ref.holdout.confusion is not None and ref.holdout.errors is None
    # truth x predicted: a->a, a->b, true->a
    assert ref.holdout.confusion.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    unequal = build_reference(
        {"x": [1.0]}, settings=settings, source="upload", created=0.0,
        predictions=[1, 0], labels=[1],
    )  # fmt: skip
    assert unequal.holdout is None and unequal.labels is not None


def test_baseline_scores_equal_sklearn_on_the_raw_values() -> None:
    rng = np.random.default_rng(3)
    settings = load_settings().drift
    truth, predicted = classifier_arm(rng, 500, 0.8, ["cat", "dog", "emu"])
    ref = build_reference(
        {"x": list(range(500))}, settings=settings, source="upload", created=0.0,
        predictions=predicted, labels=truth,
    )  # fmt: skip
    assert ref.holdout is not None
    scores = holdout_scores(ref.holdout, "multiclass", "dog")
    assert isinstance(scores, ClassificationScores)
    assert abs(scores.accuracy - skm.accuracy_score(truth, predicted)) < TOL
    for avg in ("macro", "weighted"):
        for ours, theirs in (
            (scores.precision, skm.precision_score),
            (scores.recall, skm.recall_score),
            (scores.f1, skm.f1_score),
        ):
            assert abs(ours[avg] - theirs(truth, predicted, average=avg, zero_division=0)) < TOL
    binary = scores.f1["binary"]
    expected = skm.f1_score(truth, predicted, labels=["dog"], average="macro", zero_division=0)
    assert abs(binary - expected) < TOL
    y, yhat = regression_arm(rng, 400, 2.0)
    reg = build_reference(
        {"x": y}, settings=settings, source="upload", created=0.0, predictions=yhat, labels=y
    )
    assert reg.holdout is not None and reg.holdout.confusion is None  # 400 classes > max
    r = holdout_scores(reg.holdout, "regression", None)
    assert isinstance(r, RegressionScores)
    assert abs(r.mean_absolute_error - skm.mean_absolute_error(y, yhat)) < 1e-9
    assert abs(r.root_mean_squared_error - np.sqrt(skm.mean_squared_error(y, yhat))) < 1e-9
    assert holdout_scores(ref.holdout, "regression", None) is None  # classes are not numbers


def test_the_test_counts_only_outcomes_since_the_reference_and_restarts_with_a_new_one() -> None:
    store = make_store()
    tracker = tracker_of(store)
    rng = np.random.default_rng(5)
    send(store, "v1", *classifier_arm(rng, 80, 0.5, [0, 1]))  # before: not counted
    ht, hp = classifier_arm(rng, 300, 0.9, [0, 1])
    upload(store, hp, ht)
    base = skm.accuracy_score(ht, hp)
    truth, predicted = classifier_arm(rng, 200, 0.75, [0, 1])
    send(store, "v1", truth, predicted)
    look_at_models(store, tracker)
    snapshot = store.get("m").snapshot(store.clock())
    ((version, baseline),) = baselines(snapshot)
    assert abs(bound(baseline, Tolerances()) - (base - 0.02)) < TOL
    right = sum(t == p for t, p in zip(truth, predicted, strict=True))
    expected = OneSidedState(SETTINGS).update(accuracy_margin(right, 200, base - 0.02))
    state = tracker.baselines("m").of("v1", baseline.set_at)
    assert state == expected and state is not None and state.pvalue is not None
    assert state.pvalue < 0.05  # 0.75 against a bound near 0.88
    serial = tracker.baselines("m").serial
    look_at_models(store, tracker)  # nothing changed: the same states, the same serial
    assert tracker.baselines("m").serial == serial
    upload(store, hp, ht, version="v1")  # a new reference: the test starts afresh
    look_at_models(store, tracker)
    snapshot = store.get("m").snapshot(store.clock())
    ((_, renewed),) = baselines(snapshot)
    assert renewed.set_at != baseline.set_at
    fresh = tracker.baselines("m").of("v1", renewed.set_at)
    assert fresh is not None and fresh.samples == 0 and fresh.pvalue is None
    assert tracker.baselines("m").of("v1", baseline.set_at) is None
    (counts,) = version.windows  # the window's gap: live minus baseline
    live = window_quality(counts, snapshot.positive_index, 20)
    assert isinstance(live.scores, ClassificationScores)
    assert difference(live, baseline) == live.scores.accuracy - base


def test_regression_bound_is_a_ratio_of_the_baseline_mae() -> None:
    store = make_store("regression", baseline_mae_tolerance=0.5)
    tracker = tracker_of(store)
    rng = np.random.default_rng(8)
    hy, hyhat = regression_arm(rng, 300, 1.0)
    upload(store, hyhat, hy)
    y, yhat = regression_arm(rng, 100, 3.0)
    send(store, "v1", y, yhat)
    look_at_models(store, tracker)
    ((_, baseline),) = baselines(store.get("m").snapshot(store.clock()))
    base = skm.mean_absolute_error(hy, hyhat)
    assert abs(bound(baseline, tracker.tolerances) - base * 1.5) < 1e-9
    e = np.abs(np.array(yhat) - np.array(y))
    expected = OneSidedState(SETTINGS).update(
        mae_margin(len(e), float(e.sum()), float((e * e).sum()), base * 1.5)
    )
    state = tracker.baselines("m").of("v1", baseline.set_at)
    assert state is not None and expected.pvalue is not None and state.pvalue is not None
    assert abs(state.pvalue - expected.pvalue) < 1e-9 and state.pvalue < 0.05


def test_tolerances_are_validated() -> None:
    for bad in ({"baseline_tolerance": 1.0}, {"baseline_tolerance": -0.1}):
        with pytest.raises(ConfigError, match=r"quality\.baseline_tolerance"):
            load_settings(quality=bad)
    with pytest.raises(ConfigError, match=r"quality\.baseline_mae_tolerance"):
        load_settings(quality={"baseline_mae_tolerance": -1})
    assert baseline_tolerances(load_settings().quality) == Tolerances(0.02, 0.1)


def test_the_view_imports_neither_http_nor_prometheus() -> None:
    code = (
        "import sys, exporter.baseline_view; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'prometheus_client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_over_http_the_baseline_gauges(make_exporter: Callable[..., Exporter]) -> None:
    exp = make_exporter(
        windows=["1h"],
        models={"fraud": {"task": "binary", "positive_class": 1}},
        quality={"min_samples": 50},
        comparison={"sequential": {"min_samples": BURN_IN}},
    )
    rng = np.random.default_rng(11)
    ht, hp = classifier_arm(rng, 400, 0.92, [0, 1])
    answer = exp.client.put(
        "/v1/models/fraud/reference",
        json={"features": {"x": [1.0] * 400}, "predictions": hp, "labels": ht},
    )
    assert answer.status_code == 200, answer.text
    key = {"model": "fraud", "model_version": "v1"}
    truth, predicted = classifier_arm(rng, 40, 0.7, [0, 1])
    events = [
        {"id": f"e{i}", "features": {"x": 1.0}, "prediction": p, "label": t}
        for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
    ]
    exp.predictions("fraud", events, model_version="v1")
    before = exp.metrics()
    assert sample(before, "model_baseline_accuracy", **key) == skm.accuracy_score(ht, hp)
    assert sample(before, "model_baseline_accuracy_difference", **key, window="1h") is None
    assert sample(before, "model_baseline_sequential_pvalue", **key) is None  # no look yet
    more_t, more_p = classifier_arm(rng, 60, 0.7, [0, 1])
    events = [
        {"id": f"f{i}", "features": {"x": 1.0}, "prediction": p, "label": t}
        for i, (t, p) in enumerate(zip(more_t, more_p, strict=True))
    ]
    exp.predictions("fraud", events, model_version="v1")
    exp.refresh_drift()
    text = exp.metrics_text()
    m = parse_metrics(text)
    base = skm.accuracy_score(ht, hp)
    for avg in ("binary", "macro", "weighted"):
        expected = skm.f1_score(ht, hp, average=avg, pos_label=1, zero_division=0)
        value = sample(m, "model_baseline_f1_score", **key, average=avg)
        assert value is not None and abs(value - expected) < TOL
    live = sample(m, "model_accuracy", **key, window="1h")
    assert live is not None
    gap = sample(m, "model_baseline_accuracy_difference", **key, window="1h")
    assert gap == live - base
    all_t, all_p = truth + more_t, predicted + more_p
    right = sum(t == p for t, p in zip(all_t, all_p, strict=True))
    expected_state = OneSidedState(SETTINGS).update(accuracy_margin(right, 100, base - 0.02))
    assert sample(m, "model_baseline_sequential_pvalue", **key) == expected_state.pvalue
    assert sample(m, "model_baseline_sequential_labeled_predictions", **key) == 100
    assert sample(m, "model_baseline_samples", **key) == 400
    lint = promtool_check_metrics(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
