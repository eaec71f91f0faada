"""Seeded simulations of the sequential comparison statistics under continuous monitoring.

Every experiment is read as a scrape would read it: after every batch of labels, from the
first look past the burn-in, until the horizon. The statistics are those of
:mod:`exporter.stats.sequential` (its :func:`look` on arrays of looks; in the A/A tables, the
first 50 experiments are also fed look by look to :class:`SequentialState`, which must give
the same p-values: "state agrees"), with the default settings: alpha 0.05, tightest at 1,000
labels per arm, burn-in 100 labels per arm and a smallest expected cell of 10.

* **A/A, independent arms** (``split``): both arms at the same accuracy; a batch is 100 labels
  per arm at 50/50 (50 looks, up to 5,000 per arm), 160 + 40 at 80/20 and 190 + 10 at 95/5
  (the same 200 labels a look; 125 and 500 looks, until the small arm has 5,000). The rate of
  experiments whose always-valid p-value ever drops to alpha or below, its upper 99 %
  Clopper-Pearson limit (must be <= alpha), and beside it the naive rate: the pooled
  two-proportion z-test, read at the same looks.
* **A/B, independent arms**: champion 0.90, challenger 0.87. Labels per arm when the
  sequential p-value first reaches alpha (median and 80th percentile: the sequential
  counterpart of a power of 0.8), against the fixed-sample size for power 0.8 (two-sided
  alpha 0.05; Fleiss' formula without continuity correction, allocation ratio ``k``);
  and the share of experiments whose confidence sequence holds the true difference -0.03 at
  every look (its coverage, at least 0.95 if valid).
* **Shadow (paired)**: both versions score every request; a batch is 100 labeled pairs, 50
  looks. Discordance model: the challenger's errors are mostly the champion's (versions of one
  model fail on the same hard cases): A/A at 0.90 with 7 % discordant pairs (3.5 % each way),
  A/B 0.90 vs 0.87 with champion-only right 5 % and challenger-only right 2 %. And the
  independent-errors extreme (A/A: 9 % each way; A/B: 11.7 % and 8.7 %). Naive: McNemar's
  z-test ``(c - b) / sqrt(b + c)``; fixed sample for power 0.8: Connor (1987),
  ``n = (z_{alpha/2} sqrt(psi) + z_beta sqrt(psi - delta^2))^2 / delta^2``.
* **A/A, mean absolute error**: errors ``|N(0, 1)|`` and the heavy-tailed ``|t_3|``, 50/50 and
  80/20 as above, and paired (shadow mode: 100 pairs a look up to 5,000, the two versions'
  errors sharing a common part, ``e = s + u``, so the pairs are exchangeable and the MAEs
  equal) (a fifth of the experiments: every error is drawn).
* **Tuning**: the A/A rate and the A/B detection at 50/50 when the plan behind ``rho`` is 4
  times smaller or larger than the default.

    .venv/bin/python -m bench.sequential_sim [--experiments 10000] [--seed 2024]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from exporter.stats.sequential import (
    Estimate,
    SequentialSettings,
    SequentialState,
    look,
    mae,
    paired,
    paired_mae,
    proportions,
)

SETTINGS = SequentialSettings()
ALPHA = SETTINGS.alpha
POWER = 0.8
#: Experiments run through SequentialState, one look at a time, to check the vectorised path.
CHECKED = 50


@dataclass(frozen=True)
class Split:
    """Labels a look adds to each arm, and the number of looks."""

    name: str
    a: int
    b: int
    looks: int


SPLITS = [Split("50/50", 100, 100, 50), Split("80/20", 160, 40, 125), Split("95/5", 190, 10, 500)]


def running_pvalues(estimate: Estimate, settings: SequentialSettings = SETTINGS) -> np.ndarray:
    """The always-valid p-value after each look (axis 1), as :class:`SequentialState` keeps it."""
    log_ratio = look(estimate, settings).log_ratio
    return np.exp(-np.maximum(np.maximum.accumulate(log_ratio, axis=1), 0.0))


def covers(estimate: Estimate, truth: float) -> np.ndarray:
    """Whether the intersected confidence sequence holds ``truth`` at every look."""
    step = look(estimate, SETTINGS)
    lower = np.maximum.accumulate(step.lower, axis=1)
    upper = np.minimum.accumulate(step.upper, axis=1)
    return np.all((lower <= truth) & (truth <= upper), axis=1)


def check_state(estimates: Callable[[int, int], Estimate], pvalues: np.ndarray) -> bool:
    """Feed the first experiments look by look to SequentialState: same p-values as the arrays?"""
    for e in range(min(CHECKED, pvalues.shape[0])):
        state = SequentialState(SETTINGS)
        for k in range(pvalues.shape[1]):
            state = state.update(estimates(e, k))
            expected = pvalues[e, k]
            got = 1.0 if state.pvalue is None else state.pvalue
            if not math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-300):
                return False
    return True


def upper_limit(crossed: int, n: int, confidence: float = 0.99) -> float:
    """One-sided upper Clopper-Pearson limit of a binomial proportion."""
    return 1.0 if crossed == n else float(stats.beta.ppf(confidence, crossed + 1, n - crossed))


def naive_rate(pvalues: np.ndarray, counted: np.ndarray) -> float:
    """Share of experiments whose fixed-sample p-value is <= alpha at some counted look."""
    return float(np.mean(np.any((pvalues <= ALPHA) & counted, axis=1)))


def two_sided(z: np.ndarray) -> np.ndarray:
    return 2.0 * special.ndtr(-np.abs(z))


def draw_proportions(rng, split: Split, p_a: float, p_b: float, experiments: int):
    shape = (experiments, split.looks)
    correct_a = rng.binomial(split.a, p_a, size=shape).cumsum(axis=1)
    correct_b = rng.binomial(split.b, p_b, size=shape).cumsum(axis=1)
    looks = np.arange(1, split.looks + 1)
    return correct_a, split.a * looks, correct_b, split.b * looks


def pooled_z_pvalues(correct_a, n_a, correct_b, n_b) -> np.ndarray:
    pooled = (correct_a + correct_b) / (n_a + n_b)
    spread = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    z = np.divide(
        correct_b / n_b - correct_a / n_a, spread, out=np.zeros(pooled.shape), where=spread > 0
    )
    return two_sided(z)


def fixed_two_proportions(p_a: float, p_b: float, k: float) -> tuple[float, float]:
    """Fixed-sample labels (champion, challenger) for power 0.8, ``k = n_a / n_b``."""
    z_a, z_b = -special.ndtri(ALPHA / 2.0), special.ndtri(POWER)
    pooled = (k * p_a + p_b) / (k + 1.0)
    root = z_a * math.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_b * math.sqrt(
        p_b * (1 - p_b) + p_a * (1 - p_a) / k
    )
    n_b = root**2 / (p_b - p_a) ** 2
    return k * n_b, n_b


def fixed_mcnemar(champion_only: float, challenger_only: float) -> float:
    """Connor's (1987) pairs for power 0.8."""
    z_a, z_b = -special.ndtri(ALPHA / 2.0), special.ndtri(POWER)
    psi, delta = champion_only + challenger_only, challenger_only - champion_only
    return (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - delta**2)) ** 2 / delta**2


