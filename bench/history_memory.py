"""The history of summary values (exporter.history): the memory it holds, and what recording
costs next to the drift worker run it follows.

    .venv/bin/python -m bench.history_memory [--models 10] [--versions 3] [--events 2000]
                                             [--repeats 15]

Memory, measured with ``tracemalloc`` (every allocation the History keeps: rings, keys,
labels, dicts), at the defaults (``history.resolution`` 1 minute, ``history.retention`` 24 h:
1,440 points a series):

* one model with every series it can have (:func:`~exporter.history_recorder.series_bound`,
  the names and labels the recorder gives them), recorded once;
* the worst case at the default limits: ``limits.max_models`` such models, every ring filled
  by one recording per slot over the whole retention; divided by the series, what a series
  costs. The module's docstring claims 8 x points bytes (11,520) plus about 200 bytes of
  bookkeeping a series.

Cost: ``--models`` models x ``--versions`` versions (10 numeric features, ``--events``
predictions a version, labelled, scored) in a real Store. Each repeat posts a small batch to
every version (so every model changed, as under traffic), then times one drift worker run
(``DriftWorker.run_once`` without the recorder: expiry, the changed windows' drift, the
sequential look) and one ``HistoryRecorder.record`` on the same store; the ratio is what the
history adds to each run. Also timed: a recording when nothing changed in the next slot (no
snapshot copied) and in the same slot (nothing recorded).

Every figure is from this one process; absolute times move 30-50 % between runs on a shared
machine, the ratios less.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from exporter.config import Settings
from exporter.drift_worker import DriftWorker
from exporter.history import History, Labels, Row
from exporter.history_recorder import (
    AVERAGES,
    SERIES,
    HistoryRecorder,
    build_history,
    series_bound,
)
from exporter.runtime import tune_malloc
from exporter.store import Store

T0 = 1_800_000_000.0
CLAIM_BOOKKEEPING = 200  # bytes a series beyond its ring, as exporter/history.py says


Value = float | str | bool | None


@dataclass
class _Event:
    """A prediction event (exporter.batch.PredictionEventLike)."""

    id: str
    features: dict[str, Value]
    prediction: int | float | str | bool
    timestamp: float | datetime | None = None
    label: int | float | str | bool | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


def event(ident: str, rng: np.random.Generator) -> _Event:
    """A labelled, scored event of 10 numeric features."""
    features: dict[str, Value] = {f"f{j}": float(x) for j, x in enumerate(rng.normal(size=10))}
    return _Event(
        ident,
        features,
        int(rng.integers(2)),
        label=int(rng.integers(2)),
        score=float(rng.random()),
    )


def held(build: Callable[[], Any]) -> tuple[Any, int, int]:
    """What ``build()`` returns, the bytes still allocated after it (what the result holds),
    and the peak while it ran."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, current - before, peak - before


def every_key(settings: Settings) -> list[tuple[str, Labels]]:
    """Every series key one model can have at ``settings``: all versions, windows, averages."""
    keys: list[tuple[str, Labels]] = []
    for v in range(settings.limits.max_versions_per_model):
        version: Labels = (("model_version", f"v{v}"),)
        for s in SERIES:
            if s.scope == "window":
                for window in settings.window_labels:
                    key: Labels = (*version, ("window", window))
                    if s.averaged:
                        keys.extend((s.name, (*key, ("average", a))) for a in AVERAGES)
                    else:
                        keys.append((s.name, key))
            elif s.scope == "version":
                keys.append((s.name, version))
    keys.extend((s.name, ()) for s in SERIES if s.scope == "model")
    return keys


def one_model(settings: Settings) -> tuple[int, int]:
    """(series, bytes held) of one model with every series it can have, recorded once."""

    def build() -> History:
        h = build_history(settings)
        h.record("model-0", T0, [(name, labels, 0.5) for name, labels in every_key(settings)])
        return h

    h, grown, _ = held(build)
    return h.series_count(), grown


def worst_case(settings: Settings) -> tuple[int, int, int, float]:
    """(series, bytes held, peak bytes, seconds) of max_models x series_bound series, every
    ring full: one recording per model per slot for the whole retention. The keys are built
    in the measure, afresh for each model (as the recorder's rows are), so their tuples and
    version names count; a later recording's equal keys are not kept."""
    models = [f"model-{m}" for m in range(settings.limits.max_models)]
    points = settings.history.points
    resolution = settings.history.resolution
    values = np.random.default_rng(0).random(series_bound(settings)).tolist()
    started = time.perf_counter()

    def build() -> History:
        h = build_history(settings)
        for model in models:
            keys = every_key(settings)
            assert len(keys) == series_bound(settings), (len(keys), series_bound(settings))
            rows: list[Row] = [(n, labels, x) for (n, labels), x in zip(keys, values, strict=True)]
            h.record(model, T0, rows)
        later: list[Row] = [  # equal keys, new tuples: as a later recording's rows
            (n, labels, x) for (n, labels), x in zip(every_key(settings), values, strict=True)
        ]
        for slot in range(1, points):
            t = T0 + slot * resolution
            for model in models:
                h.record(model, t, later)
        return h

    h, grown, peak = held(build)
    seconds = time.perf_counter() - started
    series = h.series_count()
    assert series == len(models) * series_bound(settings) and h.refused.series == 0
    full = h.read(models[0])
    assert len(full) == series_bound(settings)
    assert all(s.times.size == points for s in full), "every ring is full"
    return series, grown, peak, seconds


