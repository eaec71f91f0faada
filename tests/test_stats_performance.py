"""Quality from confusion counts equals scikit-learn on the same labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from exporter.stats.performance import classification_scores, regression_scores

TOL = 1e-12


def confusion_of(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def check_against_sklearn(y_true: np.ndarray, y_pred: np.ndarray, k: int, positive: int | None):
    s = classification_scores(confusion_of(y_true, y_pred, k), positive_class=positive)
    assert s.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=TOL)
    averages = ["macro", "weighted"] + (["binary"] if positive is not None else [])
    for avg in averages:
        kw = {"average": avg, "zero_division": 0}
        if avg == "binary":
            kw["pos_label"] = positive
        assert s.precision[avg] == pytest.approx(skm.precision_score(y_true, y_pred, **kw), abs=TOL)
        assert s.recall[avg] == pytest.approx(skm.recall_score(y_true, y_pred, **kw), abs=TOL)
        assert s.f1[avg] == pytest.approx(skm.f1_score(y_true, y_pred, **kw), abs=TOL)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    np.testing.assert_array_equal(s.classes, labels)
    p, r, f, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    np.testing.assert_allclose(s.class_precision, p, rtol=0, atol=TOL)
    np.testing.assert_allclose(s.class_recall, r, rtol=0, atol=TOL)
    np.testing.assert_allclose(s.class_f1, f, rtol=0, atol=TOL)
    np.testing.assert_array_equal(s.class_support, support)


@pytest.mark.parametrize("seed", range(20))
def test_binary_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    y_true = rng.integers(0, 2, n)
    flip = rng.random(n) < rng.random()
    y_pred = np.where(flip, 1 - y_true, y_true)
    check_against_sklearn(y_true, y_pred, 2, positive=1)


@pytest.mark.parametrize("seed", range(20))
def test_multiclass_matches_sklearn_with_absent_classes(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(3, 12))
    n = int(rng.integers(1, 800))
    # Some classes never occur, some only as predictions: sklearn's label set is the union.
    y_true = rng.choice(k - 1, n, p=rng.dirichlet(np.ones(k - 1)))
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    check_against_sklearn(y_true, y_pred, k, positive=None)


def test_binary_degenerate_windows() -> None:
    # Only negatives, all predicted negative: precision/recall/F1 undefined -> 0 (zero_division=0).
    check_against_sklearn(np.zeros(10, int), np.zeros(10, int), 2, positive=1)
    # Positive class never seen at all (index beyond the matrix).
    s = classification_scores(np.array([[4]]), positive_class=1)
    assert s.precision["binary"] == s.recall["binary"] == s.f1["binary"] == 0.0
    assert s.accuracy == 1.0
    # Only positives.
    check_against_sklearn(np.ones(7, int), np.array([1, 1, 0, 1, 0, 1, 1]), 2, positive=1)


def test_empty_confusion_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        classification_scores(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="square"):
        classification_scores(np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize("seed", range(10))
def test_regression_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    y_true = rng.normal(100, 30, n)
    y_pred = y_true + rng.normal(0, rng.uniform(0.1, 20), n)
    e = y_pred - y_true
    # Sums accumulated in chunks, as the windows do.
    chunks = np.array_split(e, max(1, n // 97))
    s = regression_scores(
        n, sum(float(np.abs(c).sum()) for c in chunks), sum(float((c * c).sum()) for c in chunks)
    )
    assert s.mean_absolute_error == pytest.approx(
        skm.mean_absolute_error(y_true, y_pred), rel=TOL, abs=0
    )
    assert s.root_mean_squared_error == pytest.approx(
        skm.root_mean_squared_error(y_true, y_pred), rel=TOL, abs=0
    )
