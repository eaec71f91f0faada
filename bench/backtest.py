"""Backtest throughput: a generated log of one prediction a second with 20 numeric features
(inline labels and a binary score), through ``model-exporter backtest`` with drift recomputed
at every ``--step``; prints rows/s and where the time of a step goes.

Target (issue 12): >= 50,000 events/s at ``--step 1m``.

    .venv/bin/python -m bench.backtest [--hours 6] [--step 1m]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TARGET = 50_000


def write_log(path: Path, hours: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    t0 = 1_800_000_000
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["id", "timestamp", "prediction", "label", "score", *(f"f{j}" for j in range(20))]
        )
        x = rng.normal(size=(n, 20)).round(4)
        x[n // 2 :, :3] += 0.5  # half way, three features shift
        score = 1 / (1 + np.exp(-2 * x[:, 0]))
        truth = (rng.random(n) < score).astype(int)
        for i in range(n):
            out.writerow(
                [f"r{i}", t0 + i, int(score[i] > 0.5), truth[i], round(score[i], 4), *x[i]]
            )
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--step", default="1m")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    log = tmp / "log.csv"
    rows = write_log(log, args.hours)
    print(f"log: {rows:,} rows (1/s, 20 features), step {args.step}")
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "exporter",
                "backtest",
                str(log),
                "--model",
                "m",
                "--out",
                str(tmp / "out.om"),
                "--step",
                args.step,
                "--score-column",
                "score",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        print(done.stdout.strip(), f"(wall {wall:.1f} s with start-up)")
        rates.append(float(done.stdout.split("(")[1].split("/s")[0].replace(",", "")))
    print(
        f"rows/s over {args.runs} runs: {min(rates):,.0f}-{max(rates):,.0f} (target {TARGET:,}: "
        f"{'met' if min(rates) >= TARGET else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
