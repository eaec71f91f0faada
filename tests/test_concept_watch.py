"""Concept drift on each version's error stream: the watch, its wiring into the join path, its
settings, its state across restarts and its families on /metrics. The oracle is River's
detectors (``river.drift``) fed the same error stream one value at a time."""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import Any, ClassVar

import msgspec
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from river import drift

from exporter.concept_watch import ConceptWatch
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.model import ModelState
from exporter.persist import fileformat
from exporter.stats.concept_drift import AdwinSettings, DdmSettings, PageHinkleySettings
from exporter.store import Store
from tests.conftest import FakeClock, sample
from tests.helpers import promtool_check_metrics
from tests.test_store import Event, Label

MODEL = "m"


def river_detections(detector: Any, values: np.ndarray) -> list[int]:
    hits = []
    for i, x in enumerate(values.tolist()):
        detector.update(x)
        if detector.drift_detected:
            hits.append(i)
    return hits


def shifted_errors(seed: int, before: float = 0.1, after: float = 0.4) -> np.ndarray:
    """A classifier's 0/1 errors: 3000 at ``before``, then 2000 at ``after``."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(3000) < before, rng.random(2000) < after]).astype(float)


# --- the watch ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_watch_detects_where_river_does_and_keeps_the_label_time(seed: int) -> None:
    errors = shifted_errors(seed)
    times = 1000.0 + np.arange(errors.size) * 0.5
    expected = river_detections(drift.ADWIN(), errors)
    assert expected  # the shift is found
    watch = ConceptWatch(AdwinSettings())
    for start in range(0, errors.size, 137):  # label requests of uneven sizes
        watch.add(errors[start : start + 137], times[start : start + 137])
    info = watch.info()
    assert info.detections == len(expected)
    assert info.last_detection == times[expected[-1]]
    assert info.detector == "adwin"
    assert info.outcomes == errors.size - 1 - expected[-1]
    assert info.estimate == pytest.approx(errors[expected[-1] + 1 :].mean(), abs=1e-12)


def test_a_watch_restored_from_its_state_goes_on_as_the_original() -> None:
    errors = shifted_errors(3)
    times = np.arange(errors.size, dtype=float)
    original = ConceptWatch(DdmSettings())
    original.add(errors[:2500], times[:2500])
    restored = ConceptWatch.from_state(original.to_state(), DdmSettings())
    assert restored is not None
    original.add(errors[2500:], times[2500:])
    restored.add(errors[2500:], times[2500:])
    assert restored.info() == original.info()
    assert original.info().detections == len(river_detections(drift.binary.DDM(), errors))


def test_a_watch_saved_under_other_settings_starts_a_fresh_detector() -> None:
    errors = shifted_errors(9)
    watch = ConceptWatch(AdwinSettings())
    watch.add(errors, np.arange(errors.size, dtype=float))
    assert watch.detections > 0
    other = ConceptWatch.from_state(watch.to_state(), AdwinSettings(delta=0.01))
    assert other is not None
    assert other.detector.settings == AdwinSettings(delta=0.01)
    assert other.detector.samples == 0  # fresh: no outcome under the new parameters yet
    assert (other.detections, other.last_detection) == (watch.detections, watch.last_detection)
    assert ConceptWatch.from_state(watch.to_state(), PageHinkleySettings()) is None


# --- on the join path ---------------------------------------------------------------------------


def feed(store: Store, clock: FakeClock, truth: np.ndarray, predicted: np.ndarray) -> None:
    """Predictions, then their labels a second later, in batches of 100 (ids in order)."""
    for start in range(0, truth.size, 100):
        ids = [f"id{i}" for i in range(start, min(start + 100, truth.size))]
        store.add_predictions(
            MODEL,
            None,
            [Event(i, {"x": 1.0}, predicted[int(i[2:])].item()) for i in ids],
        )
        clock.advance(1)
        store.add_labels(MODEL, [Label(i, truth[int(i[2:])].item()) for i in ids])
        clock.advance(1)


def classifier_stream(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary truths and predictions wrong at 10 %, then at 40 % (the errors of
    :func:`shifted_errors`)."""
    rng = np.random.default_rng(100 + seed)
    errors = shifted_errors(seed).astype(bool)
    truth = rng.integers(0, 2, errors.size)
    return truth, np.where(errors, 1 - truth, truth)


