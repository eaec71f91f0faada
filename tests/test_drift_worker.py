"""The drift worker (exporter.drift_worker) on a real Store with a fake clock: what a refresh
computes and when, what the cache keeps and forgets, failures, and rolling references."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pytest
from scipy import stats

import exporter.drift_worker as drift_worker
from exporter.config import load_settings
from exporter.detector import DetectorSettings, DriftDetector, DriftScores
from exporter.drift_worker import DriftCache, DriftResult, DriftWorker, RefreshStats, refresh
from exporter.snapshot import DriftInput, DriftSnapshot, ModelSnapshot, VersionSnapshot
from exporter.stats.ranked import Ranked
from exporter.store import Store
from tests.conftest import FakeClock

WINDOWS = ["5m", "1h"]


@dataclass
class Event:
    """A prediction event (exporter.batch.PredictionEventLike)."""

    id: str
    features: dict[str, float | str | bool | None]
    prediction: int | float | str | bool
    timestamp: float | None = None
    label: int | float | str | bool | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass
class Label:
    """A late label (exporter.batch.LabelLike)."""

    id: str
    label: int | float | str | bool
    timestamp: float | None = None


class Feed:
    """Events with unique ids from one seeded generator: ``x`` numeric, ``color`` categorical,
    a binary prediction and (unless ``labelled=False``) an inline label."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def events(self, n: int, *, mu: float = 0.0, labelled: bool = True) -> list[Event]:
        out = []
        for _ in range(n):
            self.count += 1
            out.append(
                Event(
                    id=f"e{self.count}",
                    features={
                        "x": float(self.rng.normal(mu, 1.0)),
                        "color": str(self.rng.choice(["red", "green", "blue"])),
                    },
                    prediction=int(self.rng.integers(0, 2)),
                    label=int(self.rng.integers(0, 2)) if labelled else None,
                )
            )
        return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def feed() -> Feed:
    return Feed()


def make_store(clock: FakeClock, **overrides: Any) -> Store:
    drift = {"min_samples": 2, "reference_size": 5, **overrides.pop("drift", {})}
    settings = load_settings(drift=drift, windows=overrides.pop("windows", WINDOWS), **overrides)
    return Store(settings, clock=clock)


def serials(cache: DriftCache, model: str = "m") -> dict[tuple[str, str], int]:
    return {key: result.serial for key, result in cache.results(model).items()}


def fresh_compute(store: Store, model: str = "m") -> dict[tuple[str, str], DriftResult]:
    """Every window computed anew from a fresh snapshot (nothing known)."""
    state = store.get(model)
    now = store.clock()
    snapshot = state.drift_snapshot(now, {})
    return {
        (w.version, w.window): drift_worker.compute(snapshot, w, store.settings.drift, now, 0)
        for w in snapshot.windows
    }


def whole_window(reservoirs: Any, width: int) -> np.ndarray:
    """All rows a window holds (the sample is the whole window when sample_size is larger)."""
    parts = [r for r in reservoirs.rows if r.shape[0]]
    if not parts:
        return np.empty((0, width))
    out = np.full((sum(p.shape[0] for p in parts), width), np.nan)
    start = 0
    for part in parts:
        out[start : start + part.shape[0], : part.shape[1]] = part
        start += part.shape[0]
    return out


@pytest.fixture
def two_versions(clock: FakeClock, feed: Feed) -> Iterator[tuple[Store, DriftCache, Feed]]:
    """A store with versions v1 (40 events) and v2 (30 events) of model ``m``, refreshed once."""
    store = make_store(clock)
    store.add_predictions("m", "v1", feed.events(40))
    store.add_predictions("m", "v2", feed.events(30, mu=1.0))
    cache = DriftCache()
    first = refresh(store, cache)
    assert (first.computed, first.failed) == (4, 0)
    yield store, cache, feed


# -- what a refresh computes ---------------------------------------------------------------------


