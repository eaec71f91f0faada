"""Drift statistics of a window sample against a reference, for many features at once.

Numeric features: three tests, two-sample KS (:mod:`exporter.stats.ks`), Mann-Whitney and
the likelihood-ratio (G) chi-squared test of homogeneity over bins cut at the reference's
deciles; the Wasserstein-1 distance, and PSI and Jensen-Shannon distance over the same bins.
Categorical features: the chi-squared test, PSI and Jensen-Shannon distance over the reference's
categories plus one bin for categories the reference never saw. Then the multiple-testing
corrections.

Why three tests for a numeric feature: KS is an omnibus test, but a weak one for the two shifts
users meet most. For a shift of the mean (D 0.06, 3,600 values against 10,000) Mann-Whitney's z
is about 7.7 where KS's p-value corresponds to 5.6; for a change of spread (PSI 0.06 at D 0.04)
KS has almost no power and the binned chi-squared test, which is the test of the PSI's bins,
nearly certain power. A feature's p-value is the smallest of the three times 3 (Bonferroni within
the feature), so the false-alarm rate holds; see ``docs/drift-alarms.md``.

Definitions (each checked against its oracle in ``tests/test_stats_drift.py``):

* KS: ``scipy.stats.ks_2samp(ref, win, method="asymp")``;
* Mann-Whitney: ``scipy.stats.mannwhitneyu(ref, win, method="asymptotic")`` (two-sided, with the
  tie and continuity corrections);
* Wasserstein: ``scipy.stats.wasserstein_distance(ref, win)``;
* chi-squared: ``scipy.stats.chi2_contingency([ref_counts, win_counts], correction=False,
  lambda_="log-likelihood")`` (the G-test, see :func:`chi2_rows`),
  over the categories (numeric: the bins) present on either side;
* Jensen-Shannon: ``scipy.spatial.distance.jensenshannon(p_ref, p_win, base=2)`` (0..1);
* PSI: ``sum((p_win - p_ref) * ln(p_win / p_ref))`` with every share clipped below at
  ``PSI_FLOOR`` = 1e-4, so an empty bin cannot make it infinite.

Pure numpy/scipy, sklearn-style signatures, no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
from scipy import special

from exporter.stats.ks import (
    EXACT_TIES,
    PairStatistics,
    ks_pvalues,
    ks_wasserstein,
    mann_whitney_pvalues,
    ranked_statistics,
    tie_term,
)
from exporter.stats.ranked import Ranked
from exporter.typedefs import BoolArray, Correction, FloatArray, IntArray

PSI_FLOOR = 1e-4

#: Tests per numeric feature (KS, Mann-Whitney, binned chi-squared): its p-value is the smallest
#: of theirs times this.
NUMERIC_TESTS = 3


@dataclass(frozen=True)
class NumericReference:
    """A numeric feature's reference: sorted values, bin edges at its deciles, bin shares."""

    values: FloatArray
    edges: FloatArray
    shares: FloatArray

    @classmethod
    def from_values(cls, values: FloatArray, bins: int = 10) -> NumericReference:
        """Build from raw values (NaN dropped). Duplicate quantiles collapse into fewer bins.

        >>> ref = NumericReference.from_values(np.arange(100.0), bins=4)
        >>> ref.edges.tolist(), ref.shares.tolist()
        ([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25])
        """
        clean = np.sort(values[~np.isnan(values)])
        if clean.shape[0] == 0:
            raise ValueError("a numeric reference needs at least one value")
        edges = np.unique(np.quantile(clean, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = bin_counts(clean, edges)
        clean.setflags(write=False)
        return cls(values=clean, edges=edges, shares=counts / clean.shape[0])

    @property
    def size(self) -> int:
        return int(self.values.shape[0])

    @cached_property
    def tie_term(self) -> float:
        """``sum(t^3 - t)`` over the tie groups of the values (derived once, on first use)."""
        return tie_term(self.values)


def bin_counts(sorted_values: FloatArray, edges: FloatArray) -> IntArray:
    """Counts of a sorted sample in the bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)``."""
    cuts = np.searchsorted(sorted_values, edges, side="left")
    counts: IntArray = np.diff(np.concatenate([[0], cuts, [sorted_values.shape[0]]]))
    return counts


@dataclass(frozen=True, slots=True)
class NumericDrift:
    window_values: int
    reference_values: int
    ks_statistic: float
    ks_pvalue: float
    wasserstein: float
    psi: float
    jensen_shannon: float
    #: Share of window values outside the reference's [min, max].
    out_of_range: float
    mann_whitney_pvalue: float = 1.0
    #: The likelihood-ratio chi-squared test over the PSI's bins.
    chi2_statistic: float = 0.0
    chi2_pvalue: float = 1.0

    @property
    def pvalue(self) -> float:
        """The feature's p-value: the smallest of its three tests' times 3 (at most 1)."""
        return min(
            1.0, NUMERIC_TESTS * min(self.ks_pvalue, self.mann_whitney_pvalue, self.chi2_pvalue)
        )


@dataclass(frozen=True, slots=True)
class CategoricalDrift:
    window_values: int
    reference_values: int
    chi2_statistic: float
    chi2_pvalue: float
    psi: float
    jensen_shannon: float
    #: Share of window values in categories the reference never saw.
    unseen: float

    @property
    def pvalue(self) -> float:
        """The feature's p-value: its chi-squared test's."""
        return self.chi2_pvalue


def psi(reference_shares: FloatArray, window_shares: FloatArray) -> float:
    """Population stability index of two share vectors over the same bins.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 6)
    0.040547
    """
    p = np.maximum(reference_shares, PSI_FLOOR)
    q = np.maximum(window_shares, PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_shares: FloatArray, window_shares: FloatArray) -> float:
    """Jensen-Shannon distance in bits (0..1), as ``scipy.spatial.distance.jensenshannon``.

    >>> jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    p = reference_shares / np.sum(reference_shares)
    q = window_shares / np.sum(window_shares)
    m = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))
    return float(np.sqrt(max(js / np.log(2.0), 0.0) / 2.0))


def numeric_drift(
    references: Sequence[NumericReference | None],
    window: FloatArray,
    *,
    min_samples: int = 2,
    executor: Executor | None = None,
    chunks: int = 1,
) -> list[NumericDrift | None]:
    """Drift of each column of ``window`` (rows x features, NaN missing) against its reference.

    A column gets ``None`` when it has no reference or either side has fewer than
    ``min_samples`` values. Columns are sorted together, and every statistic is computed for
    many columns at once. With an ``executor``, the columns are split into ``chunks`` processed
    in parallel (the large numpy steps release the GIL); every column's result is the same
    whichever chunk it falls in.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = NumericReference.from_values(rng.normal(size=1000))
    >>> [d] = numeric_drift([ref], rng.normal(1.0, 1.0, size=(500, 1)))
    >>> d.ks_pvalue < 1e-10, d.psi > 0.25
    (True, True)
    """
    if window.ndim != 2 or window.shape[1] != len(references):
        raise ValueError(f"window has shape {window.shape}, expected (rows, {len(references)})")
    need = max(min_samples, 2)
    columns = np.arange(len(references))
    parts = [c for c in np.array_split(columns, max(1, chunks)) if c.shape[0]]
    if executor is not None and len(parts) > 1:
        done = list(executor.map(lambda c: _numeric_part(references, window, c, need), parts))
    else:
        done = [_numeric_part(references, window, c, need) for c in parts]
    return _with_pvalues([f for part in done for f in part], len(references))


def numeric_drift_ranked(
    references: Sequence[NumericReference | None],
    ranked: Ranked,
    columns: Sequence[int],
    *,
    min_samples: int = 2,
) -> list[NumericDrift | None]:
    """:func:`numeric_drift` of a window whose numeric columns are kept sorted and ranked: the
    same results, bit for bit (``tests/test_stats_ranked.py``).

    ``ranked`` holds the window's NaN-free columns ranked against their references' values,
    ``columns[i]`` (an index into ``references``) in its row ``i``; every other column gets
    ``None``, as do all when the window holds fewer than ``min_samples`` values. A reference
    smaller than the window, or a pair too large for the tie term to stay exact
    (:data:`~exporter.stats.ks.EXACT_TIES` values in all), goes through
    :func:`~exporter.stats.ks.ks_wasserstein` on the sorted window. Single-threaded: the
    ranked statistics are a fraction of what the pool would share.
    """
    need = max(min_samples, 2)
    m = ranked.size
    found: list[_Found] = []
    if m >= need:
        eligible: list[tuple[int, int, NumericReference]] = []  # (column, ranked row, reference)
        for row, j in enumerate(columns):
            ref = references[j]
            if ref is not None and ref.size >= need:
                if ref.values is not ranked.references[row]:
                    raise ValueError(f"column {j} was ranked against another reference")
                eligible.append((j, row, ref))
        found = _found_ranked(eligible, ranked)
    return _with_pvalues(found, len(references))


def _found_ranked(
    eligible: list[tuple[int, int, NumericReference]], ranked: Ranked
) -> list[_Found]:
    if not eligible:
        return []
    m = ranked.size
    n = len(eligible)
    statistics, distances = np.empty(n), np.empty(n)
    u_reference, ties = np.empty(n), np.empty(n)
    sizes: dict[int, list[int]] = {}
    for f, (_, _, ref) in enumerate(eligible):
        sizes.setdefault(ref.size, []).append(f)
    every = list(range(len(ranked.references)))
    for size, group in sizes.items():
        refs = [eligible[f][2] for f in group]
        rows = [eligible[f][1] for f in group]
        if m <= size and size + m <= EXACT_TIES:
            pick: list[int] | slice = slice(None) if rows == every else rows  # no copy
            pair = ranked_statistics(
                [r.values for r in refs],
                [r.tie_term for r in refs],
                ranked.values[pick],
                ranked.right[pick],
                ranked.left[pick],
            )
        else:
            pair = ks_wasserstein([r.values for r in refs], list(ranked.values[rows]))
        statistics[group], distances[group] = pair.statistics, pair.distances
        u_reference[group], ties[group] = pair.u_first, pair.ties
    windows = [ranked.values[row] for _, row, _ in eligible]
    refs = [ref for _, _, ref in eligible]
    pairs = PairStatistics(statistics, distances, u_reference, ties)
    return _found([(j, ref, m) for j, _, ref in eligible], pairs, _bin_distances(refs, windows))


def _found(
    eligible: list[tuple[int, NumericReference, int]], pairs: PairStatistics, bins: _Binned
) -> list[_Found]:
    """Each (column, reference, window values)'s statistics, as :func:`_with_pvalues` takes
    them."""
    return [
        _Found(j, ref.size, m, *values)
        for (j, ref, m), *values in zip(
            eligible,
            pairs.statistics.tolist(),
            pairs.distances.tolist(),
            bins.psi,
            bins.jensen_shannon,
            bins.out_of_range,
            pairs.u_first.tolist(),
            pairs.ties.tolist(),
            bins.chi2_statistic,
            bins.chi2_pvalue,
            strict=True,
        )
    ]


def _with_pvalues(found: list[_Found], columns: int) -> list[NumericDrift | None]:
    """The results of ``columns`` columns from what was found for some of them."""
    results: list[NumericDrift | None] = [None] * columns
    if not found:
        return results
    # The p-values of all columns at once, after the parts: inside them, the many small numpy
    # calls of the Pelz-Good series fought over the GIL (2 threads took 1 ms longer).
    reference_sizes = np.array([f.reference_values for f in found], dtype=np.int64)
    window_sizes = np.array([f.window_values for f in found], dtype=np.int64)
    pvalues = ks_pvalues(np.array([f.ks_statistic for f in found]), reference_sizes, window_sizes)
    rank_pvalues = mann_whitney_pvalues(
        np.array([f.u_reference for f in found]),
        reference_sizes,
        window_sizes,
        np.array([f.ties for f in found]),
    )
    for f, p, mw in zip(found, pvalues.tolist(), rank_pvalues.tolist(), strict=True):
        results[f.column] = NumericDrift(
            window_values=f.window_values,
            reference_values=f.reference_values,
            ks_statistic=f.ks_statistic,
            ks_pvalue=p,
            wasserstein=f.wasserstein,
            psi=f.psi,
            jensen_shannon=f.jensen_shannon,
            out_of_range=f.out_of_range,
            mann_whitney_pvalue=mw,
            chi2_statistic=f.chi2_statistic,
            chi2_pvalue=f.chi2_pvalue,
        )
    return results


class _Found(NamedTuple):
    """A column's drift but for the p-value, as :func:`_numeric_part` computes it."""

    column: int
    reference_values: int
    window_values: int
    ks_statistic: float
    wasserstein: float
    psi: float
    jensen_shannon: float
    out_of_range: float
    u_reference: float
    ties: float
    chi2_statistic: float
    chi2_pvalue: float


def _numeric_part(
    references: Sequence[NumericReference | None],
    window: FloatArray,
    columns: IntArray,
    need: int,
) -> list[_Found]:
    """Everything but the p-values for ``columns`` (consecutive, as ``np.array_split`` cuts them).

    Every step handles many columns per numpy call: the columns whose reference and window
    sizes agree (usually all) go through :func:`~exporter.stats.ks.ks_wasserstein` together, and
    PSI and Jensen-Shannon through :func:`_bin_distances`.
    """
    ordered = _sorted_columns(window, columns)
    counts = _value_counts(ordered)
    eligible: list[tuple[int, NumericReference, int]] = []  # (column, reference, window values)
    rows: list[FloatArray] = []
    for i, j in enumerate(columns.tolist()):
        ref = references[j]
        m = int(counts[i])
        if ref is None or m < need or ref.size < need:
            continue
        eligible.append((j, ref, m))
        rows.append(ordered[i, :m])
    if not eligible:
        return []
    statistics = np.empty(len(eligible))
    distances = np.empty(len(eligible))
    u_reference = np.empty(len(eligible))
    ties = np.empty(len(eligible))
    sizes: dict[tuple[int, int], list[int]] = {}
    for f, (_, ref, m) in enumerate(eligible):
        sizes.setdefault((ref.size, m), []).append(f)
    for group in sizes.values():
        pair = ks_wasserstein([eligible[f][1].values for f in group], [rows[f] for f in group])
        statistics[group], distances[group] = pair.statistics, pair.distances
        u_reference[group], ties[group] = pair.u_first, pair.ties
    bins = _bin_distances([ref for _, ref, _ in eligible], rows)
    return _found(eligible, PairStatistics(statistics, distances, u_reference, ties), bins)


def _sorted_columns(window: FloatArray, columns: IntArray) -> FloatArray:
    """The ``columns`` of ``window`` as contiguous rows, each sorted (NaN last).

    One transposing copy, sorted in place: 2.5 ms for 50 columns of 10,000 rows, where
    ``np.sort(np.ascontiguousarray(window[:, columns].T))`` made three copies (3.2 ms).
    """
    lo, hi = int(columns[0]), int(columns[-1]) + 1
    block = window[:, lo:hi] if hi - lo == columns.shape[0] else window[:, columns]
    ordered = np.ascontiguousarray(block.T)
    ordered.sort(axis=1)
    return ordered


def _value_counts(ordered: FloatArray) -> IntArray:
    """Non-NaN values per sorted row: only a row ending in NaN has any, and ``searchsorted``
    (which orders NaN last, as the sort does) finds the first. (Counting ``~isnan`` over the
    whole array took 0.4 ms for 50 columns of 10,000 rows.)"""
    rows = ordered.shape[1]
    counts: IntArray = np.full(ordered.shape[0], rows, dtype=np.int64)
    if rows:
        for i in np.flatnonzero(np.isnan(ordered[:, -1])).tolist():
            counts[i] = np.searchsorted(ordered[i], np.nan)
    return counts


class _Binned(NamedTuple):
    """Per window, what :func:`_bin_distances` computes over the reference's bins."""

    psi: list[float]
    jensen_shannon: list[float]
    out_of_range: list[float]
    chi2_statistic: list[float]
    chi2_pvalue: list[float]


def _bin_distances(references: list[NumericReference], windows: list[FloatArray]) -> _Binned:
    """PSI, Jensen-Shannon distance, out-of-range share and chi-squared test of each sorted
    window.

    The arithmetic of :func:`bin_counts`, :func:`psi` and :func:`jensen_shannon`, on one row per
    window of a 2-D array per number of bins: a row sum is the same pairwise sum as the 1-D sum,
    so the results are bit-identical, and 50 columns take 0.35 ms instead of 1.2 ms. The
    chi-squared test is :func:`chi2_rows` on the same counts.
    """
    out = _Binned(*([0.0] * len(windows) for _ in range(5)))
    by_bins: dict[int, list[int]] = {}
    cuts: list[IntArray] = []
    for f, (ref, win) in enumerate(zip(references, windows, strict=True)):
        m = win.shape[0]
        cuts.append(np.searchsorted(win, ref.edges, side="left"))
        below = int(np.searchsorted(win, ref.values[0], side="left"))
        above = m - int(np.searchsorted(win, ref.values[-1], side="right"))
        out.out_of_range[f] = (below + above) / m
        by_bins.setdefault(ref.edges.shape[0], []).append(f)
    for edges, group in by_bins.items():
        sizes = np.array([windows[f].shape[0] for f in group], dtype=np.int64)[:, None]
        bounds = np.zeros((len(group), edges + 2), dtype=np.int64)
        if edges:
            bounds[:, 1:-1] = [cuts[f] for f in group]
        bounds[:, -1:] = sizes
        window_counts = np.diff(bounds, axis=1)
        window_shares = window_counts / sizes
        reference_shares = np.array([references[f].shares for f in group])
        reference_counts = np.rint(
            reference_shares * np.array([references[f].size for f in group])[:, None]
        )
        statistic, pvalue = chi2_rows(reference_counts, window_counts.astype(np.float64))
        columns = (
            _psi_rows(reference_shares, window_shares).tolist(),
            _jensen_shannon_rows(reference_shares, window_shares).tolist(),
            statistic.tolist(),
            pvalue.tolist(),
        )
        for f, psi_value, js, chi2, p in zip(group, *columns, strict=True):
            out.psi[f], out.jensen_shannon[f] = psi_value, js
            out.chi2_statistic[f], out.chi2_pvalue[f] = chi2, p
    return out


def chi2_rows(first: FloatArray, second: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The likelihood-ratio (G) chi-squared test of homogeneity of each row pair of counts, over
    the bins not empty on both sides, as
    ``scipy.stats.chi2_contingency([first, second], correction=False, lambda_="log-likelihood")``
    over those bins: ``G = 2 sum O ln(O / E)``. A row pair with fewer than two such bins has
    statistic 0 and p-value 1.

    Why G and not Pearson's ``sum (O - E)^2 / E``: the drift verdicts read p-values near 1e-6,
    far in the tail, where Pearson's statistic is not chi-squared when some bins expect few
    values (a category of share 0.02 in a window of 150 expects 3). Measured on multinomial
    windows of 150 against a reference of 10,000 with such a category, p-values at most 1e-6
    came 9.5 times as often as they should with Pearson's statistic, about 1-2 times with G
    (which follows the exact large-deviation rate of the counts); ``docs/drift-alarms.md``.

    >>> statistic, p = chi2_rows(np.array([[50.0, 50.0, 0.0]]), np.array([[80.0, 20.0, 0.0]]))
    >>> round(float(statistic[0]), 4), bool(p[0] < 0.001)
    (20.2687, True)
    """
    keep = (first + second) > 0
    columns = first + second
    total = np.sum(columns, axis=1, keepdims=True)
    statistic = np.zeros(first.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for observed in (first, second):
            expected = np.sum(observed, axis=1, keepdims=True) * columns / total
            terms = np.where(keep, special.xlogy(observed, observed / expected), 0.0)
            statistic += 2.0 * np.sum(terms, axis=1)
    dof = np.sum(keep, axis=1) - 1
    testable = dof >= 1
    statistic = np.where(testable, np.maximum(statistic, 0.0), 0.0)
    pvalue: FloatArray = np.where(testable, special.chdtrc(np.maximum(dof, 1), statistic), 1.0)
    return statistic, pvalue


def _psi_rows(reference_shares: FloatArray, window_shares: FloatArray) -> FloatArray:
    """:func:`psi` of each row pair."""
    p = np.maximum(reference_shares, PSI_FLOOR)
    q = np.maximum(window_shares, PSI_FLOOR)
    out: FloatArray = np.sum((q - p) * np.log(q / p), axis=1)
    return out


def _jensen_shannon_rows(reference_shares: FloatArray, window_shares: FloatArray) -> FloatArray:
    """:func:`jensen_shannon` of each row pair."""
    p = reference_shares / np.sum(reference_shares, axis=1, keepdims=True)
    q = window_shares / np.sum(window_shares, axis=1, keepdims=True)
    m = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, m), axis=1) + np.sum(special.rel_entr(q, m), axis=1)
    out: FloatArray = np.sqrt(np.maximum(js / np.log(2.0), 0.0) / 2.0)
    return out


def categorical_drift(
    reference_counts: IntArray, reference_other: int, window_counts: IntArray, window_other: int
) -> CategoricalDrift:
    """Chi-squared test (likelihood-ratio, :func:`chi2_rows`) and distances of category counts
    against the reference's.

    ``reference_counts`` and ``window_counts`` align on the reference's tracked categories. The
    last bin, "other", holds the reference's pooled rare categories (``reference_other``) and
    the window's values outside the tracked categories (``window_other``: categories the
    reference never saw, when it tracked all of its own). Bins empty on both sides are left out
    of the test; with a single bin left, both sides are necessarily identical: statistic 0,
    p-value 1.

    Examples
    --------
    >>> d = categorical_drift(np.array([50, 50]), 0, np.array([80, 20]), 0)
    >>> round(d.chi2_statistic, 4), d.chi2_pvalue < 0.001
    (20.2687, True)
    """
    ref = np.append(np.asarray(reference_counts, dtype=np.float64), float(reference_other))
    win = np.append(np.asarray(window_counts, dtype=np.float64), float(window_other))
    n_ref, n_win = ref.sum(), win.sum()
    if n_ref <= 0 or n_win <= 0:
        raise ValueError("categorical drift needs values on both sides")
    [statistic], [pvalue] = (v.tolist() for v in chi2_rows(ref[None, :], win[None, :]))
    p_ref, p_win = ref / n_ref, win / n_win
    return CategoricalDrift(
        window_values=int(n_win),
        reference_values=int(n_ref),
        chi2_statistic=statistic,
        chi2_pvalue=pvalue,
        psi=psi(p_ref, p_win),
        jensen_shannon=jensen_shannon(p_ref, p_win),
        unseen=window_other / n_win,
    )


def adjusted_pvalues(pvalues: FloatArray, correction: Correction) -> FloatArray:
    """P-values adjusted for the multiple tests, as statsmodels' ``multipletests``
    ``pvals_corrected``: Benjamini-Hochberg (``"bh"``, ``fdr_bh``), Bonferroni, or none.

    A test rejects at level ``alpha`` exactly when its adjusted p-value is at most ``alpha``, so
    one adjustment serves two levels (entering and leaving drift, :mod:`exporter.detector`).

    >>> adjusted_pvalues(np.array([0.001, 0.02, 0.04, 0.5]), "bh").tolist()
    [0.004, 0.04, 0.05333333333333334, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.shape[0]
    if m == 0 or correction == "none":
        return p.copy()
    if correction == "bonferroni":
        out: FloatArray = np.minimum(p * m, 1.0)
        return out
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def significant(pvalues: FloatArray, alpha: float, correction: Correction) -> BoolArray:
    """Which tests reject at family-wise (Bonferroni) or false-discovery (BH) level ``alpha``.

    ``"bh"`` is the Benjamini-Hochberg step-up procedure; ``"none"`` compares raw p-values.

    >>> significant(np.array([0.001, 0.02, 0.04, 0.5]), 0.05, "bh").tolist()
    [True, True, False, False]
    >>> significant(np.array([0.001, 0.02, 0.04, 0.5]), 0.05, "bonferroni").tolist()
    [True, False, False, False]
    """
    out: BoolArray = adjusted_pvalues(pvalues, correction) <= alpha
    return out
