"""Shadow comparisons end to end: both versions predict the same ids, one label per id joins
both, labels may come first, and the paired gauges (per window and since the start) follow."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from exporter.sequential_tracker import look_at_models
from exporter.snapshot import PairCounts
from exporter.stats.comparison import mcnemar
from exporter.stats.sequential import SequentialSettings, SequentialState, paired, paired_mae
from tests.conftest import Exporter, sample
from tests.helpers import promtool_check_metrics
from tests.test_comparison_view import Event
from tests.test_drift_worker import Label
from tests.test_sequential_tracker import SETTINGS, declare, make_store, state_of, tracker_of

KEY = {"model": "m", "champion": "v1", "challenger": "v2"}


def test_over_http_the_paired_gauges_equal_the_pairs(
    make_exporter: Callable[..., Exporter],
) -> None:
    exp = make_exporter(
        windows=["1h"],
        comparison={"min_samples": 5, "sequential": {"min_samples": 5}},
    )
    answer = exp.client.put(
        "/v1/models/m/comparison",
        json={"champion": "v1", "challengers": ["v2"], "mode": "shadow"},
    )
    assert answer.status_code == 200, answer.text
    rng = np.random.default_rng(3)
    n = 60
    truth = rng.integers(2, size=n)
    right = {"v1": rng.random(n) < 0.9, "v2": rng.random(n) < 0.7}
    ids = [f"id{i}" for i in range(n)]

    def send(version: str, rows: range) -> None:
        exp.predictions(
            "m",
            [
                {
                    "id": ids[i],
                    "features": {"x": float(i)},
                    "prediction": int(truth[i] if right[version][i] else 1 - truth[i]),
                }
                for i in rows
            ],
            model_version=version,
        )

    send("v1", range(n))
    send("v2", range(n // 2))
    exp.labels("m", [{"id": ids[i], "label": int(truth[i])} for i in range(n)])
    send("v2", range(n // 2, n))  # the challenger predicts after the label
    exp.refresh_drift()
    metrics = exp.metrics()
    b = int(np.sum(right["v1"] & ~right["v2"]))
    c = int(np.sum(right["v2"] & ~right["v1"]))
    window = {**KEY, "window": "1h"}
    assert sample(metrics, "model_comparison_pairs", **window) == n
    assert sample(metrics, "model_comparison_discordant_pairs", **window, better="champion") == b
    assert sample(metrics, "model_comparison_discordant_pairs", **window, better="challenger") == c
    p = sample(metrics, "model_comparison_mcnemar_pvalue", **window)
    assert p == pytest.approx(mcnemar(b, c).pvalue, abs=1e-9)
    since = "model_comparison_sequential_discordant_pairs"
    assert sample(metrics, since, **KEY, better="champion") == b
    state = SequentialState(SequentialSettings(min_samples=5)).update(paired(b, c, n))
    assert state.pvalue is not None and state.difference is not None
    sequential_p = sample(metrics, "model_comparison_sequential_mcnemar_pvalue", **KEY)
    assert sequential_p == pytest.approx(state.pvalue, abs=1e-9)
    difference = sample(metrics, "model_comparison_sequential_accuracy_difference", **KEY)
    assert difference == pytest.approx(state.difference, abs=1e-9)
    for arm in ("champion", "challenger"):
        labeled = "model_comparison_sequential_labeled_predictions"
        assert sample(metrics, labeled, **KEY, arm=arm) == n
    assert sample(metrics, "model_comparison_pairs_waiting", model="m", champion="v1") == 0
    promtool_check_metrics(exp.metrics_text())


def test_over_http_a_regression_shadow_gets_the_paired_t_test_and_sequential_mae(
    make_exporter: Callable[..., Exporter],
) -> None:
    exp = make_exporter(
        windows=["1h"],
        comparison={"min_samples": 5, "sequential": {"min_samples": 5}},
    )
    body = {"champion": "v1", "challengers": ["v2"], "mode": "shadow"}
    assert exp.client.put("/v1/models/price/comparison", json=body).status_code == 200
    rng = np.random.default_rng(11)
    n = 80
    truth = rng.normal(300.0, 50.0, n)
    shared = rng.normal(0.0, 8.0, n)  # both versions share most of their error
    predicted = {
        "v1": truth + shared + rng.normal(0.0, 1.0, n),
        "v2": truth + 1.1 * shared + rng.normal(0.0, 1.0, n),
    }
    for version in ("v2", "v1"):
        exp.predictions(
            "price",
            [
                {
                    "id": f"p{i}",
                    "features": {"rooms": 3.0},
                    "prediction": float(predicted[version][i]),
                }
                for i in range(n)
            ],
            model_version=version,
        )
    exp.labels("price", [{"id": f"p{i}", "label": float(truth[i])} for i in range(n)])
    exp.refresh_drift()
    metrics = exp.metrics()
    abs_a, abs_b = np.abs(predicted["v1"] - truth), np.abs(predicted["v2"] - truth)
    oracle = stats.ttest_rel(abs_b, abs_a)
    interval = oracle.confidence_interval()
    window = {**KEY, "model": "price", "window": "1h"}
    assert sample(metrics, "model_comparison_pairs", **window) == n
    better = "model_comparison_discordant_pairs"
    assert sample(metrics, better, **window, better="champion") == int(np.sum(abs_a < abs_b))
    assert sample(metrics, better, **window, better="challenger") == int(np.sum(abs_b < abs_a))
    paired_p = sample(metrics, "model_comparison_paired_mean_absolute_error_pvalue", **window)
    assert paired_p == pytest.approx(oracle.pvalue, rel=1e-9)
    assert oracle.pvalue < 0.01  # the paired test sees the consistent 10 % extra error
    name = "model_comparison_paired_mean_absolute_error_difference"
    assert sample(metrics, name, **window) == pytest.approx(np.mean(abs_b - abs_a), abs=1e-9)
    assert sample(metrics, f"{name}_lower", **window) == pytest.approx(interval.low, abs=1e-9)
    assert sample(metrics, f"{name}_upper", **window) == pytest.approx(interval.high, abs=1e-9)
    assert "model_comparison_mcnemar_pvalue" not in metrics
    d = abs_b - abs_a
    state = SequentialState(SequentialSettings(min_samples=5)).update(
        paired_mae(n, float(np.sum(d)), float(np.sum(d * d)))
    )
    assert state.pvalue is not None and state.difference is not None
    since = {**KEY, "model": "price"}
    got = sample(metrics, "model_comparison_sequential_pvalue", **since)
    assert got == pytest.approx(state.pvalue, rel=1e-9)
    got = sample(metrics, "model_comparison_sequential_mean_absolute_error_difference", **since)
    assert got == pytest.approx(state.difference, abs=1e-9)
    for bound in ("lower", "upper"):
        got = sample(metrics, f"model_comparison_sequential_difference_{bound}", **since)
        assert got == pytest.approx(getattr(state, bound), abs=1e-9)
    assert "model_comparison_sequential_accuracy_difference" not in metrics
    promtool_check_metrics(exp.metrics_text())


def test_ids_waiting_for_their_pair_are_shown(make_exporter: Callable[..., Exporter]) -> None:
    exp = make_exporter(windows=["1h"])
    body = {"champion": "v1", "challengers": ["v2"], "mode": "shadow"}
    assert exp.client.put("/v1/models/m/comparison", json=body).status_code == 200
    events = [
        {"id": f"id{i}", "features": {"x": 1.0}, "prediction": 1, "label": 1} for i in range(3)
    ]
    exp.predictions("m", events, model_version="v1")
    exp.predictions("m", events[:1], model_version="v2")
    metrics = exp.metrics()
    assert sample(metrics, "model_comparison_pairs_waiting", model="m", champion="v1") == 2
    assert sample(metrics, "model_comparison_pairs", **KEY, window="1h") == 1
    labeled = "model_comparison_sequential_labeled_predictions"
    exp.refresh_drift()
    assert sample(exp.metrics(), labeled, **KEY, arm="challenger") == 1


def test_each_look_equals_the_pure_state_fed_the_cumulative_pairs() -> None:
    store = make_store()
    tracker = tracker_of(store)
    comparison = declare(store, mode="shadow")
    rng = np.random.default_rng(5)
    pure = SequentialState(SETTINGS)
    b = c = n = 0
    for look in range(4):
        size = 50
        ids = [f"look{look}-{i}" for i in range(size)]
        truth = rng.integers(2, size=size)
        right = {"v1": rng.random(size) < 0.9, "v2": rng.random(size) < 0.75}
        for version in ("v1", "v2"):  # labels inline with the champion's: v2 joins them later
            events = [
                Event(
                    ids[i],
                    {"x": 0.0},
                    int(truth[i] if right[version][i] else 1 - truth[i]),
                    label=int(truth[i]) if version == "v1" else None,
                )
                for i in range(size)
            ]
            store.add_predictions("m", version, events)
        b += int(np.sum(right["v1"] & ~right["v2"]))
        c += int(np.sum(right["v2"] & ~right["v1"]))
        n += size
        look_at_models(store, tracker)
        pure = pure.update(paired(b, c, n))
        assert state_of(tracker, comparison) == pure
    assert pure.pvalue is not None


def test_labels_before_both_predictions_make_pairs() -> None:
    store = make_store()
    declare(store, mode="shadow")
    store.add_labels("m", [Label(f"id{i}", 1) for i in range(4)])
    # v1 right on all four, v2 right on the first only: b = 3, c = 0.
    store.add_predictions("m", "v1", [Event(f"id{i}", {"x": 0.0}, 1) for i in range(4)])
    store.add_predictions("m", "v2", [Event(f"id{i}", {"x": 0.0}, int(i == 0)) for i in range(4)])
    book = store.get("m").snapshot(store.clock()).pairs
    assert book is not None
    counts = book.of("v2")
    assert counts is not None
    assert counts.total == PairCounts(3, 0, 4, 3.0, 3.0)
    assert dict(counts.windows)["1h"] == PairCounts(3, 0, 4, 3.0, 3.0)
    assert book.waiting == 0


def test_the_pair_book_lives_as_long_as_the_shadow_comparison() -> None:
    store = make_store()
    declare(store, mode="shadow")
    store.add_predictions("m", "v1", [Event("a", {"x": 0.0}, 1, label=1)])
    store.add_predictions("m", "v2", [Event("a", {"x": 0.0}, 0, label=1)])
    assert store.get("m").snapshot(store.clock()).pairs is not None
    replaced = declare(store, mode="shadow")  # a new start: its counts start afresh
    book = store.get("m").snapshot(store.clock()).pairs
    assert book is not None and book.challengers[0].total == PairCounts()
    assert replaced.mode == "shadow"
    store.end_comparison("m")
    assert store.get("m").snapshot(store.clock()).pairs is None
    declare(store, mode="split")  # the join stays keyed by (id, version), but no pairs
    assert store.get("m").snapshot(store.clock()).pairs is None


def test_an_inline_label_of_the_champion_pairs_a_waiting_challenger_prediction() -> None:
    store = make_store()
    declare(store, mode="shadow")
    # v2 first, without labels; then v1 with the labels inline. v1 right on all four, v2 on
    # the first two only: b = 2, c = 0.
    store.add_predictions("m", "v2", [Event(f"id{i}", {"x": 0.0}, int(i < 2)) for i in range(4)])
    store.add_predictions("m", "v1", [Event(f"id{i}", {"x": 0.0}, 1, label=1) for i in range(4)])
    book = store.get("m").snapshot(store.clock()).pairs
    assert book is not None
    counts = book.of("v2")
    assert counts is not None
    assert counts.total == PairCounts(2, 0, 4, 2.0, 2.0)
    assert dict(counts.windows)["1h"] == PairCounts(2, 0, 4, 2.0, 2.0)
    assert book.waiting == 0
    model = store.get("m")
    assert [model.join.pending(v.uid) for v in model.versions] == [0, 0]
