"""Drift verdicts: a planted shift is flagged within one window, identical distributions are
not (false-positive rate within binomial bounds), and the correction works as configured."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.config import DriftSettings
from exporter.detector import DetectorSettings, FeatureDrift
from exporter.detector import verdicts as detector_verdicts
from exporter.stats.drift import NumericReference, categorical_drift, chi2_rows, numeric_drift
from tests.conftest import sample


def binomial_bounds(n: int, p: float, z: float = 4.5) -> tuple[float, float]:
    sd = np.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def test_raw_ks_pvalues_are_uniform_under_the_null() -> None:
    """Identical distributions: the share of raw p-values <= alpha is alpha, within bounds.
    (The asymptotic KS p-value is slightly conservative at finite n, so observed may sit a little
    under alpha; it must never sit above the upper bound: that would be false alarms.)"""
    alpha, features, seeds = 0.05, 20, 200
    hits = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        refs = [NumericReference.from_values(rng.normal(size=2000)) for _ in range(features)]
        results = numeric_drift(refs, rng.normal(size=(1500, features)))
        hits += sum(r is not None and r.ks_pvalue <= alpha for r in results)
    low, high = binomial_bounds(seeds * features, alpha)
    assert low * 0.7 <= hits <= high, (hits, low, high)


def test_numeric_features_other_tests_are_valid_under_the_null() -> None:
    """Mann-Whitney and the binned chi-squared test reject at most alpha of identical samples
    (within bounds), and the feature's p-value (smallest of three, times 3) at most alpha."""
    alpha, features, seeds = 0.05, 20, 200
    hits = {"mann_whitney": 0, "chi2": 0, "feature": 0}
    for seed in range(seeds):
        rng = np.random.default_rng(50_000 + seed)
        refs = [NumericReference.from_values(rng.normal(size=2000)) for _ in range(features)]
        for r in numeric_drift(refs, rng.normal(size=(1500, features))):
            assert r is not None
            hits["mann_whitney"] += r.mann_whitney_pvalue <= alpha
            hits["chi2"] += r.chi2_pvalue <= alpha
            hits["feature"] += r.pvalue <= alpha
    low, high = binomial_bounds(seeds * features, alpha)
    assert low <= hits["mann_whitney"] <= high, hits
    assert low <= hits["chi2"] <= high, hits
    assert hits["feature"] <= high, hits  # Bonferroni within the feature: at most alpha


def test_raw_chi2_pvalues_are_uniform_under_the_null() -> None:
    alpha, trials = 0.05, 2000
    rng = np.random.default_rng(11)
    shares = np.array([0.5, 0.3, 0.15, 0.05])
    hits = 0
    for _ in range(trials):
        ref = rng.multinomial(3000, shares)
        win = rng.multinomial(1000, shares)
        hits += categorical_drift(ref, 0, win, 0).chi2_pvalue <= alpha
    low, high = binomial_bounds(trials, alpha)
    assert low <= hits <= high, (hits, low, high)


def verdicts(settings: DriftSettings, results) -> list[bool | None]:
    features = {
        f"f{j}": FeatureDrift("numeric", r.window_values, r.reference_values, 0.0, numeric=r)
        for j, r in enumerate(results)
    }
    return [f.drifted for f in detector_verdicts(features, DetectorSettings.of(settings)).values()]


def test_no_false_alarm_on_identical_distributions_across_seeds() -> None:
    """Under the global null, Benjamini-Hochberg at 0.05 flags a window (any feature) in at most
    5 % of windows; at the default level (1e-6) essentially never."""
    settings_raw = DriftSettings(alpha=0.05)
    settings_default = DriftSettings()
    windows = 300
    alarms_raw = alarms_default = 0
    for seed in range(windows):
        rng = np.random.default_rng(10_000 + seed)
        refs = [NumericReference.from_values(rng.normal(size=3000)) for _ in range(20)]
        results = numeric_drift(refs, rng.normal(size=(2000, 20)))
        alarms_raw += any(verdicts(settings_raw, results))
        alarms_default += any(verdicts(settings_default, results))
    _, high = binomial_bounds(windows, 0.05)
    assert alarms_raw <= high, alarms_raw
    assert alarms_default == 0


