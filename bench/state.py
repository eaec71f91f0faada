"""Snapshot and restore of the state (exporter.persistence), in process: duration, size, and
what a snapshot costs the scrapes that run meanwhile.

    .venv/bin/python -m bench.state [--models 10] [--features 20] [--events 20000]
                                    [--join 100000] [--seconds 30]

Two parts:

* many models: ``--models`` models of ``--features`` features, filled through the store's own
  API (no HTTP) with ``--events`` predictions each (ids unique, half of them labelled, so the
  join holds the other half); times a snapshot (copy under the locks, encoding, atomic write)
  and a restore into a fresh app; the copy under each model's lock is timed apart (it is what
  ingest and scrapes can wait for);
* a full join (``--join`` 0 skips it): the model of ``bench/soak.py`` (10 features, unique
  ids, half labelled) fed until ``--join`` predictions wait for their label and as many joined
  ids are remembered (``join.max_pending_predictions`` set to it). It times the copy under the
  model's lock, the snapshot and its parts, and how long the snapshot holds the GIL: a probe
  thread spins meanwhile, and every gap in its progress (> 0.5 ms) is time another thread held
  the interpreter; the longest gap is the longest single hold (a thread that runs Python code
  gives the GIL up every switch interval, 5 ms, when another waits). Then renders of
  ``/metrics`` (the exposition, gzip level 1, as a gzip scrape) every 25 ms for ``--seconds``
  while a thread ingests at bench/soak.py's rate, without snapshots, then with one every
  0.4 s in a third thread; the renders that overlapped a snapshot are reported apart.

Every figure is measured in this one process, so that the ratios compare; absolute times move
30-50 % between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from exporter.app import create_app
from exporter.config import load_settings
from exporter.persist import fileformat
from exporter.persist.files import write_atomic

#: A gap longer than this in the probe's progress is counted as the GIL held elsewhere.
GAP = 0.0005


@dataclass
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass
class Label:
    id: str
    label: Any
    timestamp: float | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--join", type=int, default=100_000, help="waiting predictions; 0: skip")
    parser.add_argument("--seconds", type=float, default=30.0, help="of renders, per case")
    args = parser.parse_args()
    many_models(args)
    if args.join:
        full_join(args.join, args.seconds)


# -- many models ----------------------------------------------------------------------------------


def many_models(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-state-"))
    settings = load_settings(None, state={"path": str(folder)})
    app = create_app(settings, drift_worker=False)
    store = app.state.store
    rng = np.random.default_rng(0)
    names = [f"f{j}" for j in range(args.features)]
    for m in range(args.models):
        for start in range(0, args.events, args.batch):
            values = rng.normal(size=(args.batch, args.features)).tolist()
            ids = [f"{m}-{start + i}" for i in range(args.batch)]
            store.add_predictions(
                f"model{m}",
                None,
                [
                    Event(i, dict(zip(names, row, strict=True)), k % 2)
                    for k, (i, row) in enumerate(zip(ids, values, strict=True))
                ],
            )
            store.add_labels(f"model{m}", [Label(i, 1) for i in ids[: args.batch // 2]])
    keeper = app.state.state_keeper
    copies = []
    for state in store.models():
        t = time.perf_counter()
        state.to_state()
        copies.append(time.perf_counter() - t)
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        assert keeper.save(clean=True)
        runs.append(time.perf_counter() - t)
    size = keeper.path.stat().st_size
    t = time.perf_counter()
    again = create_app(settings, drift_worker=False)
    restore = time.perf_counter() - t
    assert len(again.state.store.models()) == args.models
    print(
        f"{args.models} models x {args.features} features x {args.events} events: "
        f"snapshot {size / 2**20:.2f} MiB in {min(runs) * 1000:.0f} ms (best of 3; "
        f"longest copy under one model's lock {max(copies) * 1000:.1f} ms); "
        f"restore (create_app included) {restore * 1000:.0f} ms"
    )


# -- a full join ----------------------------------------------------------------------------------


class Feeder:
    """Batches for the soak's model: unique ids, 10 numeric features, labels for half."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rng = np.random.default_rng(1)
        self.serial = itertools.count()

    def batch(self, size: int) -> None:
        n = next(self.serial)
        ids = [f"s-{n}-{i}" for i in range(size)]
        predicted = self.rng.integers(0, 2, size).tolist()
        values = self.rng.normal(size=(size, 10)).round(4).tolist()
        self.store.add_predictions(
            "soak",
            None,
            [
                Event(i, {f"f{j}": v for j, v in enumerate(row)}, p)
                for i, p, row in zip(ids, predicted, values, strict=True)
            ],
        )
        half = size // 2
        self.store.add_labels(
            "soak", [Label(i, y) for i, y in zip(ids[:half], predicted[:half], strict=True)]
        )


