"""Champion/challenger comparisons against their oracles on the same counts: statsmodels'
z-test, Newcombe interval and McNemar test, SciPy's Fisher, binomial, Welch and paired t-tests
(on the raw absolute errors), scikit-learn's F1. Both sides of every switch, 80/20 allocation,
edge cases."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import astuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import contingency
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from exporter.stats.comparison import (
    AccuracyDifference,
    PairedComparison,
    PairedMaeDifference,
    accuracy_difference,
    f1_difference,
    mae_difference,
    mcnemar,
    paired_mae_difference,
    wilson_interval,
)

RTOL_P = 1e-9  # p-values, statistics, degrees of freedom: relative
ATOL = 1e-12  # differences and interval bounds, O(1): absolute

EXAMPLES = settings(max_examples=150, deadline=None, derandomize=True)


# --- accuracy: two-proportion z-test / Fisher, Newcombe's interval --------------------------------


def check_accuracy(
    ca: int, na: int, cb: int, nb: int, *, min_expected: float = 5.0, confidence: float = 0.95
) -> AccuracyDifference:
    """``accuracy_difference`` equals the oracles, and used the test the switch rule names."""
    r = accuracy_difference(ca, na, cb, nb, min_expected=min_expected, confidence=confidence)
    table = np.array([[ca, na - ca], [cb, nb - cb]])
    smallest = contingency.expected_freq(table).min()
    if smallest == 0 or smallest < min_expected:
        assert r.test == "fisher"
        expected = stats.fisher_exact(table, alternative="two-sided").pvalue
    else:
        assert r.test == "z"
        # statsmodels' difference is count1/nobs1 - count2/nobs2: the challenger goes first.
        expected = proportions_ztest([cb, ca], [nb, na])[1]
    assert r.pvalue == pytest.approx(expected, rel=RTOL_P, abs=0)
    low, upp = confint_proportions_2indep(
        cb, nb, ca, na, method="newcomb", compare="diff", alpha=1 - confidence
    )
    assert r.lower == pytest.approx(low, abs=ATOL)
    assert r.upper == pytest.approx(upp, abs=ATOL)
    assert r.difference == pytest.approx(cb / nb - ca / na, abs=ATOL)
    assert r.lower <= r.difference <= r.upper
    assert (r.champion_samples, r.challenger_samples) == (na, nb)
    assert (r.champion_accuracy, r.challenger_accuracy) == (ca / na, cb / nb)
    return r


@st.composite
def arm(draw: st.DrawFn) -> tuple[int, int]:
    """(correct, labeled) of one arm: small samples (Fisher's side) and large ones (z side)."""
    n = draw(st.one_of(st.integers(1, 40), st.integers(41, 20_000)))
    return draw(st.integers(0, n)), n


@EXAMPLES
@given(arm(), arm(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_accuracy_difference_matches_oracles(
    a: tuple[int, int], b: tuple[int, int], confidence: float
) -> None:
    check_accuracy(*a, *b, confidence=confidence)


@pytest.mark.parametrize("allocation", [0.5, 0.8])
@pytest.mark.parametrize(
    ("low", "high", "side"), [(6, 40, "fisher"), (2_000, 50_000, "z")], ids=["small", "large"]
)
def test_accuracy_difference_seeded_traffic(
    allocation: float, low: int, high: int, side: str
) -> None:
    # v1 at 0.90 on `allocation` of the traffic, v2 at 0.87 on the rest (numpy counts).
    rng = np.random.default_rng(int(allocation * 10) + high)
    used: Counter[str] = Counter()
    for _ in range(40):
        n = int(rng.integers(low, high))
        na = round(n * allocation)
        nb = n - na
        r = check_accuracy(rng.binomial(na, 0.90), na, rng.binomial(nb, 0.87), nb)
        used[r.test] += 1
    assert used[side] >= 35, used  # the regime exercises its side of the switch


def test_accuracy_switch_at_min_expected() -> None:
    # 10 v 10 with 10 wrong answers in all: smallest expected cell 10 * 10 / 20 = 5, not below.
    assert check_accuracy(5, 10, 5, 10).test == "z"
    # 9 wrong: 10 * 9 / 20 = 4.5 < 5.
    assert check_accuracy(6, 10, 5, 10).test == "fisher"
    assert check_accuracy(6, 10, 5, 10, min_expected=4.5).test == "z"
    assert check_accuracy(6, 10, 5, 10, min_expected=0).test == "z"
    # 80/20: the small arm's row decides: 20 * 30 / 100 = 6 >= 5, and 6 >= 5.5 but < 6.5.
    assert check_accuracy(60, 80, 10, 20, min_expected=6).test == "z"
    assert check_accuracy(60, 80, 10, 20, min_expected=6.5).test == "fisher"


@pytest.mark.parametrize("min_expected", [0.0, 5.0])
@pytest.mark.parametrize(
    ("ca", "na", "cb", "nb"), [(30, 30, 12, 12), (0, 30, 0, 12), (800, 800, 200, 200), (0, 1, 0, 4)]
)
def test_accuracy_all_right_or_all_wrong(
    ca: int, na: int, cb: int, nb: int, min_expected: float
) -> None:
    # A zero column: the z statistic would be 0/0, so Fisher's test answers (p = 1) whatever
    # min_expected says; the interval stays finite around 0.
    r = check_accuracy(ca, na, cb, nb, min_expected=min_expected)
    assert (r.test, r.pvalue, r.difference) == ("fisher", 1.0, 0.0)
    assert -1.0 <= r.lower < 0.0 < r.upper <= 1.0


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), [(20, 20, 0, 20), (0, 500, 125, 125)])
def test_accuracy_opposite_extremes(ca: int, na: int, cb: int, nb: int) -> None:
    r = check_accuracy(ca, na, cb, nb)
    assert r.test == "z"
    assert r.pvalue < 1e-9


@pytest.mark.parametrize(("ca", "na", "cb", "nb"), [(0, 0, 3, 5), (3, 5, 0, 0), (0, 0, 0, 0)])
def test_accuracy_empty_arm_is_nan(ca: int, na: int, cb: int, nb: int) -> None:
    r = accuracy_difference(ca, na, cb, nb)
    assert r.test == "none"
    assert all(math.isnan(x) for x in (r.difference, r.pvalue, r.lower, r.upper))
    assert (r.champion_samples, r.challenger_samples) == (na, nb)
    for correct, n, share in ((ca, na, r.champion_accuracy), (cb, nb, r.challenger_accuracy)):
        assert math.isnan(share) if n == 0 else share == correct / n


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((6, 5, 1, 2), {}, ValueError),  # more correct than labeled
        ((-1, 5, 1, 2), {}, ValueError),
        ((1, 5, 1, -2), {}, ValueError),
        ((1.0, 5, 1, 2), {}, TypeError),  # counts are integers
        ((1, 5, 1, 2), {"confidence": 1.0}, ValueError),
        ((1, 5, 1, 2), {"confidence": 0.0}, ValueError),
        ((1, 5, 1, 2), {"min_expected": -1.0}, ValueError),
        ((1, 5, 1, 2), {"min_expected": math.nan}, ValueError),
    ],
)
def test_accuracy_refuses_bad_arguments(args: tuple, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        accuracy_difference(*args, **kwargs)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_statsmodels(confidence: float) -> None:
    for n in (1, 2, 5, 17, 100, 1_000, 100_000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            low, upp = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            ours = wilson_interval(k, n, confidence=confidence)
            assert ours == pytest.approx((low, upp), abs=ATOL)
    # At 0 or n successes the bounds round to just outside [0, 1] for many n: clipped.
    for n in range(1, 100):
        for k in (0, n):
            low, upp = wilson_interval(k, n, confidence=confidence)
            assert 0.0 <= low < upp <= 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0, confidence=confidence)


# --- MAE: Welch's t-test on absolute errors, from the window's sums ------------------------------


def sums(errors: np.ndarray) -> tuple[int, float, float]:
    """What the window keeps: count, sum |e|, sum e^2 (of the signed errors)."""
    return errors.shape[0], float(np.sum(np.abs(errors))), float(np.sum(errors * errors))


def check_mae(err_a: np.ndarray, err_b: np.ndarray, confidence: float = 0.95) -> None:
    r = mae_difference(*sums(err_a), *sums(err_b), confidence=confidence)
    abs_a, abs_b = np.abs(err_a), np.abs(err_b)
    expected = stats.ttest_ind(abs_b, abs_a, equal_var=False)
    ci = expected.confidence_interval(confidence_level=confidence)
    assert (r.champion_samples, r.challenger_samples) == (err_a.shape[0], err_b.shape[0])
    assert r.champion_mae == pytest.approx(np.mean(abs_a), abs=ATOL)
    assert r.challenger_mae == pytest.approx(np.mean(abs_b), abs=ATOL)
    assert r.difference == pytest.approx(np.mean(abs_b) - np.mean(abs_a), abs=ATOL)
    assert r.statistic == pytest.approx(expected.statistic, rel=RTOL_P)
    assert r.df == pytest.approx(expected.df, rel=RTOL_P)
    assert r.pvalue == pytest.approx(expected.pvalue, rel=RTOL_P, abs=0)
    assert r.lower == pytest.approx(ci.low, abs=ATOL)
    assert r.upper == pytest.approx(ci.high, abs=ATOL)


DRAWS = {
    "normal": lambda rng, n, scale: rng.normal(0.0, scale, n),
    "laplace": lambda rng, n, scale: rng.laplace(0.1, scale, n),
    "heavy-tailed": lambda rng, n, scale: scale * rng.standard_t(3, n),
}


@pytest.mark.parametrize("family", sorted(DRAWS))
@pytest.mark.parametrize("seed", range(6))
def test_mae_difference_matches_welch_on_raw_errors(seed: int, family: str) -> None:
    rng = np.random.default_rng(seed)
    most = 8 if seed < 2 else 5_000  # seeds 0 and 1: a few samples per arm, down to 2
    na, nb = (int(n) for n in rng.integers(2, most, 2))
    draw = DRAWS[family]
    err_a = draw(rng, na, 1.0)
    err_b = draw(rng, nb, float(rng.uniform(0.3, 3.0)))
    check_mae(err_a, err_b, confidence=[0.9, 0.95, 0.99][seed % 3])


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_mae_difference_80_20(shift: float) -> None:
    rng = np.random.default_rng(80)
    check_mae(rng.normal(0.0, 1.0, 4_000), rng.normal(0.0, 1.0 + shift, 1_000))


def test_mae_one_constant_arm_matches_welch() -> None:
    rng = np.random.default_rng(3)
    constant = np.full(9, 0.7)  # its naive variance rounds below 0: clipped to 0, as SciPy's 0
    with warnings.catch_warnings():
        # SciPy warns of the cancellation it avoids (two-pass variance) on constant data.
        warnings.simplefilter("ignore", RuntimeWarning)
        check_mae(constant, rng.normal(0.0, 1.0, 50))
        check_mae(rng.normal(0.0, 1.0, 50), -constant)


def test_mae_variance_cancellation_is_clipped() -> None:
    # Seven errors of 0.7: sum e^2 - n mean^2 is about -1e-15 in floating point. Unclipped, the
    # two (zero) variances would sum below 0 and the standard error would be sqrt(negative).
    n, s, q = sums(np.full(7, 0.7))
    assert q - n * (s / n) ** 2 < 0
    r = mae_difference(n, s, q, 4, 8.0, 16.0)  # the challenger: four errors of exactly 2
    assert r.difference == pytest.approx(2.0 - 0.7, abs=ATOL)
    assert (r.statistic, r.pvalue, r.lower, r.upper) == (math.inf, 0.0, r.difference, r.difference)
    assert math.isnan(r.df)


def test_mae_equal_constant_arms_are_undefined() -> None:
    r = mae_difference(5, 5.0, 5.0, 3, 3.0, 3.0)
    assert (r.champion_mae, r.challenger_mae, r.difference) == (1.0, 1.0, 0.0)
    assert all(math.isnan(x) for x in (r.statistic, r.df, r.pvalue))
    assert (r.lower, r.upper) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("a", "b"), [((0, 0.0, 0.0), (5, 4.0, 6.0)), ((1, 2.5, 6.25), (5, 4.0, 6.0))]
)
def test_mae_arm_too_small_for_a_variance(
    a: tuple[int, float, float], b: tuple[int, float, float]
) -> None:
    r = mae_difference(*a, *b)
    assert r.challenger_mae == b[1] / b[0]
    assert math.isnan(r.champion_mae) if a[0] == 0 else r.champion_mae == a[1] / a[0]
    assert math.isnan(r.difference) if a[0] == 0 else r.difference == r.challenger_mae - a[1]
    assert all(math.isnan(x) for x in (r.statistic, r.df, r.pvalue, r.lower, r.upper))


