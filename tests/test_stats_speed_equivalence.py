"""The vectorised numeric drift (``ks_wasserstein``, the 2-D bin distances) against its oracles.

Many seeded random inputs (ties, discrete and rounded values, -0.0 next to 0.0, adjacent floats,
constant and drifted columns, NaN-missing values, tiny and unequal samples, ragged columns, a
feature without reference, samples below ``min_samples``), each column checked against SciPy
(KS statistic bit for bit, p-value, Wasserstein) and against the per-column formulas
:func:`bin_counts`, :func:`psi` and :func:`jensen_shannon` (bit for bit), serially and in
parallel chunks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from exporter.stats.drift import (
    NumericReference,
    bin_counts,
    jensen_shannon,
    numeric_drift,
    psi,
)
from exporter.stats.ks import ks_wasserstein, mann_whitney_pvalues
from tests.test_stats_drift import check_rank_and_bins

RTOL_P = 1e-9
RTOL_W = 1e-12

KINDS = (
    "normal",
    "integers",
    "rounded",
    "constant",
    "exponential",
    "signed zeros and neighbours",
    "tiny scale",
    "mixed",
)


def _sample(rng: np.random.Generator, kind: str, size: int, shift: float) -> np.ndarray:
    if kind == "normal":
        return rng.normal(shift, 1.0, size)
    if kind == "integers":
        return rng.integers(0, 5, size).astype(float) + round(shift)
    if kind == "rounded":
        return np.round(rng.normal(shift, 1.0, size), 1)
    if kind == "constant":
        return np.full(size, 3.0 + (shift > 0.5))
    if kind == "exponential":
        return rng.exponential(1.0, size) * (1.0 + shift)
    if kind == "signed zeros and neighbours":
        return rng.choice([-0.0, 0.0, 1.0, np.nextafter(1.0, 2.0), 2.0 + shift], size)
    if kind == "tiny scale":
        return rng.normal(shift, 1.0, size) * 1e-200
    return np.where(rng.random(size) < 0.5, rng.integers(0, 3, size), rng.normal(shift, 1, size))


def _case(seed: int) -> tuple[list[NumericReference | None], np.ndarray, int]:
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)]
    features = int(rng.integers(1, 9))
    rows = int(rng.choice([0, 1, 2, 3, 5, 20, 150, 1000, 3000]))
    same = int(rng.choice([2, 3, 50, 500, 1000, 3000]))  # often one reference size for all
    refs: list[NumericReference | None] = []
    for _ in range(features):
        size = same if rng.random() < 0.6 else int(rng.choice([1, 2, 3, 7, 50, 999, 2500]))
        ref = NumericReference.from_values(_sample(rng, kind, size, 0.0))
        refs.append(None if rng.random() < 0.1 else ref)
    shifts = rng.choice([0.0, 0.0, 0.1, 1.0, 3.0], features)
    window = np.empty((rows, features))
    for j in range(features):
        window[:, j] = _sample(rng, kind, rows, float(shifts[j]))
    if rows:
        window[rng.random(window.shape) < rng.choice([0.0, 0.0, 0.05, 0.5, 0.99])] = np.nan
        if rng.random() < 0.2:
            window[:, 0] = np.nan
    return refs, window, int(rng.choice([2, 2, 10, 100]))


def _check_column(ref: NumericReference, column: np.ndarray, drift) -> None:
    win = column[~np.isnan(column)]
    expected = stats.ks_2samp(ref.values, win, method="asymp")
    assert drift.ks_statistic == expected.statistic  # bit-identical: the same counts as SciPy
    assert drift.ks_pvalue == pytest.approx(expected.pvalue, rel=RTOL_P, abs=0)
    assert drift.wasserstein == pytest.approx(
        stats.wasserstein_distance(ref.values, win), rel=RTOL_W, abs=0
    )
    shares = bin_counts(np.sort(win), ref.edges) / win.shape[0]
    assert drift.psi == psi(ref.shares, shares)
    assert drift.jensen_shannon == jensen_shannon(ref.shares, shares)
    assert drift.jensen_shannon == pytest.approx(
        jensenshannon(ref.shares, shares, base=2), abs=1e-12
    )
    outside = np.mean((win < ref.values[0]) | (win > ref.values[-1]))
    assert drift.out_of_range == outside
    assert (drift.window_values, drift.reference_values) == (win.shape[0], ref.size)
    check_rank_and_bins(ref, win, drift)


@pytest.mark.parametrize("seed", range(160))
def test_numeric_drift_matches_scipy_and_per_column_formulas(seed: int) -> None:
    refs, window, min_samples = _case(seed)
    out = numeric_drift(refs, window, min_samples=min_samples)
    for j, (ref, drift) in enumerate(zip(refs, out, strict=True)):
        column = window[:, j]
        m = int(np.count_nonzero(~np.isnan(column)))
        if ref is None or m < max(min_samples, 2) or ref.size < max(min_samples, 2):
            assert drift is None
            continue
        assert drift is not None
        _check_column(ref, column, drift)
    with ThreadPoolExecutor(3) as pool:
        for chunks in (2, 3):
            parallel = numeric_drift(
                refs, window, min_samples=min_samples, executor=pool, chunks=chunks
            )
            assert parallel == out


@pytest.mark.parametrize(
    ("n", "m"),
    [(10_000, 10_000), (1000, 10_000), (10_000, 999), (5000, 10_000), (4, 6), (2, 3), (3, 3)],
)
def test_sizes_and_both_rank_routes(n: int, m: int) -> None:
    # Equal sizes take the merge route and the a == b Wasserstein; a small sample against a
    # large one the searchsorted route; 5000 against 10,000 shares grid points (gcd 5000).
    rng = np.random.default_rng(n * 7 + m)
    first = [np.sort(rng.normal(0.0, 1.0, n)) for _ in range(3)]
    second = [np.sort(rng.normal(shift, 1.0, m)) for shift in (0.0, 0.05, 1.0)]
    second.append(np.sort(np.round(rng.normal(0.0, 1.0, m), 1)))
    first.append(np.sort(np.round(rng.normal(0.0, 1.0, n), 1)))  # ties across the samples
    statistics, distances, u_first, ties = ks_wasserstein(first, second)
    for x, y, d, w, u, t in zip(first, second, statistics, distances, u_first, ties, strict=True):
        assert d == stats.ks_2samp(x, y, method="asymp").statistic
        assert w == pytest.approx(stats.wasserstein_distance(x, y), rel=RTOL_W, abs=0)
        rank = stats.mannwhitneyu(x, y, method="asymptotic")
        assert u == rank.statistic  # counts and halves: exact
        pvalue = mann_whitney_pvalues(np.array([u]), np.array([n]), np.array([m]), np.array([t]))
        assert pvalue[0] == pytest.approx(rank.pvalue, rel=1e-12, abs=1e-300)


def test_infinite_and_huge_values_fall_back_like_scipy() -> None:
    cases = [
        ([1.0, 2.0, np.inf], [0.5, 2.5]),
        ([-np.inf, 1.0, 2.0], [0.5, 2.5, np.inf]),
        ([1.0, 2.0, 3.0], [1.0, 1e308, 1.7e308]),
        ([-1e308, 0.0], [0.0, 1e308]),  # the quantile sum overflows, SciPy's does not
    ]
    for x, y in cases:
        xs, ys = np.sort(np.array(x)), np.sort(np.array(y))
        [d], [w], [u], _ = ks_wasserstein([xs], [ys])
        assert d == stats.ks_2samp(xs, ys, method="asymp").statistic
        assert w == stats.wasserstein_distance(xs, ys)
        assert u == stats.mannwhitneyu(xs, ys, method="asymptotic").statistic
