"""Always-valid inference for a challenger (b) against a champion (a), from cumulative counts.

A p-value that Prometheus re-reads at every scrape is a test repeated at every scrape: read
often enough, a fixed-sample p-value "finds" a difference in most A/A comparisons. The
statistics here stay valid however often, and whenever, they are read: an always-valid p-value
(a mixture sequential probability ratio test, mSPRT) and a confidence sequence for the
difference, both fed the counts kept since the comparison started. Differences are challenger
minus champion, as in :mod:`exporter.stats.comparison`.

What is compared (one :class:`Estimate` per look, built from cumulative counts):

* :func:`proportions`: accuracy of independent arms (``split`` mode) from
  ``(correct_a, n_a, correct_b, n_b)``: ``D = p_b - p_a``, at any allocation, with the
  unpooled variance ``p_a (1 - p_a) / n_a + p_b (1 - p_b) / n_b`` estimated as Agresti and
  Caffo do ("Simple and effective confidence intervals for proportions and differences of
  proportions result from adding two successes and two failures", The American Statistician
  54(4), 2000): one success and one failure added to each arm, ``q = (correct + 1) / (n + 2)``
  and ``V = q_a (1 - q_a) / (n_a + 2) + q_b (1 - q_b) / (n_b + 2)``. The plain plug-in
  variance is 0 for an arm without errors: at 80/20 allocation near 0.99 accuracy, about one
  A/A comparison in ten crossed alpha = 0.05 with it (measured while designing this module);
  the adjusted variance tends to the plain one as the arms grow;
* :func:`paired`: paired outcomes (``shadow`` mode) from the discordant pairs ``b`` (champion
  right, challenger wrong), ``c`` (the reverse) and the labeled pairs ``n``: the mean of
  ``d_i = [challenger right] - [champion right]`` in {-1, 0, 1}, ``D = (c - b) / n``, with
  ``V = ((b + c) / n - D^2) / n``;
* :func:`mae`: mean absolute error of independent arms (regression) from ``(count, sum |e|,
  sum e^2)`` per arm: ``D = mae_b - mae_a``, ``V = s_a^2 / n_a + s_b^2 / n_b`` with
  ``s^2 = sum e^2 / n - mae^2`` (``|e|^2 = e^2``);
* :func:`paired_mae`: paired absolute errors (``shadow`` mode, regression) from the pairs ``n``
  and the sums of ``d_i = |e_b,i| - |e_a,i|`` and of ``d_i^2``: ``D = sum d / n``, ``V = (sum
  d^2 / n - D^2) / n``, the same form as :func:`paired` (whose ``d_i`` are in {-1, 0, 1}).

The other plug-in variances divide by ``n``, as ``p (1 - p) / n`` does; after the burn-in the
``n - 1`` form would change nothing that matters.

The mixture likelihood ratio, derived
-------------------------------------
Johari, Pekelis and Walsh ("Always valid inference: continuous monitoring of A/B tests",
arXiv:1512.04922, 2017; Operations Research 70(3), 2022) define the mSPRT as the likelihood
ratio of the data averaged over a mixing distribution ``H`` of the effect ``theta``, and give
its closed form for normal data with ``H = N(theta_0, tau^2)``; for two streams of ``n``
observations each, of variance ``sigma^2``, the difference of the means has variance
``2 sigma^2 / n`` and::

    Lambda_n = sqrt(2 sigma^2 / (2 sigma^2 + n tau^2))
               * exp(n^2 tau^2 (Ybar_n - Xbar_n - theta_0)^2 / (4 sigma^2 (2 sigma^2 + n tau^2)))

Unequal allocation. Write the statistic in information time: ``t = 1 / V`` and ``S = D / V``.
With the arms' variances known, ``Cov(D_j, D_k) = V_k`` for looks ``j <= k`` (the later,
larger samples contain the earlier ones), so ``Cov(S_j, S_k) = 1 / V_j = t_j``: ``S`` is a
Brownian motion with drift ``theta`` observed at the times ``t_k``, whatever the allocation,
even one that changes between looks (as long as it does not depend on the outcomes). The
likelihood ratio of drift ``theta`` against 0 is ``exp(theta S - theta^2 t / 2)``, a
martingale under H0; averaged over ``theta ~ N(0, tau^2)`` it is::

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 D^2 / (2 V (V + tau^2)))

which is Johari et al.'s formula with ``2 sigma^2 / n`` replaced by ``V``. Ville's inequality
gives ``P(sup_n Lambda_n >= 1 / alpha) <= alpha`` under H0, hence the always-valid p-value
``p_n = min(1, 1 / max_{k <= n} Lambda_k)``: non-increasing, so the state keeps its running
minimum. Reading it at any subset of times (a scrape, a drift-worker run) only skips terms
of the maximum: still valid.

The mixing variance and the confidence sequence
-----------------------------------------------
The mixing variance is set on the scale of the data: ``tau_n^2 = rho^2 s_n^2``, with
``s_n^2 = m_n V_n`` the plug-in variance of one label's difference and ``m_n`` the labeled
samples per arm (``(n_a + n_b) / 2`` for independent arms, the pairs ``n`` for paired ones);
``rho`` is unitless, so one default serves accuracy and MAE alike. With ``r_n = tau_n^2 / V_n
= rho^2 m_n`` and ``z_n = D_n / sqrt(V_n)``::

    log Lambda_n = -log(1 + r_n) / 2 + r_n / (1 + r_n) * z_n^2 / 2

The confidence sequence is the set of differences ``theta`` the same test does not reject at
level ``alpha``, i.e. ``Lambda_n(theta) < 1 / alpha`` with ``D_n - theta`` in place of
``D_n``::

    D_n +- sqrt(V_n (1 + r_n) / r_n * log((1 + r_n) / alpha^2))

This is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
("Time-uniform central limit theory and asymptotic confidence sequences", arXiv:2103.06476,
2021; Annals of Statistics 2024, Theorem 2.2), ``mu_n +- s_n sqrt(2 (m rho^2 + 1) / (m^2
rho^2) log(sqrt(m rho^2 + 1) / alpha))``, i.e. Robbins' two-sided normal-mixture boundary of
Howard, Ramdas, McAuliffe and Sekhon ("Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 49(2), 2021), ``sqrt((v + k) log((v + k) / (k alpha^2)))`` in
intrinsic time ``v`` with ``k = 1 / rho^2``. The bounds are intersected over the looks
(running maximum of the lower, running minimum of the upper: they only shrink) and clipped to
the difference's range ([-1, 1] for accuracy). One mixture serves both, so at every look the
p-value is at most ``alpha`` exactly when the sequence excludes 0.

``rho`` makes the boundary tightest when the arms hold ``planned_labels_per_arm`` labels each:
``rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / m*`` (Howard et al.'s choice, also
Waudby-Smith et al.'s; the boundary is flat near its optimum, so the plan need not be exact).
Default ``m* = 1000``, ``alpha = 0.05``: ``rho = 0.089``; at accuracies near 0.90 on both
arms, 50/50, that is ``tau ~ 0.038`` (a prior spread of about 4 accuracy points, the size of
difference worth acting on; at 80/20, ``tau ~ 0.047``).

Validity. Exact for normal data with known variances; with plug-in variances (and the
``tau_n`` they imply, which tends to the constant ``rho s``) it is asymptotic, as Waudby-Smith
et al.'s guarantee is. (A fixed ``tau`` in accuracy points, as Johari et al. tune it, would
need another default for every regression target's units.) Hence the burn-in: no look
counts, and nothing is reported, before each arm has ``min_samples`` labels (default 100, so
that an arm near 0.90 accuracy has about 10 errors) and, for accuracy of independent arms,
before the smallest expected cell of the 2x2 table (arm x right/wrong), ``min(n_a, n_b) *
min(right, wrong) / (n_a + n_b)``, reaches ``min_expected`` (default 10: about 10 expected
errors in the smaller arm). Near a perfect model, the small arm of an 80/20 or 95/5 split
holds too few errors at 100 labels for a normal approximation: at 95/5 and 0.99 accuracy,
with the cell rule at Cochran's 5, 4.8 % of A/A comparisons crossed alpha = 0.05 (its 99 %
upper limit above 0.05); at 10, 2.9 %. Dropping early looks keeps the guarantee, whether the
burn-in depends on the data or not: it only removes terms from the maximum of a process that
is a martingale from the start. A look whose variance is 0 (every outcome alike in both arms:
paired or MAE) says nothing the normal approximation can use and is skipped.
``bench/sequential_sim.py`` measures the false-alarm rates (50/50, 80/20, 95/5; accuracy 0.90
and 0.99; paired; MAE with normal and heavy-tailed errors). If the intersected bounds cross
(lower above upper), no constant difference fits every look: the difference moved during the
comparison (a drifting arm), which a restarted comparison measures afresh; the bounds are
then reported as they are.

Pure numpy, no state but the frozen :class:`SequentialState`, which the caller replaces with
the result of :meth:`SequentialState.update` at each look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special

from exporter.typedefs import BoolArray, FloatArray

#: What an estimate compares: accuracy of independent arms, paired accuracy, MAE of independent
#: arms, or paired MAE.
EstimateKind = Literal["proportions", "paired", "mae", "paired_mae"]


@dataclass(frozen=True, slots=True)
class SequentialSettings:
    """Tuning of the sequential statistics (validated here; ``ValueError`` names the field).

    Parameters
    ----------
    alpha : float
        Level of the confidence sequence (``1 - alpha`` coverage) and of the tuning of ``rho``.
        The p-value does not depend on it otherwise.
    planned_labels_per_arm : int
        Labeled samples per arm at which the confidence sequence is tightest (sets ``rho``).
    min_samples : int
        Burn-in: labeled samples each arm needs before a look counts.
    min_expected : float
        Burn-in of accuracy on independent arms: the smallest expected cell of the 2x2 table
        a look needs.
    """

    alpha: float = 0.05
    planned_labels_per_arm: int = 1000
    min_samples: int = 100
    min_expected: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if self.planned_labels_per_arm < 1:
            raise ValueError(
                f"planned_labels_per_arm must be >= 1, got {self.planned_labels_per_arm!r}"
            )
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {self.min_samples!r}")
        if not self.min_expected >= 0.0:
            raise ValueError(f"min_expected must be >= 0, got {self.min_expected!r}")

    @property
    def rho2(self) -> float:
        """``rho^2``, tightest at ``planned_labels_per_arm`` (Howard et al.'s choice).

        >>> round(math.sqrt(SequentialSettings().rho2), 4)
        0.0891
        """
        two_log = 2.0 * math.log(1.0 / self.alpha)
        return (two_log + math.log1p(two_log)) / self.planned_labels_per_arm


@dataclass(frozen=True, slots=True)
class Estimate:
    """A difference at one look (or at many: arrays of any shape), ready for :func:`look`.

    ``labels_per_arm`` is the ``m`` of the mixing variance; ``samples_a`` and ``samples_b``
    (labels of each arm; the pairs, twice, when paired) and ``expected_cell`` (the smallest
    expected cell of the 2x2 table of independent accuracies, ``inf`` for the other kinds)
    decide the burn-in; ``low`` and ``high`` bound the difference.
    """

    kind: EstimateKind
    difference: FloatArray
    variance: FloatArray
    labels_per_arm: FloatArray
    samples_a: FloatArray
    samples_b: FloatArray
    expected_cell: FloatArray
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Look:
    """The statistics of one look (element-wise for arrays).

    ``ready``: past the burn-in. ``log_ratio``: ``log Lambda``, ``-inf`` where the look does not
    count (before the burn-in, or a zero variance). ``lower``, ``upper``: this look's bounds,
    the whole range where it does not count.
    """

    ready: BoolArray
    log_ratio: FloatArray
    lower: FloatArray
    upper: FloatArray


def _counts(name: str, value: npt.ArrayLike) -> FloatArray:
    """Non-negative whole numbers, as floats."""
    out = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(out) & (out >= 0) & (out == np.floor(out))):
        raise ValueError(f"{name} must be whole numbers >= 0, got {value!r}")
    return out


def _sums(name: str, value: npt.ArrayLike) -> FloatArray:
    out = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(out) & (out >= 0)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return out


def _at_most(name: str, part: FloatArray, whole_name: str, whole: FloatArray) -> None:
    part, whole = np.broadcast_arrays(part, whole)
    over = part > whole
    if np.any(over):
        raise ValueError(f"{name} ({part[over][0]:g}) exceeds {whole_name} ({whole[over][0]:g})")


def _per(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator``, 0 where the denominator is 0 (an empty arm)."""
    out: FloatArray = np.divide(
        numerator,
        denominator,
        out=np.zeros(np.broadcast(numerator, denominator).shape),
        where=denominator > 0,
    )
    return out


def proportions(
    correct_a: npt.ArrayLike, n_a: npt.ArrayLike, correct_b: npt.ArrayLike, n_b: npt.ArrayLike
) -> Estimate:
    """Accuracy difference ``p_b - p_a`` of independent arms, any allocation.

    >>> e = proportions(900, 1000, 220, 250)
    >>> float(e.difference), round(float(e.variance), 8), float(e.labels_per_arm)
    (-0.020000000000000018, 0.00051856, 625.0)
    """
    k_a, total_a = _counts("correct_a", correct_a), _counts("n_a", n_a)
    k_b, total_b = _counts("correct_b", correct_b), _counts("n_b", n_b)
    _at_most("correct_a", k_a, "n_a", total_a)
    _at_most("correct_b", k_b, "n_b", total_b)
    q_a, q_b = (k_a + 1.0) / (total_a + 2.0), (k_b + 1.0) / (total_b + 2.0)
    variance = q_a * (1.0 - q_a) / (total_a + 2.0) + q_b * (1.0 - q_b) / (total_b + 2.0)
    total, right = total_a + total_b, k_a + k_b
    cell = _per(np.minimum(total_a, total_b) * np.minimum(right, total - right), total)
    return Estimate(
        kind="proportions",
        difference=_per(k_b, total_b) - _per(k_a, total_a),
        variance=variance,
        labels_per_arm=total / 2.0,
        samples_a=total_a,
        samples_b=total_b,
        expected_cell=cell,
        low=-1.0,
        high=1.0,
    )


def paired(b: npt.ArrayLike, c: npt.ArrayLike, n: npt.ArrayLike) -> Estimate:
    """Paired accuracy difference ``(c - b) / n`` from the discordant and all labeled pairs.

    >>> e = paired(30, 18, 1000)
    >>> float(e.difference), round(float(e.variance), 10)
    (-0.012, 4.7856e-05)
    """
    champion, challenger, pairs = _counts("b", b), _counts("c", c), _counts("n", n)
    _at_most("b + c", champion + challenger, "n", pairs)
    mean = _per(challenger - champion, pairs)
    spread = np.maximum(_per(champion + challenger, pairs) - mean * mean, 0.0)
    return Estimate(
        kind="paired",
        difference=mean,
        variance=_per(spread, pairs),
        labels_per_arm=pairs,
        samples_a=pairs,
        samples_b=pairs,
        expected_cell=np.full(pairs.shape, math.inf),
        low=-1.0,
        high=1.0,
    )


def mae(
    count_a: npt.ArrayLike,
    sum_abs_a: npt.ArrayLike,
    sum_sq_abs_a: npt.ArrayLike,
    count_b: npt.ArrayLike,
    sum_abs_b: npt.ArrayLike,
    sum_sq_abs_b: npt.ArrayLike,
) -> Estimate:
    """Difference of mean absolute errors ``mae_b - mae_a`` of independent arms.

    >>> e = mae(4, 4.0, 6.0, 3, 6.0, 14.0)
    >>> float(e.difference), round(float(e.variance), 6)
    (1.0, 0.347222)
    """
    n_a, n_b = _counts("count_a", count_a), _counts("count_b", count_b)
    s1_a, s2_a = _sums("sum_abs_a", sum_abs_a), _sums("sum_sq_abs_a", sum_sq_abs_a)
    s1_b, s2_b = _sums("sum_abs_b", sum_abs_b), _sums("sum_sq_abs_b", sum_sq_abs_b)
    mean_a, mean_b = _per(s1_a, n_a), _per(s1_b, n_b)
    # Clipped: the subtraction can round below 0 when the errors are nearly equal.
    var_a = np.maximum(_per(s2_a, n_a) - mean_a * mean_a, 0.0)
    var_b = np.maximum(_per(s2_b, n_b) - mean_b * mean_b, 0.0)
    variance = _per(var_a, n_a) + _per(var_b, n_b)
    return Estimate(
        kind="mae",
        difference=mean_b - mean_a,
        variance=variance,
        labels_per_arm=(n_a + n_b) / 2.0,
        samples_a=n_a,
        samples_b=n_b,
        expected_cell=np.full(variance.shape, math.inf),
        low=-math.inf,
        high=math.inf,
    )


def paired_mae(
    n: npt.ArrayLike, sum_difference: npt.ArrayLike, sum_sq_difference: npt.ArrayLike
) -> Estimate:
    """Paired difference of absolute errors ``mean(|e_b| - |e_a|)`` from the pairs' sums.

    >>> e = paired_mae(4, 2.0, 4.0)  # d = 1, 1, 1, -1
    >>> float(e.difference), float(e.variance)
    (0.5, 0.1875)
    """
    pairs = _counts("n", n)
    total = np.asarray(sum_difference, dtype=np.float64)
    if not np.all(np.isfinite(total)):
        raise ValueError(f"sum_difference must be finite, got {sum_difference!r}")
    squares = _sums("sum_sq_difference", sum_sq_difference)
    mean = _per(total, pairs)
    # Clipped: the subtraction can round below 0 when every difference is nearly the same.
    spread = np.maximum(_per(squares, pairs) - mean * mean, 0.0)
    return Estimate(
        kind="paired_mae",
        difference=mean,
        variance=_per(spread, pairs),
        labels_per_arm=pairs,
        samples_a=pairs,
        samples_b=pairs,
        expected_cell=np.full(spread.shape, math.inf),
        low=-math.inf,
        high=math.inf,
    )


def look(estimate: Estimate, settings: SequentialSettings) -> Look:
    """The mixture log likelihood ratio and the confidence bounds of one look.

    Examples
    --------
    >>> s = look(proportions(900, 1000, 855, 1000), SequentialSettings())
    >>> bool(s.ready), round(float(s.log_ratio), 3)
    (True, 3.093)
    >>> round(float(s.lower), 4), round(float(s.upper), 4)
    (-0.0895, -0.0005)
    """
    ready = (np.minimum(estimate.samples_a, estimate.samples_b) >= settings.min_samples) & (
        estimate.expected_cell >= settings.min_expected
    )
    counted = ready & (estimate.variance > 0.0)
    variance = np.where(counted, estimate.variance, 1.0)
    r = np.where(counted, settings.rho2 * estimate.labels_per_arm, 1.0)
    d = estimate.difference
    log_ratio = -0.5 * np.log1p(r) + r / (1.0 + r) * (d * d) / (2.0 * variance)
    half = np.sqrt(variance * (1.0 + r) / r * (np.log1p(r) - 2.0 * math.log(settings.alpha)))
    return Look(
        ready=ready,
        log_ratio=np.where(counted, log_ratio, -math.inf),
        lower=np.where(counted, np.maximum(d - half, estimate.low), estimate.low),
        upper=np.where(counted, np.minimum(d + half, estimate.high), estimate.high),
    )


@dataclass(frozen=True, slots=True)
class SequentialState:
    """The sequential statistics since a comparison started; replaced at each look.

    Start with ``SequentialState(settings)`` when a comparison starts (or is replaced), then at
    each look ``state = state.update(proportions(...))`` (or :func:`paired`, :func:`mae`) with
    the counts cumulated since the start. ``difference``, ``pvalue``, ``lower`` and ``upper``
    are ``None`` until the burn-in is over (``settings.min_samples`` labels in each arm, and
    for accuracy of independent arms ``settings.min_expected``); a later look that does not
    count changes only the sample counts. ``pvalue`` is the running minimum of ``1 / Lambda``
    (at most 1), ``lower`` and ``upper`` the intersection of every counted look's bounds.
    Feeding the same counts again changes nothing.

    Examples
    --------
    >>> state = SequentialState()
    >>> state = state.update(proportions(90, 100, 85, 100))
    >>> round(state.pvalue, 4), round(state.lower, 4), round(state.upper, 4)
    (1.0, -0.2325, 0.1325)
    >>> state = state.update(proportions(900, 1000, 855, 1000))
    >>> state.samples_a, round(state.difference, 3), round(state.pvalue, 4)
    (1000, -0.045, 0.0453)
    >>> state.update(proportions(10, 20, 0, 0))
    Traceback (most recent call last):
    ...
    ValueError: samples_a went down from 1000 to 20: counts must be cumulative since the start
    """

    settings: SequentialSettings = SequentialSettings()
    kind: EstimateKind | None = None
    samples_a: int = 0
    samples_b: int = 0
    difference: float | None = None
    pvalue: float | None = None
    lower: float | None = None
    upper: float | None = None

    def update(self, estimate: Estimate) -> SequentialState:
        """The state after a look at ``estimate`` (cumulative counts of one comparison)."""
        if estimate.difference.ndim != 0:
            raise ValueError(
                f"one look at a time: got an estimate of shape {estimate.difference.shape}"
            )
        if self.kind is not None and estimate.kind != self.kind:
            raise ValueError(f"this comparison is {self.kind}, got a {estimate.kind} estimate")
        samples_a, samples_b = int(estimate.samples_a), int(estimate.samples_b)
        for name, before, now in (
            ("samples_a", self.samples_a, samples_a),
            ("samples_b", self.samples_b, samples_b),
        ):
            if now < before:
                raise ValueError(
                    f"{name} went down from {before} to {now}: "
                    "counts must be cumulative since the start"
                )
        step = look(estimate, self.settings)
        moved = replace(self, kind=estimate.kind, samples_a=samples_a, samples_b=samples_b)
        if not bool(step.ready):
            return moved
        pvalue = math.exp(-max(0.0, float(step.log_ratio)))
        lower, upper = float(step.lower), float(step.upper)
        if self.pvalue is not None and self.lower is not None and self.upper is not None:
            pvalue = min(pvalue, self.pvalue)
            lower, upper = max(lower, self.lower), min(upper, self.upper)
        return replace(
            moved, difference=float(estimate.difference), pvalue=pvalue, lower=lower, upper=upper
        )


# -- one sample against a fixed bound: the live quality against its holdout baseline ------------
#
# H0: the live quality is at least as good as ``bound`` (the holdout baseline minus its
# tolerance), one-sided: only evidence of "worse than the bound" counts. ``margin`` is the live
# quality minus the bound, signed so that negative is worse (accuracy - bound; bound - MAE).
# With the plug-in variance ``V`` of the margin, ``S = margin / V`` and ``t = 1 / V`` as above,
# the likelihood ratio of drift ``theta`` against 0 is ``exp(theta S - theta^2 t / 2)``; mixed
# over the half-normal ``theta ~ -|N(0, tau^2)|`` (only "worse" alternatives), with ``r = tau^2
# t = rho^2 n`` (the same scale-free ``rho`` as the two-arm test) and ``z = margin / sqrt(V)``::
#
#     Lambda_n = 2 / sqrt(1 + r) * exp(r / (1 + r) * z^2 / 2) * Phi(-z sqrt(r / (1 + r)))
#
# Under ``theta = 0`` each component is a martingale of mean 1, hence so is the mixture; under
# ``theta > 0`` (better than the bound) each component, of a negative drift, is a
# supermartingale: by Ville's inequality ``P(sup Lambda_n >= 1 / alpha) <= alpha`` over the whole
# composite null, so ``min(1, 1 / max Lambda)`` is an always-valid one-sided p-value. A margin
# far above 0 drives ``Lambda`` to 0: good news never counts as evidence. Asymptotic with plug-in
# variances, as the two-arm test; same burn-in (``settings.min_samples`` labels).


@dataclass(frozen=True, slots=True)
class Margin:
    """The live quality's margin over a fixed bound at one look (arrays of any shape).

    ``margin`` is negative when the live quality is worse than the bound; ``variance`` its
    plug-in variance; ``samples`` the labels it is computed from."""

    margin: FloatArray
    variance: FloatArray
    samples: FloatArray


def accuracy_margin(correct: npt.ArrayLike, n: npt.ArrayLike, bound: float) -> Margin:
    """Live accuracy minus ``bound``, with the Agresti-Caffo variance ``q (1 - q) / (n + 2)``,
    ``q = (correct + 1) / (n + 2)`` (never 0, even without errors).

    >>> m = accuracy_margin(850, 1000, 0.88)
    >>> round(float(m.margin), 3), round(float(m.variance), 10)
    (-0.03, 0.0001277331)
    """
    k, total = _counts("correct", correct), _counts("n", n)
    _at_most("correct", k, "n", total)
    q = (k + 1.0) / (total + 2.0)
    return Margin(
        margin=_per(k, total) - float(bound),
        variance=q * (1.0 - q) / (total + 2.0),
        samples=total,
    )


def mae_margin(
    count: npt.ArrayLike, sum_abs: npt.ArrayLike, sum_sq: npt.ArrayLike, bound: float
) -> Margin:
    """``bound`` minus the live mean absolute error (negative: worse than the bound), with the
    plug-in variance ``(sum e^2 / n - mae^2) / n``.

    >>> m = mae_margin(4, 4.0, 6.0, 1.5)
    >>> float(m.margin), float(m.variance)
    (0.5, 0.125)
    """
    n = _counts("count", count)
    s1, s2 = _sums("sum_abs", sum_abs), _sums("sum_sq", sum_sq)
    mean_abs = _per(s1, n)
    # Clipped: the subtraction can round below 0 when the errors are nearly equal.
    spread = np.maximum(_per(s2, n) - mean_abs * mean_abs, 0.0)
    return Margin(margin=float(bound) - mean_abs, variance=_per(spread, n), samples=n)


def one_sided_log_ratio(margin: Margin, settings: SequentialSettings) -> FloatArray:
    """``log Lambda_n`` of the half-normal mixture (``-inf`` during the burn-in, or for a look
    whose variance is 0).

    >>> s = SequentialSettings()
    >>> round(float(one_sided_log_ratio(accuracy_margin(850, 1000, 0.88), s)), 3)
    2.721
    >>> round(float(one_sided_log_ratio(accuracy_margin(910, 1000, 0.88), s)), 3)
    -2.542
    """
    counted = (margin.samples >= settings.min_samples) & (margin.variance > 0.0)
    variance = np.where(counted, margin.variance, 1.0)
    r = np.where(counted, settings.rho2 * margin.samples, 1.0)
    z = margin.margin / np.sqrt(variance)
    shrink = r / (1.0 + r)
    log_ratio = (
        math.log(2.0)
        - 0.5 * np.log1p(r)
        + shrink * z * z / 2.0
        + special.log_ndtr(-z * np.sqrt(shrink))
    )
    out: FloatArray = np.where(counted, log_ratio, -math.inf)
    return out


@dataclass(frozen=True, slots=True)
class OneSidedState:
    """The always-valid one-sided test of a live quality against a fixed bound; replaced at
    each look with the counts cumulated since the bound was set.

    ``pvalue`` is ``None`` during the burn-in (``settings.min_samples`` labels), then the
    running minimum of ``1 / Lambda`` (at most 1); ``margin`` the last counted look's.

    Examples
    --------
    >>> state = OneSidedState().update(accuracy_margin(85, 100, 0.88))
    >>> state.samples, round(state.pvalue, 4)
    (100, 0.8086)
    >>> state = state.update(accuracy_margin(850, 1000, 0.88))
    >>> round(state.pvalue, 4), round(state.margin, 3)
    (0.0658, -0.03)
    >>> state.update(accuracy_margin(10, 20, 0.88))
    Traceback (most recent call last):
    ...
    ValueError: samples went down from 1000 to 20: counts must be cumulative since the start
    """

    settings: SequentialSettings = SequentialSettings()
    samples: int = 0
    margin: float | None = None
    pvalue: float | None = None

    def update(self, margin: Margin) -> OneSidedState:
        """The state after a look at ``margin`` (cumulative counts since the start)."""
        if margin.margin.ndim != 0:
            raise ValueError(f"one look at a time: got a margin of shape {margin.margin.shape}")
        samples = int(margin.samples)
        if samples < self.samples:
            raise ValueError(
                f"samples went down from {self.samples} to {samples}: "
                "counts must be cumulative since the start"
            )
        moved = replace(self, samples=samples)
        if samples < self.settings.min_samples:
            return moved
        log_ratio = float(one_sided_log_ratio(margin, self.settings))
        pvalue = math.exp(-max(0.0, log_ratio))
        if self.pvalue is not None:
            pvalue = min(pvalue, self.pvalue)
        return replace(moved, margin=float(margin.margin), pvalue=pvalue)