def detection(pvalues: np.ndarray) -> tuple[float, np.ndarray]:
    """Share detected by the horizon, and each experiment's first look at or below alpha
    (``inf`` when never)."""
    hit = pvalues <= ALPHA
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), np.inf)
    return float(hit.any(axis=1).mean()), first


def quantile_labels(first: np.ndarray, q: float, per_look: int) -> str:
    value = np.quantile(first, q)  # inf when fewer than q of the experiments detected
    return "never" if not np.isfinite(value) else f"{int((value + 1) * per_look):,}"


def aa_proportions(rng, experiments: int) -> list[str]:
    rows = [
        f"{'accuracy':>8} {'split':>6} {'labels/arm at end':>18} {'sequential':>10} "
        f"{'99% upper':>9} {'<= alpha':>8} {'naive z-test':>12}  state agrees"
    ]
    for accuracy in (0.90, 0.99):
        for split in SPLITS:
            counts = draw_proportions(rng, split, accuracy, accuracy, experiments)
            estimate = proportions(*counts)
            pvalues = running_pvalues(estimate)
            crossed = int(np.sum(pvalues[:, -1] <= ALPHA))
            limit = upper_limit(crossed, experiments)
            naive = naive_rate(pooled_z_pvalues(*counts), look(estimate, SETTINGS).ready)
            agrees = check_state(lambda e, k, c=counts: proportions(*_at(c, e, k)), pvalues)
            end = f"{split.a * split.looks:,} / {split.b * split.looks:,}"
            rows.append(
                f"{accuracy:>8.2f} {split.name:>6} {end:>18} {crossed / experiments:>10.4f} "
                f"{limit:>9.4f} {limit <= ALPHA!s:>8} {naive:>12.4f}  {agrees}"
            )
    return rows