@pytest.mark.parametrize(
    ("config", "oracle"),
    [
        ({}, drift.ADWIN),
        ({"detector": "ddm"}, drift.binary.DDM),
        ({"detector": "page_hinkley", "page_hinkley": {"threshold": 20}}, None),
    ],
)
def test_joined_outcomes_feed_the_detector_as_river_sees_them(
    config: dict[str, Any], oracle: Any
) -> None:
    clock = FakeClock()
    store = Store(load_settings(concept_drift=config), clock=clock)
    truth, predicted = classifier_stream(4)
    feed(store, clock, truth, predicted)
    errors = (truth != predicted).astype(float)
    river = oracle() if oracle is not None else drift.PageHinkley(threshold=20)
    expected = river_detections(river, errors)
    assert expected
    info = store.get(MODEL).snapshot(clock()).versions[0].concept
    assert info is not None
    assert info.detections == len(expected)
    assert info.detector == (config.get("detector") or "adwin")
    # the label time of the detecting outcome: its batch's labels came at 2 s per batch + 1
    assert info.last_detection == pytest.approx(FakeClock().now + 2 * (expected[-1] // 100) + 1)


def test_a_regression_feeds_its_absolute_errors() -> None:
    clock = FakeClock()
    store = Store(load_settings(concept_drift={"detector": "page_hinkley"}), clock=clock)
    rng = np.random.default_rng(7)
    truth = rng.normal(10, 1, 4000)
    noise = np.concatenate([rng.normal(0, 0.5, 2500), rng.normal(0, 2.0, 1500)])
    predicted = truth + noise
    feed(store, clock, truth, predicted)
    expected = river_detections(drift.PageHinkley(), np.abs(predicted - truth))
    assert expected
    info = store.get(MODEL).snapshot(clock()).versions[0].concept
    assert info is not None and info.detections == len(expected)


def test_each_version_has_its_own_detector_and_a_model_its_own_settings() -> None:
    clock = FakeClock()
    settings = load_settings(
        concept_drift={"adwin": {"delta": 0.01}},
        models={MODEL: {"concept_drift": {"detector": "ddm"}}, "other": {}},
    )
    assert settings.concept_drift_for("other").detector_settings() == AdwinSettings(delta=0.01)
    assert settings.concept_drift_for(MODEL).detector_settings() == DdmSettings()
    store = Store(settings, clock=clock)
    store.add_predictions(MODEL, "v1", [Event("a", {"x": 1.0}, 1)])
    store.add_predictions(MODEL, "v2", [Event("b", {"x": 1.0}, 1)])
    store.add_labels(MODEL, [Label("a", 0), Label("b", 1)])
    by_name = {v.name: v.concept for v in store.get(MODEL).snapshot(clock()).versions}
    assert by_name["v1"] is not None and by_name["v1"].estimate == 1.0
    assert by_name["v2"] is not None and by_name["v2"].estimate == 0.0
    assert by_name["v1"].detector == "ddm"


def test_off_runs_no_detector() -> None:
    clock = FakeClock()
    store = Store(load_settings(concept_drift={"detector": "off"}), clock=clock)
    store.add_predictions(MODEL, None, [Event("a", {"x": 1.0}, 1, label=0)])
    assert store.get(MODEL).snapshot(clock()).versions[0].concept is None


def test_a_model_only_gets_a_detector_from_its_first_outcome() -> None:
    clock = FakeClock()
    store = Store(load_settings(), clock=clock)
    store.add_predictions(MODEL, None, [Event("a", {"x": 1.0}, 1)])
    assert store.get(MODEL).snapshot(clock()).versions[0].concept is None


def test_ddm_on_a_regression_is_refused_or_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(ConfigError, match="ddm takes 0/1 errors"):
        load_settings(models={MODEL: {"task": "regression", "concept_drift": {"detector": "ddm"}}})
    clock = FakeClock()
    store = Store(load_settings(concept_drift={"detector": "ddm"}), clock=clock)
    with caplog.at_level(logging.WARNING, logger="exporter.model"):
        store.add_predictions(MODEL, None, [Event("a", {"x": 1.0}, 1.5, label=2.0)])
    assert "no concept-drift detector runs on it" in caplog.text
    assert store.get(MODEL).snapshot(clock()).versions[0].concept is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"adwin": {"delta": 2}}, "adwin.delta"),
        ({"adwin": {"max_buckets": 1}}, "adwin.max_buckets"),
        ({"detector": "kswin"}, "detector"),
        ({"ddm": {"warning_threshold": 4}}, "warning_threshold"),
        ({"page_hinkley": {"mode": "sideways"}}, "page_hinkley.mode"),
    ],
)
def test_bad_concept_drift_settings_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(concept_drift=config)
    with pytest.raises(ConfigError, match=f"models.m.concept_drift.*{message}"):
        load_settings(models={MODEL: {"concept_drift": config}})


