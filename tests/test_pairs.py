"""The pair book of a shadow comparison: pairs counted per id at the label time, bounded in
size and age, and McNemar's test (classification) and the paired t-test (regression) on them
equal to statsmodels and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from exporter.pairs import PairBook
from exporter.snapshot import PairCounts
from exporter.stats.comparison import mcnemar, paired_mae_difference

T0 = 1_700_000_000.0


def book(capacity: int = 1000, ttl: float = 600.0) -> PairBook:
    return PairBook("v1", ["v2"], [("5m", 300.0), ("1h", 3600.0)], 60, ttl, capacity)


def losses(right: list[bool]) -> list[float]:
    """Classification losses: 1 for a wrong answer, 0 for a right one."""
    return [0.0 if ok else 1.0 for ok in right]


def classified(b: int, c: int, n: int) -> PairCounts:
    """The counts of classification pairs: ``d`` is +1 for each ``b`` pair, -1 for each ``c``."""
    return PairCounts(b, c, n, float(b - c), float(b + c))


def counts(pairs: PairBook, window: str, now: float) -> PairCounts:
    found = pairs.snapshot(now).of("v2")
    assert found is not None
    return dict(found.windows)[window]


@pytest.mark.parametrize("n", [40, 400])
def test_pairs_and_mcnemar_equal_the_oracles_on_simulated_ids(n: int) -> None:
    rng = np.random.default_rng(n)
    champion = rng.random(n) < 0.85
    challenger = rng.random(n) < 0.8
    ids = [f"id{i}" for i in range(n)]
    pairs = book()
    # Challenger first for half the ids, champion first for the other half.
    half = n // 2
    pairs.record("v2", ids[:half], losses(challenger[:half].tolist()), [T0] * half, T0)
    pairs.record("v1", ids, losses(champion.tolist()), [T0] * n, T0)
    pairs.record("v2", ids[half:], losses(challenger[half:].tolist()), [T0] * (n - half), T0)
    b = int(np.sum(champion & ~challenger))
    c = int(np.sum(challenger & ~champion))
    assert counts(pairs, "1h", T0) == classified(b, c, n)
    assert pairs.snapshot(T0).challengers[0].total == classified(b, c, n)
    assert len(pairs) == 0  # every id paired
    table = [[int(np.sum(champion & challenger)), b], [c, int(np.sum(~champion & ~challenger))]]
    result = mcnemar(b, c, n_pairs=n)
    exact = b + c < 25
    oracle = sm_mcnemar(table, exact=exact, correction=True).pvalue
    assert result.pvalue == pytest.approx(oracle, abs=1e-9)
    if exact:
        assert result.pvalue == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, abs=1e-9)


def test_pairs_leave_the_window_by_label_time() -> None:
    pairs = book()
    pairs.record("v1", ["a", "b"], losses([True, True]), [T0, T0 + 200], T0 + 200)
    pairs.record("v2", ["a", "b"], losses([False, True]), [T0, T0 + 200], T0 + 200)
    assert counts(pairs, "5m", T0 + 200) == classified(1, 0, 2)
    assert counts(pairs, "5m", T0 + 400) == classified(0, 0, 1)
    assert counts(pairs, "1h", T0 + 400) == classified(1, 0, 2)


def test_the_book_is_bounded_and_counts_what_it_evicts() -> None:
    pairs = book(capacity=3)
    pairs.record("v1", ["a", "b", "c", "d", "e"], losses([True] * 5), [T0] * 5, T0)
    assert len(pairs) == 3
    assert pairs.dropped["capacity"] == 2
    pairs.record("v2", ["a", "e"], losses([False, False]), [T0] * 2, T0)
    assert counts(pairs, "1h", T0) == classified(1, 0, 1)  # "a" was evicted: no pair


def test_ids_expire_after_the_ttl() -> None:
    pairs = book(ttl=60.0)
    pairs.record("v1", ["a"], losses([True]), [T0], T0)
    pairs.record("v2", ["b"], losses([True]), [T0], T0 + 30)
    assert len(pairs) == 2
    pairs.record("v2", ["a"], losses([True]), [T0], T0 + 61)  # "a" expired first: a new open id
    assert counts(pairs, "1h", T0 + 61).n == 0
    assert pairs.dropped["ttl"] == 1
    assert len(pairs) == 2


def test_other_versions_and_repeated_outcomes_are_ignored() -> None:
    pairs = book()
    pairs.record("v3", ["a"], losses([True]), [T0], T0)
    pairs.record("v2", ["a"], losses([True]), [T0], T0)
    pairs.record("v2", ["a"], losses([False]), [T0], T0)
    assert len(pairs) == 1
    pairs.record("v1", ["a"], losses([False]), [T0], T0)
    assert counts(pairs, "1h", T0) == classified(0, 1, 1)


@pytest.mark.parametrize("n", [30, 2000])
def test_regression_pairs_give_the_paired_t_test_on_absolute_errors(n: int) -> None:
    rng = np.random.default_rng(n)
    champion = np.abs(rng.normal(0.0, 1.0, n))
    challenger = np.abs(0.8 * champion + rng.normal(0.1, 0.5, n))  # correlated, a bit worse
    ids = [f"id{i}" for i in range(n)]
    pairs = book(capacity=n)
    pairs.record("v2", ids, challenger.tolist(), [T0] * n, T0)
    pairs.record("v1", ids, champion.tolist(), [T0] * n, T0)
    got = counts(pairs, "5m", T0)
    d = challenger - champion
    assert (got.b, got.c, got.n) == (int(np.sum(d > 0)), int(np.sum(d < 0)), n)
    assert got.loss_sum == pytest.approx(float(np.sum(d)), rel=1e-12)
    assert got.loss_sq_sum == pytest.approx(float(np.sum(d * d)), rel=1e-12)
    result = paired_mae_difference(got.n, got.loss_sum, got.loss_sq_sum)
    oracle = stats.ttest_rel(challenger, champion)
    assert result.pvalue == pytest.approx(oracle.pvalue, rel=1e-9)
    assert result.difference == pytest.approx(np.mean(challenger) - np.mean(champion), abs=1e-12)
