"""How many false-alarm episodes a look at ``drift.alpha`` really starts, at two cadences.

``docs/drift-alarms.md`` bounds the false-alarm episodes of a stationary window by ``alpha``
times the number of looks. Consecutive looks at a sliding window share most of their data, so
an excursion spans several looks and the bound is loose; how loose decides what the server's
5 s cadence costs against a backtest's minute. This measures the ratio
``episodes / (alpha x looks)`` on a stationary stream of one event a second, a 1 h window in 60
buckets of a minute (as the exporter keeps it: the window at a look holds the current bucket so
far and the 59 before), 20 normal features, a reference of 10,000 values, with the exporter's
own detector and hysteresis, at levels high enough (1e-2 to 1e-4) for episodes to be counted.

    .venv/bin/python -m bench.drift_looks [--days 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from exporter.config import DriftSettings
from exporter.detector import DetectorSettings, DriftDetector, DriftScores
from exporter.reference import Reference, RowLayout, build_reference
from exporter.typedefs import FeatureKind

FEATURES = 20
BUCKET = 60
BUCKETS = 60


def setup(seed: int) -> tuple[Reference, RowLayout]:
    rng = np.random.default_rng(seed)
    names = tuple(f"f{j}" for j in range(FEATURES))
    columns = {name: rng.normal(size=10_000).tolist() for name in names}
    reference = build_reference(columns, settings=DriftSettings(), source="upload", created=0.0)
    numeric: FeatureKind = "numeric"
    kinds: tuple[FeatureKind | None, ...] = (numeric,) * FEATURES
    layout = RowLayout(names=names, kinds=kinds, categories=((),) * FEATURES, classes=None)
    return reference, layout


def episodes(
    detector: DriftDetector, seconds: int, cadence: int, seed: int
) -> tuple[int, int, int]:
    """(looks, looks drifted, episodes) over ``seconds`` of one event a second."""
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(seconds, FEATURES))
    looks = drifted = count = 0
    previous: DriftScores | None = None
    for now in range(BUCKET * BUCKETS, seconds, cadence):
        start = (now // BUCKET - (BUCKETS - 1)) * BUCKET
        window = events[start : now + 1]
        rows = np.column_stack([np.zeros(window.shape[0]), window])
        scores = detector.score(rows, previous=previous)
        looks += 1
        if scores.drifted:
            drifted += 1
            count += previous is None or previous.drifted == 0
        previous = scores
    return looks, drifted, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=20.0, help="simulated days at a minute")
    parser.add_argument("--fast-days", type=float, default=2.0, help="simulated days at 5 s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reference, layout = setup(args.seed)
    print("level   cadence  looks    drifted  episodes  alpha x looks  ratio")
    for alpha in (1e-2, 1e-3, 1e-4):
        settings = DetectorSettings(alpha=alpha, release_alpha=max(alpha, 1e-3), threads=1)
        detector = DriftDetector(reference, layout, settings)
        for cadence, days in ((60, args.days), (5, args.fast_days)):
            started = time.perf_counter()
            looks, drifted, count = episodes(
                detector, int(days * 86_400), cadence, args.seed + cadence
            )
            bound = alpha * looks
            print(
                f"{alpha:<7g} {cadence:>4d} s  {looks:>7,d}  {drifted:>7,d}  {count:>8d}"
                f"  {bound:>13.1f}  {count / bound:5.2f}"
                f"   ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
