"""The sequential comparison statistics wired in: counts since the start (offsets recorded at
the declaration), one look per worker run, restarts, removals, burn-in, and the gauges."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exporter import sequential_tracker
from exporter.baseline_view import baselines, bound
from exporter.collectors.baseline import baseline_families
from exporter.collectors.comparison import sequential_families
from exporter.comparison import parse_declaration
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.sequential_tracker import SequentialTracker, look_at_models, sequential_settings
from exporter.snapshot import ArmCounts, ComparisonInfo
from exporter.stats.sequential import (
    OneSidedState,
    SequentialSettings,
    SequentialState,
    accuracy_margin,
    mae,
    proportions,
)
from exporter.store import Store
from tests.conftest import Exporter, FakeClock, parse_metrics, sample
from tests.helpers import promtool_check_metrics
from tests.test_baseline import upload
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
    """Seeded labeled batches of any version, sent to the store, with their outcomes kept."""

    def __init__(self, store: Store, seed: int) -> None:
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.correct: Counter[str] = Counter()
        self.total: Counter[str] = Counter()

    def send(self, version: str, n: int, accuracy: float) -> None:
        truth, predicted = classifier_arm(self.rng, n, accuracy, [0, 1])
        send(self.store, version, truth, predicted)
        self.correct[version] += sum(t == p for t, p in zip(truth, predicted, strict=True))
        self.total[version] += n

    def reset(self, *versions: str) -> None:
        """What is sent from now on is what a comparison declared now counts (or, for
        ``versions``, what a new version of that name counts)."""
        for version in versions or list(self.total):
            self.correct[version] = self.total[version] = 0

    def estimate(self) -> Any:
        c, t = self.correct, self.total
        return proportions(c["v1"], t["v1"], c["v2"], t["v2"])

    def margin(self, version: str, limit: float) -> Any:
        """The version's outcomes against a baseline's bound."""
        return accuracy_margin(self.correct[version], self.total[version], limit)


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


def holdout(store: Store, seed: int = 20) -> None:
    """A model-wide holdout reference (accuracy near 0.9): every version's baseline."""
    truth, predicted = classifier_arm(np.random.default_rng(seed), 300, 0.9, [0, 1])
    upload(store, predicted, truth)


def baseline_test(
    store: Store, tracker: SequentialTracker, version: str
) -> tuple[OneSidedState | None, float]:
    """The tracker's baseline test of ``version`` for the reference the model's snapshot
    says it uses now, and that baseline's bound."""
    snapshot = store.get("m").snapshot(store.clock())
    (baseline,) = [b for v, b in baselines(snapshot) if v.name == version]
    state = tracker.baselines("m").of(version, baseline.set_at)
    return state, bound(baseline, tracker.tolerances)


def test_a_re_created_version_restarts_its_baseline_test_and_the_comparison_goes_on() -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=10)
    comparison = declare(store)
    holdout(store)
    arms.send("v1", 100, 0.7)  # below the holdout's 0.9, as the first v3: low p-values
    arms.send("v2", 100, 0.9)
    arms.send("v3", 300, 0.6)
    look_at_models(store, tracker)
    old, _ = baseline_test(store, tracker, "v3")
    assert old is not None and old.samples == 300
    assert old.pvalue is not None and old.pvalue < 1e-6
    expected_comparison = SequentialState(SETTINGS)
    expected = dict.fromkeys(("v1", "v2", "v3"), OneSidedState(SETTINGS))
    for n in (0, 400, 150):  # the first look, then more labels than the v3 before, then fewer
        if n:
            store.delete_version("m", "v3")  # not pinned; the new v3 uses the same reference
            arms.reset("v3")
            arms.send("v3", n, 0.95)
            arms.send("v1", 50, 0.7)
            arms.send("v2", 50, 0.9)
            look_at_models(store, tracker)
            expected["v3"] = OneSidedState(SETTINGS)  # only the new v3's counts
        expected_comparison = expected_comparison.update(arms.estimate())
        assert state_of(tracker, comparison) == expected_comparison
        for version in ("v1", "v2", "v3"):
            state, limit = baseline_test(store, tracker, version)
            expected[version] = expected[version].update(arms.margin(version, limit))
            assert state == expected[version]
    assert expected["v3"].samples == 150
    assert expected["v3"].pvalue is not None and expected["v3"].pvalue > 0.5  # not the old one's
    assert expected_comparison.samples_a == 200