class Clock:
    """The store's clock, moved by the benchmark."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def fill(
    settings: Settings, models: int, versions: int, events: int, seed: int = 0
) -> tuple[Store, Clock]:
    clock = Clock()
    store = Store(settings, clock=clock)
    rng = np.random.default_rng(seed)
    for m in range(models):
        for v in range(versions):
            batch = [event(f"m{m}v{v}e{i}", rng) for i in range(events)]
            store.add_predictions(f"model-{m}", f"v{v}", batch)
    return store, clock


def costs(
    settings: Settings, models: int, versions: int, events: int, repeats: int
) -> dict[str, float]:
    """Median seconds of a drift worker run and of recordings, as described in the module."""
    store, clock = fill(settings, models, versions, events)
    worker = DriftWorker(store)  # no recorder after its runs: timed apart
    recorder = HistoryRecorder(store, worker.cache, build_history(settings))
    rng = np.random.default_rng(1)
    worker.run_once()
    recorder.record()
    runs: list[float] = []
    changed: list[float] = []
    idle_next: list[float] = []
    idle_same: list[float] = []
    serial = 0
    try:
        for _ in range(repeats):
            clock.now += settings.history.resolution  # the next slot
            for m in range(models):
                for v in range(versions):
                    serial += 1
                    batch = [event(f"new{serial}e{i}", rng) for i in range(20)]
                    store.add_predictions(f"model-{m}", f"v{v}", batch)
            runs.append(timed(worker.run_once))
            changed.append(timed(recorder.record))
            clock.now += settings.history.resolution
            idle_next.append(timed(recorder.record))
            clock.now += 1.0
            idle_same.append(timed(recorder.record))
    finally:
        worker.stop()
    assert recorder.history.series_count() > 0
    return {
        "drift worker run": statistics.median(runs),
        "record, every model changed": statistics.median(changed),
        "record, idle, next slot": statistics.median(idle_next),
        "record, idle, same slot": statistics.median(idle_same),
        "series": float(recorder.history.series_count()),
    }


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--versions", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    tune_malloc()  # as model-exporter serve does (exporter/runtime.py)
    settings = Settings()
    points = settings.history.points
    ring = 8 * points
    claim = ring + CLAIM_BOOKKEEPING

    print(
        f"history at the defaults: resolution {settings.history.resolution:g} s, "
        f"retention {settings.history.retention:g} s = {points:,} points a series"
    )
    per_model, model_bytes = one_model(settings)
    series, grown, peak, seconds = worst_case(settings)
    bound = series_bound(settings)
    one = round(grown / series)
    rows = [
        (f"one model: {per_model} series", model_bytes, per_model * claim),
        (
            f"worst case: {settings.limits.max_models} models x {bound} = {series:,} series, full",
            grown,
            series * claim,
        ),
        ("  a series", one, claim),
        ("  a series beyond its ring (8 x points)", one - ring, CLAIM_BOOKKEEPING),
    ]
    print()
    print(f"{'memory (bytes)':<56}{'measured':>12}{'claimed':>12}{'ratio':>8}")
    for name, measured, claimed in rows:
        print(f"{name:<56}{measured:>12,}{claimed:>12,}{measured / claimed:>8.3f}")
    print(
        f"  worst case: {grown / 2**20:.2f} MiB held (peak {peak / 2**20:.2f} MiB while filling, "
        f"by {points:,} x {settings.limits.max_models} recordings of {bound} rows in "
        f"{seconds:.1f} s: {seconds / (points * settings.limits.max_models) * 1e6:.0f} us each)"
    )

    print()
    figures = costs(settings, args.models, args.versions, args.events, args.repeats)
    run = figures["drift worker run"]
    print(
        f"cost: {args.models} models x {args.versions} versions, 10 features, "
        f"{args.events:,} events a version, {int(figures['series']):,} series recorded; "
        f"median of {args.repeats}"
    )
    print(f"{'':<40}{'ms':>10}{'x drift run':>14}")
    for name in (
        "drift worker run",
        "record, every model changed",
        "record, idle, next slot",
        "record, idle, same slot",
    ):
        print(f"{name:<40}{figures[name] * 1e3:>10.2f}{figures[name] / run:>14.4f}")


if __name__ == "__main__":
    main()