def test_refresh_computes_one_result_per_version_and_window(clock: FakeClock, feed: Feed) -> None:
    """One result per (version, window), equal to compute() and to a DriftDetector on the same
    snapshot, and to SciPy's KS between the first events (the reference) and the window."""
    store = make_store(clock)
    v1, v2 = feed.events(40), feed.events(30, mu=1.0)
    store.add_predictions("m", "v1", v1)
    store.add_predictions("m", "v2", v2)
    cache = DriftCache()
    stats_ = refresh(store, cache)

    assert isinstance(stats_, RefreshStats)
    assert (stats_.computed, stats_.failed) == (4, 0) and stats_.seconds >= 0
    results = cache.results("m")
    assert set(results) == {(v, w) for v in ("v1", "v2") for w in WINDOWS}
    assert set(cache.known("m")) == set(results)
    assert len({r.serial for r in results.values()}) == 4

    expected = fresh_compute(store)
    state = store.get("m")
    snapshot = state.drift_snapshot(clock(), {})
    settings = store.settings.drift
    for w in snapshot.windows:
        result = results[(w.version, w.window)]
        assert result.scores == expected[(w.version, w.window)].scores
        width = len(snapshot.layout.names) + 1
        detector = DriftDetector(
            w.reference,
            snapshot.layout,
            DetectorSettings.of(settings),
            label_reference=w.label_reference,
        )
        rows, labels = whole_window(w.rows, width), whole_window(w.labels, 1)[:, 0]
        assert result.scores == detector.score(rows, labels)
        events = v1 if w.version == "v1" else v2
        assert (result.window_events, result.window_sample) == (len(events), len(events))
        assert result.label_sample == len(events)
        assert (result.reference_source, result.computed_at) == ("first_events", clock())
        x = result.scores.features["x"]
        values = np.array([e.features["x"] for e in events])
        ks = stats.ks_2samp(values[:5], values, method="asymp")  # reference_size 5
        assert x.numeric is not None and x.numeric.ks_statistic == ks.statistic
        assert x.reference_values == 5 and result.scores.features["color"].categorical is not None
        assert result.scores.predictions is not None and result.scores.labels is not None


def test_second_refresh_with_nothing_changed_computes_nothing(
    two_versions: tuple[Store, DriftCache, Feed],
) -> None:
    """Nothing new: no computation, the same results and serials."""
    store, cache, _ = two_versions
    before = cache.results("m")
    again = refresh(store, cache)
    assert (again.computed, again.failed) == (0, 0)
    after = cache.results("m")
    assert serials(cache) == {key: r.serial for key, r in before.items()}
    assert all(after[key] is before[key] for key in before)


def test_new_events_recompute_only_their_version(
    two_versions: tuple[Store, DriftCache, Feed],
) -> None:
    """Events for v1 recompute v1's windows, with new serials; v2's stay as they were."""
    store, cache, feed = two_versions
    before = serials(cache)
    store.add_predictions("m", "v1", feed.events(10))
    stats_ = refresh(store, cache)
    assert stats_.computed == 2
    after = serials(cache)
    for window in WINDOWS:
        assert after[("v2", window)] == before[("v2", window)]
        assert after[("v1", window)] > max(before.values())
    assert {r.window_events for k, r in cache.results("m").items() if k[0] == "v1"} == {50}


def test_labels_recompute_their_version(two_versions: tuple[Store, DriftCache, Feed]) -> None:
    """A late label changes its version's label sample: that version is recomputed."""
    store, cache, feed = two_versions
    unlabelled = feed.events(5, labelled=False)
    store.add_predictions("m", "v2", unlabelled)
    assert refresh(store, cache).computed == 2
    before = serials(cache)
    store.add_labels("m", [Label(e.id, 1) for e in unlabelled])
    assert refresh(store, cache).computed == 2
    after = serials(cache)
    assert all(after[("v1", w)] == before[("v1", w)] for w in WINDOWS)
    assert all(after[("v2", w)] != before[("v2", w)] for w in WINDOWS)
    assert {r.label_sample for k, r in cache.results("m").items() if k[0] == "v2"} == {35}


def test_force_recomputes_everything(two_versions: tuple[Store, DriftCache, Feed]) -> None:
    """``force=True`` recomputes every window, with new serials and (same input, same seed)
    the same scores."""
    store, cache, _ = two_versions
    before = cache.results("m")
    forced = refresh(store, cache, force=True)
    assert (forced.computed, forced.failed) == (4, 0)
    after = cache.results("m")
    assert set(after) == set(before)
    for key, result in after.items():
        assert result.serial > max(r.serial for r in before.values())
        assert result.scores == before[key].scores
    assert refresh(store, cache).computed == 0


def test_a_window_whose_events_leave_is_recomputed(
    two_versions: tuple[Store, DriftCache, Feed], clock: FakeClock
) -> None:
    """When the events leave the 5m window (but not the 1h one), only 5m windows recompute."""
    store, cache, _ = two_versions
    before = serials(cache)
    clock.advance(6 * 60)
    assert refresh(store, cache).computed == 2
    after, results = serials(cache), cache.results("m")
    for version in ("v1", "v2"):
        assert after[(version, "1h")] == before[(version, "1h")]
        assert after[(version, "5m")] != before[(version, "5m")]
        assert results[(version, "5m")].window_events == 0
        assert results[(version, "5m")].scores.features == {}


