"""Scores and probabilities: their cost on the join path, the cost of reading them, and how
close the binned rank metrics come to scikit-learn.

1. Join path: a store takes 50 batches of 1000 predictions with inline labels (20 features,
   fresh ids) without scores, with a binary score, and with probabilities of 5 classes; runs
   interleaved in this process, best of ``2 x --repeats``.
2. Reading: one window's ``ScoreCounts`` (the copy under the model's lock) and its
   ``quality()`` (outside it), exact (10,000 outcomes kept) and binned (100,000 outcomes).
3. Accuracy of the binned ROC AUC and average precision against scikit-learn, and their
   stated bounds, over seeded data sets of 3,600 to 200,000 outcomes.
4. Memory of a version's score windows at the defaults.

    .venv/bin/python -m bench.scores [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from exporter.config import load_settings
from exporter.score_window import ScoreWindow
from exporter.stats import scores as S
from exporter.store import Store

T0 = 1.8e9


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float
    label: Any
    score: float | None = None
    probabilities: dict[str, float] | None = None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batches(kind: str, seed: int, count: int = 50, size: int = 1000) -> list[list[Event]]:
    rng = np.random.default_rng(seed)
    out = []
    for b in range(count):
        batch = []
        for i in range(size):
            features = {f"f{j}": float(v) for j, v in enumerate(rng.normal(size=20))}
            if kind == "probabilities (5 classes)":
                p = rng.dirichlet(np.ones(5))
                probabilities = {str(k): float(p[k]) for k in range(5)}
                prediction, label = int(np.argmax(p)), int(rng.integers(5))
                batch.append(
                    Event(f"b{b}-{i}", features, prediction, T0 + b, label, None, probabilities)
                )
                continue
            score = float(rng.random()) if kind == "binary score" else None
            batch.append(
                Event(
                    f"b{b}-{i}", features, int(rng.integers(2)), T0 + b, int(rng.integers(2)), score
                )
            )
        out.append(batch)
    return out


def join_path(repeats: int, seed: int) -> None:
    kinds = ("no scores", "binary score", "probabilities (5 classes)")
    data = {kind: batches(kind, seed) for kind in kinds}
    data["no scores (5 classes)"] = [
        [Event(e.id, e.features, e.prediction, e.timestamp, e.label) for e in batch]
        for batch in data["probabilities (5 classes)"]
    ]

    def run(kind: str) -> float:
        store = Store(load_settings(windows=["5m", "1h", "24h"]), clock=Clock(T0 + 50))
        gc.collect()
        started = time.perf_counter()
        for batch in data[kind]:
            store.add_predictions("m", None, batch)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {kind: [] for kind in data}
    for _ in range(repeats * 2):
        for kind in data:
            times[kind].append(run(kind))
    events = 50 * 1000
    print(
        f"1. Join path: 50 batches of 1000 predictions with inline labels (20 features), "
        f"windows 5m, 1h, 24h; best of {repeats * 2}, interleaved"
    )
    for kind, base in (
        ("no scores", None),
        ("binary score", "no scores"),
        ("no scores (5 classes)", None),
        ("probabilities (5 classes)", "no scores (5 classes)"),
    ):
        best = min(times[kind])
        spread = f"(range {events / max(times[kind]):,.0f}-{events / best:,.0f})"
        line = f"   {kind:<28}{events / best:>10,.0f} events/s {spread}"
        if base is not None:
            other = min(times[base])
            line += (
                f"  {other / best:.2f}x of {base!r} ({(best - other) / events * 1e6:+.2f} us/event)"
            )
        print(line)


def best_of(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def reading(repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print("\n2. Reading one window (binary; 60 buckets, 1,024 rank bins)")
    for n, cap in ((10_000, 10_000), (100_000, 10_000)):
        w = ScoreWindow(
            3600.0, 60, binary=True, rank_bins=1024, calibration_bins=10, exact_capacity=cap
        )
        per = n // 60
        for b in range(60):
            s = rng.random((per, 1))
            w.add(
                np.full(per, T0 + 60 * b),
                s,
                (rng.random(per) < s[:, 0]).astype(np.int64),
                T0 + 60 * b,
            )
        now = T0 + 60 * 59
        counts = w.counts(now)
        copy = best_of(functools.partial(w.counts, now), repeats * 5)
        quality = best_of(counts.quality, repeats * 5)
        kind = "exact" if counts.outcomes is not None else "binned"
        print(
            f"   {counts.count:>7,} outcomes ({kind}): copy under the lock {copy * 1e3:.2f} ms, "
            f"scores outside it {quality * 1e3:.2f} ms"
        )
    wide = ScoreWindow(
        3600.0, 60, binary=False, rank_bins=1024, calibration_bins=10, exact_capacity=0
    )
    for b in range(60):
        p = rng.dirichlet(np.ones(10), 200)
        wide.add(np.full(200, T0 + 60 * b), p, rng.integers(0, 10, 200), T0 + 60 * b)
    now = T0 + 60 * 59
    counts = wide.counts(now)
    copy = best_of(functools.partial(wide.counts, now), repeats * 5)
    quality = best_of(counts.quality, repeats * 5)
    print(
        f"   10 classes, {counts.count:,} outcomes (binned): copy {copy * 1e3:.2f} ms, "
        f"scores {quality * 1e3:.2f} ms"
    )


def accuracy(seeds: int) -> None:
    print(
        f"\n3. Binned (1,024 log-odds bins) against scikit-learn, {seeds} seeds per row: "
        "max |error| (max bound)"
    )
    print(f"   {'data':<44}{'ROC AUC':>22}{'average precision':>26}")
    cases: list[
        tuple[str, int, Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]]
    ] = [
        ("balanced, AUC ~0.85", 3_600, _balanced(1.1)),
        ("balanced, AUC ~0.64", 20_000, _balanced(0.5)),
        ("balanced, AUC ~0.99", 50_000, _balanced(2.5)),
        ("2 % positives, confident model", 200_000, _rare),
        ("scores rounded to 3 decimals", 20_000, _rounded),
    ]
    for name, n, make in cases:
        auc_err = auc_bound = ap_err = ap_bound = 0.0
        for seed in range(seeds):
            y, s = make(np.random.default_rng(seed), n)
            which = S.rank_bins(s, 1024)
            pos = np.bincount(which[y == 1], minlength=1024)
            neg = np.bincount(which[y == 0], minlength=1024)
            auc, ap = S.roc_auc_binned(pos, neg), S.average_precision_binned(pos, neg)
            assert auc is not None and ap is not None
            auc_err = max(auc_err, abs(auc.value - roc_auc_score(y, s)))
            ap_err = max(ap_err, abs(ap.value - average_precision_score(y, s)))
            auc_bound, ap_bound = max(auc_bound, auc.max_error), max(ap_bound, ap.max_error)
        label = f"{name} ({n:,})"
        print(f"   {label:<44}{auc_err:>10.1e} ({auc_bound:.1e}){ap_err:>14.1e} ({ap_bound:.1e})")


def _balanced(
    separation: float,
) -> Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]:
    def make(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        s = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.3, n) + separation * (2 * y - 1))))
        return y, s

    return make


def _rare(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.02).astype(int)
    s = 1.0 / (1.0 + np.exp(-(rng.normal(-6, 2.5, n) + 6 * y)))
    return y, s


def _rounded(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y, s = _balanced(1.0)(rng, n)
    return y, np.round(s, 3)


def memory() -> None:
    print("\n4. Memory of one version's score windows (60 buckets each, defaults)")
    for label, classes in (("binary", 1), ("10 classes", 10)):
        w = ScoreWindow(
            3600.0,
            60,
            binary=classes == 1,
            rank_bins=1024,
            calibration_bins=10,
            exact_capacity=10_000,
        )
        if classes > 1:
            w.add(np.array([T0]), np.full((1, classes), 1 / classes), np.array([classes - 1]), T0)
        fixed = w._ranks.nbytes + w._sums.nbytes + w._calibration.nbytes
        kept = 10_000 * (classes * 8 + 8)
        print(
            f"   {label:<12} per window: histograms and sums {fixed / 2**10:,.0f} KiB, "
            f"at most {kept / 2**10:,.0f} KiB of kept outcomes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    join_path(args.repeats, args.seed)
    reading(args.repeats, args.seed)
    accuracy(args.seeds)
    memory()


if __name__ == "__main__":
    main()