def test_large_samples_make_tiny_shifts_significant_but_not_material() -> None:
    """The README's worked example: 100,000 values, a shift of 0.02 sd is 'significant' at
    0.05 yet immaterial; an effect-size floor keeps it from counting as drift, and so does the
    default level (1e-6)."""
    rng = np.random.default_rng(5)
    ref = NumericReference.from_values(rng.normal(size=100_000))
    [r] = numeric_drift([ref], rng.normal(0.02, 1, size=(100_000, 1)))
    assert r.ks_pvalue < 0.05 and r.ks_statistic < 0.02 and r.pvalue > 1e-6
    assert verdicts(DriftSettings(alpha=0.05, correction="none"), [r]) == [True]
    assert verdicts(DriftSettings(alpha=0.05, min_ks_statistic=0.1), [r]) == [False]
    assert verdicts(DriftSettings(), [r]) == [False]


def test_bonferroni_is_stricter_than_bh() -> None:
    rng = np.random.default_rng(8)
    refs = [NumericReference.from_values(rng.normal(size=2000)) for _ in range(10)]
    window = rng.normal(size=(2000, 10))
    window[:, :4] += np.array([0.12, 0.12, 0.13, 0.14])  # four moderate shifts
    results = numeric_drift(refs, window)
    kw = {"alpha": 0.05}
    bh = sum(bool(v) for v in verdicts(DriftSettings(correction="bh", **kw), results))
    bonf = sum(bool(v) for v in verdicts(DriftSettings(correction="bonferroni", **kw), results))
    raw = sum(bool(v) for v in verdicts(DriftSettings(correction="none", **kw), results))
    assert bonf <= bh <= raw
    assert bh >= 3


@pytest.mark.parametrize("shifted", ["f3", "c"])
def test_planted_shift_is_flagged_within_one_window(make_exporter, shifted: str) -> None:
    """A stream of 10 numeric and 1 categorical features at 10 events/s; at minute 30 one
    feature shifts. Before: nothing drifts. One window (10 min) after: that feature, and only it."""
    exp = make_exporter(windows=["10m"], drift={"reference_size": 3000, "min_samples": 200})
    rng = np.random.default_rng(21)
    ident = 0

    def send(minutes: int, shift: bool) -> None:
        nonlocal ident
        for _ in range(minutes * 6):  # a batch of 100 every 10 s
            exp.clock.advance(10)
            x = rng.normal(size=(100, 10))
            colours = rng.choice(["red", "green", "blue"], 100, p=[0.5, 0.3, 0.2])
            if shift and shifted == "f3":
                x[:, 3] += 0.5
            if shift and shifted == "c":
                colours = rng.choice(["red", "green", "blue"], 100, p=[0.2, 0.3, 0.5])
            events = []
            for i in range(100):
                feats = {f"f{j}": float(x[i, j]) for j in range(10)}
                feats["c"] = str(colours[i])
                events.append({"id": str(ident), "features": feats, "prediction": 1})
                ident += 1
            exp.predictions("m", events)

    key = {"model": "m", "model_version": "default", "window": "10m"}
    send(30, shift=False)
    exp.refresh_drift()
    m = exp.metrics()
    assert sample(m, "model_drift_features_tested", **key) == 11
    assert sample(m, "model_drift_features_drifted", **key) == 0
    send(10, shift=True)  # one window later
    exp.refresh_drift()
    m = exp.metrics()
    assert sample(m, "model_feature_drift_detected", **key, feature=shifted) == 1
    assert sample(m, "model_drift_features_drifted", **key) == 1
    assert sample(m, "model_drift_alpha", **key, correction="bh") == 1e-6
    assert sample(m, "model_drift_release_alpha", **key) == 1e-3


def test_chi2_pvalues_hold_far_in_the_tail_with_sparse_categories() -> None:
    """The verdicts read p-values near 1e-6. A window of 150 with a category of share 0.02
    (3 expected values): the likelihood-ratio test's p-values at most 1e-4 come at about the
    nominal rate (Pearson's statistic gave 2.2 times it, and 9.5 times at 1e-6)."""
    rng = np.random.default_rng(3)
    shares = np.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.03, 0.02])
    trials, level = 400_000, 1e-4
    reference = np.rint(shares * 10_000)
    windows = rng.multinomial(150, shares, size=trials).astype(np.float64)
    _, pvalues = chi2_rows(np.broadcast_to(reference, windows.shape), windows)
    hits = int(np.count_nonzero(pvalues <= level))
    low, high = binomial_bounds(trials, level)
    assert low <= hits <= high, (hits, low, high)
