"""The history recorder (exporter.history_recorder) on a real Store with a fake clock: what it
records equals what the views compute on the same snapshot, drift, the label delay per slot,
idle models, removals (also one during a recording), and the bound on a model's series."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from exporter.config import Settings, load_settings
from exporter.drift_worker import DriftCache, DriftResult, WindowKey, refresh
from exporter.history import History, Refused, Series
from exporter.history_recorder import SERIES_NAMES, HistoryRecorder, build_history, series_bound
from exporter.model import ModelState
from exporter.reference import build_reference
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.store import Store
from exporter.views import window_estimate, window_quality
from tests.conftest import T0, FakeClock
from tests.test_store import Event, Label

RES = 60.0
Key = tuple[str, tuple[tuple[str, str], ...]]


class Setup:
    """A store, its drift cache and history wired as create_app wires them, and the recorder."""

    def __init__(
        self, settings: Settings, *, listen: bool = True, drift: DriftCache | None = None
    ) -> None:
        self.clock = FakeClock()
        self.store = Store(settings, clock=self.clock)
        self.cache = drift or DriftCache()
        self.history = build_history(settings)
        if listen:
            self.store.on_removed(self.cache.forget)
            self.store.on_removed(self.history.forget)
        self.recorder = HistoryRecorder(self.store, self.cache, self.history)

    def record(self) -> None:
        self.recorder.record(self.clock.now)

    def refresh(self, *, force: bool = False) -> None:
        refresh(self.store, self.cache, force=force)


def setup(**overrides: Any) -> Setup:
    return Setup(load_settings(None, **overrides))


def table(found: list[Series]) -> dict[Key, list[tuple[float, float]]]:
    return {
        (s.name, tuple(s.labels.items())): list(
            zip(s.times.tolist(), s.values.tolist(), strict=True)
        )
        for s in found
    }


def latest(found: list[Series]) -> dict[Key, float]:
    """Each series' last value."""
    return {key: pts[-1][1] for key, pts in table(found).items()}


def slot_start(t: float) -> float:
    return float(np.floor(t / RES) * RES)


# -- values ------------------------------------------------------------------------------


