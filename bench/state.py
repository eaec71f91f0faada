"""Snapshot and restore of the state (exporter.persistence), in process: duration and size.

    .venv/bin/python -m bench.state [--models 10] [--features 20] [--events 20000]

Fills a store through its own API (no HTTP) with ``--models`` models of ``--features``
features, ``--events`` predictions each (ids unique, half of them labelled, so the join holds
the other half), then times a snapshot (copy under the locks, encoding, atomic write) and a
restore into a fresh app. Prints the figures; the copy under each model's lock is timed apart
(it is what ingest and scrapes can wait for).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exporter.app import create_app
from exporter.config import load_settings


@dataclass
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None


@dataclass
class Label:
    id: str
    label: Any
    timestamp: float | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