def full_join(pending: int, seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-state-join-"))
    settings = load_settings(
        None, state={"path": str(folder)}, join={"max_pending_predictions": pending}
    )
    app = create_app(settings, drift_worker=False)
    store, keeper = app.state.store, app.state.state_keeper
    feeder = Feeder(store)
    for _ in range(-(-pending * 5 // 2 // 1000)):  # both buffers full, and turned over
        feeder.batch(1000)
    (model,) = store.models()
    counts = {name: len(getattr(model.join, f"_{name}")) for name in ("pending", "joined")}
    print(
        f"\nfull join, 1 model x 10 features (bench/soak.py's): {counts['pending']:,} predictions "
        f"waiting, {counts['joined']:,} joined ids remembered"
    )
    lock = best(model.to_state)
    print(f"  copy under the model's lock (ModelState.to_state): {lock * 1e3:.1f} ms (best of 5)")
    phases(store, app, keeper)
    walls, cpus = [], []
    for _ in range(5):
        t, c = time.perf_counter(), time.thread_time()
        assert keeper.save(clean=False)
        walls.append(time.perf_counter() - t)
        cpus.append(time.thread_time() - c)
    print(
        f"  snapshot (StateKeeper.save): {statistics.median(walls) * 1e3:.0f} ms wall, "
        f"{statistics.median(cpus) * 1e3:.0f} ms CPU of its thread (median of 5), "
        f"{keeper.path.stat().st_size / 2**20:.2f} MiB"
    )
    held = [gil_held(lambda: keeper.save(clean=False)) for _ in range(5)]
    total, longest, wall = (statistics.median(h[i] for h in held) for i in range(3))
    print(
        f"  GIL held by the snapshot (spinning probe thread): {total * 1e3:.0f} ms of "
        f"{wall * 1e3:.0f} ms; longest single hold {longest * 1e3:.1f} ms (medians of 5)"
    )
    render = renderer(app)
    _, alone = timed_renders(render, feeder, seconds, None)
    overlapping, others = timed_renders(render, feeder, seconds, lambda: keeper.save(clean=False))
    print(f"  /metrics renders under ingest, no snapshots:  {summary(alone)}")
    print(f"  with a snapshot every 0.4 s, overlapping one:  {summary(overlapping)}")
    print(f"                               the others:       {summary(others)}")
    t = time.perf_counter()
    again = create_app(settings, drift_worker=False)
    restored = time.perf_counter() - t
    (back,) = again.state.store.models()
    assert len(back.join._pending) == len(model.join._pending)  # the last snapshot's
    print(f"  restore (create_app included): {restored * 1e3:.0f} ms")


def phases(store: Any, app: Any, keeper: Any) -> None:
    """The snapshot's parts, one after the other, each timed (best of 3)."""
    hook = getattr(fileformat, "_rows", None)  # encodes Rows a slice per call (if any)

    def state() -> dict[str, Any]:  # as StateKeeper.save takes it
        return {
            "store": store.to_state(),
            "telemetry": app.state.telemetry.to_state(),
            "sequential": keeper._tracker.to_state(),
        }

    copy = best(state, 3)
    taken = state()
    encode = best(lambda: msgspec.msgpack.encode(taken, enc_hook=hook), 3)
    raw = msgspec.msgpack.encode(taken, enc_hook=hook)
    compress = best(lambda: zlib.compress(raw, 1), 3)
    body = zlib.compress(raw, 1)
    write = best(lambda: write_atomic(keeper.path.with_suffix(".bench"), body), 3)
    print(
        f"  parts: copies under the locks {copy * 1e3:.1f} ms; plain values and msgpack "
        f"{encode * 1e3:.1f} ms ({len(raw) / 2**20:.1f} MiB); zlib {compress * 1e3:.1f} ms "
        f"({len(body) / 2**20:.2f} MiB); atomic write {write * 1e3:.1f} ms"
    )


def best(call: Callable[[], object], times: int = 5) -> float:
    out = []
    for _ in range(times):
        t = time.perf_counter()
        call()
        out.append(time.perf_counter() - t)
    return min(out)


def gil_held(call: Callable[[], object]) -> tuple[float, float, float]:
    """Seconds a spinning probe thread could not run while ``call`` ran (in all, and the
    longest gap), and ``call``'s wall time."""
    stop = threading.Event()
    gaps: list[float] = []
    running = threading.Event()

    def probe() -> None:
        last = time.perf_counter()
        running.set()
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > GAP:
                gaps.append(now - last)
            last = now

    thread = threading.Thread(target=probe)
    thread.start()
    running.wait()
    time.sleep(0.02)
    gaps.clear()
    t = time.perf_counter()
    call()
    wall = time.perf_counter() - t
    stop.set()
    thread.join()
    return sum(gaps), max(gaps, default=0.0), wall


def renderer(app: Any) -> Callable[[], object]:
    exposition = app.state.ctx.exposition

    def render() -> object:
        body, _ = exposition.render("")
        return gzip.compress(body, compresslevel=1)

    return render


def timed_renders(
    render: Callable[[], object],
    feeder: Feeder,
    seconds: float,
    snapshot: Callable[[], object] | None,
) -> tuple[list[float], list[float]]:
    """Renders every 25 ms for ``seconds``, timed, while a thread ingests as bench/soak.py
    does (3,000 predictions/s in batches of 500, labels for half) and, if ``snapshot``,
    another takes a snapshot every 0.4 s: three threads, as in the server. Returns the
    seconds of the renders that overlapped a snapshot, and of the others."""
    stop = threading.Event()
    saves: list[tuple[float, float]] = []

    def ingest() -> None:
        next_at = time.monotonic()
        while not stop.is_set():
            feeder.batch(500)
            next_at += 500 / 3000
            stop.wait(max(0.0, next_at - time.monotonic()))

    def snapshots() -> None:
        assert snapshot is not None
        while not stop.wait(0.4):
            t = time.perf_counter()
            snapshot()
            saves.append((t, time.perf_counter()))

    threads = [threading.Thread(target=ingest)]
    if snapshot is not None:
        threads.append(threading.Thread(target=snapshots))
    for thread in threads:
        thread.start()
    renders = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            render()
            renders.append((t, time.perf_counter()))
            time.sleep(max(0.0, 0.025 - (time.perf_counter() - t)))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    overlapping, others = [], []
    for start, end in renders:
        hit = any(start < done and began < end for began, done in saves)
        (overlapping if hit else others).append(end - start)
    return overlapping, others


def summary(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return (
        f"p50 {np.percentile(ms, 50):5.1f} ms  p99 {np.percentile(ms, 99):5.1f} ms  "
        f"max {ms.max():5.1f} ms  ({ms.size} renders)"
    )


if __name__ == "__main__":
    main()
