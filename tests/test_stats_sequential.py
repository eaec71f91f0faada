"""Sequential statistics against their published formulas, written out here with loops on the
raw outcomes; their invariants (monotone, burn-in, symmetric); and a seeded A/A simulation
under continuous monitoring, beside the naive per-look z-test."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import integrate, special, stats

from exporter.stats.sequential import (
    Estimate,
    OneSidedState,
    SequentialSettings,
    SequentialState,
    accuracy_margin,
    look,
    mae,
    mae_margin,
    one_sided_log_ratio,
    paired,
    paired_mae,
    proportions,
)

TOL = 1e-12
SETTINGS = SequentialSettings()
ALPHA = SETTINGS.alpha


def mean(xs: list[float]) -> float:
    total = 0.0
    for x in xs:
        total += x
    return total / len(xs)


def plugin_variance(xs: list[float]) -> float:
    """``(1/n) sum (x - mean)^2``, the plug-in variance, by a loop."""
    mu = mean(xs)
    total = 0.0
    for x in xs:
        total += (x - mu) ** 2
    return total / len(xs)


def johari_two_stream(sigma2: float, n: int, tau2: float, difference: float) -> float:
    """Johari et al.'s mSPRT for two streams of n observations each, normal mixture N(0, tau^2)."""
    return math.sqrt(2 * sigma2 / (2 * sigma2 + n * tau2)) * math.exp(
        n * n * tau2 * difference**2 / (4 * sigma2 * (2 * sigma2 + n * tau2))
    )


def johari_one_stream(sigma2: float, n: int, tau2: float, mean_: float) -> float:
    """Johari et al.'s mSPRT for one stream of n observations, normal mixture N(0, tau^2)."""
    return math.sqrt(sigma2 / (sigma2 + n * tau2)) * math.exp(
        n * n * tau2 * mean_**2 / (2 * sigma2 * (sigma2 + n * tau2))
    )


def mixture_ratio(variance: float, tau2: float, difference: float) -> float:
    """The same mixture for a difference of variance V at any allocation (module docstring)."""
    return math.sqrt(variance / (variance + tau2)) * math.exp(
        tau2 * difference**2 / (2 * variance * (variance + tau2))
    )


def waudby_smith_margin(sigma: float, t: float, rho2: float, alpha: float) -> float:
    """Waudby-Smith et al.'s asymptotic CS half-width (Theorem 2.2) at time t."""
    return sigma * math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha)
    )


def howard_boundary(v: float, rho: float, alpha: float) -> float:
    """Howard et al.'s two-sided normal-mixture boundary on |S_t| in intrinsic time v."""
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha * alpha)))


def feed(estimates: list[Estimate], settings: SequentialSettings = SETTINGS) -> list:
    state = SequentialState(settings)
    states = []
    for estimate in estimates:
        state = state.update(estimate)
        states.append(state)
    return states


# --- the published formulas, on raw outcomes -------------------------------------------------


@pytest.mark.parametrize(("seed", "split"), [(0, (1, 1)), (1, (4, 1)), (2, (1, 3)), (3, (7, 2))])
def test_proportions_equal_the_mixture_formula_on_raw_outcomes(seed: int, split: tuple) -> None:
    rng = np.random.default_rng(seed)
    rho2 = SETTINGS.rho2
    a: list[int] = []
    b: list[int] = []
    p_running, lower_running, upper_running = 1.0, -1.0, 1.0
    state = SequentialState()
    for _ in range(30):
        a += rng.binomial(1, 0.88, 40 * split[0]).tolist()
        b += rng.binomial(1, 0.86, 40 * split[1]).tolist()
        state = state.update(proportions(sum(a), len(a), sum(b), len(b)))
        if min(len(a), len(b)) < SETTINGS.min_samples:
            assert state.pvalue is None
            continue
        # Agresti-Caffo: one success and one failure more in each arm, for the variance.
        q_a = (sum(a) + 1) / (len(a) + 2)
        q_b = (sum(b) + 1) / (len(b) + 2)
        variance = q_a * (1 - q_a) / (len(a) + 2) + q_b * (1 - q_b) / (len(b) + 2)
        difference = mean(b) - mean(a)
        m = (len(a) + len(b)) / 2
        sigma2 = m * variance  # one label's difference
        tau2 = rho2 * sigma2
        p_running = min(p_running, 1 / mixture_ratio(variance, tau2, difference))
        half = waudby_smith_margin(math.sqrt(sigma2), m, rho2, ALPHA)
        lower_running = max(lower_running, difference - half)
        upper_running = min(upper_running, difference + half)
        assert state.difference == pytest.approx(difference, abs=TOL)
        assert state.pvalue == pytest.approx(min(1.0, p_running), rel=TOL, abs=1e-300)
        assert state.lower == pytest.approx(lower_running, abs=TOL)
        assert state.upper == pytest.approx(upper_running, abs=TOL)
    assert state.pvalue is not None


