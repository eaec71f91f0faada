"""Fixed-sample comparisons of a challenger (b) against a champion (a), from window counts.

Every function works on what a window keeps exactly (confusion counts; for regression
``(count, sum |e|, sum e^2)``) and returns a frozen dataclass; differences are always challenger
minus champion. Each value equals its oracle in ``tests/test_stats_comparison.py`` to 1e-9.
These are per-window views: a p-value re-read at every scrape is a repeated test, so alerts must
use the sequential statistics, not these.

Methods, sources and switch rules:

* :func:`accuracy_difference` (independent arms, ``split`` mode). Difference ``p_b - p_a``.
  p-value: the two-proportion z-test with pooled variance, ``z = (p_b - p_a) / sqrt(p (1 - p)
  (1/n_a + 1/n_b))`` with ``p`` the pooled accuracy (as
  ``statsmodels.stats.proportion.proportions_ztest``), two-sided. **Switch:** Fisher's exact
  test (``scipy.stats.fisher_exact``, two-sided) on the 2x2 table (arm x correct/wrong) when its
  smallest expected cell ``min(n_a, n_b) * min(correct, wrong) / n`` is below ``min_expected``
  (default 5, Cochran's rule) or is zero (every answer right, or every one wrong: the z statistic
  would be 0/0). Interval: Newcombe's hybrid score interval (method 10 of Newcombe, "Interval
  estimation for the difference between independent proportions", Stat. Med. 17, 1998), built
  from the two Wilson score intervals ``(l, u)``: ``[d - sqrt((p_b - l_b)^2 + (u_a - p_a)^2),
  d + sqrt((u_b - p_b)^2 + (p_a - l_a)^2)]`` (as ``confint_proportions_2indep(..., method=
  "newcomb")``).
* :func:`mae_difference` (regression, independent arms). Difference of the mean absolute errors
  and Welch's t-test on the absolute errors (Welch 1947; Satterthwaite 1946 degrees of freedom),
  two-sided, with its t interval: as ``scipy.stats.ttest_ind(abs_b, abs_a, equal_var=False)``
  and its ``confidence_interval()``. Means and unbiased variances come from the sums
  (``|e|^2 = e^2``, so the window's squared-error sum is the sum of squared absolute errors).
* :func:`f1_difference`: binary F1 ``2 tp / (2 tp + fp + fn)`` of each arm (0 when undefined,
  as scikit-learn's ``zero_division=0``) and their difference. No test.
* :func:`mcnemar` (paired outcomes, ``shadow`` mode) from the discordant pairs ``b`` (champion
  right, challenger wrong) and ``c`` (the reverse). **Switch:** the exact binomial test
  (``scipy.stats.binomtest(min(b, c), b + c, 0.5)``, two-sided) when ``b + c < exact_below``
  (default 25), else the chi-squared statistic with Edwards' continuity correction
  ``(|b - c| - 1)^2 / (b + c)`` on 1 degree of freedom (as
  ``statsmodels.stats.contingency_tables.mcnemar(table, exact=False, correction=True)``;
  statsmodels' own default is the exact test at every size). Paired accuracy difference
  ``(c - b) / n_pairs``.
* :func:`paired_mae_difference` (regression, paired outcomes, ``shadow`` mode) from the pairs'
  differences of absolute errors ``d_i = |e_b,i| - |e_a,i|``, kept as ``(n, sum d, sum d^2)``:
  the mean ``d`` (the pairs' MAE difference) and the paired t-test (Student 1908), two-sided,
  with its t interval on ``n - 1`` degrees of freedom: as ``scipy.stats.ttest_rel(abs_b,
  abs_a)`` and its ``confidence_interval()``. The paired test is the right one in shadow mode:
  both versions answer the same requests, so their errors are correlated and Welch's test
  (which assumes independent arms) would misjudge the variance of the difference.

Undefined results are NaN, never an exception or a numpy warning: each function's docstring says
which inputs give which. Counts must be non-negative integers (``ValueError`` otherwise: they come
from the exporter's own windows, so a bad one is a bug, not a client's mistake).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Literal, SupportsIndex

from scipy import special

#: The test behind an accuracy difference's p-value; ``"none"`` when an arm has no samples.
AccuracyTest = Literal["z", "fisher", "none"]
#: The test behind a McNemar p-value.
McNemarTest = Literal["exact", "chi2"]


@dataclass(frozen=True, slots=True)
class AccuracyDifference:
    """Challenger minus champion accuracy, its two-sided p-value and confidence interval."""

    champion_samples: int
    challenger_samples: int
    champion_accuracy: float
    challenger_accuracy: float
    difference: float
    pvalue: float
    test: AccuracyTest
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class MaeDifference:
    """Challenger minus champion mean absolute error, with Welch's t-test and interval."""

    champion_samples: int
    challenger_samples: int
    champion_mae: float
    challenger_mae: float
    difference: float
    statistic: float
    df: float
    pvalue: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class F1Difference:
    """Binary F1 of each arm and challenger minus champion."""

    champion_f1: float
    challenger_f1: float
    difference: float


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """McNemar's test on the discordant pairs of paired (shadow) outcomes.

    ``accuracy_difference`` is challenger minus champion, ``None`` when no ``n_pairs`` was given.
    """

    champion_better: int
    challenger_better: int
    pvalue: float
    test: McNemarTest
    accuracy_difference: float | None


