"""The sequential comparison statistics wired in: counts since the start (offsets recorded at
the declaration), one look per worker run, restarts, removals, burn-in, and the gauges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exporter.comparison import parse_declaration
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.sequential_tracker import SequentialTracker, look_at_models, sequential_settings
from exporter.snapshot import ArmCounts, ComparisonInfo
from exporter.stats.sequential import SequentialSettings, SequentialState, mae, proportions
from exporter.store import Store
from tests.conftest import Exporter, FakeClock, parse_metrics, sample
from tests.helpers import promtool_check_metrics
from tests.test_comparison_view import classifier_arm, regression_arm, send

SEQUENTIAL = {"min_samples": 30, "min_expected": 2}
SETTINGS = SequentialSettings(min_samples=30, min_expected=2)


def make_store(task: str = "binary", **sequential: Any) -> Store:
    settings = load_settings(
        windows=["1h"],
        models={"m": {"task": task}},
        comparison={"sequential": {**SEQUENTIAL, **sequential}},
    )
    return Store(settings, clock=FakeClock())


def advance(store: Store, seconds: float) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


def tracker_of(store: Store) -> SequentialTracker:
    return SequentialTracker(sequential_settings(store.settings.comparison.sequential))


def declare(store: Store, champion: str = "v1", mode: str = "split") -> ComparisonInfo:
    body = {"champion": champion, "challengers": ["v2"], "mode": mode}
    return store.set_comparison("m", parse_declaration(body))


def state_of(tracker: SequentialTracker, comparison: ComparisonInfo) -> SequentialState:
    (name, state), *others = tracker.states("m").of(comparison)
    assert name == "v2" and not others
    return state


class Arms:
    """Seeded labeled batches of both arms, sent to the store, with their outcomes kept."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.correct = {"v1": 0, "v2": 0}
        self.total = {"v1": 0, "v2": 0}

    def send(self, version: str, n: int, accuracy: float) -> None:
        truth, predicted = classifier_arm(self.rng, n, accuracy, [0, 1])
        send(self.store, version, truth, predicted)
        self.correct[version] += sum(t == p for t, p in zip(truth, predicted, strict=True))
        self.total[version] += n

    def reset(self) -> None:
        """What is sent from now on is what a comparison declared now counts."""
        self.correct = {"v1": 0, "v2": 0}
        self.total = {"v1": 0, "v2": 0}

    def estimate(self) -> Any:
        c, t = self.correct, self.total
        return proportions(c["v1"], t["v1"], c["v2"], t["v2"])


def test_each_look_equals_the_pure_state_fed_the_counts_since_the_start() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=1)
    # Before the declaration: a perfect v2 and a poor v1, which must not be counted.
    arms.send("v1", 200, 0.5)
    arms.send("v2", 80, 1.0)
    comparison = declare(store)
    arms.reset()
    expected = SequentialState(SETTINGS)
    for _ in range(8):
        arms.send("v1", 60, 0.9)
        arms.send("v2", 15, 0.75)
        look_at_models(store, tracker)
        expected = expected.update(arms.estimate())
        assert state_of(tracker, comparison) == expected
    assert expected.pvalue is not None and expected.pvalue < SETTINGS.alpha  # a real verdict
    assert (expected.samples_a, expected.samples_b) == (480, 120)


def test_outcomes_before_the_declaration_are_offsets() -> None:
    store = make_store()
    arms = Arms(store, seed=2)
    arms.send("v1", 70, 0.8)
    comparison = declare(store)
    v1 = store.get("m").snapshot(store.clock()).versions[0].counters
    assert comparison.start_of("v1") == ArmCounts.of(v1)
    assert comparison.start_of("v1").labeled == 70
    assert comparison.start_of("v2") == ArmCounts()  # not there yet: starts at 0
    arms.reset()
    arms.send("v1", 40, 0.8)
    arms.send("v2", 35, 0.8)
    tracker = tracker_of(store)
    look_at_models(store, tracker)
    state = state_of(tracker, comparison)
    assert (state.samples_a, state.samples_b) == (40, 35)
    assert state.difference == pytest.approx(
        arms.correct["v2"] / 35 - arms.correct["v1"] / 40, abs=1e-15
    )


def test_regression_compares_the_mean_absolute_error_since_the_start() -> None:
    store = make_store("regression")
    tracker = tracker_of(store)
    rng = np.random.default_rng(3)
    send(store, "v1", *regression_arm(rng, 50, 1.0))  # before: not counted
    comparison = declare(store)
    errors: dict[str, list[float]] = {"v1": [], "v2": []}
    expected = SequentialState(SETTINGS)
    for _ in range(4):
        for version, scale in (("v1", 1.0), ("v2", 3.0)):
            truth, predicted = regression_arm(rng, 40, scale)
            send(store, version, truth, predicted)
            errors[version] += [abs(p - t) for t, p in zip(truth, predicted, strict=True)]
        look_at_models(store, tracker)
        a, b = np.array(errors["v1"]), np.array(errors["v2"])
        expected = expected.update(
            mae(len(a), a.sum(), (a * a).sum(), len(b), b.sum(), (b * b).sum())
        )
        state = state_of(tracker, comparison)
        assert state.kind == "mae" and (state.samples_a, state.samples_b) == (len(a), len(b))
        for field in ("difference", "pvalue", "lower", "upper"):
            assert getattr(state, field) == pytest.approx(getattr(expected, field), rel=1e-9)
    assert state.difference is not None and state.difference > 0  # v2's errors are larger


