"""The per-window comparison view, directly: a real store fed seeded raw outcomes per arm, its
snapshot given a declared comparison, every value checked against scipy, statsmodels and
scikit-learn computed on those raw outcomes (not on the counts)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from exporter.comparison_view import (
    AccuracyComparison,
    MaeComparison,
    WindowComparison,
    compare_windows,
)
from exporter.config import load_settings
from exporter.snapshot import ComparisonInfo, ModelSnapshot
from exporter.stats.performance import Average
from exporter.store import Store
from exporter.typedefs import Task
from tests.conftest import T0, FakeClock

Mode = Literal["split", "shadow"]


def close(expected: float) -> Any:
    """Equal to ``expected`` within 1e-9 (relative), or 1e-12 near zero."""
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


IDS = itertools.count()


@dataclass
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


def make_store(task: Task, **overrides: Any) -> tuple[Store, FakeClock]:
    clock = FakeClock()
    settings = load_settings(windows=["5m", "1h"], models={"m": {"task": task}}, **overrides)
    return Store(settings, clock=clock), clock


def send(
    store: Store, version: str, truth: list[Any], predicted: list[Any], model: str = "m"
) -> None:
    """Labeled predictions of one version (labels inline: joined at once)."""
    events = [
        Event(f"{version}-{next(IDS)}", {"x": 0.0}, p, label=t)
        for t, p in zip(truth, predicted, strict=True)
    ]
    store.add_predictions(model, version, events)


def declared(
    store: Store, champion: str = "v1", challengers: tuple[str, ...] = ("v2",), mode: Mode = "split"
) -> ModelSnapshot:
    snapshot = store.get("m").snapshot(store.clock())
    return replace(snapshot, comparison=ComparisonInfo(champion, challengers, mode, T0))


def classifier_arm(
    rng: np.random.Generator, n: int, accuracy: float, classes: list[Any]
) -> tuple[list[Any], list[Any]]:
    """``n`` seeded outcomes: true classes, and predictions right with probability
    ``accuracy``, else another class at random."""
    k = len(classes)
    truth = rng.integers(0, k, n)
    wrong = (truth + rng.integers(1, k, n)) % k
    predicted = np.where(rng.random(n) < accuracy, truth, wrong)
    return [classes[i] for i in truth], [classes[i] for i in predicted]


def regression_arm(
    rng: np.random.Generator, n: int, scale: float
) -> tuple[list[float], list[float]]:
    truth = rng.normal(50.0, 10.0, n)
    predicted = truth + rng.normal(0.3, scale, n)
    return truth.tolist(), predicted.tolist()


def one(comparisons: list[WindowComparison], window: str = "1h") -> WindowComparison:
    (found,) = [c for c in comparisons if c.window == window]
    return found


def accuracy_of(c: WindowComparison) -> AccuracyComparison:
    assert isinstance(c.scores, AccuracyComparison)
    return c.scores


def check_accuracy_oracles(
    c: WindowComparison, arms: dict[str, tuple[list[Any], list[Any]]], positive: Any | None
) -> None:
    """Every value of ``c`` against the oracles on the raw outcomes of champion and challenger."""
    (ta, pa), (tb, pb) = arms["champion"], arms["challenger"]
    right_a = np.asarray(ta) == np.asarray(pa)
    right_b = np.asarray(tb) == np.asarray(pb)
    na, nb, ca, cb = right_a.size, right_b.size, int(right_a.sum()), int(right_b.sum())
    s = accuracy_of(c)
    assert (c.champion_labeled, c.challenger_labeled) == (na, nb)
    assert s.difference == close(right_b.mean() - right_a.mean())
    assert s.test is not None
    if s.test.test == "z":
        _, expected_p = proportions_ztest([cb, ca], [nb, na])
    else:
        assert s.test.test == "fisher"
        expected_p = stats.fisher_exact([[ca, na - ca], [cb, nb - cb]]).pvalue
    assert s.test.pvalue == close(float(expected_p))
    lower, upper = confint_proportions_2indep(cb, nb, ca, na, method="newcomb", compare="diff")
    assert (s.test.lower, s.test.upper) == (
        close(float(lower)),
        close(float(upper)),
    )
    averages: list[Average] = ["macro", "weighted"]
    if positive is not None:
        averages.append("binary")
    assert sorted(s.f1) == sorted(averages)
    for average in averages:
        kw: dict[str, Any] = {"pos_label": positive} if average == "binary" else {}
        expected = f1_score(tb, pb, average=average, zero_division=0, **kw) - f1_score(
            ta, pa, average=average, zero_division=0, **kw
        )
        assert s.f1[average] == close(float(expected)), average


def test_binary_split_equals_the_z_test_newcombe_and_sklearn_on_the_raw_outcomes() -> None:
    rng = np.random.default_rng(10)
    store, _ = make_store("binary", comparison={"min_samples": 50})
    arms = {
        "champion": classifier_arm(rng, 800, 0.90, [0, 1]),
        "challenger": classifier_arm(rng, 200, 0.85, [0, 1]),
    }
    send(store, "v1", *arms["champion"])
    send(store, "v2", *arms["challenger"])
    comparisons = compare_windows(declared(store), 50)
    assert [(c.challenger, c.window) for c in comparisons] == [("v2", "5m"), ("v2", "1h")]
    for window in ("5m", "1h"):
        c = one(comparisons, window)
        assert (c.champion, c.challenger) == ("v1", "v2")
        test = accuracy_of(c).test
        assert test is not None and test.test == "z"
        check_accuracy_oracles(c, arms, positive=1)


def test_small_expected_cells_switch_to_fishers_exact_test() -> None:
    rng = np.random.default_rng(11)
    store, _ = make_store("binary", comparison={"min_samples": 10})
    arms = {
        "champion": classifier_arm(rng, 30, 0.97, [0, 1]),
        "challenger": classifier_arm(rng, 12, 0.80, [0, 1]),
    }
    send(store, "v1", *arms["champion"])
    send(store, "v2", *arms["challenger"])
    c = one(compare_windows(declared(store), 10))
    test = accuracy_of(c).test
    assert test is not None and test.test == "fisher"
    check_accuracy_oracles(c, arms, positive=1)


def test_multiclass_f1_differences_are_macro_and_weighted() -> None:
    rng = np.random.default_rng(12)
    classes = ["cat", "dog", "owl"]
    store, _ = make_store("multiclass", comparison={"min_samples": 100})
    arms = {
        "champion": classifier_arm(rng, 300, 0.7, classes),
        "challenger": classifier_arm(rng, 250, 0.8, classes),
    }
    send(store, "v1", *arms["champion"])
    send(store, "v2", *arms["challenger"])
    check_accuracy_oracles(one(compare_windows(declared(store), 100)), arms, positive=None)


def test_regression_split_equals_welch_on_the_raw_absolute_errors() -> None:
    rng = np.random.default_rng(13)
    store, _ = make_store("regression")
    champion = regression_arm(rng, 400, 2.0)
    challenger = regression_arm(rng, 150, 2.6)
    send(store, "v1", *champion)
    send(store, "v2", *challenger)
    c = one(compare_windows(declared(store), 100))
    abs_a = np.abs(np.subtract(*champion))
    abs_b = np.abs(np.subtract(*challenger))
    oracle = stats.ttest_ind(abs_b, abs_a, equal_var=False)
    interval = oracle.confidence_interval(0.95)
    assert isinstance(c.scores, MaeComparison)
    assert (c.champion_labeled, c.challenger_labeled) == (400, 150)
    assert c.scores.difference == close(abs_b.mean() - abs_a.mean())
    assert c.scores.test is not None
    assert c.scores.test.pvalue == close(float(oracle.pvalue))
    assert c.scores.test.lower == close(float(interval.low))
    assert c.scores.test.upper == close(float(interval.high))


@pytest.mark.parametrize("short_arm", ["v1", "v2"])
def test_below_the_minimum_in_either_arm_gives_counts_but_no_scores(short_arm: str) -> None:
    rng = np.random.default_rng(14)
    store, _ = make_store("binary")
    for version in ("v1", "v2"):
        send(store, version, *classifier_arm(rng, 99 if version == short_arm else 300, 0.9, [0, 1]))
    c = one(compare_windows(declared(store), 100))
    assert c.scores is None
    expected = (99, 300) if short_arm == "v1" else (300, 99)
    assert (c.champion_labeled, c.challenger_labeled) == expected
    # One more labeled prediction in the short arm reaches the minimum.
    send(store, short_arm, [1], [1])
    assert one(compare_windows(declared(store), 100)).scores is not None


def test_a_window_the_labels_left_has_counts_only() -> None:
    rng = np.random.default_rng(15)
    store, clock = make_store("binary")
    for version in ("v1", "v2"):
        send(store, version, *classifier_arm(rng, 200, 0.9, [0, 1]))
    clock.advance(600)  # past the 5m window, inside the 1h one
    comparisons = compare_windows(declared(store), 100)
    short, long = one(comparisons, "5m"), one(comparisons, "1h")
    assert (short.champion_labeled, short.challenger_labeled, short.scores) == (0, 0, None)
    assert (long.champion_labeled, long.challenger_labeled) == (200, 200)
    assert long.scores is not None


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_shadow_mode_gives_differences_without_independent_tests(task: Task) -> None:
    rng = np.random.default_rng(16)
    store, _ = make_store(task)
    for version in ("v1", "v2"):
        if task == "regression":
            send(store, version, *regression_arm(rng, 200, 2.0))
        else:
            send(store, version, *classifier_arm(rng, 200, 0.9, [0, 1]))
    split = one(compare_windows(declared(store, mode="split"), 100))
    shadow = one(compare_windows(declared(store, mode="shadow"), 100))
    assert isinstance(split.scores, AccuracyComparison | MaeComparison)
    assert isinstance(shadow.scores, type(split.scores))
    assert split.scores.test is not None
    assert shadow.scores.test is None
    assert shadow.scores.difference == split.scores.difference


def test_each_declared_challenger_in_order_and_missing_versions_skipped() -> None:
    rng = np.random.default_rng(17)
    store, _ = make_store("binary")
    for version in ("v1", "v2", "v3"):
        send(store, version, *classifier_arm(rng, 150, 0.9, [0, 1]))
    comparisons = compare_windows(declared(store, challengers=("v3", "absent", "v2")), 100)
    assert [(c.champion, c.challenger, c.window) for c in comparisons] == [
        ("v1", "v3", "5m"),
        ("v1", "v3", "1h"),
        ("v1", "v2", "5m"),
        ("v1", "v2", "1h"),
    ]
    assert compare_windows(declared(store, champion="absent"), 100) == []


def test_no_comparison_declared_gives_nothing() -> None:
    rng = np.random.default_rng(18)
    store, _ = make_store("binary")
    for version in ("v1", "v2"):
        send(store, version, *classifier_arm(rng, 150, 0.9, [0, 1]))
    snapshot = store.get("m").snapshot(store.clock())
    assert snapshot.comparison is None
    assert compare_windows(snapshot, 100) == []
    assert compare_windows(declared(store), 100) != []
