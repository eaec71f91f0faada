"""exporter.stats.scores against scikit-learn on the same outcomes: exact scores to 1e-12,
binned ranking within the bound it states, whatever the data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from exporter.stats import scores as S

TOL = 1e-12


def binary_data(seed: int, n: int, *, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.5, n) + (2 * truth - 1))))
    if decimals is not None:  # ties, as from a model that rounds its scores
        score = np.round(score, decimals)
    return truth, score


@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("seed", range(4))
def test_exact_binary_scores_equal_scikit_learn(seed: int, decimals: int | None) -> None:
    y, s = binary_data(seed, 2000, decimals=decimals)
    assert S.roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=TOL)
    assert S.average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s), abs=TOL)
    scores = s.reshape(-1, 1)
    assert S.log_losses(scores, y).mean() == pytest.approx(skm.log_loss(y, s), abs=TOL)
    assert S.brier_scores(scores, y).mean() == pytest.approx(skm.brier_score_loss(y, s), abs=TOL)


def test_log_loss_clips_certain_misses_as_scikit_learn() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([1.0, 0.0, 1.0, 0.0, 0.5])
    assert S.log_losses(s.reshape(-1, 1), y).mean() == pytest.approx(skm.log_loss(y, s), abs=TOL)


def test_ranking_is_undefined_with_one_class_only() -> None:
    assert S.roc_auc(np.array([0.1, 0.9]), np.array([1, 1])) is None
    assert S.average_precision(np.array([0.1, 0.9]), np.array([0, 0])) is None
    assert S.roc_auc_binned(np.array([3, 0]), np.array([0, 0])) is None
    assert S.average_precision_binned(np.array([0, 0]), np.array([2, 1])) is None


@pytest.mark.parametrize("seed", range(3))
def test_exact_multiclass_scores_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 1500, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    auc, ap = S.ranking_exact(p, y)
    assert auc is not None and ap is not None
    assert auc.value == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"), abs=TOL)
    onehot = label_binarize(y, classes=list(range(k)))
    assert ap.value == pytest.approx(skm.average_precision_score(onehot, p), abs=TOL)
    assert S.log_losses(p, y).mean() == pytest.approx(skm.log_loss(y, p), abs=TOL)
    assert S.brier_scores(p, y).mean() == pytest.approx(
        skm.brier_score_loss(y, p, labels=list(range(k))), abs=TOL
    )


def test_a_class_absent_from_the_outcomes_is_left_out_of_the_macro_average() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)  # class 2 never true
    p = rng.dirichlet([1, 1, 1], 400)
    auc, ap = S.ranking_exact(p, y)
    assert auc is not None and ap is not None
    expected = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in (0, 1)])
    assert auc.value == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", range(3))
def test_reliability_equals_calibration_curve(seed: int) -> None:
    y, s = binary_data(seed, 3000)
    s[:6] = [0.0, 0.1, 0.2, 0.5, 0.9, 1.0]  # on the edges: closed on the right, 0 in the first
    confidence, hit = S.confidence_and_hit(s.reshape(-1, 1), y)
    curve = S.reliability(S.calibration_sums(confidence, hit, 10))
    observed, predicted = calibration_curve(y, s, n_bins=10)
    full = curve.counts > 0
    np.testing.assert_allclose(curve.hit_rate[full], observed, atol=TOL, rtol=0)
    np.testing.assert_allclose(curve.mean_confidence[full], predicted, atol=TOL, rtol=0)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], s), minlength=10)
    assert curve.counts.tolist() == counts.tolist()
    ece = np.sum(counts[full] / 3000 * np.abs(observed - predicted))
    assert curve.expected_calibration_error == pytest.approx(ece, abs=TOL)
    assert curve.upper_edges.tolist() == pytest.approx(np.linspace(0.1, 1.0, 10).tolist())


def test_multiclass_calibration_is_top_label() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    y = np.array([0, 1, 1])
    confidence, hit = S.confidence_and_hit(p, y)
    assert confidence.tolist() == [0.7, 0.4, 0.5]
    assert hit.tolist() == [1.0, 0.0, 0.0]  # a tie goes to the lowest index (class 0)


def test_rank_bins_keep_the_order_of_the_scores() -> None:
    s = np.sort(np.r_[0.0, 1.0, np.random.default_rng(0).random(10_000), 1e-9, 1 - 1e-9])
    bins = S.rank_bins(s, 1024)
    assert bins.min() == 0 and bins.max() == 1023
    assert np.all(np.diff(bins) >= 0)


def _histograms(s: np.ndarray, y: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    which = S.rank_bins(s, bins)
    return (
        np.bincount(which[y == 1], minlength=bins),
        np.bincount(which[y == 0], minlength=bins),
    )


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    bins=st.sampled_from([16, 64, 1024]),
    decimals=st.sampled_from([None, 1, 3]),
    prevalence=st.floats(0.02, 0.98),
)
def test_binned_ranking_is_within_its_bound(
    seed: int, n: int, bins: int, decimals: int | None, prevalence: float
) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    s = 1.0 / (1.0 + np.exp(-rng.normal(0, 3, n) - y))
    if decimals is not None:
        s = np.round(s, decimals)
    pos, neg = _histograms(s, y, bins)
    auc = S.roc_auc_binned(pos, neg)
    ap = S.average_precision_binned(pos, neg)
    exact_auc, exact_ap = S.roc_auc(s, y), S.average_precision(s, y)
    assert (auc is None) == (exact_auc is None)
    assert (ap is None) == (exact_ap is None)
    if auc is not None and exact_auc is not None:
        assert abs(auc.value - exact_auc) <= auc.max_error + 1e-12
    if ap is not None and exact_ap is not None:
        assert abs(ap.value - exact_ap) <= ap.max_error + 1e-12


@pytest.mark.parametrize(("n", "separation"), [(3600, 1.1), (20_000, 0.5), (50_000, 2.5)])
@pytest.mark.parametrize("seed", range(3))
def test_binned_ranking_is_within_1e3_of_scikit_learn(n: int, separation: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.3, n) + separation * (2 * y - 1))))
    pos, neg = _histograms(s, y, 1024)
    auc, ap = S.roc_auc_binned(pos, neg), S.average_precision_binned(pos, neg)
    assert auc is not None and ap is not None
    assert auc.value == pytest.approx(skm.roc_auc_score(y, s), abs=1e-3)
    assert ap.value == pytest.approx(skm.average_precision_score(y, s), abs=1e-3)


def test_a_bin_of_one_outcome_is_exact_for_average_precision() -> None:
    s = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    y = np.array([0, 1, 0, 1, 1, 0])
    pos, neg = _histograms(s, y, 8192)
    assert max(pos.max(), neg.max()) == 1
    ap = S.average_precision_binned(pos, neg)
    assert ap is not None and ap.value == pytest.approx(skm.average_precision_score(y, s), abs=TOL)
    auc = S.roc_auc_binned(pos, neg)
    assert auc is not None and auc.max_error == 0.0