@pytest.mark.parametrize(
    "args",
    [
        (3, -1.0, 2.0, 3, 1.0, 1.0),
        (3, 1.0, math.nan, 3, 1.0, 1.0),
        (3, 1.0, 1.0, 3, math.inf, 1.0),
        (-3, 1.0, 1.0, 3, 1.0, 1.0),
    ],
)
def test_mae_refuses_bad_sums(args: tuple) -> None:
    with pytest.raises(ValueError):
        mae_difference(*args)


# --- F1 -------------------------------------------------------------------------------------------


def binary_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int]:
    return (
        int(np.sum(y_true & y_pred)),
        int(np.sum(~y_true & y_pred)),
        int(np.sum(y_true & ~y_pred)),
    )


@pytest.mark.parametrize("seed", range(10))
def test_f1_difference_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    arms = []
    for n, rate in ((int(rng.integers(1, 4_000)), 0.3), (int(rng.integers(1, 1_000)), 0.05)):
        y_true = rng.random(n) < rate
        y_pred = np.where(rng.random(n) < rng.uniform(0.6, 1.0), y_true, ~y_true)
        arms.append((y_true, y_pred))
    r = f1_difference(*binary_counts(*arms[0]), *binary_counts(*arms[1]))
    f1_a, f1_b = (f1_score(t, p, zero_division=0) for t, p in arms)
    assert r.champion_f1 == pytest.approx(f1_a, abs=ATOL)
    assert r.challenger_f1 == pytest.approx(f1_b, abs=ATOL)
    assert r.difference == pytest.approx(f1_b - f1_a, abs=ATOL)


