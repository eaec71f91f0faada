"""Labeled events per arm to detect a challenger 1, 2, 3 and 5 accuracy points below 0.90.

For each difference: the fixed-sample size of the two-proportion z-test (two-sided alpha 0.05,
power 0.8, 50/50; Fleiss' formula without continuity correction, as in
:func:`bench.sequential_sim.fixed_two_proportions`), and the labels per arm at which the
exporter's always-valid p-value (``exporter/stats/sequential.py``, default settings) first
reaches alpha in seeded simulations: the median and the 80th percentile (the sequential
counterpart of a power of 0.8). Each experiment is read after every ``fixed / 50`` labels per
arm (rounded up), up to 5 times the fixed-sample size; more frequent looks change the figures
by a look or two. Prints a markdown table (it goes in the README).

    .venv/bin/python -m bench.sample_size [--experiments 10000] [--seed 2024]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from bench.sequential_sim import (
    ALPHA,
    POWER,
    SETTINGS,
    Split,
    detection,
    draw_proportions,
    fixed_two_proportions,
    running_pvalues,
)
from exporter.stats.sequential import proportions

CHAMPION = 0.90
POINTS = (1, 2, 3, 5)
LOOKS_PER_FIXED = 50  # looks until the fixed-sample size
HORIZON = 5  # times the fixed-sample size


def row(rng: np.random.Generator, points: int, experiments: int) -> str:
    """One markdown row: the fixed-sample size and the sequential detection times per arm."""
    challenger = CHAMPION - points / 100
    fixed, _ = fixed_two_proportions(CHAMPION, challenger, 1.0)
    batch = math.ceil(fixed / LOOKS_PER_FIXED)
    split = Split("50/50", batch, batch, LOOKS_PER_FIXED * HORIZON)
    estimate = proportions(*draw_proportions(rng, split, CHAMPION, challenger, experiments))
    share, first = detection(running_pvalues(estimate))
    median, p80 = (labels(first, q, batch) for q in (0.5, 0.8))
    ratio = "-" if p80 is None else f"{p80 / fixed:.2f}"
    return (
        f"| {points} ({CHAMPION:.2f} vs {challenger:.2f}) | {math.ceil(fixed):,} | "
        f"{shown(median)} | {shown(p80)} | {ratio} | {share:.3f} |"
    )


def labels(first: np.ndarray, q: float, batch: int) -> int | None:
    """Labels per arm at the ``q`` quantile of the first detecting look; None: not reached."""
    value = float(np.quantile(first, q))
    return None if not math.isfinite(value) else int(value + 1) * batch


def shown(value: int | None) -> str:
    return "not by the horizon" if value is None else f"{value:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"alpha {ALPHA} (two-sided), power {POWER}, 50/50, champion accuracy {CHAMPION}; "
        f"sequential: default settings (planned {SETTINGS.planned_labels_per_arm:,} labels per "
        f"arm, burn-in {SETTINGS.min_samples}), {args.experiments:,} experiments per row, "
        f"a look every 1/{LOOKS_PER_FIXED} of the fixed-sample size, up to {HORIZON}x it; "
        f"seed {args.seed}\n"
    )
    print(
        "| points below | fixed sample, per arm | sequential median | sequential 80th "
        "percentile | 80th / fixed | detected by the horizon |"
    )
    print("|---|---|---|---|---|---|")
    for index, points in enumerate(POINTS):
        print(row(np.random.default_rng([args.seed, index]), points, args.experiments))
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