# --- across restarts ----------------------------------------------------------------------------


def model_after(truth: np.ndarray, predicted: np.ndarray, **settings: Any) -> ModelState:
    clock = FakeClock()
    store = Store(load_settings(**settings), clock=clock)
    feed(store, clock, truth, predicted)
    return store.get(MODEL)


def test_state_round_trip_keeps_the_detector_and_its_count() -> None:
    truth, predicted = classifier_stream(5)
    model = model_after(truth, predicted)
    state = model.to_state()
    assert state is not None
    settings = load_settings()
    restored = ModelState.from_state(state, None, settings)
    now = FakeClock().now + 1e4
    before = model.snapshot(now).versions[0].concept
    assert restored.snapshot(now).versions[0].concept == before
    assert before is not None and before.detections > 0
    unclean = ModelState.from_state(state, None, settings, counters=False)
    info = unclean.snapshot(now).versions[0].concept
    assert info is not None and info.detections == 0  # a counter restarts after kill -9
    assert info.estimate == before.estimate and info.outcomes == before.outcomes
    changed = ModelState.from_state(state, None, load_settings(concept_drift={"detector": "ddm"}))
    assert changed.versions.get("default") is not None
    assert changed.versions.get("default").concept is None  # type: ignore[union-attr]


# --- on /metrics ----------------------------------------------------------------------------------


def test_the_families_on_metrics(make_exporter: Any) -> None:
    exporter = make_exporter(concept_drift={"detector": "ddm"})
    truth, predicted = classifier_stream(6)
    for start in range(0, truth.size, 500):
        exporter.predictions(
            MODEL,
            [
                {"id": f"i{i}", "features": {"x": 1.0}, "prediction": int(predicted[i])}
                for i in range(start, start + 500)
            ],
        )
        exporter.labels(
            MODEL, [{"id": f"i{i}", "label": int(truth[i])} for i in range(start, start + 500)]
        )
    text = exporter.metrics_text()
    assert promtool_check_metrics(text).returncode == 0
    metrics = exporter.metrics()
    key = {"model": MODEL, "model_version": "default", "detector": "ddm"}
    expected = river_detections(drift.binary.DDM(), (truth != predicted).astype(float))
    assert sample(metrics, "model_concept_drift_detections_total", **key) == len(expected)
    assert sample(metrics, "model_concept_drift_last_detection_timestamp_seconds", **key) == (
        exporter.clock.now
    )
    assert sample(metrics, "model_concept_drift_outcomes", **key) == truth.size - 1 - expected[-1]
    estimate = sample(metrics, "model_concept_drift_error_estimate", **key)
    assert estimate is not None and 0.3 < estimate < 0.5
    assert sample(metrics, "model_concept_drift_warning", **key) in (0.0, 1.0)