def test_equal_allocation_is_johari_two_stream_formula() -> None:
    """At n labels per arm, V = 2 sigma^2 / n and the mixture is Johari et al.'s own formula."""
    rng = np.random.default_rng(7)
    rho2 = SETTINGS.rho2
    errors_a = rng.normal(0, 2.0, 900)
    errors_b = rng.normal(0.3, 2.5, 900)
    for n in (100, 350, 900):
        abs_a = [abs(x) for x in errors_a[:n]]
        abs_b = [abs(x) for x in errors_b[:n]]
        sigma2 = (plugin_variance(abs_a) + plugin_variance(abs_b)) / 2
        tau2 = rho2 * 2 * sigma2  # rho^2 times one label's difference variance
        expected = johari_two_stream(sigma2, n, tau2, mean(abs_b) - mean(abs_a))
        a, b = errors_a[:n], errors_b[:n]
        estimate = mae(n, np.abs(a).sum(), (a * a).sum(), n, np.abs(b).sum(), (b * b).sum())
        got = float(look(estimate, SETTINGS).log_ratio)
        assert got == pytest.approx(math.log(expected), rel=TOL, abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_mae_at_unequal_allocation_equals_the_formula(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n_a, n_b = rng.integers(100, 3000, 2)
    errors_a = rng.standard_t(4, n_a) * 3
    errors_b = rng.standard_t(4, n_b) * 3 + 0.2
    abs_a = [abs(x) for x in errors_a]
    abs_b = [abs(x) for x in errors_b]
    variance = plugin_variance(abs_a) / n_a + plugin_variance(abs_b) / n_b
    difference = mean(abs_b) - mean(abs_a)
    m = (n_a + n_b) / 2
    tau2 = SETTINGS.rho2 * m * variance
    estimate = mae(
        n_a,
        np.abs(errors_a).sum(),
        (errors_a**2).sum(),
        n_b,
        np.abs(errors_b).sum(),
        (errors_b**2).sum(),
    )
    step = look(estimate, SETTINGS)
    assert float(step.log_ratio) == pytest.approx(
        math.log(mixture_ratio(variance, tau2, difference)), rel=TOL, abs=TOL
    )
    half = waudby_smith_margin(math.sqrt(m * variance), m, SETTINGS.rho2, ALPHA)
    assert float(step.lower) == pytest.approx(difference - half, abs=TOL)
    assert float(step.upper) == pytest.approx(difference + half, abs=TOL)


@pytest.mark.parametrize(
    ("seed", "champion_only", "challenger_only"), [(0, 0.05, 0.02), (1, 0.04, 0.04)]
)
def test_paired_equals_the_one_sample_formulas(
    seed: int, champion_only: float, challenger_only: float
) -> None:
    """Paired: the one-stream mSPRT and the one-sample CS on d_i, in both published forms."""
    rng = np.random.default_rng(seed)
    rho2 = SETTINGS.rho2
    d: list[int] = []
    state = SequentialState()
    p_running, lower_running, upper_running = 1.0, -1.0, 1.0
    for _ in range(25):
        draws = rng.choice(
            3, 100, p=[champion_only, challenger_only, 1 - champion_only - challenger_only]
        )
        d += [-1 if x == 0 else 1 if x == 1 else 0 for x in draws]
        b, c, n = d.count(-1), d.count(1), len(d)
        state = state.update(paired(b, c, n))
        sigma2 = plugin_variance(d)
        lam = johari_one_stream(sigma2, n, rho2 * sigma2, mean(d))
        p_running = min(p_running, 1 / lam)
        half = waudby_smith_margin(math.sqrt(sigma2), n, rho2, ALPHA)
        # Howard et al.'s boundary on S_n = sum (d_i - mean) in intrinsic time n, rho = 1/rho^2.
        assert half == pytest.approx(
            math.sqrt(sigma2) * howard_boundary(n, 1 / rho2, ALPHA) / n, rel=TOL
        )
        lower_running = max(lower_running, mean(d) - half)
        upper_running = min(upper_running, mean(d) + half)
        assert state.difference == pytest.approx(mean(d), abs=TOL)
        assert state.pvalue == pytest.approx(min(1.0, p_running), rel=TOL, abs=1e-300)
        assert state.lower == pytest.approx(lower_running, abs=TOL)
        assert state.upper == pytest.approx(upper_running, abs=TOL)


@pytest.mark.parametrize(("seed", "shift"), [(0, 0.0), (1, 0.05), (2, -0.08)])
def test_paired_mae_equals_the_one_sample_formulas(seed: int, shift: float) -> None:
    """Paired MAE (shadow regression): the one-stream mSPRT and the one-sample CS on
    ``d_i = |e_b,i| - |e_a,i|`` of correlated arms, from the raw errors."""
    rng = np.random.default_rng(seed)
    rho2 = SETTINGS.rho2
    d: list[float] = []
    state = SequentialState()
    p_running, lower_running, upper_running = 1.0, -math.inf, math.inf
    for _ in range(25):
        e_a = rng.normal(0.0, 1.0, 100)
        e_b = 0.7 * e_a + rng.normal(0.0, 0.7, 100) + shift * np.sign(e_a)
        d += (np.abs(e_b) - np.abs(e_a)).tolist()
        n, total, squares = len(d), float(np.sum(d)), float(np.sum(np.square(d)))
        state = state.update(paired_mae(n, total, squares))
        sigma2 = plugin_variance(d)
        lam = johari_one_stream(sigma2, n, rho2 * sigma2, mean(d))
        p_running = min(p_running, 1 / lam)
        half = waudby_smith_margin(math.sqrt(sigma2), n, rho2, ALPHA)
        lower_running = max(lower_running, mean(d) - half)
        upper_running = min(upper_running, mean(d) + half)
        assert state.kind == "paired_mae"
        assert state.samples_a == state.samples_b == n
        assert state.difference == pytest.approx(mean(d), abs=TOL)
        assert state.pvalue == pytest.approx(min(1.0, p_running), rel=TOL, abs=1e-300)
        assert state.lower == pytest.approx(lower_running, abs=TOL)
        assert state.upper == pytest.approx(upper_running, abs=TOL)


def test_rho_makes_the_boundary_tightest_near_the_plan() -> None:
    """Howard et al.'s rho: the half-width at the planned size is within 0.1 % of the best."""
    for planned in (200, 1000, 5000):
        settings = SequentialSettings(planned_labels_per_arm=planned)

        def width(rho2: float, m: float = planned) -> float:
            return waudby_smith_margin(1.0, m, rho2, ALPHA)

        grid = np.geomspace(settings.rho2 / 30, settings.rho2 * 30, 4001)
        best = min(width(float(r)) for r in grid)
        assert width(settings.rho2) <= best * 1.001
        # ... and not at a size far from the plan.
        assert width(settings.rho2, planned * 30) > 1.05 * min(
            width(float(r), planned * 30) for r in grid
        )


# --- invariants ------------------------------------------------------------------------------


def random_path(seed: int, kind: str, looks: int = 40, gap: float = 0.03) -> list[Estimate]:
    """Cumulative counts of one comparison, with a real difference and a changing allocation."""
    rng = np.random.default_rng(seed)
    out: list[Estimate] = []
    k_a = n_a = k_b = n_b = 0
    s_a = q_a = s_b = q_b = 0.0
    b = c = pairs = 0
    for _ in range(looks):
        step_a, step_b = rng.integers(0, 120, 2)
        if kind == "proportions":
            k_a += rng.binomial(step_a, 0.9)
            k_b += rng.binomial(step_b, 0.9 - gap)
            n_a, n_b = n_a + step_a, n_b + step_b
            out.append(proportions(k_a, n_a, k_b, n_b))
        elif kind == "paired":
            cells = rng.multinomial(step_a, [0.04 + gap / 2, 0.04 - gap / 2, 0.92])
            b, c, pairs = b + cells[0], c + cells[1], pairs + step_a
            out.append(paired(b, c, pairs))
        elif kind == "paired_mae":
            e_a = rng.normal(0, 1, step_a)
            d = np.abs(0.8 * e_a + rng.normal(0, 0.6 + 3 * gap, step_a)) - np.abs(e_a)
            s_a, q_a, pairs = s_a + d.sum(), q_a + (d * d).sum(), pairs + step_a
            out.append(paired_mae(pairs, s_a, q_a))
        else:
            e_a, e_b = rng.normal(0, 1, step_a), rng.normal(0, 1 + 3 * gap, step_b)
            s_a, q_a, n_a = s_a + np.abs(e_a).sum(), q_a + (e_a**2).sum(), n_a + step_a
            s_b, q_b, n_b = s_b + np.abs(e_b).sum(), q_b + (e_b**2).sum(), n_b + step_b
            out.append(mae(n_a, s_a, q_a, n_b, s_b, q_b))
    return out


KINDS = ["proportions", "paired", "mae", "paired_mae"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(5))
def test_pvalue_only_falls_and_the_bounds_only_shrink(kind: str, seed: int) -> None:
    states = [s for s in feed(random_path(seed, kind)) if s.pvalue is not None]
    assert len(states) > 20
    for before, after in itertools.pairwise(states):
        assert after.pvalue <= before.pvalue
        assert after.lower >= before.lower
        assert after.upper <= before.upper
    # The running values are not constant: the statistic moved.
    assert states[-1].upper - states[-1].lower < states[0].upper - states[0].lower


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(8))
def test_pvalue_reaches_alpha_exactly_when_the_sequence_excludes_zero(kind: str, seed: int) -> None:
    """One mixture for both: p <= alpha at a look iff that look's interval misses 0, and so
    for the running values too."""
    rejected = 0
    for estimate in random_path(50 + seed, kind, looks=60, gap=0.06):
        step = look(estimate, SETTINGS)
        if not bool(step.ready):
            continue
        p = math.exp(-max(0.0, float(step.log_ratio)))
        assert (p <= ALPHA) == (float(step.lower) > 0 or float(step.upper) < 0)
        rejected += p <= ALPHA
    for state in feed(random_path(50 + seed, kind, looks=60, gap=0.06)):
        if state.pvalue is not None:
            assert (state.pvalue <= ALPHA) == (state.lower > 0 or state.upper < 0)
    assert rejected > 0  # both sides of the equivalence were seen


def swapped(estimate: Estimate, counts: tuple) -> Estimate:
    if estimate.kind == "proportions":
        return proportions(counts[2], counts[3], counts[0], counts[1])
    if estimate.kind == "paired":
        return paired(counts[1], counts[0], counts[2])
    if estimate.kind == "paired_mae":
        return paired_mae(counts[0], -counts[1], counts[2])
    return mae(*counts[3:], *counts[:3])


@pytest.mark.parametrize(
    ("build", "counts"),
    [
        (proportions, (880, 1000, 200, 250)),
        (proportions, (90, 100, 340, 400)),
        (paired, (40, 22, 900)),
        (paired_mae, (800, -31.5, 410.25)),
        (mae, (500, 620.5, 1200.25, 300, 330.0, 700.5)),
    ],
)
def test_swapping_the_arms_flips_the_difference_and_keeps_the_pvalue(
    build: Callable[..., Estimate], counts: tuple
) -> None:
    [state] = feed([build(*counts)])
    estimate = build(*counts)
    [mirror] = feed([swapped(estimate, counts)])
    assert mirror.difference == pytest.approx(-state.difference, abs=TOL)
    assert mirror.pvalue == pytest.approx(state.pvalue, rel=TOL)
    assert mirror.lower == pytest.approx(-state.upper, abs=TOL)
    assert mirror.upper == pytest.approx(-state.lower, abs=TOL)
    assert (mirror.samples_a, mirror.samples_b) == (state.samples_b, state.samples_a)


def test_feeding_the_same_counts_again_changes_nothing() -> None:
    states = feed([proportions(500, 560, 430, 500)] * 3)
    assert states[0] == states[1] == states[2]
    assert states[0].pvalue is not None and states[0].pvalue < 1.0


def test_looks_and_arrays_agree() -> None:
    """``look`` on an array of looks gives the state's values, look by look."""
    rng = np.random.default_rng(11)
    n_a = np.cumsum(rng.integers(50, 150, 30))
    n_b = np.cumsum(rng.integers(10, 60, 30))
    k_a = np.floor(n_a * 0.9)
    k_b = np.floor(n_b * 0.85)
    arrays = look(proportions(k_a, n_a, k_b, n_b), SETTINGS)
    running = np.exp(-np.maximum(np.maximum.accumulate(arrays.log_ratio), 0.0))
    lower = np.maximum.accumulate(arrays.lower)
    upper = np.minimum.accumulate(arrays.upper)
    states = feed([proportions(*x) for x in zip(k_a, n_a, k_b, n_b, strict=True)])
    assert not arrays.ready[0] and arrays.ready[-1]
    for k, state in enumerate(states):
        assert (state.pvalue is not None) == bool(arrays.ready[k])
        if state.pvalue is not None:
            assert state.pvalue == pytest.approx(float(running[k]), rel=TOL, abs=1e-300)
            assert (state.lower, state.upper) == (lower[k], upper[k])


# --- burn-in, degenerate looks, bad input ----------------------------------------------------


def test_nothing_before_each_arm_has_min_samples() -> None:
    settings = SequentialSettings(min_samples=100)
    state = SequentialState(settings).update(proportions(3000, 4000, 80, 99))
    assert (state.samples_a, state.samples_b) == (4000, 99)
    assert (state.difference, state.pvalue, state.lower, state.upper) == (None,) * 4
    state = state.update(proportions(3000, 4000, 80, 100))
    assert state.difference == pytest.approx(0.8 - 0.75)
    assert state.pvalue is not None and state.lower is not None and state.upper is not None


def test_nothing_before_the_smallest_expected_cell_reaches_min_expected() -> None:
    """Near a perfect model: 1 error in 200 labels is no base for a normal approximation."""
    state = SequentialState().update(proportions(100, 100, 99, 100))
    assert state.pvalue is None  # expected wrong answers per arm: 0.5
    state = state.update(proportions(1000, 1000, 980, 1000))  # 1000 * 20 / 2000 = 10
    assert state.pvalue is not None
    assert (
        SequentialState(SequentialSettings(min_expected=0))
        .update(proportions(100, 100, 99, 100))
        .pvalue
        is not None
    )


def test_looks_before_the_burn_in_leave_no_trace() -> None:
    later = [proportions(900, 1000, 880, 1000), proportions(1800, 2000, 1770, 2000)]
    wild = proportions(0, 60, 60, 60)  # all wrong against all right, before the burn-in
    assert feed([wild, *later])[-1] == feed(later)[-1]


def test_a_zero_variance_look_is_skipped() -> None:
    [state] = feed([paired(0, 0, 500)])  # the versions agree on every pair
    assert (state.difference, state.pvalue, state.lower, state.upper) == (0.0, 1.0, -1.0, 1.0)
    [state] = feed([mae(200, 200.0, 200.0, 200, 200.0, 200.0)])  # every |e| is 1
    assert (state.pvalue, state.lower, state.upper) == (1.0, -math.inf, math.inf)
    state = state.update(mae(400, 500.0, 700.0, 400, 380.0, 400.0))
    assert math.isfinite(state.lower) and math.isfinite(state.upper)


def test_a_perfect_arm_still_has_a_variance() -> None:
    """Both arms always right: the adjusted variance is not 0, and nothing is significant."""
    [state] = feed([proportions(5000, 5000, 5000, 5000)], SequentialSettings(min_expected=0))
    assert state.pvalue == 1.0
    assert state.lower < 0 < state.upper


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"planned_labels_per_arm": 0}, "planned_labels_per_arm"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_expected": -1.0}, "min_expected"),
        ({"min_expected": math.nan}, "min_expected"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        SequentialSettings(**kwargs)


@pytest.mark.parametrize(
    ("build", "args", "message"),
    [
        (proportions, (11, 10, 5, 10), r"correct_a \(11\) exceeds n_a \(10\)"),
        (proportions, (1, 10, -1, 10), "correct_b must be whole numbers"),
        (proportions, (1.5, 10, 1, 10), "correct_a must be whole numbers"),
        (paired, (6, 5, 10), r"b \+ c \(11\) exceeds n \(10\)"),
        (mae, (10, math.nan, 1.0, 10, 1.0, 1.0), "sum_abs_a must be finite"),
        (mae, (10, 1.0, 1.0, 10, 1.0, -2.0), "sum_sq_abs_b must be finite"),
        (paired_mae, (10, math.inf, 1.0), "sum_difference must be finite"),
        (paired_mae, (10, 1.0, -1.0), "sum_sq_difference must be finite"),
        (paired_mae, (1.5, 1.0, 1.0), "n must be whole numbers"),
    ],
)
def test_bad_counts_are_refused(build: Callable[..., Estimate], args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(*args)


def test_counts_must_be_cumulative_and_of_one_kind() -> None:
    state = SequentialState().update(proportions(180, 200, 170, 200))
    with pytest.raises(ValueError, match="samples_b went down from 200 to 150"):
        state.update(proportions(200, 220, 140, 150))
    with pytest.raises(ValueError, match="this comparison is proportions, got a paired estimate"):
        state.update(paired(10, 10, 300))
    with pytest.raises(ValueError, match="one look at a time"):
        state.update(proportions([180, 190], [200, 210], [170, 180], [200, 210]))


# --- A/A and A/B under continuous monitoring ---------------------------------------------------


def simulate(seed: int, p_a: float, p_b: float, per_look: tuple[int, int], looks: int = 20):
    """200 experiments read after every batch: does the sequential p-value (the state, look by
    look) ever reach alpha, and does the pooled z-test read at the same looks?"""
    rng = np.random.default_rng(seed)
    experiments = 200
    sequential = naive = covered = 0
    for _ in range(experiments):
        k_a = rng.binomial(per_look[0], p_a, looks).cumsum()
        k_b = rng.binomial(per_look[1], p_b, looks).cumsum()
        n_a = per_look[0] * np.arange(1, looks + 1)
        n_b = per_look[1] * np.arange(1, looks + 1)
        state = SequentialState()
        naive_hit = False
        for look_ in range(looks):
            state = state.update(proportions(k_a[look_], n_a[look_], k_b[look_], n_b[look_]))
            if state.pvalue is None:
                continue
            pooled = (k_a[look_] + k_b[look_]) / (n_a[look_] + n_b[look_])
            z = (k_b[look_] / n_b[look_] - k_a[look_] / n_a[look_]) / math.sqrt(
                pooled * (1 - pooled) * (1 / n_a[look_] + 1 / n_b[look_])
            )
            naive_hit |= 2 * special.ndtr(-abs(z)) <= ALPHA
        assert state.pvalue is not None
        sequential += state.pvalue <= ALPHA
        naive += naive_hit
        covered += state.lower <= p_b - p_a <= state.upper
    return sequential / experiments, naive / experiments, covered / experiments


@pytest.mark.parametrize(("seed", "per_look"), [(2024, (100, 100)), (2025, (160, 40))])
def test_aa_false_alarms_stay_below_alpha_while_the_naive_test_cries_wolf(
    seed: int, per_look: tuple[int, int]
) -> None:
    sequential, naive, covered = simulate(seed, 0.9, 0.9, per_look)
    # At most alpha within binomial error: below the 99 % quantile of Binomial(200, alpha).
    assert sequential * 200 <= stats.binom.ppf(0.99, 200, ALPHA)
    assert naive > 2 * ALPHA
    assert covered >= 1 - ALPHA - 0.04


def test_ab_a_real_difference_is_found() -> None:
    """The check above could pass with a p-value stuck at 1: a 5-point drop must be found."""
    sequential, naive, covered = simulate(7, 0.90, 0.85, (100, 100))
    assert sequential >= 0.9
    assert covered >= 1 - ALPHA - 0.04
    assert naive >= sequential


# -- one sample against a fixed bound (holdout baselines) ----------------------------------------


def half_normal_mixture(margin: float, variance: float, n: int, settings: SequentialSettings):
    """``log Lambda`` from its definition, by quadrature: the likelihood ratio of drift
    ``theta`` against 0, ``exp(theta S - theta^2 t / 2)`` (``S = margin / V``, ``t = 1 / V``),
    averaged over ``theta ~ -|N(0, tau^2)|``, ``tau^2 = rho^2 n V``."""
    tau = math.sqrt(settings.rho2 * n * variance)

    def integrand(theta: float) -> float:
        ratio = math.exp(theta * margin / variance - theta * theta / (2.0 * variance))
        return ratio * 2.0 * stats.norm.pdf(theta, 0.0, tau)

    value, _ = integrate.quad(integrand, -40.0 * tau, 0.0, epsabs=0.0, epsrel=1e-12, limit=200)
    return math.log(value)


@pytest.mark.parametrize(
    ("n", "accuracy", "bound"), [(200, 0.8, 0.88), (1000, 0.85, 0.88), (1000, 0.9, 0.88)]
)
def test_one_sided_ratio_equals_the_mixture_of_its_definition(
    n: int, accuracy: float, bound: float
) -> None:
    rng = np.random.default_rng(n)
    outcomes = (rng.random(n) < accuracy).astype(float).tolist()
    q = (sum(outcomes) + 1.0) / (n + 2.0)
    variance = q * (1.0 - q) / (n + 2.0)  # Agresti-Caffo, one sample
    margin = mean(outcomes) - bound
    m = accuracy_margin(int(sum(outcomes)), n, bound)
    assert abs(float(m.margin) - margin) < TOL and abs(float(m.variance) - variance) < TOL
    expected = half_normal_mixture(margin, variance, n, SETTINGS)
    assert abs(float(one_sided_log_ratio(m, SETTINGS)) - expected) < 1e-7


def test_one_sided_mae_margin_is_bound_minus_mae_with_the_plugin_variance() -> None:
    rng = np.random.default_rng(4)
    errors = np.abs(rng.normal(0.0, 2.0, 300)).tolist()
    m = mae_margin(300, sum(errors), sum(e * e for e in errors), 1.5)
    assert abs(float(m.margin) - (1.5 - mean(errors))) < TOL
    assert abs(float(m.variance) - plugin_variance(errors) / 300) < TOL
    expected = half_normal_mixture(float(m.margin), float(m.variance), 300, SETTINGS)
    assert abs(float(one_sided_log_ratio(m, SETTINGS)) - expected) < 1e-7


def test_one_sided_state_burn_in_running_minimum_and_good_news() -> None:
    settings = SequentialSettings(min_samples=100)
    state = OneSidedState(settings).update(accuracy_margin(10, 99, 0.88))
    assert state.samples == 99 and state.pvalue is None and state.margin is None
    worse = state.update(accuracy_margin(800, 1000, 0.88))
    assert worse.pvalue is not None and worse.pvalue < ALPHA
    later = worse.update(accuracy_margin(800 + 990, 2000, 0.88))  # recovered: p stays
    assert later.pvalue == worse.pvalue and later.margin is not None and later.margin > 0
    good = OneSidedState(settings).update(accuracy_margin(990, 1000, 0.88))
    assert good.pvalue == 1.0  # far above the bound: no evidence at all
    assert good.update(accuracy_margin(990, 1000, 0.88)) == good


def one_sample_simulation(seed: int, p: float, bound: float) -> float:
    """Fraction of 500 experiments whose sequential p-value ever reaches alpha, read after
    every 100 labels up to 5,000 (arrays of every experiment's looks at once)."""
    rng = np.random.default_rng(seed)
    experiments, step, looks = 500, 100, 50
    correct = rng.binomial(step, p, (experiments, looks)).cumsum(axis=1)
    n = step * np.arange(1, looks + 1)
    log_ratio = one_sided_log_ratio(accuracy_margin(correct, n, bound), SETTINGS)
    return float(np.mean(log_ratio.max(axis=1) >= math.log(1.0 / ALPHA)))


def test_one_sided_aa_false_alarms_stay_below_alpha_and_a_drop_is_found() -> None:
    bound = 0.90 - 0.02
    false_alarms = one_sample_simulation(31, bound, bound)
    assert false_alarms * 500 <= stats.binom.ppf(0.99, 500, ALPHA)
    assert one_sample_simulation(32, bound - 0.03, bound) >= 0.9
    # the state agrees with the arrays: the same looks, one at a time
    rng = np.random.default_rng(33)
    correct = rng.binomial(100, bound - 0.03, 50).cumsum()
    state = OneSidedState(SETTINGS)
    for k, n in zip(correct.tolist(), range(100, 5001, 100), strict=True):
        state = state.update(accuracy_margin(k, n, bound))
    ratios = one_sided_log_ratio(
        accuracy_margin(correct, np.arange(100, 5001, 100), bound), SETTINGS
    )
    assert state.pvalue is not None
    assert abs(state.pvalue - min(1.0, math.exp(-float(ratios.max())))) < TOL
