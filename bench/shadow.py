"""Ingest cost of a shadow comparison: what the pair book adds per event, in process.

One store, one model (binary, 10 numeric features, the default windows 5m and 1h), three ways
of sending the same amount of work, in rounds, interleaved so that every mode sees the same
machine state:

* **no comparison**: versions v1 and v2 each predict 1,000 fresh ids a round (batches of
  1,000), and one label batch (2,000 labels) joins them;
* **split**: the same traffic with a split comparison v1 vs v2 declared;
* **shadow**: a shadow comparison v1 vs v2; both versions predict the *same* 1,000 ids a round,
  so one label batch of 1,000 ids joins 2,000 predictions and completes 1,000 pairs.

Every mode handles 2,000 predictions and 2,000 joined outcomes a round; the figure is the time
per prediction (its label included), the median over rounds, with the run-to-run range, and
the ratio to "no comparison" measured in the same process. Shadow mode's extra work is the
(id, version) join (one label joins two predictions) and the pair book (point 4 of issue 10).

    .venv/bin/python -m bench.shadow [--rounds 30]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from exporter.comparison import parse_declaration
from exporter.config import load_settings
from exporter.store import Store

IDS_PER_ROUND = 1_000
FEATURES = 10


@dataclass(frozen=True, slots=True)
class Event:
    """A prediction event, as the API decodes one (``exporter.batch.PredictionEventLike``)."""

    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Label:
    id: str
    label: Any
    timestamp: float | None = None


def make_store(mode: str | None) -> Store:
    settings = load_settings(
        models={"m": {"task": "binary"}},
        join={"max_pending_predictions": 1_000_000},
    )
    store = Store(settings)
    if mode is not None:
        body = {"champion": "v1", "challengers": ["v2"], "mode": mode}
        store.set_comparison("m", parse_declaration(body))
    return store


def one_round(store: Store, mode: str | None, serial: int, rng: np.random.Generator) -> float:
    """Seconds for one round's 2,000 predictions and their labels."""
    features = rng.normal(size=(IDS_PER_ROUND, FEATURES))
    names = [f"f{j}" for j in range(FEATURES)]
    rows = [dict(zip(names, map(float, row), strict=True)) for row in features]
    truth = rng.integers(2, size=IDS_PER_ROUND).tolist()
    batches: dict[str, list[Event]] = {}
    label_ids: list[str] = []
    for version in ("v1", "v2"):
        prefix = f"r{serial}" if mode == "shadow" else f"r{serial}-{version}"
        ids = [f"{prefix}-{i}" for i in range(IDS_PER_ROUND)]
        guess = rng.integers(2, size=IDS_PER_ROUND).tolist()
        batches[version] = [
            Event(ident, row, p) for ident, row, p in zip(ids, rows, guess, strict=True)
        ]
        if mode != "shadow" or version == "v1":
            label_ids += ids
    labels = [Label(ident, truth[i % IDS_PER_ROUND]) for i, ident in enumerate(label_ids)]
    started = time.perf_counter()
    for version, events in batches.items():
        store.add_predictions("m", version, events)
    store.add_labels("m", labels)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    modes: list[str | None] = [None, "split", "shadow"]
    stores = {mode: make_store(mode) for mode in modes}
    rng = np.random.default_rng(args.seed)
    times: dict[str | None, list[float]] = {mode: [] for mode in modes}
    serial = itertools.count()
    for _ in range(3):  # warm-up
        for mode in modes:
            one_round(stores[mode], mode, next(serial), rng)
    for _ in range(args.rounds):
        for mode in modes:
            times[mode].append(one_round(stores[mode], mode, next(serial), rng))
    per_event = {
        mode: [t / (2 * IDS_PER_ROUND) * 1e6 for t in values] for mode, values in times.items()
    }
    base = statistics.median(per_event[None])
    print(
        f"{args.rounds} rounds of 2 x {IDS_PER_ROUND:,} predictions and their labels "
        f"({FEATURES} features, windows 5m and 1h), seed {args.seed}"
    )
    print(f"{'mode':>14} {'us/prediction':>14} {'range':>15} {'vs none':>8}")
    for mode, values in per_event.items():
        median = statistics.median(values)
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"{mode or 'no comparison':>14} {median:>14.2f} {spread:>15} {median / base:>7.2f}x")
    book = stores["shadow"].get("m").snapshot(stores["shadow"].clock()).pairs
    assert book is not None and book.challengers[0].total.n > 0, "no pairs were counted"
    print(f"pairs counted in shadow mode: {book.challengers[0].total.n:,}")


if __name__ == "__main__":
    main()