def _at(counts, e: int, k: int) -> list:
    """Experiment ``e`` at look ``k`` of arrays shaped (experiments, looks) or (looks,)."""
    return [c[e, k] if np.ndim(c) == 2 else c[k] for c in counts]


def ab_proportions(rng, experiments: int) -> list[str]:
    p_a, p_b = 0.90, 0.87
    rows = [
        f"{'split':>6} {'detected':>8} {'median labels/arm':>18} {'80th percentile':>16} "
        f"{'fixed n, power 0.8':>19} {'CS covers -0.03':>15}"
    ]
    for split in SPLITS[:2]:
        counts = draw_proportions(rng, split, p_a, p_b, experiments)
        estimate = proportions(*counts)
        share, first = detection(running_pvalues(estimate))
        coverage = float(covers(estimate, p_b - p_a).mean())
        fixed_a, fixed_b = fixed_two_proportions(p_a, p_b, split.a / split.b)
        median = f"{quantile_labels(first, 0.5, split.a)} / {quantile_labels(first, 0.5, split.b)}"
        p80 = f"{quantile_labels(first, 0.8, split.a)} / {quantile_labels(first, 0.8, split.b)}"
        fixed = f"{math.ceil(fixed_a):,} / {math.ceil(fixed_b):,}"
        rows.append(
            f"{split.name:>6} {share:>8.4f} {median:>18} {p80:>16} {fixed:>19} {coverage:>15.4f}"
        )
    return rows


def draw_pairs(rng, champion_only: float, challenger_only: float, experiments: int, looks: int):
    shares = [champion_only, challenger_only, 1.0 - champion_only - challenger_only]
    cells = rng.multinomial(100, shares, size=(experiments, looks)).cumsum(axis=1)
    return cells[..., 0], cells[..., 1], 100 * np.arange(1, looks + 1)


def shadow(rng, experiments: int) -> list[str]:
    looks = 50
    rows = [
        f"{'A/A':<40} {'sequential':>10} {'99% upper':>9} {'<= alpha':>8} {'naive z-test':>12}"
        "  state agrees"
    ]
    for name, champion_only, challenger_only in [
        ("0.90, 7 % discordant (3.5 % each way)", 0.035, 0.035),
        ("0.90, independent errors (9 % each)", 0.09, 0.09),
    ]:
        counts = draw_pairs(rng, champion_only, challenger_only, experiments, looks)
        estimate = paired(*counts)
        pvalues = running_pvalues(estimate)
        b, c, _ = counts
        discordant = b + c
        z = np.divide(c - b, np.sqrt(discordant), out=np.zeros(b.shape), where=discordant > 0)
        naive = naive_rate(two_sided(z), look(estimate, SETTINGS).ready)
        crossed = int(np.sum(pvalues[:, -1] <= ALPHA))
        limit = upper_limit(crossed, experiments)
        agrees = check_state(lambda e, k, c=counts: paired(*_at(c, e, k)), pvalues)
        rows.append(
            f"{name:<40} {crossed / experiments:>10.4f} {limit:>9.4f} {limit <= ALPHA!s:>8} "
            f"{naive:>12.4f}  {agrees}"
        )
    rows.append(
        f"{'A/B 0.90 vs 0.87':<40} {'detected':>10} {'median pairs':>12} {'80th pct':>8} "
        f"{'fixed n':>7} {'CS covers -0.03':>15}"
    )
    for name, champion_only, challenger_only in [
        ("5 % champion-only, 2 % challenger-only", 0.05, 0.02),
        ("independent errors (11.7 % / 8.7 %)", 0.117, 0.087),
    ]:
        counts = draw_pairs(rng, champion_only, challenger_only, experiments, looks)
        estimate = paired(*counts)
        share, first = detection(running_pvalues(estimate))
        coverage = float(covers(estimate, challenger_only - champion_only).mean())
        fixed = math.ceil(fixed_mcnemar(champion_only, challenger_only))
        rows.append(
            f"{name:<40} {share:>10.4f} {quantile_labels(first, 0.5, 100):>12} "
            f"{quantile_labels(first, 0.8, 100):>8} {fixed:>7,} {coverage:>15.4f}"
        )
    return rows


