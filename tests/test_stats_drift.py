"""KS statistic and p-value equal scipy.stats.ks_2samp(method="asymp") on the same samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from exporter.stats.drift import ks_2samp_sorted, ks_columns

RTOL_P = 1e-9


def check(a: np.ndarray, b: np.ndarray) -> None:
    ours = ks_2samp_sorted(np.sort(a), np.sort(b))
    ref = stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == ref.statistic  # bit-identical: same arithmetic as scipy
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=RTOL_P, abs=0)
    assert (ours.reference_size, ours.window_size) == (len(a), len(b))


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3, 2.0])
def test_continuous_samples(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = rng.integers(5, 20_000, 2)
    check(rng.normal(0, 1, n1), rng.normal(shift, 1, n2))


@pytest.mark.parametrize("seed", range(10))
def test_ties_and_discrete_values(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    check(rng.integers(0, 5, 3000).astype(float), rng.integers(0, 6, 2500).astype(float))


def test_identical_and_disjoint_samples() -> None:
    x = np.arange(100.0)
    check(x, x.copy())
    check(x, x + 1000.0)
    check(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="too small"):
        ks_2samp_sorted(np.array([1.0]), np.array([2.0]))


def test_columns_skip_nan_and_small_samples() -> None:
    rng = np.random.default_rng(7)
    ref = [
        np.sort(rng.normal(size=500)),
        np.sort(rng.normal(size=500)),
        np.sort(rng.normal(size=50)),
    ]
    window = rng.normal(0.2, 1, (400, 3))
    window[rng.random(400) < 0.3, 0] = np.nan  # missing values
    window[:, 1] = np.nan  # a column with nothing
    results = ks_columns(ref, window, min_samples=100)
    col0 = window[:, 0][~np.isnan(window[:, 0])]
    expected = stats.ks_2samp(ref[0], col0, method="asymp")
    assert results[0] is not None
    assert results[0].statistic == expected.statistic
    assert results[0].pvalue == pytest.approx(expected.pvalue, rel=RTOL_P)
    assert results[0].window_size == col0.shape[0]
    assert results[1] is None  # no window values
    assert results[2] is None  # reference below min_samples


def test_empty_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ks_2samp_sorted(np.array([]), np.array([1.0]))