def accuracy_difference(
    correct_a: SupportsIndex,
    n_a: SupportsIndex,
    correct_b: SupportsIndex,
    n_b: SupportsIndex,
    *,
    min_expected: float = 5.0,
    confidence: float = 0.95,
) -> AccuracyDifference:
    """Compare the accuracy of a challenger (b) with a champion (a) on independent samples.

    Parameters
    ----------
    correct_a, n_a : int
        Correct predictions and labeled predictions of the champion.
    correct_b, n_b : int
        The same for the challenger.
    min_expected : float
        Fisher's exact test replaces the z-test when an expected cell of the 2x2 table is below
        this (or is zero).
    confidence : float
        Coverage of Newcombe's interval.

    Returns
    -------
    AccuracyDifference
        With an empty arm: that arm's accuracy, the difference, p-value and interval are NaN and
        ``test`` is ``"none"``. Both arms all right (or all wrong): difference 0, Fisher's
        p-value 1, and a finite interval around 0.

    Examples
    --------
    >>> r = accuracy_difference(900, 1000, 170, 200)
    >>> r.test, round(r.difference, 4), round(r.pvalue, 4), round(r.lower, 4), round(r.upper, 4)
    ('z', -0.05, 0.0378, -0.1086, -0.0026)
    >>> accuracy_difference(9, 10, 4, 10).test
    'fisher'
    """
    a, total_a = _successes("correct_a", correct_a, "n_a", n_a)
    b, total_b = _successes("correct_b", correct_b, "n_b", n_b)
    if not min_expected >= 0:
        raise ValueError(f"min_expected must be >= 0, got {min_expected!r}")
    _check_confidence(confidence)
    share_a = a / total_a if total_a else math.nan
    share_b = b / total_b if total_b else math.nan
    if not (total_a and total_b):
        return AccuracyDifference(
            total_a, total_b, share_a, share_b, math.nan, math.nan, "none", math.nan, math.nan
        )
    test, pvalue = _accuracy_pvalue(a, total_a, b, total_b, min_expected)
    low_a, upp_a = wilson_interval(a, total_a, confidence=confidence)
    low_b, upp_b = wilson_interval(b, total_b, confidence=confidence)
    difference = share_b - share_a
    lower = difference - math.hypot(share_b - low_b, upp_a - share_a)
    upper = difference + math.hypot(upp_b - share_b, share_a - low_a)
    return AccuracyDifference(
        total_a, total_b, share_a, share_b, difference, pvalue, test, lower, upper
    )


