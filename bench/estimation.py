"""The label-free estimate (CBPE): its error against the realised quality, by seeded simulation.

A reference of 10,000 scored, labeled predictions calibrates the estimator; then windows of
1,000 predictions are estimated without their labels and compared with their realised
accuracy and F1. Worlds: scores that are the true probabilities (calibrated, accuracy ~0.9);
the population moved towards the decision boundary (covariate shift: accuracy falls to ~0.82,
the estimate must follow);
overconfident scores (miscalibrated: the calibration step matters, shown against using the raw
scores). Prints the mean absolute error and its 95th percentile per world and seed.

    .venv/bin/python -m bench.estimation [--windows 1000] [--seeds 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from exporter.estimation import Estimator, fit_estimator
from exporter.scored_reference import build_scored
from exporter.stats.cbpe import estimated_scores, expected_confusion

World = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def calibrated(spread: float = 1.0, sharpness: float = 5.5, overconfidence: float = 1.0) -> World:
    """Truth drawn from P(y=1|x) = sigmoid(sharpness x), x ~ N(0, spread); the model's score
    sigmoid(overconfidence x sharpness) (1: calibrated)."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(0, spread, n)
        p = 1 / (1 + np.exp(-sharpness * x))
        truth = (rng.random(n) < p).astype(int)
        score = 1 / (1 + np.exp(-overconfidence * sharpness * x))
        return truth, score

    return draw


def run(
    world: World, reference: World, windows: int, size: int, seed: int, raw: bool
) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    ref_truth, ref_score = reference(rng, 10_000)
    holdout = build_scored(ref_truth.tolist(), scores=ref_score.tolist(), limit=10_000)
    assert holdout is not None
    estimator = fit_estimator(holdout, "binary", ["0", "1"], "1")
    assert estimator is not None
    if raw:
        estimator = Estimator(True, (None,), holdout.rows)  # no calibration: the raw scores
    acc_err, f1_err, realised = [], [], []
    for _ in range(windows):
        truth, score = world(rng, size)
        pred = (score > 0.5).astype(np.int64)
        out = estimator.calibrated(score.tolist(), pred, 1)
        assert out is not None
        _, matrix, classes = out
        est = estimated_scores(expected_confusion(matrix, classes, 2), positive_class=1)
        acc = accuracy_score(truth, pred)
        realised.append(acc)
        acc_err.append(abs(est.accuracy - acc))
        f1_err.append(abs(est.f1["binary"] - f1_score(truth, pred, zero_division=0)))
    return np.array(acc_err), np.array(f1_err), float(np.mean(realised))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    base = calibrated()
    cases: list[tuple[str, World, World, bool]] = [
        ("calibrated scores", base, base, False),
        ("covariate shift (spread 0.5)", calibrated(spread=0.5), base, False),
        (
            "overconfident scores (x2)",
            calibrated(overconfidence=2.0),
            calibrated(overconfidence=2.0),
            False,
        ),
        (
            "overconfident, not calibrated",
            calibrated(overconfidence=2.0),
            calibrated(overconfidence=2.0),
            True,
        ),
    ]
    print(
        f"Windows of {args.size:,} predictions, {args.windows:,} per seed, reference 10,000: "
        "|estimated - realised|"
    )
    print(f"{'world':<32}{'seed':>5}{'accuracy':>10}{'MAE':>9}{'p95':>9}{'F1 MAE':>9}{'F1 p95':>9}")
    for name, world, reference, raw in cases:
        for seed in range(args.seeds):
            acc, f1, mean = run(world, reference, args.windows, args.size, seed, raw)
            print(
                f"{name:<32}{seed:>5}{mean:>10.3f}{acc.mean():>9.4f}{np.percentile(acc, 95):>9.4f}"
                f"{f1.mean():>9.4f}{np.percentile(f1, 95):>9.4f}"
            )


if __name__ == "__main__":
    main()
