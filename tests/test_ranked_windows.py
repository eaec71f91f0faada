"""The drift worker's ranked windows (exporter.ranked_windows): strata's versions, when a window
is kept ranked and when it falls back, and drift results equal to the full computation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from exporter.config import load_settings
from exporter.drift_worker import DriftCache, DriftWorker, refresh
from exporter.ranked_windows import RankedWindows
from exporter.store import Store
from exporter.window import SampleWindow
from tests.conftest import FakeClock
from tests.test_drift_worker import Event

REFERENCES = [np.sort(np.random.default_rng(1).normal(size=500).round(2)) for _ in range(2)]


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, 3)).round(2)  # column 0 the prediction, then two features


def _all_rows(reservoirs: Any) -> np.ndarray:
    return np.concatenate([r for r in reservoirs.rows if r.shape[0]] or [np.empty((0, 3))])


def test_a_stratum_gets_a_new_version_whenever_its_rows_change() -> None:
    window = SampleWindow(60.0, 6, capacity=50, seed=0)
    rng = np.random.default_rng(0)
    window.add(np.full(5, 1.0), _rows(rng, 5), 1.0)
    first = window.snapshot(1.0).versions
    assert window.snapshot(1.0).versions == first  # nothing changed
    window.add(np.full(5, 2.0), _rows(rng, 5), 2.0)  # the same bucket takes more rows
    second = window.snapshot(2.0).versions
    assert len(second) == 1 and second != first
    window.add(np.full(5, 11.0), _rows(rng, 5), 11.0)  # a new bucket: the old one is untouched
    third = window.snapshot(11.0).versions
    assert third[0] == second[0] and third[1] not in second
    window.grow_features(4)  # widened rows are other rows
    assert not set(window.snapshot(11.0).versions) & set(third)
    for t in range(20, 60, 10):  # past the budget: older strata are thinned
        window.add(np.full(60, float(t)), np.column_stack([_rows(rng, 60), np.zeros(60)]), t)
    snapshot = window.snapshot(59.0)
    assert not snapshot.complete
    assert len(set(snapshot.versions)) == len(snapshot.versions)


def test_windows_are_kept_ranked_while_they_are_whole() -> None:
    ranked = RankedWindows()
    window = SampleWindow(60.0, 6, capacity=200, seed=0)
    rng = np.random.default_rng(2)
    key = ("m", "v", "1m")
    for t in range(0, 300, 5):  # two buckets a look come and go once the window is full
        window.add(np.full(3, float(t)), _rows(rng, 3), float(t))
        reservoirs = window.snapshot(float(t))
        view = ranked.ranked(key, reservoirs, [1, 2], REFERENCES, capacity=200)
        assert view is not None
        rows = _all_rows(reservoirs)
        for c, column in enumerate([1, 2]):
            values = np.sort(rows[:, column])
            assert view.values[c].tolist() == values.tolist()
            reference = REFERENCES[c]
            assert view.right[c].tolist() == np.searchsorted(reference, values, "right").tolist()
            assert view.left[c].tolist() == np.searchsorted(reference, values, "left").tolist()
    assert len(ranked) == 1


@pytest.mark.parametrize("why", ["sampled", "missing", "narrow", "no columns"])
def test_a_window_that_is_not_whole_falls_back(why: str) -> None:
    ranked = RankedWindows()
    window = SampleWindow(60.0, 6, capacity=10, seed=0)
    rng = np.random.default_rng(3)
    window.add(np.full(8, 1.0), _rows(rng, 8), 1.0)
    key = ("m", "v", "1m")
    assert ranked.ranked(key, window.snapshot(1.0), [1, 2], REFERENCES, capacity=10) is not None
    if why == "sampled":
        window.add(np.full(8, 2.0), _rows(rng, 8), 2.0)  # 16 events, a sample of 10 drawn
        capacity = 10
        columns = [1, 2]
    elif why == "missing":
        capacity, columns = 10, [1, 2]
    elif why == "narrow":
        capacity, columns = 10, [1, 3]  # a column the rows do not have yet
    else:
        capacity, columns = 10, []
    if why == "missing":
        window.add(np.full(1, 2.0), np.array([[1.0, 0.5, np.nan]]), 2.0)
    assert ranked.ranked(key, window.snapshot(2.0), columns, REFERENCES, capacity) is None
    assert len(ranked) == 0  # the entry is dropped: nothing stale is kept


def test_another_reference_starts_afresh() -> None:
    ranked = RankedWindows()
    window = SampleWindow(60.0, 6, capacity=100, seed=0)
    window.add(np.full(5, 1.0), _rows(np.random.default_rng(4), 5), 1.0)
    key = ("m", "v", "1m")
    first = ranked.ranked(key, window.snapshot(1.0), [1, 2], REFERENCES, capacity=100)
    other = [np.array([0.0]), np.array([0.0])]
    second = ranked.ranked(key, window.snapshot(1.0), [1, 2], other, capacity=100)
    assert first is not None and second is not None
    assert all(a is b for a, b in zip(second.references, other, strict=True))
    values = np.sort(_all_rows(window.snapshot(1.0))[:, 1:].T, axis=1)
    assert second.right.tolist() == (values >= 0.0).astype(int).tolist()  # against [0.0]

    ranked.keep({("m", "w")})
    assert len(ranked) == 0


def _store(clock: FakeClock, windows: list[str], **drift: Any) -> Store:
    settings = load_settings(
        windows=windows,
        window_buckets=10,
        drift={"min_samples": 5, "reference_size": 200, **drift},
    )
    return Store(settings, clock=clock)


def _events(rng: np.random.Generator, n: int, start: int, *, shift: float = 0.0) -> list[Event]:
    return [
        Event(
            id=f"e{start + i}",
            features={
                "x": round(float(rng.normal(shift, 1.0)), 1),  # ties within and across
                "y": float(rng.exponential()),
                "color": str(rng.choice(["red", "blue"])),
            },
            prediction=int(rng.integers(0, 2)),
            label=int(rng.integers(0, 2)),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("sample_size", [10_000, 150])
def test_worker_results_equal_the_full_computation(sample_size: int) -> None:
    """A store fed step by step, one worker keeping windows ranked and one not: every result
    is the same (scores compared whole: every statistic, p-value and verdict). With a sample
    smaller than a window, the ranked worker computes that one in full and still agrees."""
    clock = FakeClock()
    stores = [_store(clock, ["2m", "10m"], sample_size=sample_size) for _ in range(2)]
    ranked = RankedWindows()
    caches = [DriftCache(), DriftCache()]
    rng = np.random.default_rng(5)
    count = 0
    for step in range(40):
        batch = _events(rng, 20, count, shift=2.0 if step > 25 else 0.0)
        count += len(batch)
        for store in stores:
            store.add_predictions("m", "v1", batch)
        refresh(stores[0], caches[0], ranked=ranked)
        refresh(stores[1], caches[1])
        mine, theirs = caches[0].results("m"), caches[1].results("m")
        assert mine.keys() == theirs.keys()
        for key, result in theirs.items():
            assert mine[key].scores == result.scores, (step, key)
        clock.advance(30.0)
    drifted = caches[0].results("m")[("v1", "2m")].scores
    assert drifted.drifted > 0  # the shift was seen, so the verdicts were exercised
    # With samples of 150, the 10-minute window (400 events) is sampled: computed in full.
    assert len(ranked) == (2 if sample_size > 1000 else 1)


def test_backtest_worker_keeps_windows_ranked_and_forgets_removed_models() -> None:
    clock = FakeClock()
    store = _store(clock, ["2m"])
    worker = DriftWorker(store, distributions=False, keep_ranked=True)
    rng = np.random.default_rng(6)
    store.add_predictions("m", "v1", _events(rng, 300, 0))
    worker.run_once()
    assert worker.ranked is not None and len(worker.ranked) == 1
    store.delete("m")
    worker.run_once()
    assert len(worker.ranked) == 0
    assert DriftWorker(store).ranked is None  # serve keeps the memory instead


def test_an_update_that_fails_half_way_is_forgotten_and_rebuilt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exporter.stats.ranked import RankedColumns

    ranked = RankedWindows()
    window = SampleWindow(60.0, 6, capacity=500, seed=0)
    rng = np.random.default_rng(7)
    key = ("m", "v", "1m")
    remove = RankedColumns.remove
    failing = {"on": False}

    def flaky(self: RankedColumns, rows: np.ndarray) -> None:
        if failing["on"]:
            failing["on"] = False
            raise MemoryError("no room")
        remove(self, rows)

    monkeypatch.setattr(RankedColumns, "remove", flaky)
    for t in range(0, 200, 10):
        window.add(np.full(6, float(t)), _rows(rng, 6), float(t))
        reservoirs = window.snapshot(float(t))
        failing["on"] = t == 120  # the first buckets are leaving by then
        if t == 120:
            with pytest.raises(MemoryError):
                ranked.ranked(key, reservoirs, [1, 2], REFERENCES, capacity=500)
            assert len(ranked) == 0
            continue
        view = ranked.ranked(key, reservoirs, [1, 2], REFERENCES, capacity=500)
        assert view is not None
        assert view.values[0].tolist() == np.sort(_all_rows(reservoirs)[:, 1]).tolist()


def test_a_window_whose_reference_turns_rolling_is_forgotten() -> None:
    """The same (model, version, window) first with the first events as its reference, then
    (another store standing for the same window later) with a rolling reference: the entry
    kept for it goes, and none comes back while the reference rolls."""
    clock = FakeClock()
    fixed = _store(clock, ["2m"])
    rolling = _store(clock, ["2m"], reference="previous_window")
    ranked = RankedWindows()
    rng = np.random.default_rng(8)
    batch = _events(rng, 300, 0)
    fixed.add_predictions("m", "v1", batch)
    refresh(fixed, DriftCache(), ranked=ranked)
    assert len(ranked) == 1
    count = len(batch)
    for _ in range(6):
        batch = _events(rng, 30, count)
        count += len(batch)
        rolling.add_predictions("m", "v1", batch)
        refresh(rolling, DriftCache(), ranked=ranked)
        assert len(ranked) == 0
        clock.advance(30.0)


def test_ranked_columns_that_disagree_with_the_sample_are_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should a view ever hold another number of rows than the sample (a bug), the look is
    computed in full, logged, and the window's entry dropped."""
    clock = FakeClock()
    stores = [_store(clock, ["2m"]) for _ in range(2)]
    rng = np.random.default_rng(10)
    batch = _events(rng, 300, 0)
    for store in stores:
        store.add_predictions("m", "v1", batch)
    ranked = RankedWindows()
    genuine = RankedWindows.ranked

    def short(self: RankedWindows, *args: Any, **kwargs: Any) -> Any:
        view = genuine(self, *args, **kwargs)
        assert view is not None
        return type(view)(view.references, view.values[:, 1:], view.right[:, 1:], view.left[:, 1:])

    monkeypatch.setattr(RankedWindows, "ranked", short)
    caches = [DriftCache(), DriftCache()]
    refresh(stores[0], caches[0], ranked=ranked)
    refresh(stores[1], caches[1])
    assert (
        caches[0].results("m")[("v1", "2m")].scores == caches[1].results("m")[("v1", "2m")].scores
    )
    assert "disagree with its sample" in caplog.text
    assert len(ranked) == 0