def _accuracy_pvalue(
    a: int, n_a: int, b: int, n_b: int, min_expected: float
) -> tuple[AccuracyTest, float]:
    """The z-test's two-sided p-value, or Fisher's when an expected cell is small (or zero)."""
    total = n_a + n_b
    correct = a + b
    # The smallest expected cell is min(rows) * min(columns) / total: compared multiplied out.
    smallest_by_total = min(n_a, n_b) * min(correct, total - correct)
    if smallest_by_total == 0 or smallest_by_total < min_expected * total:
        table = [[a, n_a - a], [b, n_b - b]]
        from scipy import stats  # not at the top: see exporter.stats.ks.ks_pvalues

        return "fisher", float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    pooled = correct / total
    z = (b / n_b - a / n_a) / math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    return "z", 2.0 * float(special.ndtr(-abs(z)))


def wilson_interval(
    successes: SupportsIndex, n: SupportsIndex, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson's score interval for a proportion (``n > 0``), clipped to [0, 1] as statsmodels
    does (at 0 or ``n`` successes the bounds round to just outside).

    Examples
    --------
    >>> [round(x, 4) for x in wilson_interval(9, 10)]
    [0.5958, 0.9821]
    """
    successes, n = _successes("successes", successes, "n", n)
    if n == 0:
        raise ValueError("a Wilson interval needs n > 0")
    _check_confidence(confidence)
    z = -float(special.ndtri((1.0 - confidence) / 2.0))
    z2 = z * z
    share = successes / n
    scale = 1.0 + z2 / n
    centre = (share + z2 / (2.0 * n)) / scale
    half = z * math.sqrt(share * (1.0 - share) / n + z2 / (4.0 * n * n)) / scale
    return max(centre - half, 0.0), min(centre + half, 1.0)


@dataclass(frozen=True, slots=True)
class PairedMaeDifference:
    """Challenger minus champion mean absolute error over pairs, with the paired t-test."""

    pairs: int
    difference: float
    statistic: float
    df: float
    pvalue: float
    lower: float
    upper: float


def mae_difference(
    count_a: SupportsIndex,
    sum_abs_a: float,
    sum_sq_abs_a: float,
    count_b: SupportsIndex,
    sum_abs_b: float,
    sum_sq_abs_b: float,
    *,
    confidence: float = 0.95,
) -> MaeDifference:
    """Compare the mean absolute error of a challenger (b) with a champion (a): Welch's t-test.

    Parameters
    ----------
    count_a, sum_abs_a, sum_sq_abs_a : int, float, float
        The champion's errors: how many, ``sum |e|`` and ``sum e^2`` (= ``sum |e|^2``).
    count_b, sum_abs_b, sum_sq_abs_b : int, float, float
        The same for the challenger.
    confidence : float
        Coverage of the t interval.

    Returns
    -------
    MaeDifference
        An arm without samples: its MAE and every value after it are NaN. An arm with one
        sample: the MAEs and their difference are set, the rest is NaN (no variance). Both variances
        zero: ``df`` is NaN, the interval is ``[d, d]``, and the statistic is ``+-inf`` with
        p-value 0 when the MAEs differ, NaN (both) when they are equal.

    Notes
    -----
    The variance is ``(sum e^2 - n mean^2) / (n - 1)``: when the errors are large and nearly equal
    the subtraction cancels catastrophically (relative error about ``1e-16 (1 + mean^2 / var)``),
    and rounding can make it negative, so it is clipped at 0.

    Examples
    --------
    >>> r = mae_difference(4, 4.0, 6.0, 3, 6.0, 14.0)
    >>> round(r.difference, 4), round(r.statistic, 4), round(r.df, 4), round(r.pvalue, 4)
    (1.0, 1.4142, 3.8571, 0.2327)
    """
    n_a = _count("count_a", count_a)
    n_b = _count("count_b", count_b)
    _check_confidence(confidence)
    mae_a, var_a = _mean_and_variance("a", n_a, sum_abs_a, sum_sq_abs_a)
    mae_b, var_b = _mean_and_variance("b", n_b, sum_abs_b, sum_sq_abs_b)
    difference = mae_b - mae_a
    nan = math.nan
    if math.isnan(var_a) or math.isnan(var_b):
        return MaeDifference(n_a, n_b, mae_a, mae_b, difference, nan, nan, nan, nan, nan)
    vn_a, vn_b = var_a / n_a, var_b / n_b
    spread = vn_a + vn_b
    if spread == 0.0:
        statistic = math.copysign(math.inf, difference) if difference else nan
        pvalue = 0.0 if difference else nan
        return MaeDifference(
            n_a, n_b, mae_a, mae_b, difference, statistic, nan, pvalue, difference, difference
        )
    # Welch-Satterthwaite on the shares of the variance: the squares of tiny variances would
    # underflow to 0 (and 0/0), the shares cannot.
    share_a, share_b = vn_a / spread, vn_b / spread
    df = 1.0 / (share_a * share_a / (n_a - 1) + share_b * share_b / (n_b - 1))
    se = math.sqrt(spread)
    statistic = difference / se
    pvalue = 2.0 * float(special.stdtr(df, -abs(statistic)))
    half = float(special.stdtrit(df, (1.0 + confidence) / 2.0)) * se
    return MaeDifference(
        n_a,
        n_b,
        mae_a,
        mae_b,
        difference,
        statistic,
        df,
        pvalue,
        difference - half,
        difference + half,
    )


def paired_mae_difference(
    n_pairs: SupportsIndex,
    sum_difference: float,
    sum_sq_difference: float,
    *,
    confidence: float = 0.95,
) -> PairedMaeDifference:
    """Compare paired absolute errors of a challenger (b) and a champion (a): the paired t-test.

    Parameters
    ----------
    n_pairs : int
        Pairs: requests both versions answered, joined to their label.
    sum_difference, sum_sq_difference : float
        ``sum d`` and ``sum d^2`` over the pairs, ``d = |e_b| - |e_a|`` (challenger's absolute
        error minus the champion's).
    confidence : float
        Coverage of the t interval.

    Returns
    -------
    PairedMaeDifference
        No pairs: every value NaN. One pair: the difference is set, the rest NaN. Every ``d``
        alike (zero variance): ``df`` is ``n - 1``, the interval is ``[d, d]``, and the statistic
        is ``+-inf`` with p-value 0 when ``d != 0``, NaN (both) when every ``d`` is 0.

    Notes
    -----
    The variance ``(sum d^2 - n mean^2) / (n - 1)`` is clipped at 0 against rounding, as in
    :func:`mae_difference`.

    Examples
    --------
    >>> r = paired_mae_difference(4, 2.0, 4.0)  # d = 1, 1, 1, -1
    >>> r.difference, round(r.statistic, 4), r.df, round(r.pvalue, 4)
    (0.5, 1.0, 3.0, 0.391)
    """
    n = _count("n_pairs", n_pairs)
    _check_confidence(confidence)
    for name, value in (
        ("sum_difference", sum_difference),
        ("sum_sq_difference", sum_sq_difference),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if sum_sq_difference < 0:
        raise ValueError(f"sum_sq_difference must be >= 0, got {sum_sq_difference!r}")
    nan = math.nan
    if n == 0:
        return PairedMaeDifference(0, nan, nan, nan, nan, nan, nan)
    mean = sum_difference / n
    if n == 1:
        return PairedMaeDifference(1, mean, nan, nan, nan, nan, nan)
    df = float(n - 1)
    variance = max((sum_sq_difference - n * mean * mean) / df, 0.0)
    if variance == 0.0:
        statistic = math.copysign(math.inf, mean) if mean else nan
        pvalue = 0.0 if mean else nan
        return PairedMaeDifference(n, mean, statistic, df, pvalue, mean, mean)
    se = math.sqrt(variance / n)
    statistic = mean / se
    pvalue = 2.0 * float(special.stdtr(df, -abs(statistic)))
    half = float(special.stdtrit(df, (1.0 + confidence) / 2.0)) * se
    return PairedMaeDifference(n, mean, statistic, df, pvalue, mean - half, mean + half)


def _mean_and_variance(arm: str, n: int, sum_abs: float, sum_sq: float) -> tuple[float, float]:
    """Mean and unbiased variance of an arm's absolute errors (NaN where undefined)."""
    for name, value in ((f"sum_abs_{arm}", sum_abs), (f"sum_sq_abs_{arm}", sum_sq)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if n == 0:
        return math.nan, math.nan
    mean = sum_abs / n
    if n == 1:
        return mean, math.nan
    return mean, max(sum_sq - n * mean * mean, 0.0) / (n - 1)


def binary_f1(tp: SupportsIndex, fp: SupportsIndex, fn: SupportsIndex) -> float:
    """``2 tp / (2 tp + fp + fn)``, 0 when nothing is positive (scikit-learn's zero_division=0).

    >>> binary_f1(3, 1, 2), binary_f1(0, 0, 0)
    (0.6666666666666666, 0.0)
    """
    t, p, n = _count("tp", tp), _count("fp", fp), _count("fn", fn)
    denominator = 2 * t + p + n
    return 2 * t / denominator if denominator else 0.0


def f1_difference(
    tp_a: SupportsIndex,
    fp_a: SupportsIndex,
    fn_a: SupportsIndex,
    tp_b: SupportsIndex,
    fp_b: SupportsIndex,
    fn_b: SupportsIndex,
) -> F1Difference:
    """Binary F1 of the champion (a) and the challenger (b) from their counts, and b minus a.

    >>> f1_difference(8, 2, 2, 9, 1, 1).difference
    0.09999999999999998
    """
    f1_a = binary_f1(tp_a, fp_a, fn_a)
    f1_b = binary_f1(tp_b, fp_b, fn_b)
    return F1Difference(f1_a, f1_b, f1_b - f1_a)


def mcnemar(
    b: SupportsIndex,
    c: SupportsIndex,
    *,
    exact_below: int = 25,
    n_pairs: SupportsIndex | None = None,
) -> PairedComparison:
    """McNemar's test of paired outcomes from the discordant pairs.

    Parameters
    ----------
    b : int
        Pairs where the champion is right and the challenger wrong.
    c : int
        Pairs where the challenger is right and the champion wrong.
    exact_below : int
        The exact binomial test is used while ``b + c`` is below this, the continuity-corrected
        chi-squared test from there on.
    n_pairs : int, optional
        All labeled pairs (concordant ones too), for the paired accuracy difference
        ``(c - b) / n_pairs`` (NaN when 0).

    Returns
    -------
    McNemar
        No discordant pairs: p-value 1 from the exact test (its only outcome has probability 1).

    Examples
    --------
    >>> r = mcnemar(10, 20, n_pairs=400)
    >>> r.test, round(r.pvalue, 4), r.accuracy_difference
    ('chi2', 0.1003, 0.025)
    >>> r = mcnemar(2, 9)
    >>> r.test, round(r.pvalue, 4)
    ('exact', 0.0654)
    """
    champion = _count("b", b)
    challenger = _count("c", c)
    discordant = champion + challenger
    if exact_below < 0:
        raise ValueError(f"exact_below must be >= 0, got {exact_below!r}")
    difference: float | None = None
    if n_pairs is not None:
        pairs = _count("n_pairs", n_pairs)
        if pairs < discordant:
            raise ValueError(f"n_pairs ({pairs}) is less than the discordant pairs ({discordant})")
        difference = (challenger - champion) / pairs if pairs else math.nan
    test: McNemarTest
    if discordant == 0:
        test, pvalue = "exact", 1.0
    elif discordant < exact_below:
        test = "exact"
        from scipy import stats  # not at the top: see exporter.stats.ks.ks_pvalues

        pvalue = float(stats.binomtest(min(champion, challenger), discordant, 0.5).pvalue)
    else:
        test = "chi2"
        statistic = (abs(champion - challenger) - 1) ** 2 / discordant
        pvalue = float(special.chdtrc(1, statistic))
    return PairedComparison(champion, challenger, pvalue, test, difference)


def _count(name: str, value: SupportsIndex) -> int:
    """``value`` as a non-negative Python int (numpy integers accepted, floats refused)."""
    count = operator.index(value)
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def _successes(
    name: str, value: SupportsIndex, total_name: str, total: SupportsIndex
) -> tuple[int, int]:
    """Successes and trials, checked: ``0 <= successes <= trials``."""
    k, n = _count(name, value), _count(total_name, total)
    if k > n:
        raise ValueError(f"{name} ({k}) exceeds {total_name} ({n})")
    return k, n


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
