"""Backtest throughput: a generated log of one prediction a second with 20 numeric features
(inline labels and a binary score, three features shifted half way) and an uploaded 10,000-row
reference, so that drift is recomputed at every ``--step`` from the first; prints rows/s, where
a step's time goes, and the ratio to the baseline run in the same process: the same backtest
with every window's drift computed in full at every step (no ranked windows,
``exporter.ranked_windows``), which is what the backtest did before.

Target (issue 12): >= 50,000 events/s at ``--step 1m``.

    .venv/bin/python -m bench.backtest [--hours 24] [--step 1m] [--runs 3] [--no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from exporter import backtest
from exporter.__main__ import _parser

TARGET = 50_000
REFERENCE_ROWS = 10_000
FEATURES = 20


def _features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(n, FEATURES)).round(4)
    score = 1 / (1 + np.exp(-2 * x[:, 0]))
    truth = (rng.random(n) < score).astype(int)
    return x, score, truth


def write_log(path: Path, hours: float, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    t0 = 1_800_000_000
    x, score, truth = _features(rng, n)
    x[n // 2 :, :3] += 0.5  # half way, three features shift
    score = 1 / (1 + np.exp(-2 * x[:, 0]))
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["id", "timestamp", "prediction", "label", "score", *(f"f{j}" for j in range(20))]
        )
        for i in range(n):
            out.writerow(
                [f"r{i}", t0 + i, int(score[i] > 0.5), truth[i], round(score[i], 4), *x[i]]
            )
    return n


def write_reference(directory: Path, seed: int = 1) -> tuple[Path, Path]:
    """A reference from the same distribution as the log's first half, and the configuration
    naming its prediction, label and score columns."""
    x, score, truth = _features(np.random.default_rng(seed), REFERENCE_ROWS)
    reference = directory / "reference.csv"
    with reference.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*(f"f{j}" for j in range(FEATURES)), "prediction", "label", "score"])
        for i in range(REFERENCE_ROWS):
            out.writerow([*x[i], int(score[i] > 0.5), truth[i], round(score[i], 4)])
    config = directory / "config.yaml"
    config.write_text(
        "models:\n  m:\n    reference_prediction_column: prediction\n"
        "    reference_label_column: label\n    reference_score_column: score\n"
    )
    return reference, config


class Parts:
    """Seconds spent in each part of a backtest, by wrapping its methods for one run."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def wrap(self, owner: Any, name: str, part: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - started

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        undo = [self.wrap(backtest.Backtest, "_flush", "ingest")]
        setup = backtest.Backtest.__init__
        reading = backtest.events
        parts = self

        def init(run: backtest.Backtest, *args: Any, **kwargs: Any) -> None:
            setup(run, *args, **kwargs)
            parts.wrap(run.worker, "run_once", "drift")
            parts.wrap(run.writer, "add", "write")

        def events(*args: Any) -> Iterator[Any]:
            rows = reading(*args)
            while True:
                started = time.perf_counter()
                row = next(rows, None)
                self.seconds["read"] += time.perf_counter() - started
                if row is None:
                    return
                yield row

        backtest.Backtest.__init__ = init  # type: ignore[method-assign]
        backtest.events = events
        collect = backtest.Backtest._sample

        def sample(run: backtest.Backtest) -> None:
            started = time.perf_counter()
            collect(run)
            self.seconds["step"] += time.perf_counter() - started

        backtest.Backtest._sample = sample  # type: ignore[method-assign]
        try:
            yield
        finally:
            backtest.Backtest.__init__ = setup  # type: ignore[method-assign]
            backtest.events = reading
            backtest.Backtest._sample = collect  # type: ignore[method-assign]
            for step in undo:
                step()


def run_once(argv: list[str], *, ranked: bool) -> tuple[float, int, Counter[str]]:
    """One backtest in this process: rows/s (as the command reports it), steps, parts."""
    args = _parser().parse_args(["backtest", *argv])
    parts = Parts()
    backtest.KEEP_RANKED = ranked
    out = io.StringIO()
    try:
        with parts.watching(), contextlib.redirect_stdout(out):
            code = backtest.run(args)
    finally:
        backtest.KEEP_RANKED = True
    if code != 0:
        raise SystemExit(f"backtest exited {code}: {out.getvalue()}")
    line = out.getvalue()
    rate = float(line.split("(")[1].split("/s")[0].replace(",", ""))
    steps = int(line.split(": ")[1].split(" steps")[0].replace(",", ""))
    return rate, steps, parts.seconds


def _per_step(seconds: Counter[str], steps: int) -> str:
    # A step holds drift, building every family (and the summary's rows) and writing them.
    building = seconds["step"] - seconds["drift"] - seconds["write"]
    shown = {
        "read": seconds["read"],
        "ingest": seconds["ingest"],
        "drift": seconds["drift"],
        "families": building,
        "write": seconds["write"],
    }
    return ", ".join(f"{k} {v / steps * 1e3:.2f}" for k, v in shown.items()) + " ms a step"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--step", default="1m")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip the full computation")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    log = tmp / "log.csv"
    rows = write_log(log, args.hours)
    reference, config = write_reference(tmp)
    print(
        f"log: {rows:,} rows (1/s, {FEATURES} features, a score), step {args.step}, "
        f"reference {REFERENCE_ROWS:,} rows uploaded: drift at every step"
    )
    argv = [
        str(log),
        "--model",
        "m",
        "--out",
        str(tmp / "out.om"),
        "--step",
        args.step,
        "--score-column",
        "score",
        "--reference",
        str(reference),
        "--config",
        str(config),
        "--quiet",
    ]
    # One short run first, untimed: the imports a run makes on first use (scikit-learn for the
    # estimate's calibration, SciPy's distributions) are paid once per process, not per run.
    warm = tmp / "warm.csv"
    write_log(warm, 0.5)
    run_once([str(warm), *argv[1:]], ranked=True)
    rates: list[float] = []
    baselines: list[float] = []
    for _ in range(args.runs):
        rate, steps, parts = run_once(argv, ranked=True)
        rates.append(rate)
        print(f"  ranked windows: {rate:,.0f} rows/s; {_per_step(parts, steps)}")
        if not args.no_baseline:
            base, steps, parts = run_once(argv, ranked=False)
            baselines.append(base)
            print(f"  full drift:     {base:,.0f} rows/s; {_per_step(parts, steps)}")
    print(
        f"rows/s over {args.runs} runs: {min(rates):,.0f}-{max(rates):,.0f} (target {TARGET:,}: "
        f"{'met' if min(rates) >= TARGET else 'NOT met'})"
    )
    if baselines:
        ratios = [r / b for r, b in zip(rates, baselines, strict=True)]
        print(
            f"full drift at every step (the baseline): {min(baselines):,.0f}-{max(baselines):,.0f}"
            f" rows/s; ratio {min(ratios):.2f}-{max(ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
