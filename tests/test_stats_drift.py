"""Drift statistics against their oracles: SciPy's KS, Wasserstein, chi-squared, Jensen-Shannon,
the PSI formula on hand-checked bins, and SciPy's FDR control."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from exporter.stats.drift import (
    PSI_FLOOR,
    NumericDrift,
    NumericReference,
    adjusted_pvalues,
    bin_counts,
    categorical_drift,
    numeric_drift,
    psi,
    significant,
)
from exporter.stats.ks import ks_pvalues, ks_statistic, pelz_good_cdf, smirnov_sf

RTOL_P = 1e-9


def one(ref: np.ndarray, win: np.ndarray, bins: int = 10):
    [d] = numeric_drift([NumericReference.from_values(ref, bins)], win.reshape(-1, 1))
    return d


def check_numeric(ref: np.ndarray, win: np.ndarray) -> None:
    d = one(ref, win)
    expected = stats.ks_2samp(ref, win, method="asymp")
    assert d.ks_statistic == expected.statistic  # bit-identical: the same counts as SciPy
    assert d.ks_pvalue == pytest.approx(expected.pvalue, rel=RTOL_P, abs=0)
    assert d.wasserstein == pytest.approx(stats.wasserstein_distance(ref, win), rel=1e-12)
    reference = NumericReference.from_values(ref)
    shares = bin_counts(np.sort(win), reference.edges) / win.shape[0]
    assert d.jensen_shannon == pytest.approx(
        jensenshannon(reference.shares, shares, base=2), abs=1e-12
    )
    assert (d.window_values, d.reference_values) == (win.shape[0], ref.shape[0])
    check_rank_and_bins(reference, win, d)


def check_rank_and_bins(reference: NumericReference, win: np.ndarray, d: NumericDrift) -> None:
    """Mann-Whitney and the chi-squared test over the PSI bins against SciPy, and the feature's
    p-value from the three."""
    mw = stats.mannwhitneyu(reference.values, win, method="asymptotic")
    assert d.mann_whitney_pvalue == pytest.approx(mw.pvalue, rel=1e-12, abs=1e-300)
    counts = np.vstack(
        [np.rint(reference.shares * reference.size), bin_counts(np.sort(win), reference.edges)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2:
        assert (d.chi2_statistic, d.chi2_pvalue) == (0.0, 1.0)
    else:
        chi2 = stats.chi2_contingency(counts, correction=False, lambda_="log-likelihood")
        assert d.chi2_statistic == pytest.approx(chi2.statistic, rel=1e-12, abs=1e-12)
        assert d.chi2_pvalue == pytest.approx(chi2.pvalue, rel=1e-9, abs=1e-300)
    smallest = min(d.ks_pvalue, d.mann_whitney_pvalue, d.chi2_pvalue)
    assert d.pvalue == min(1.0, 3 * smallest)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("shift", [0.0, 0.04, 0.3, 2.0])
def test_continuous_samples(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(5, 20_000, 2)
    check_numeric(rng.normal(0, 1, n1), rng.normal(shift, 1, n2))


@pytest.mark.parametrize("seed", range(10))
def test_ties_and_discrete_values(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    check_numeric(rng.integers(0, 5, 3000).astype(float), rng.integers(0, 6, 2500).astype(float))


def test_identical_disjoint_and_tiny_samples() -> None:
    x = np.arange(100.0)
    check_numeric(x, x.copy())
    check_numeric(x, x + 1000.0)
    check_numeric(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="too small"):
        ks_pvalues(np.array([1.0]), np.array([1]), np.array([1]))


def test_constant_columns_never_mislead() -> None:
    same = one(np.full(500, 3.0), np.full(400, 3.0))
    assert (same.ks_statistic, same.ks_pvalue, same.psi, same.wasserstein) == (0.0, 1.0, 0.0, 0.0)
    assert same.jensen_shannon == 0.0 and same.out_of_range == 0.0
    moved = one(np.full(500, 3.0), np.full(400, 4.0))
    assert moved.ks_statistic == 1.0 and moved.ks_pvalue < 1e-100
    assert moved.wasserstein == 1.0 and moved.out_of_range == 1.0
    check_numeric(np.full(500, 3.0), np.full(400, 4.0))


def test_missing_and_short_columns_are_skipped() -> None:
    rng = np.random.default_rng(7)
    refs = [NumericReference.from_values(rng.normal(size=n)) for n in (500, 500, 50)]
    window = rng.normal(0.2, 1, (400, 3))
    window[rng.random(400) < 0.3, 0] = np.nan
    window[:, 1] = np.nan
    out = numeric_drift([*refs, None], np.column_stack([window, window[:, 0]]), min_samples=100)
    col0 = window[:, 0][~np.isnan(window[:, 0])]
    assert out[0] is not None and out[0].window_values == col0.shape[0]
    assert out[0].ks_statistic == stats.ks_2samp(refs[0].values, col0, method="asymp").statistic
    assert out[1] is None  # no window values
    assert out[2] is None  # reference below min_samples
    assert out[3] is None  # no reference
    assert numeric_drift(refs, np.empty((0, 3))) == [None, None, None]  # empty window


def test_parallel_chunks_equal_serial() -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    refs = [NumericReference.from_values(rng.normal(size=800)) for _ in range(7)]
    window = rng.normal(0.1, 1, (600, 7))
    with ThreadPoolExecutor(3) as pool:
        assert numeric_drift(refs, window, executor=pool, chunks=3) == numeric_drift(refs, window)


@pytest.mark.parametrize("n", [141, 500, 5000, 20_000])
def test_smirnov_sum_matches_scipy(n: int) -> None:
    d = np.concatenate([np.sqrt(np.linspace(2.2, 369, 30) / n), np.linspace(0.5, 0.99, 10)])
    d = d[d < 1]
    ref = np.array([special.smirnov(n, x) for x in d])
    np.testing.assert_allclose(smirnov_sf(n, d), ref, rtol=1e-10, atol=1e-300)


def test_pelz_good_matches_scipy_in_its_regime() -> None:
    n = np.array([5000.0] * 20 + [200_000.0] * 20)
    lam = np.tile(np.linspace(0.35, 1.45, 20), 2)  # n x^2 < 2.2 and n x^1.5 > 1.4
    x = lam / np.sqrt(n)
    np.testing.assert_allclose(pelz_good_cdf(n, x), stats.kstwo.cdf(x, n), rtol=1e-12, atol=0)


def test_pvalues_match_kstwo_in_every_regime() -> None:
    rows = []
    for n_eff in (3, 50, 140, 141, 900, 5000, 99_999, 150_000):
        for x in np.concatenate([np.linspace(0.0, 1.0, 41), [0.5 / n_eff, 0.9 / n_eff]]):
            rows.append((x, n_eff))
    x = np.array([r[0] for r in rows])
    n = np.array([r[1] for r in rows], dtype=np.int64)
    ours = ks_pvalues(x, 2 * n, 2 * n)  # n1 = n2 = 2n gives round(n1 n2 / (n1 + n2)) = n
    expected = np.clip(stats.kstwo.sf(x, n), 0, 1)
    np.testing.assert_allclose(ours, expected, rtol=RTOL_P, atol=1e-300)


def test_statistic_of_hand_checked_samples() -> None:
    assert ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5])) == pytest.approx(2 / 3)
    assert ks_statistic(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0])) == pytest.approx(
        1 / 3
    )


def test_psi_on_hand_checked_bins() -> None:
    ref = NumericReference.from_values(np.arange(100.0), bins=4)
    assert ref.edges.tolist() == [24.75, 49.5, 74.25]
    assert ref.shares.tolist() == [0.25, 0.25, 0.25, 0.25]
    window = np.array([0.0] * 50 + [60.0] * 50)  # bins 1 and 3 hold half each
    d = one(np.arange(100.0), window, bins=4)
    half, empty, quarter = 0.5, PSI_FLOOR, 0.25
    by_hand = 2 * (half - quarter) * math.log(half / quarter) + 2 * (empty - quarter) * math.log(
        empty / quarter
    )
    assert d.psi == pytest.approx(by_hand, rel=1e-12)
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


@pytest.mark.parametrize("seed", range(10))
def test_chi_squared_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    ref = rng.integers(0, 300, k)
    win = rng.integers(0, 300, k)
    win[rng.integers(k)] = 0  # a category missing from the window
    unseen = int(rng.integers(0, 40))
    d = categorical_drift(ref, 0, win, unseen)
    table = np.vstack([np.append(ref, 0), np.append(win, unseen)])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert d.chi2_statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert d.chi2_pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    p_ref = np.append(ref, 0) / ref.sum()
    p_win = np.append(win, unseen) / (win.sum() + unseen)
    assert d.jensen_shannon == pytest.approx(jensenshannon(p_ref, p_win, base=2), abs=1e-12)
    assert d.unseen == pytest.approx(unseen / (win.sum() + unseen))
    # The same test as scipy.stats.power_divergence (log-likelihood) over the table's cells,
    # with the degrees of freedom of a 2 x k homogeneity test (k - 1, so ddof = k).
    k_used = table.shape[1]
    flat = stats.power_divergence(
        table.ravel(), expected.expected_freq.ravel(), ddof=k_used, lambda_="log-likelihood"
    )
    assert d.chi2_statistic == pytest.approx(flat.statistic, rel=1e-12)
    assert d.chi2_pvalue == pytest.approx(flat.pvalue, rel=1e-9)


def test_single_category_and_empty_sides() -> None:
    d = categorical_drift(np.array([100]), 0, np.array([50]), 0)
    assert (d.chi2_statistic, d.chi2_pvalue, d.psi, d.jensen_shannon) == (0.0, 1.0, 0.0, 0.0)
    only_new = categorical_drift(np.array([100]), 0, np.array([0]), 50)
    assert only_new.unseen == 1.0 and only_new.chi2_pvalue < 1e-20
    with pytest.raises(ValueError, match="both sides"):
        categorical_drift(np.array([0]), 0, np.array([5]), 0)


@pytest.mark.parametrize("seed", range(20))
def test_benjamini_hochberg_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, int(rng.integers(0, 10)))])
    expected = stats.false_discovery_control(p, method="bh") <= 0.05
    np.testing.assert_array_equal(significant(p, 0.05, "bh"), expected)
    np.testing.assert_array_equal(significant(p, 0.05, "bonferroni"), p <= 0.05 / p.shape[0])
    np.testing.assert_array_equal(significant(p, 0.05, "none"), p <= 0.05)
    assert significant(np.array([]), 0.05, "bh").shape == (0,)


@pytest.mark.parametrize("seed", range(40))
def test_adjusted_pvalues_match_statsmodels(seed: int) -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(seed)
    p = rng.random(int(rng.integers(1, 40))) ** 4
    p[rng.random(p.shape[0]) < 0.2] = p[0]  # ties
    for ours, theirs in (("bh", "fdr_bh"), ("bonferroni", "bonferroni")):
        expected = multipletests(p, method=theirs)[1]
        np.testing.assert_allclose(adjusted_pvalues(p, ours), expected, rtol=1e-14, atol=0)
        for alpha in (1e-6, 1e-3, 0.05):
            np.testing.assert_array_equal(
                significant(p, alpha, ours), multipletests(p, alpha, method=theirs)[0]
            )
    np.testing.assert_array_equal(adjusted_pvalues(p, "none"), p)