def test_f1_difference_without_positives_is_zero_division_zero() -> None:
    none = np.zeros(20, dtype=bool)
    some_true, some_pred = none.copy(), none.copy()
    some_true[:4], some_pred[2:6] = True, True
    r = f1_difference(*binary_counts(none, none), *binary_counts(some_true, some_pred))
    assert r.champion_f1 == f1_score(none, none, zero_division=0)
    assert r.difference == pytest.approx(f1_score(some_true, some_pred, zero_division=0), abs=ATOL)


# --- McNemar: exact binomial / continuity-corrected chi-squared -----------------------------------


def check_mcnemar(b: int, c: int, exact_below: int = 25) -> PairedComparison:
    r = mcnemar(b, c, exact_below=exact_below)
    table = [[7, b], [c, 3]]  # (champion right, wrong) x (challenger right, wrong)
    if b + c == 0 or b + c < exact_below:
        assert r.test == "exact"
        expected = sm_mcnemar(table, exact=True).pvalue
        if b + c:
            binomial = stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
            assert r.pvalue == pytest.approx(binomial, rel=RTOL_P, abs=0)
    else:
        assert r.test == "chi2"
        expected = sm_mcnemar(table, exact=False, correction=True).pvalue
    assert r.pvalue == pytest.approx(expected, rel=RTOL_P, abs=0)
    assert (r.champion_better, r.challenger_better, r.accuracy_difference) == (b, c, None)
    return r