def tuning(rng, experiments: int) -> list[str]:
    """The plan behind rho, moved: A/A rate and A/B detection at 50/50, accuracy 0.90."""
    split = SPLITS[0]
    rows = [
        f"{'planned labels/arm':>18} {'rho':>7} {'A/A rate':>8} {'A/B detected':>12} "
        f"{'median labels/arm':>17} {'80th percentile':>15}"
    ]
    null = proportions(*draw_proportions(rng, split, 0.90, 0.90, experiments))
    alternative = proportions(*draw_proportions(rng, split, 0.90, 0.87, experiments))
    for planned in (250, 1000, 4000):
        settings = SequentialSettings(planned_labels_per_arm=planned)
        rate = float(np.mean(running_pvalues(null, settings)[:, -1] <= ALPHA))
        share, first = detection(running_pvalues(alternative, settings))
        rows.append(
            f"{planned:>18,} {math.sqrt(settings.rho2):>7.4f} {rate:>8.4f} {share:>12.4f} "
            f"{quantile_labels(first, 0.5, split.a):>17} {quantile_labels(first, 0.8, split.a):>15}"
        )
    return rows


def aa_mae(rng, experiments: int) -> list[str]:
    rows = [f"{'errors':>8} {'split':>6} {'sequential':>10} {'99% upper':>9} {'<= alpha':>8}"]
    draws = {
        "|N(0,1)|": lambda size: np.abs(rng.standard_normal(size)),
        "|t_3|": lambda size: np.abs(rng.standard_t(3, size)),
    }
    for label, draw in draws.items():
        for split in SPLITS[:2]:
            sums = np.zeros((6, experiments, split.looks))
            totals = np.zeros((6, experiments))
            for k in range(split.looks):
                e_a, e_b = draw((experiments, split.a)), draw((experiments, split.b))
                totals += [
                    np.full(experiments, split.a),
                    e_a.sum(axis=1),
                    (e_a * e_a).sum(axis=1),
                    np.full(experiments, split.b),
                    e_b.sum(axis=1),
                    (e_b * e_b).sum(axis=1),
                ]
                sums[:, :, k] = totals
            rows.append(_aa_row(label, split.name, running_pvalues(mae(*sums))))
        # Shadow (paired): both versions answer the same requests, their errors share a common
        # part (exchangeable pairs, so the MAEs are equal); 100 pairs a look up to 5,000.
        paired_sums = np.zeros((3, experiments, 50))
        paired_totals = np.zeros((3, experiments))
        for k in range(50):
            shared = draw((experiments, 100))
            d = np.abs(shared + draw((experiments, 100))) - np.abs(
                shared + draw((experiments, 100))
            )
            paired_totals += [np.full(experiments, 100), d.sum(axis=1), (d * d).sum(axis=1)]
            paired_sums[:, :, k] = paired_totals
        rows.append(_aa_row(label, "paired", running_pvalues(paired_mae(*paired_sums))))
    return rows


def _aa_row(errors: str, split: str, pvalues: np.ndarray) -> str:
    experiments = pvalues.shape[0]
    crossed = int(np.sum(pvalues[:, -1] <= ALPHA))
    limit = upper_limit(crossed, experiments)
    return (
        f"{errors:>8} {split:>6} {crossed / experiments:>10.4f} {limit:>9.4f} {limit <= ALPHA!s:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    started = time.perf_counter()
    rho = math.sqrt(SETTINGS.rho2)
    print(
        f"alpha {ALPHA}, rho {rho:.4f} (tightest at {SETTINGS.planned_labels_per_arm:,} labels "
        f"per arm), burn-in {SETTINGS.min_samples} labels per arm and smallest expected cell "
        f">= {SETTINGS.min_expected:g}; {args.experiments:,} experiments per row, seed {args.seed}"
    )
    sections = [
        ("A/A, independent arms: share whose p-value ever reaches alpha", aa_proportions),
        ("A/B, independent arms, 0.90 vs 0.87 (labels champion / challenger)", ab_proportions),
        ("Shadow (paired), 100 pairs a look up to 5,000", shadow),
        ("A/A, mean absolute error", aa_mae),
        ("Tuning: the planned labels per arm behind rho (50/50, 0.90 vs 0.90 and 0.87)", tuning),
    ]
    for index, (title, run) in enumerate(sections):
        rng = np.random.default_rng([args.seed, index])
        experiments = args.experiments if run is not aa_mae else args.experiments // 5
        print(f"\n{title}" + (f" ({experiments:,} experiments)" if run is aa_mae else ""))
        for row in run(rng, experiments):
            print("  " + row)
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