def test_the_detector_state_survives_the_snapshot_file_format() -> None:
    """Through the bytes a snapshot file holds (arrays packed, no pickle), for each kind."""
    truth, predicted = classifier_stream(8)
    for config in ({}, {"detector": "ddm"}, {"detector": "page_hinkley"}):
        model = model_after(truth[:3500], predicted[:3500], concept_drift=config)
        state = model.to_state()
        assert state is not None
        decoded = msgspec.msgpack.decode(fileformat.encode_state(state))
        settings = load_settings(concept_drift=config)
        restored = ModelState.from_state(decoded, None, settings)
        now = FakeClock().now + 1e4
        assert restored.snapshot(now).versions[0].concept == model.snapshot(now).versions[0].concept
        # and both go on alike
        rest = (truth[3500:] != predicted[3500:]).astype(float)
        times = np.arange(rest.size, dtype=float)
        for m in (model, restored):
            watch = m.versions.get("default").concept  # type: ignore[union-attr]
            assert watch is not None
            watch.add(rest, times)
        assert restored.snapshot(now).versions[0].concept == model.snapshot(now).versions[0].concept


# --- a state machine against River, fed one value at a time --------------------------------------


class WatchMachine(RuleBasedStateMachine):
    """Batches of any size and error rate, snapshots through the file format, unclean restarts
    (the count from zero) and changed parameters, against a naive model: River's detector fed
    each value alone, with the detections counted and the last label time kept by hand."""

    settings_by_kind: ClassVar[dict[str, Any]] = {
        "adwin": (
            AdwinSettings(clock=4, grace_period=5),
            lambda: drift.ADWIN(clock=4, grace_period=5),
        ),
        "ddm": (DdmSettings(warm_start=10), lambda: drift.binary.DDM(warm_start=10)),
        "page_hinkley": (PageHinkleySettings(threshold=5), lambda: drift.PageHinkley(threshold=5)),
    }

    @initialize(kind=st.sampled_from(["adwin", "ddm", "page_hinkley"]))
    def start(self, kind: str) -> None:
        self.config, self.make_river = self.settings_by_kind[kind]
        self.watch = ConceptWatch(self.config)
        self.river = self.make_river()
        self.detections = 0
        self.last: float | None = None
        self.time = 0.0
        self.rng = np.random.default_rng(0)

    @rule(size=st.integers(0, 300), rate=st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]))
    def add(self, size: int, rate: float) -> None:
        errors = (self.rng.random(size) < rate).astype(float)
        times = self.time + np.arange(size, dtype=float)
        self.time += size
        self.watch.add(errors, times)
        for x, t in zip(errors.tolist(), times.tolist(), strict=True):
            self.river.update(int(x) if isinstance(self.config, DdmSettings) else x)
            if self.river.drift_detected:
                self.detections += 1
                self.last = t

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        decoded = msgspec.msgpack.decode(fileformat.encode_state(self.watch.to_state()))
        restored = ConceptWatch.from_state(decoded, self.config)
        assert restored is not None
        if not clean:
            restored.restart_counts()
            self.detections = 0
        self.watch = restored

    @rule()
    def new_parameters(self) -> None:
        """Restored under other parameters of the same detector: it starts afresh."""
        name = FIRST_PARAMETER[self.config.kind]
        self.config = replace(self.config, **{name: getattr(self.config, name) + 1})
        decoded = msgspec.msgpack.decode(fileformat.encode_state(self.watch.to_state()))
        restored = ConceptWatch.from_state(decoded, self.config)
        assert restored is not None and restored.info().outcomes == 0
        self.watch = restored
        params = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        params.pop("kind")
        self.river = type(self.make_river())(**params)

    @invariant()
    def agrees_with_river(self) -> None:
        if not hasattr(self, "watch"):
            return
        info = self.watch.info()
        assert info.detections == self.detections
        assert info.last_detection == self.last
        assert info.estimate == pytest.approx(river_estimate(self.river), abs=1e-12)


#: A parameter each detector takes any larger integer for (new_parameters adds 1 to it).
FIRST_PARAMETER = {"adwin": "clock", "ddm": "warm_start", "page_hinkley": "min_instances"}


def river_estimate(detector: Any) -> float:
    if isinstance(detector, drift.ADWIN):
        return float(detector.estimation)
    if isinstance(detector, drift.binary.DDM):
        return float(detector._p.get()) if detector._p.n else 0.0
    return float(detector._x_mean.get()) if detector._x_mean.n else 0.0


TestWatchMachine = WatchMachine.TestCase
TestWatchMachine.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, derandomize=True
)