@EXAMPLES
@given(
    st.one_of(st.integers(0, 20), st.integers(0, 5_000)),
    st.one_of(st.integers(0, 20), st.integers(0, 5_000)),
    st.sampled_from([0, 1, 10, 25, 100]),
)
def test_mcnemar_matches_oracles(b: int, c: int, exact_below: int) -> None:
    check_mcnemar(b, c, exact_below)


def test_mcnemar_switch_at_exact_below() -> None:
    assert check_mcnemar(12, 12).test == "exact"  # 24 discordant pairs
    assert check_mcnemar(12, 13).test == "chi2"  # 25
    assert check_mcnemar(3, 4, exact_below=7).test == "chi2"
    assert check_mcnemar(3, 4, exact_below=8).test == "exact"
    # No discordant pair: the exact test, p = 1, even when the chi-squared side is asked for.
    assert (check_mcnemar(0, 0, exact_below=0).test, mcnemar(0, 0).pvalue) == ("exact", 1.0)


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_paired_accuracy_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 5_000))
    champion_right = rng.random(n) < 0.90
    # The challenger mostly agrees with the champion, and is a little worse.
    challenger_right = np.where(rng.random(n) < 0.9, champion_right, rng.random(n) < 0.85)
    b = int(np.sum(champion_right & ~challenger_right))
    c = int(np.sum(~champion_right & challenger_right))
    r = mcnemar(b, c, n_pairs=n)
    assert r.accuracy_difference == pytest.approx(
        np.mean(challenger_right) - np.mean(champion_right), abs=ATOL
    )
    assert r.pvalue == check_mcnemar(b, c).pvalue