# -- what the cache forgets ----------------------------------------------------------------------


def test_replaced_version_disappears_after_the_next_refresh(clock: FakeClock, feed: Feed) -> None:
    """With one version allowed, an idle v1 (longer than the longest window, nothing pending)
    is replaced by v2; the next refresh forgets v1's results."""
    store = make_store(clock, limits={"max_versions_per_model": 1})
    store.add_predictions("m", "v1", feed.events(20))  # inline labels: nothing pending
    cache = DriftCache()
    refresh(store, cache)
    assert {v for v, _ in cache.results("m")} == {"v1"}

    clock.advance(3600 + 60)
    store.add_predictions("m", "v2", feed.events(20))
    assert [v.name for v in store.get("m").versions] == ["v2"]
    assert {v for v, _ in cache.results("m")} == {"v1"}  # until the next refresh
    stats_ = refresh(store, cache)
    assert stats_.computed == 2
    assert set(cache.results("m")) == {("v2", w) for w in WINDOWS}
    assert set(cache.known("m")) == {("v2", w) for w in WINDOWS}


def test_replaced_version_of_the_same_name_is_recomputed(clock: FakeClock, feed: Feed) -> None:
    """A version replaced by a new one of the same name never keeps the old one's results."""
    store = make_store(clock, limits={"max_versions_per_model": 1})
    store.add_predictions("m", "v1", feed.events(20))
    cache = DriftCache()
    refresh(store, cache)
    clock.advance(3600 + 60)
    store.add_predictions("m", "v2", feed.events(20))
    refresh(store, cache)
    clock.advance(3600 + 60)
    store.add_predictions("m", "v1", feed.events(7, mu=3.0))
    assert refresh(store, cache).computed == 2
    assert {r.window_events for r in cache.results("m").values()} == {7}


def test_removed_model_disappears(clock: FakeClock, feed: Feed) -> None:
    """A model no longer in the store (a fresh store) loses its results; others are kept."""
    first = make_store(clock)
    first.add_predictions("m", "v1", feed.events(10))
    cache = DriftCache()
    refresh(first, cache)
    assert cache.results("m")

    second = make_store(clock)
    second.add_predictions("n", "v1", feed.events(10))
    assert refresh(second, cache).computed == 2
    assert cache.results("m") == {} and cache.known("m") == {}
    assert set(cache.results("n")) == {("v1", w) for w in WINDOWS}


def test_results_are_never_written_into_the_store(
    two_versions: tuple[Store, DriftCache, Feed],
) -> None:
    """A refresh changes nothing the store holds: revisions and snapshot keys stay, and no
    drift result or score is reachable from the model, its versions or their snapshots."""
    store, cache, _ = two_versions
    state = store.get("m")
    now = store.clock()
    revisions = (state.revision, [v.samples_revision for v in state.versions])
    key = state.snapshot(now).key
    refresh(store, cache, force=True)

    assert (state.revision, [v.samples_revision for v in state.versions]) == revisions
    assert state.snapshot(now).key == key
    for cls in (ModelSnapshot, VersionSnapshot):
        assert not [f.name for f in fields(cls) if "drift" in f.name]
    drift_types = (DriftResult, DriftScores, DriftCache)
    for obj in (state, *state.versions):
        for name, value in vars(obj).items():
            assert "drift" not in name
            values = value.values() if isinstance(value, dict) else [value]
            assert not any(isinstance(v, drift_types) for v in values), name


def test_results_and_known_return_copies(two_versions: tuple[Store, DriftCache, Feed]) -> None:
    """Mutating what ``results()`` / ``known()`` return leaves the cache as it was."""
    store, cache, _ = two_versions
    results, known = cache.results("m"), cache.known("m")
    expected = dict(results)
    results.clear()
    known[("v1", "5m")] = (0, 0, 0)
    del known[("v2", "1h")]
    assert cache.results("m") == expected
    assert set(cache.known("m")) == set(expected)
    assert refresh(store, cache).computed == 0  # the cache's own keys are intact