def binary_traffic(s: Setup) -> None:
    """Two versions of "m": inline and late labels, scores, some predictions 10 minutes old
    (in the 1h window, not the 5m one), some waiting for a label."""
    rng = np.random.default_rng(7)
    for version, n in (("v1", 30), ("v2", 20)):
        old = [
            Event(
                f"{version}o{i}",
                {"x": float(rng.normal())},
                int(rng.integers(2)),
                timestamp=s.clock.now - 600,
                label=int(rng.integers(2)),
                score=float(rng.random()),
            )
            for i in range(n // 2)
        ]
        new = [
            Event(f"{version}n{i}", {"x": float(rng.normal())}, int(rng.integers(2)), score=0.5)
            for i in range(n)
        ]
        s.store.add_predictions("m", version, old + new)
    s.clock.advance(12)
    s.store.add_labels("m", [Label(f"v1n{i}", i % 2) for i in range(25)])
    s.store.add_labels("m", [Label(f"early{i}", 1) for i in range(5)])  # no prediction yet
    s.store.add_labels("m", [Label(f"v2n{i}", 1) for i in range(12)])


def expected_rows(s: Setup, model: str) -> dict[Key, float]:
    """What the views give on a snapshot taken now, laid out by hand: the oracle."""
    snapshot = s.store.get(model).snapshot(s.clock.now)
    min_samples = s.store.settings.quality.min_samples
    out: dict[Key, float] = {}
    for v in snapshot.versions:
        version = (("model_version", v.name),)
        for counts in v.windows:
            key = (*version, ("window", counts.window))
            w = window_quality(counts, snapshot.positive_index, min_samples)
            out[("predictions", key)] = w.predictions
            out[("labeled_predictions", key)] = w.labeled
            if isinstance(w.scores, ClassificationScores):
                out[("accuracy", key)] = w.scores.accuracy
                for name, by in (
                    ("precision", w.scores.precision),
                    ("recall", w.scores.recall),
                    ("f1_score", w.scores.f1),
                ):
                    for average, value in by.items():
                        out[(name, (*key, ("average", average)))] = value
            if isinstance(w.scores, RegressionScores):
                out[("mean_absolute_error", key)] = w.scores.mean_absolute_error
                out[("root_mean_squared_error", key)] = w.scores.root_mean_squared_error
            if w.probabilities is not None and w.probabilities.roc_auc is not None:
                out[("roc_auc", key)] = w.probabilities.roc_auc.value
            e = window_estimate(counts, min_samples)
            if e is not None and e.scores is not None:
                out[("estimated_accuracy", key)] = e.scores.accuracy
        out[("predictions_total", version)] = v.counters.predictions
        out[("labels_total", version)] = v.counters.labels
        out[("pending_predictions", version)] = v.pending
        out[("predictions_expired_total", version)] = sum(v.counters.expired.values())
        count = int(v.counters.delay_counts.sum())
        if count:
            out[("label_delay_seconds_mean", version)] = v.counters.delay_sum / count
    out[("pending_labels", ())] = snapshot.pending_labels
    out[("labels_expired_total", ())] = sum(snapshot.counters.labels_expired.values())
    return out


def test_a_recording_holds_what_the_views_compute_on_the_same_snapshot() -> None:
    s = setup(windows=["5m", "1h"], quality={"min_samples": 2})
    binary_traffic(s)
    s.record()
    got = table(s.history.read("m"))
    assert all(pts == [(slot_start(s.clock.now), pts[0][1])] for pts in got.values())
    assert latest(s.history.read("m")) == expected_rows(s, "m")
    # The numbers the traffic implies, so that the oracle is not vacuous.
    v1 = (("model_version", "v1"),)
    v1h, v15 = (*v1, ("window", "1h")), (*v1, ("window", "5m"))
    values = latest(s.history.read("m"))
    assert (values[("predictions", v1h)], values[("predictions", v15)]) == (45, 30)
    assert (values[("labeled_predictions", v1h)], values[("labeled_predictions", v15)]) == (40, 25)
    assert (values[("predictions_total", v1)], values[("labels_total", v1)]) == (45, 40)
    assert values[("pending_predictions", v1)] == 5
    assert values[("pending_labels", ())] == 5
    assert values[("label_delay_seconds_mean", v1)] == 12.0 * 25 / 40  # inline labels: 0 s
    assert {name for name, _ in got} == set(SERIES_NAMES) - {
        "mean_absolute_error",
        "root_mean_squared_error",
        "estimated_accuracy",
        "features_drifted",
    }


def test_a_regression_model_records_its_errors() -> None:
    s = setup(quality={"min_samples": 2})
    s.store.add_predictions(
        "price",
        None,
        [Event(f"p{i}", {"x": 1.0}, 100.0 + i, label=100.0 + 2 * i) for i in range(5)],
    )
    s.record()
    values = latest(s.history.read("price"))
    assert values == expected_rows(s, "price")
    key = (("model_version", "default"), ("window", "1h"))
    assert values[("mean_absolute_error", key)] == 2.0  # errors 0..4
    assert values[("root_mean_squared_error", key)] == np.sqrt(6.0)


def test_accuracy_before_min_samples_is_no_point() -> None:
    s = setup(quality={"min_samples": 4})
    s.store.add_predictions("m", None, [Event(f"e{i}", {"x": 1.0}, 1, label=1) for i in range(3)])
    s.record()
    assert s.history.read("m", names=["accuracy", "f1_score"]) == []
    s.clock.advance(RES)
    s.store.add_predictions("m", None, [Event("e3", {"x": 1.0}, 1, label=0)])
    s.record()
    (accuracy,) = s.history.read("m", names=["accuracy"])
    assert table([accuracy]) == {
        ("accuracy", (("model_version", "default"), ("window", "1h"))): [(T0 + RES, 0.75)]
    }


# -- drift -------------------------------------------------------------------------------


def drift_setup() -> Setup:
    s = setup(windows=["5m", "1h"], drift={"min_samples": 20, "reference_size": 100})
    rng = np.random.default_rng(3)
    reference = [
        Event(f"r{i}", {"x": float(rng.normal()), "y": float(rng.normal())}, 0) for i in range(100)
    ]
    shifted = [  # x shifted by 4 standard deviations, y not
        Event(f"w{i}", {"x": float(rng.normal(4.0)), "y": float(rng.normal())}, 0)
        for i in range(200)
    ]
    s.store.add_predictions("m", None, reference)  # the first 100: the reference
    s.clock.advance(400)  # out of the 5m window
    s.store.add_predictions("m", None, shifted)
    return s


def drift_values(s: Setup) -> dict[Key, float]:
    return latest(s.history.read("m", names=["features_drifted"]))


def test_features_drifted_is_the_drift_cache_s_count() -> None:
    s = drift_setup()
    s.record()
    assert drift_values(s) == {}  # no drift run yet: no value
    s.refresh()
    s.record()
    results = s.cache.results("m")
    assert drift_values(s) == {
        ("features_drifted", (("model_version", v), ("window", w))): r.scores.drifted
        for (v, w), r in results.items()
    }
    assert {key: (r.scores.drifted, r.scores.tested) for key, r in results.items()} == {
        ("default", "5m"): (1, 2),
        ("default", "1h"): (1, 2),
    }


def test_a_new_drift_result_is_recorded_though_the_snapshot_did_not_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = drift_setup()
    s.refresh()
    s.record()
    calls = spy(monkeypatch, s.history)
    s.record()  # nothing changed: not recorded again
    assert calls == []
    s.refresh(force=True)  # new results (new serials), the same verdicts
    s.record()
    assert calls == ["m"]
    assert set(drift_values(s)) == {
        ("features_drifted", (("model_version", "default"), ("window", w))) for w in ("5m", "1h")
    }


# -- label delay -------------------------------------------------------------------------


def test_the_label_delay_is_the_mean_of_the_labels_joined_in_the_slot() -> None:
    s = setup()
    s.store.add_predictions("m", "v1", [Event(f"p{i}", {"x": 1.0}, 1) for i in range(10)])
    joined: dict[int, list[float]] = {}  # slot -> delays of the labels joined in it

    def label_at(offset: float, ident: str) -> None:
        s.clock.now = T0 + offset
        s.store.add_labels("m", [Label(ident, 1)])
        joined.setdefault(int(offset // RES), []).append(offset)  # predicted at T0

    def record_at(offset: float) -> None:
        s.clock.now = T0 + offset
        s.record()

    label_at(5, "p0")
    label_at(5, "p1")
    record_at(10)
    label_at(20.5, "p2")
    record_at(30)  # the same slot: the mean of the three
    label_at(62, "p3")
    label_at(70, "p4")
    record_at(75)
    label_at(100, "p5")
    record_at(110)
    record_at(130)  # slot 2: no label joined, no value
    label_at(185, "p6")
    label_at(199.5, "p7")
    record_at(200)
    (delay,) = s.history.read("m", names=["label_delay_seconds_mean"])
    assert table([delay]) == {
        ("label_delay_seconds_mean", (("model_version", "v1"),)): [
            (T0 + slot * RES, sum(delays) / len(delays)) for slot, delays in sorted(joined.items())
        ]
    }
    assert sorted(joined) == [0, 1, 3]
    assert delay.values.tolist() == [30.5 / 3, 232 / 3, 192.25]


def test_a_label_joined_after_a_slot_s_last_recording_counts_in_the_next() -> None:
    s = setup()
    s.store.add_predictions("m", None, [Event(f"p{i}", {"x": 1.0}, 1) for i in range(3)])
    s.clock.now = T0 + 10
    s.store.add_labels("m", [Label("p0", 1)])
    s.record()
    s.clock.now = T0 + 50
    s.store.add_labels("m", [Label("p1", 1)])  # after the slot's last recording
    s.clock.now = T0 + 80
    s.store.add_labels("m", [Label("p2", 1)])
    s.record()
    (delay,) = s.history.read("m", names=["label_delay_seconds_mean"])
    assert table([delay])[delay.name, (("model_version", "default"),)] == [
        (T0, 10.0),
        (T0 + RES, 65.0),  # (50 + 80) / 2: what increase(_sum) / increase(_count) gives
    ]


def test_a_version_made_anew_counts_its_delays_from_its_start() -> None:
    s = setup()
    s.store.add_predictions("m", "v1", [Event("a", {"x": 1.0}, 1), Event("b", {"x": 1.0}, 1)])
    s.store.add_predictions("m", "v2", [Event("c", {"x": 1.0}, 1)])
    s.clock.advance(30)
    s.store.add_labels("m", [Label("a", 1), Label("c", 1)])
    s.record()
    s.store.delete_version("m", "v1")
    s.store.add_predictions("m", "v1", [Event("d", {"x": 1.0}, 1)])
    s.clock.advance(4)
    s.store.add_labels("m", [Label("d", 1)])
    s.record()  # the same slot: v1 is another version now, its base is none
    assert latest(s.history.read("m", names=["label_delay_seconds_mean"])) == {
        ("label_delay_seconds_mean", (("model_version", "v1"),)): 4.0,
        ("label_delay_seconds_mean", (("model_version", "v2"),)): 30.0,
    }


# -- idle models, removals ---------------------------------------------------------------


def spy(monkeypatch: pytest.MonkeyPatch, history: History) -> list[str]:
    """The models History.record is called for, from now on."""
    calls: list[str] = []
    record = history.record

    def recording(model: str, *args: Any, **kwargs: Any) -> None:
        calls.append(model)
        record(model, *args, **kwargs)

    monkeypatch.setattr(history, "record", recording)
    return calls


def test_an_idle_model_is_not_copied_again(monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup(quality={"min_samples": 1})
    s.store.add_predictions("idle", None, [Event("a", {"x": 1.0}, 1, label=0)])
    s.store.add_predictions("busy", None, [Event("b", {"x": 1.0}, 1, label=1)])
    s.clock.advance(5)
    s.record()
    copies: list[tuple[str, bool]] = []
    snapshot_if_changed: Callable[..., Any] = ModelState.snapshot_if_changed

    def counted(self: ModelState, now: float, key: object) -> Any:
        snapshot = snapshot_if_changed(self, now, key)
        copies.append((self.name, snapshot is not None))
        return snapshot

    monkeypatch.setattr(ModelState, "snapshot_if_changed", counted)
    calls = spy(monkeypatch, s.history)
    s.clock.advance(20)
    s.store.add_predictions("busy", None, [Event("c", {"x": 1.0}, 0, label=0)])
    s.record()
    assert sorted(copies) == [("busy", True), ("idle", False)]
    assert calls == ["busy"]  # the slot holds idle's values already
    before = table(s.history.read("idle"))
    s.clock.advance(RES)  # the next slot: idle's values again, still without a copy
    copies.clear()
    s.record()
    assert sorted(copies) == [("busy", False), ("idle", False)]
    assert sorted(calls) == ["busy", "busy", "idle"]
    after = table(s.history.read("idle"))
    delay = ("label_delay_seconds_mean", (("model_version", "default"),))
    assert after.pop(delay) == before.pop(delay) == [(T0, 0.0)]  # no label joined since
    assert after == {key: [*pts, (T0 + RES, pts[0][1])] for key, pts in before.items()}
    assert len(after) == 18


def test_a_removed_version_and_model_leave_the_history() -> None:
    s = setup()
    binary_traffic(s)
    s.store.add_predictions("n", None, [Event("x", {"x": 1.0}, 1)])
    s.record()
    s.store.delete_version("m", "v2")
    assert s.history.read("m", version="v2") == []
    kept = table(s.history.read("m"))
    assert kept and all(dict(labels).get("model_version") != "v2" for _, labels in kept)
    s.store.delete("m")
    assert (s.history.read("m"), s.history.models(), s.history.series_count("m")) == ([], ["n"], 0)
    s.record()
    assert s.history.models() == ["n"]


def test_without_the_listener_the_next_recording_drops_what_was_removed() -> None:
    s = Setup(load_settings(None), listen=False)
    binary_traffic(s)
    s.store.add_predictions("n", None, [Event("x", {"x": 1.0}, 1)])
    s.record()
    s.store.delete_version("m", "v2")
    s.store.delete("n")
    assert s.history.models() == ["m", "n"]
    s.record()
    assert s.history.models() == ["m"]
    assert s.history.read("m", version="v2") == []
    assert s.history.read("m", version="v1") != []


class RemovingCache(DriftCache):
    """A drift cache that lets ``remove`` run the first time a recording reads it: after the
    recording took its snapshot of the model, before it records it."""

    def __init__(self) -> None:
        super().__init__()
        self.remove: Callable[[], None] | None = None

    def results(self, model: str) -> dict[WindowKey, DriftResult]:
        if self.remove is not None:
            remove, self.remove = self.remove, None
            remove()
        return super().results(model)


@pytest.mark.parametrize("what", ["version", "model"])
def test_a_removal_during_a_recording_is_not_undone(what: str) -> None:
    cache = RemovingCache()
    s = Setup(load_settings(None), drift=cache)
    binary_traffic(s)
    s.record()
    s.clock.advance(RES)
    s.store.add_predictions("m", "v1", [Event("late", {"x": 1.0}, 1)])

    def remove() -> None:
        if what == "version":
            s.store.delete_version("m", "v2")
        else:
            s.store.delete("m")

    cache.remove = remove
    s.record()
    assert s.history.refused == Refused(removed=1)
    assert s.history.read("m", version="v2") == []
    if what == "model":
        assert s.history.models() == []
        return
    v1 = latest(s.history.read("m", version="v1", names=["predictions_total"]))
    assert v1 == {("predictions_total", (("model_version", "v1"),)): 46}  # recorded: the slot's


def test_one_failing_model_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup()
    for model in ("a", "b", "c"):
        s.store.add_predictions(model, None, [Event("x", {"x": 1.0}, 1)])
    snapshot_if_changed: Callable[..., Any] = ModelState.snapshot_if_changed

    def failing(self: ModelState, now: float, key: object) -> Any:
        if self.name == "b":
            raise RuntimeError("boom")
        return snapshot_if_changed(self, now, key)

    monkeypatch.setattr(ModelState, "snapshot_if_changed", failing)
    with caplog.at_level(logging.ERROR, logger="exporter.history"):
        s.record()
    assert s.history.models() == ["a", "c"]
    assert [r.getMessage() for r in caplog.records] == ["history recording failed for model=b"]


# -- the bound ---------------------------------------------------------------------------


def everything(settings: Settings, task: str) -> Setup:
    """A model with the most versions, every window, and every series its task has: scores
    (roc_auc), a scored reference (estimated_accuracy), drift results, late labels."""
    s = Setup(settings)
    rng = np.random.default_rng(0)
    n = max(settings.quality.min_samples, settings.drift.min_samples) + 20
    binary = task == "binary"
    reference = build_reference(
        {"x": rng.normal(size=200).tolist()},
        settings=settings.drift,
        source="upload",
        created=s.clock.now,
        predictions=[i % 2 if binary else float(i) for i in range(200)],
        labels=[int(i % 3 == 0) if binary else float(i + 1) for i in range(200)],
        scores=rng.random(200).tolist() if binary else None,
    )
    for v in range(settings.limits.max_versions_per_model):
        version = f"v{v}"
        s.store.set_reference("m", version, reference)
        events = [
            Event(
                f"{version}e{i}",
                {"x": float(rng.normal())},
                int(rng.integers(2)) if binary else float(rng.normal()),
                label=(int(rng.integers(2)) if binary else float(rng.normal())) if i else None,
                score=float(rng.random()) if binary else None,
            )
            for i in range(n)
        ]
        s.store.add_predictions("m", version, events)
        s.clock.advance(3)
        s.store.add_labels("m", [Label(f"{version}e0", 1 if binary else 0.5)])
    s.refresh()
    s.record()
    return s


@pytest.mark.parametrize(
    ("settings", "task", "per_window"),
    [
        (Settings(), "binary", 15),  # every series but the regression's two
        (load_settings(None, windows=["5m", "1h", "1d"]), "binary", 15),
        (load_settings(None, windows=["5m", "1h", "1d"]), "regression", 5),
    ],
    ids=["defaults", "three-windows", "regression"],
)
def test_series_bound_bounds_a_model_with_every_series(
    settings: Settings, task: str, per_window: int
) -> None:
    s = everything(settings, task)
    versions, windows = settings.limits.max_versions_per_model, len(settings.windows)
    count = s.history.series_count("m")
    assert count == versions * (windows * per_window + 5) + 2
    assert count <= series_bound(settings) == versions * (windows * 17 + 5) + 2
    assert s.history.refused == Refused()
    names = {name for name, _ in table(s.history.read("m"))}
    if task == "binary":
        assert names == set(SERIES_NAMES) - {"mean_absolute_error", "root_mean_squared_error"}
    assert s.history.max_series == series_bound(settings)