def test_mcnemar_degenerate_and_bad_pairs() -> None:
    r = mcnemar(0, 0, n_pairs=0)
    assert r.accuracy_difference is not None
    assert math.isnan(r.accuracy_difference)
    with pytest.raises(ValueError, match="n_pairs"):
        mcnemar(3, 4, n_pairs=6)
    with pytest.raises(ValueError):
        mcnemar(-1, 4)
    with pytest.raises(ValueError):
        mcnemar(1, 4, exact_below=-1)
    with pytest.raises(TypeError):
        mcnemar(1.5, 4)


# --- Paired MAE (shadow mode): the paired t-test, from the pairs' sums ---------------------------


def check_paired_mae(
    err_a: np.ndarray, err_b: np.ndarray, confidence: float = 0.95
) -> PairedMaeDifference:
    """Against ``scipy.stats.ttest_rel`` on the raw absolute errors of the same requests."""
    d = np.abs(err_b) - np.abs(err_a)
    r = paired_mae_difference(
        d.shape[0], float(np.sum(d)), float(np.sum(d * d)), confidence=confidence
    )
    expected = stats.ttest_rel(np.abs(err_b), np.abs(err_a))
    ci = expected.confidence_interval(confidence_level=confidence)
    assert r.pairs == d.shape[0]
    assert r.difference == pytest.approx(np.mean(np.abs(err_b)) - np.mean(np.abs(err_a)), abs=ATOL)
    assert r.statistic == pytest.approx(expected.statistic, rel=RTOL_P)
    assert r.df == expected.df
    assert r.pvalue == pytest.approx(expected.pvalue, rel=RTOL_P, abs=0)
    assert r.lower == pytest.approx(ci.low, abs=ATOL)
    assert r.upper == pytest.approx(ci.high, abs=ATOL)
    return r


@pytest.mark.parametrize("family", sorted(DRAWS))
@pytest.mark.parametrize("seed", range(6))
def test_paired_mae_matches_ttest_rel_on_raw_errors(seed: int, family: str) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 8 if seed < 2 else 5_000))  # seeds 0 and 1: down to 2 pairs
    draw = DRAWS[family]
    err_a = draw(rng, n, 1.0)
    # The challenger answers the same requests: its errors are correlated with the champion's.
    err_b = 0.8 * err_a + draw(rng, n, float(rng.uniform(0.1, 1.0)))
    check_paired_mae(err_a, err_b, confidence=[0.9, 0.95, 0.99][seed % 3])


def test_paired_test_sees_what_welch_misses() -> None:
    """Correlated arms whose errors differ a little, consistently: Welch's test (independent
    arms) finds nothing, the paired test finds the difference."""
    rng = np.random.default_rng(7)
    err_a = rng.normal(0.0, 1.0, 400)
    err_b = err_a * 1.03 + rng.normal(0.0, 0.01, 400)
    paired = check_paired_mae(err_a, err_b)
    welch = mae_difference(*sums(err_a), *sums(err_b))
    assert paired.pvalue < 1e-6 < 0.5 < welch.pvalue


def test_paired_mae_degenerate_and_bad_sums() -> None:
    assert all(math.isnan(x) for x in astuple(paired_mae_difference(0, 0.0, 0.0))[1:])
    one = paired_mae_difference(1, -0.5, 0.25)
    assert one.difference == -0.5 and math.isnan(one.pvalue)
    same = paired_mae_difference(3, 1.5, 0.75)  # d = 0.5 three times
    assert (same.statistic, same.pvalue, same.lower, same.upper) == (math.inf, 0.0, 0.5, 0.5)
    zero = paired_mae_difference(3, 0.0, 0.0)
    assert math.isnan(zero.statistic) and math.isnan(zero.pvalue)
    for args in [(-1, 0.0, 0.0), (3, math.nan, 1.0), (3, 1.0, -1.0), (3, math.inf, 1.0)]:
        with pytest.raises(ValueError):
            paired_mae_difference(*args)
    with pytest.raises(ValueError, match="confidence"):
        paired_mae_difference(3, 1.0, 1.0, confidence=1.0)
