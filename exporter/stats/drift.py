"""Two-sample Kolmogorov-Smirnov drift statistics.

Definition (documented in the README, tested against ``scipy.stats.ks_2samp``):

* statistic: ``D = max_x |F_ref(x) - F_win(x)|`` over the pooled values, computed exactly as
  scipy does (``searchsorted(..., side="right")`` on both sorted samples), so it is bit-identical;
* p-value: scipy's ``method="asymp"`` two-sided p-value, ``kstwo.sf(D, round(n1*n2/(n1+n2)))``.

Why ``"asymp"`` and not scipy's default ``"auto"``: ``"auto"`` switches from an exact to an
asymptotic p-value at 10,000 values, which would make a feature's p-value jump when its window
fills; the exact distribution also costs O(n1*n2). One definition at every sample size is what an
alert threshold needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KSResult:
    statistic: float
    pvalue: float
    reference_size: int
    window_size: int


def ks_statistic_sorted(reference: FloatArray, window: FloatArray) -> float:
    """KS statistic of two *sorted*, NaN-free, non-empty samples.

    Examples
    --------
    >>> ks_statistic_sorted(np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5]))
    0.6666666666666667
    """
    n1 = reference.shape[0]
    n2 = window.shape[0]
    pooled = np.concatenate([reference, window])
    cdf1 = np.searchsorted(reference, pooled, side="right") / n1
    cdf2 = np.searchsorted(window, pooled, side="right") / n2
    diffs = cdf1 - cdf2
    d_minus = float(np.clip(-np.min(diffs), 0, 1))
    d_plus = float(np.max(diffs))
    return max(d_minus, d_plus)


def ks_pvalue(statistic: float, n1: int, n2: int) -> float:
    """Two-sided asymptotic p-value, as ``scipy.stats.ks_2samp(method="asymp")``."""
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = np.round(m * n / (m + n))
    if en < 1:
        raise ValueError(f"samples of {n1} and {n2} values are too small for a KS p-value")
    p = float(stats.kstwo.sf(statistic, en))
    return min(max(p, 0.0), 1.0)


def ks_2samp_sorted(reference: FloatArray, window: FloatArray) -> KSResult:
    """KS test of a sorted reference against a sorted window sample (both NaN-free, non-empty)."""
    if reference.shape[0] == 0 or window.shape[0] == 0:
        raise ValueError("KS test needs two non-empty samples")
    d = ks_statistic_sorted(reference, window)
    return KSResult(
        statistic=d,
        pvalue=ks_pvalue(d, reference.shape[0], window.shape[0]),
        reference_size=int(reference.shape[0]),
        window_size=int(window.shape[0]),
    )


def ks_columns(
    reference_sorted: list[FloatArray], window: FloatArray, min_samples: int = 1
) -> list[KSResult | None]:
    """KS test of each column of ``window`` (rows x features, NaN = missing) against its reference.

    ``reference_sorted[j]`` is the sorted, NaN-free reference of column ``j``. A column gets
    ``None`` when either side has fewer than ``min_samples`` values: too few to say anything.
    The window is sorted once for all columns (NaN sorts last, so each column's values are a
    prefix of its sorted column).
    """
    if window.ndim != 2 or window.shape[1] != len(reference_sorted):
        raise ValueError(
            f"window has shape {window.shape}, expected (rows, {len(reference_sorted)})"
        )
    ordered = np.sort(window, axis=0)
    counts = np.count_nonzero(~np.isnan(window), axis=0)
    results: list[KSResult | None] = []
    for j, ref in enumerate(reference_sorted):
        n_window = int(counts[j])
        if n_window < max(min_samples, 2) or ref.shape[0] < max(min_samples, 2):
            results.append(None)
            continue
        results.append(ks_2samp_sorted(ref, ordered[:n_window, j]))
    return results