def test_a_model_deleted_and_registered_again_restarts_both_parts() -> None:
    store = make_store()
    tracker = tracker_of(store)

    def incarnation(seed: int, n: int, accuracy: float) -> tuple[Arms, ComparisonInfo]:
        """The same steps, at the same second: the same revisions, set_at and version uids."""
        arms = Arms(store, seed)
        comparison = declare(store)
        holdout(store)
        arms.send("v1", n, 0.9)
        arms.send("v2", n, accuracy)
        return arms, comparison

    _, first = incarnation(11, 100, 0.5)
    look_at_models(store, tracker)
    old_comparison = state_of(tracker, first)
    old_baseline, _ = baseline_test(store, tracker, "v2")
    assert old_comparison.pvalue is not None and old_comparison.pvalue < 0.01
    assert old_baseline is not None and old_baseline.pvalue is not None
    assert old_baseline.pvalue < 0.01
    store.end_comparison("m")
    store.delete("m")
    arms, second = incarnation(12, 200, 0.9)  # more labels than before, and a good v2
    assert second == first  # a reader cannot tell the two comparisons apart
    look_at_models(store, tracker)
    assert state_of(tracker, second) == SequentialState(SETTINGS).update(arms.estimate())
    for version in ("v1", "v2"):
        state, limit = baseline_test(store, tracker, version)
        assert state == OneSidedState(SETTINGS).update(arms.margin(version, limit))
    assert state_of(tracker, second).pvalue != old_comparison.pvalue


def test_readers_never_show_a_former_incarnations_states_before_the_next_look() -> None:
    """Between a model's re-registration and the worker's next look, the collectors export
    no sequential value rather than the old incarnation's (equal comparison, same set_at)."""
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=21)
    declare(store)
    holdout(store)
    arms.send("v1", 150, 0.9)
    arms.send("v2", 150, 0.6)
    look_at_models(store, tracker)

    def exported() -> set[str]:
        snapshot = store.get("m").snapshot(store.clock())
        families = [
            *sequential_families([snapshot], {"m": tracker.states("m")}),
            *baseline_families([snapshot], {"m": tracker.baselines("m")}, 1),
        ]
        return {f.name for f in families if f.samples and "sequential" in f.name}

    assert exported() >= {
        "model_comparison_sequential_pvalue",
        "model_baseline_sequential_pvalue",
    }
    store.end_comparison("m")
    store.delete("m")
    again = Arms(store, seed=22)
    declare(store)
    holdout(store)
    again.send("v1", 150, 0.9)
    again.send("v2", 150, 0.6)
    assert exported() == set()  # the old states belong to another incarnation
    look_at_models(store, tracker)
    assert "model_comparison_sequential_pvalue" in exported()


def test_counts_that_went_down_restart_the_states_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=13)
    comparison = declare(store)
    holdout(store)
    arms.send("v1", 60, 0.9)
    arms.send("v2", 60, 0.7)
    earlier = store.get("m").snapshot(store.clock())
    early = arms.estimate()
    limits = {v: baseline_test(store, tracker, v)[1] for v in ("v1", "v2")}
    margins = {v: arms.margin(v, limit) for v, limit in limits.items()}
    arms.send("v1", 60, 0.9)
    arms.send("v2", 60, 0.7)
    tracker.look(store.get("m").snapshot(store.clock()))
    assert state_of(tracker, comparison).samples_a == 120
    with caplog.at_level(logging.WARNING, logger="exporter.sequential"):
        tracker.look(earlier)  # the same model and versions, fewer counts
    assert state_of(tracker, comparison) == SequentialState(SETTINGS).update(early)
    for version, margin in margins.items():
        assert baseline_test(store, tracker, version)[0] == OneSidedState(SETTINGS).update(margin)
    warnings = [r for r in caplog.records if r.name == "exporter.sequential"]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 3  # the comparison, 2 baselines


@pytest.mark.parametrize("broken", ["estimate", "margin"])
def test_a_failing_part_of_a_look_does_not_stop_the_other(
    broken: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store()
    tracker = tracker_of(store)
    arms = Arms(store, seed=14)
    comparison = declare(store)
    holdout(store)
    arms.send("v1", 60, 0.9)
    arms.send("v2", 60, 0.7)

    def fail(*args: object) -> None:
        raise RuntimeError(broken)

    monkeypatch.setattr(sequential_tracker, broken, fail)
    look_at_models(store, tracker)
    (error,) = [r for r in caplog.records if r.name == "exporter.sequential"]
    assert error.levelno == logging.ERROR and error.exc_info is not None
    compared = tracker.states("m").of(comparison)
    baseline, limit = baseline_test(store, tracker, "v2")
    if broken == "estimate":
        assert compared == ()
        assert baseline == OneSidedState(SETTINGS).update(arms.margin("v2", limit))
    else:
        assert compared == (("v2", SequentialState(SETTINGS).update(arms.estimate())),)
        assert baseline is None
    monkeypatch.undo()
    look_at_models(store, tracker)  # nothing changed, yet the failed part is looked at again
    assert state_of(tracker, comparison) == SequentialState(SETTINGS).update(arms.estimate())
    assert baseline_test(store, tracker, "v2")[0] == OneSidedState(SETTINGS).update(
        arms.margin("v2", limit)
    )


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