def test_cache_keep_keep_models_and_serials() -> None:
    """``keep`` forgets versions of one model, ``keep_models`` whole models; serials are
    unique and increasing."""
    cache = DriftCache()
    serial = [cache.next_serial() for _ in range(3)]
    assert serial == sorted(set(serial))

    def result(s: int) -> DriftResult:
        return DriftResult(0.0, s, 1, 1, 0, None, DriftScores("bh", 0.05, 0.05))

    for model in ("a", "b"):
        for version in ("v1", "v2"):
            cache.put(model, (version, "5m"), (1, 2, 3), result(cache.next_serial()), 0)
    cache.keep("a", ["v2"])
    assert set(cache.results("a")) == {("v2", "5m")}
    assert set(cache.results("b")) == {("v1", "5m"), ("v2", "5m")}
    assert cache.known("a") == {("v2", "5m"): (1, 2, 3)}
    cache.keep_models(["b", "c"], cache.ticket())
    assert cache.results("a") == {} and len(cache.results("b")) == 2
    assert cache.results("never") == {} and cache.known("never") == {}


# -- failures ------------------------------------------------------------------------------------


def test_failing_window_is_counted_logged_and_retried(
    two_versions: tuple[Store, DriftCache, Feed],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A computation that raises (v2 here) is counted and logged with its traceback; the
    other windows are computed; the failed ones are retried by the next run."""
    store, _, _ = two_versions
    cache = DriftCache()
    real = drift_worker.compute

    def compute(snapshot: DriftSnapshot, window: DriftInput, *args: Any, **kw: Any) -> Any:
        if window.version == "v2":
            raise RuntimeError("boom")
        return real(snapshot, window, *args, **kw)

    monkeypatch.setattr(drift_worker, "compute", compute)
    with caplog.at_level(logging.ERROR, logger="exporter.drift"):
        failing = refresh(store, cache)
    assert (failing.computed, failing.failed) == (2, 2)
    assert set(cache.results("m")) == {("v1", w) for w in WINDOWS}
    messages = [r for r in caplog.records if r.name == "exporter.drift"]
    assert sorted(r.getMessage() for r in messages) == sorted(
        f"drift computation failed for model=m version=v2 window={w}" for w in WINDOWS
    )
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in messages)

    monkeypatch.setattr(drift_worker, "compute", real)
    v1 = serials(cache)
    retried = refresh(store, cache)
    assert (retried.computed, retried.failed) == (2, 0)
    assert {k: s for k, s in serials(cache).items() if k[0] == "v1"} == v1
    fresh = fresh_compute(store)
    assert all(cache.results("m")[k].scores == fresh[k].scores for k in fresh)


def test_failing_detector_is_counted(
    clock: FakeClock, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception inside the detector fails only the windows it is raised for."""
    store = make_store(clock)
    store.add_predictions("m", "v1", feed.events(20))
    real = drift_worker.DriftDetector

    class Flaky(real):  # the first window scored fails
        def score(
            self,
            rows: np.ndarray,
            labels: np.ndarray | None = None,
            *,
            previous: DriftScores | None = None,
            ranked: Ranked | None = None,
        ) -> DriftScores:
            if flaky["on"]:
                flaky["on"] = False
                raise ValueError("detector failed")
            return super().score(rows, labels, previous=previous, ranked=ranked)

    flaky = {"on": True}
    monkeypatch.setattr(drift_worker, "DriftDetector", Flaky)
    cache = DriftCache()
    first = refresh(store, cache)
    assert (first.computed, first.failed) == (1, 1)
    second = refresh(store, cache)
    assert (second.computed, second.failed) == (1, 0)
    assert set(cache.results("m")) == {("v1", w) for w in WINDOWS}


# -- rolling reference ---------------------------------------------------------------------------


def rolling_store(clock: FakeClock, **overrides: Any) -> Store:
    return make_store(clock, drift={"reference": "previous_window"}, windows=["5m"], **overrides)


def test_rolling_reference_is_the_previous_window(clock: FakeClock, feed: Feed) -> None:
    """``reference: previous_window``: untested while the previous window is empty, then
    tested against it (SciPy's KS between the two windows' values)."""
    store = rolling_store(clock)
    before = feed.events(40)
    store.add_predictions("m", "v1", before)
    cache = DriftCache()
    refresh(store, cache)
    [first] = cache.results("m").values()
    assert first.reference_source == "previous_window"
    x = first.scores.features["x"]
    assert (x.numeric, x.drifted, x.reference_values, x.window_values) == (None, None, 0, 40)
    assert first.scores.labels is None and first.scores.predictions is None

    clock.advance(300)  # the first events are now the previous window
    after = feed.events(30, mu=2.0)
    store.add_predictions("m", "v1", after)
    assert refresh(store, cache).computed == 1
    [second] = cache.results("m").values()
    assert second.reference_source == "previous_window" and second.window_events == 30
    x = second.scores.features["x"]
    ks = stats.ks_2samp(
        [e.features["x"] for e in before], [e.features["x"] for e in after], method="asymp"
    )
    assert x.numeric is not None and x.numeric.ks_statistic == ks.statistic
    assert x.numeric.ks_pvalue == pytest.approx(ks.pvalue, rel=1e-9, abs=0)
    assert (x.reference_values, x.drifted) == (40, True)
    assert second.scores.labels is not None
    assert second.scores.labels.categorical.reference_values == 40
    assert second.scores.predictions.categorical.reference_values == 40


def test_rolling_reference_is_recomputed_when_the_previous_window_changes(
    clock: FakeClock, feed: Feed
) -> None:
    """Events leaving the previous window change the reference: the result must follow."""
    store = rolling_store(clock, window_buckets=2)  # 150 s buckets; T0 starts one
    store.add_predictions("m", "v1", feed.events(30, mu=5.0))  # bucket 0
    clock.advance(150)
    store.add_predictions("m", "v1", feed.events(30))  # bucket 1
    clock.advance(300)
    store.add_predictions("m", "v1", feed.events(30))  # bucket 3: previous window = 0, 1
    cache = DriftCache()
    refresh(store, cache)
    assert cache.results("m")[("v1", "5m")].scores.features["x"].reference_values == 60

    clock.advance(150)  # previous window = buckets 1, 2; current still holds bucket 3 only
    refresh(store, cache)
    fresh = fresh_compute(store)[("v1", "5m")]
    assert fresh.scores.features["x"].reference_values == 30
    assert cache.results("m")[("v1", "5m")].scores == fresh.scores


# -- the worker ----------------------------------------------------------------------------------


def test_worker_run_once_refreshes_its_cache(clock: FakeClock, feed: Feed) -> None:
    """``run_once`` refreshes the worker's cache through its thread pool (drift.threads 2),
    with the results of a plain refresh, and tells its observer."""
    store = make_store(clock)
    store.add_predictions("m", "v1", feed.events(40))
    store.add_predictions("m", "v2", feed.events(25, mu=0.5))
    runs: list[tuple[int, int, float]] = []
    worker = DriftWorker(store, on_run=lambda c, f, s: runs.append((c, f, s)))
    try:
        assert worker._pool is not None  # drift.threads defaults to 2
        stats_ = worker.run_once()
        assert (stats_.computed, stats_.failed) == (4, 0)
        assert [(c, f) for c, f, _ in runs] == [(4, 0)] and runs[0][2] == stats_.seconds
        plain = DriftCache()
        refresh(store, plain)
        mine = worker.cache.results("m")
        assert set(mine) == set(plain.results("m"))
        assert all(mine[k].scores == r.scores for k, r in plain.results("m").items())

        assert worker.run_once().computed == 0
        assert worker.run_once(force=True).computed == 4
        assert [(c, f) for c, f, _ in runs] == [(4, 0), (0, 0), (4, 0)]
        assert not worker.alive
    finally:
        worker.stop()


def test_worker_without_pool_when_single_threaded(clock: FakeClock, feed: Feed) -> None:
    """``drift.threads: 1``: no pool, same results."""
    store = make_store(clock, drift={"threads": 1})
    store.add_predictions("m", "v1", feed.events(30))
    worker = DriftWorker(store)
    try:
        assert worker._pool is None
        assert worker.run_once().computed == 2
        fresh = fresh_compute(store)
        assert all(worker.cache.results("m")[k].scores == r.scores for k, r in fresh.items())
    finally:
        worker.stop()


def test_each_computation_gets_its_windows_previous_verdict(
    clock: FakeClock, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hysteresis needs the window's last verdict: the worker passes its cached result's
    scores for the same (version, window), and nothing on a window's first computation."""
    store = make_store(clock)
    store.add_predictions("m", "v1", feed.events(20))
    real = drift_worker.DriftDetector
    seen: list[DriftScores | None] = []

    class Recording(real):
        def score(
            self,
            rows: np.ndarray,
            labels: np.ndarray | None = None,
            *,
            previous: DriftScores | None = None,
            ranked: Ranked | None = None,
        ) -> DriftScores:
            seen.append(previous)
            return super().score(rows, labels, previous=previous, ranked=ranked)

    monkeypatch.setattr(drift_worker, "DriftDetector", Recording)
    cache = DriftCache()
    refresh(store, cache)
    assert seen == [None] * len(WINDOWS)
    first = {key: r.scores for key, r in cache.results("m").items()}
    seen.clear()
    clock.advance(1)
    store.add_predictions("m", "v1", feed.events(5))
    refresh(store, cache)
    assert len(seen) == len(WINDOWS)
    assert all(any(p is s for s in first.values()) for p in seen)
    assert {id(p) for p in seen} == {id(s) for s in first.values()}