def test_a_replaced_comparison_starts_again() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=4)
    first = declare(store)
    arms.send("v1", 100, 0.9)
    arms.send("v2", 100, 0.7)
    look_at_models(store, tracker)
    before = tracker.states("m")
    assert state_of(tracker, first).pvalue is not None
    advance(store, 60)
    second = declare(store)
    arms.reset()
    arms.send("v1", 10, 0.9)
    arms.send("v2", 10, 0.9)
    look_at_models(store, tracker)
    after = tracker.states("m")
    assert after.serial != before.serial
    assert after.of(first) == ()  # a reader holding the old comparison sees nothing
    state = state_of(tracker, second)
    assert (state.samples_a, state.samples_b) == (10, 10)
    assert state.pvalue is None  # burn-in again


def test_burn_in_gives_only_the_labeled_counts() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=5)
    comparison = declare(store)
    arms.send("v1", 100, 0.9)
    arms.send("v2", 29, 0.9)  # one short of min_samples
    look_at_models(store, tracker)
    state = state_of(tracker, comparison)
    assert (state.samples_a, state.samples_b) == (100, 29)
    assert (state.difference, state.pvalue, state.lower, state.upper) == (None,) * 4
    arms.send("v2", 1, 0.9)
    look_at_models(store, tracker)
    assert state_of(tracker, comparison).pvalue is not None


def test_the_serial_changes_exactly_when_a_state_does() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=6)
    assert tracker.states("m").serial == 0
    declare(store)
    arms.send("v1", 40, 0.9)
    look_at_models(store, tracker)
    first = tracker.states("m")
    assert first.serial > 0
    look_at_models(store, tracker)  # nothing new
    advance(store, 1)
    look_at_models(store, tracker)  # a new snapshot, the same counts
    assert tracker.states("m") is first
    arms.send("v2", 5, 0.9)
    look_at_models(store, tracker)
    assert tracker.states("m").serial > first.serial


def test_ending_the_comparison_or_removing_the_model_drops_the_states() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=7)
    comparison = declare(store)
    arms.send("v1", 40, 0.9)
    look_at_models(store, tracker)
    assert tracker.states("m").of(comparison)
    store.end_comparison("m")
    look_at_models(store, tracker)
    ended = tracker.states("m")
    assert ended.comparison is None and ended.states == () and ended.serial > 0
    declare(store)
    look_at_models(store, tracker)
    assert tracker.states("m").states
    store.end_comparison("m")
    store.delete("m")
    look_at_models(store, tracker)
    assert tracker.states("m").serial == 0 and tracker.seen("m") is None


def test_shadow_comparisons_track_the_pairs() -> None:
    store = make_store()
    tracker = tracker_of(store)
    comparison = declare(store, mode="shadow")
    Arms(store, seed=8).send("v1", 40, 0.9)
    look_at_models(store, tracker)
    assert state_of(tracker, comparison).kind == "paired"
    assert state_of(tracker, comparison).samples_a == 0  # no challenger prediction: no pair


def test_the_sequential_section_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"comparison\.sequential\.alpha"):
        load_settings(comparison={"sequential": {"alpha": 1.0}})
    with pytest.raises(ConfigError, match=r"comparison\.sequential\.min_samples"):
        load_settings(comparison={"sequential": {"min_samples": 0}})
    assert sequential_settings(load_settings().comparison.sequential) == SequentialSettings()


def test_over_http_the_gauges_follow_the_worker_s_looks(
    make_exporter: Callable[..., Exporter],
) -> None:
    exp = make_exporter(windows=["1h"], comparison={"sequential": SEQUENTIAL})
    answer = exp.client.put(
        "/v1/models/fraud/comparison",
        json={"champion": "v1", "challengers": ["v2"], "mode": "split"},
    )
    assert answer.status_code == 200, answer.text
    rng = np.random.default_rng(9)
    counts = {}
    for version, n, accuracy in (("v1", 200, 0.92), ("v2", 60, 0.7)):
        truth, predicted = classifier_arm(rng, n, accuracy, [0, 1])
        events = [
            {"id": f"{version}-{i}", "features": {"x": 1.0}, "prediction": p, "label": t}
            for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
        ]
        exp.predictions("fraud", events, model_version=version)
        counts[version] = (sum(t == p for t, p in zip(truth, predicted, strict=True)), n)
    key = {"model": "fraud", "champion": "v1", "challenger": "v2"}
    before = exp.metrics()
    assert sample(before, "model_comparison_sequential_pvalue", **key) is None  # no look yet
    exp.refresh_drift()
    text = exp.metrics_text()  # the same model snapshot: the tracker's serial re-encodes it
    metrics = parse_metrics(text)
    expected = SequentialState(SETTINGS).update(proportions(*counts["v1"], *counts["v2"]))
    assert expected.pvalue is not None and expected.lower is not None
    assert sample(metrics, "model_comparison_sequential_pvalue", **key) == expected.pvalue
    assert (
        sample(metrics, "model_comparison_sequential_accuracy_difference", **key)
        == expected.difference
    )
    assert sample(metrics, "model_comparison_sequential_difference_lower", **key) == expected.lower
    assert sample(metrics, "model_comparison_sequential_difference_upper", **key) == expected.upper
    for arm, n in (("champion", 200), ("challenger", 60)):
        name = "model_comparison_sequential_labeled_predictions"
        assert sample(metrics, name, **key, arm=arm) == n
    assert not any("window" in dict(labels) for name, labels in metrics if "sequential" in name)
    lint = promtool_check_metrics(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
