"""Through the HTTP API, the probabilistic quality of a window equals scikit-learn on the
same outcomes: ROC AUC, average precision, log loss, Brier score and the reliability curve
(``calibration_curve``), for binary scores and multiclass probabilities, with labels that
come inline, late, and from earlier buckets that leave the window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from tests.conftest import Exporter, sample

EXACT = 1e-12


def _binary_events(
    rng: np.random.Generator, n: int, start: int
) -> tuple[list[dict[str, Any]], list[int], list[float]]:
    truth = rng.integers(0, 2, n)
    score = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1.3, n) + 1.1 * (2 * truth - 1))))
    events = [
        {
            "id": f"e{start + i}",
            "features": {"x": float(score[i])},
            "prediction": int(score[i] > 0.5),
            "score": float(score[i]),
        }
        for i in range(n)
    ]
    return events, truth.tolist(), score.tolist()


def _check_binary(
    exp: Exporter, window: str, truth: list[int], score: list[float], *, exact: bool
) -> None:
    m = exp.metrics()
    key = {"model": "m", "model_version": "v1", "window": window}
    y, s = np.asarray(truth), np.asarray(score)
    assert sample(m, "model_window_scored_predictions", **key) == len(y)
    tol = EXACT if exact else 1e-3
    auc = sample(m, "model_roc_auc", **key)
    ap = sample(m, "model_average_precision", **key)
    assert auc == pytest.approx(skm.roc_auc_score(y, s), abs=tol)
    assert ap == pytest.approx(skm.average_precision_score(y, s), abs=tol)
    bound = sample(m, "model_roc_auc_max_error", **key)
    assert bound is not None
    if exact:
        assert bound == 0.0
    else:
        assert 0.0 < bound < 1e-2
        assert abs(auc - skm.roc_auc_score(y, s)) <= bound
        ap_bound = sample(m, "model_average_precision_max_error", **key)
        assert ap_bound is not None and abs(ap - skm.average_precision_score(y, s)) <= ap_bound
    # The sums-based scores are exact at any rate.
    assert sample(m, "model_log_loss", **key) == pytest.approx(skm.log_loss(y, s), abs=EXACT)
    assert sample(m, "model_brier_score", **key) == pytest.approx(
        skm.brier_score_loss(y, s), abs=EXACT
    )
    observed, predicted = calibration_curve(y, s, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], s), minlength=10)
    full = counts > 0
    edges = [f"{e:.12g}" for e in np.linspace(0, 1, 11)[1:]]
    got_counts = [sample(m, "model_calibration_bin_predictions", **key, bin=e) for e in edges]
    assert got_counts == counts.tolist()
    got_rate = [
        sample(m, "model_calibration_bin_observed_rate", **key, bin=e)
        for e, f in zip(edges, full, strict=True)
        if f
    ]
    got_mean = [
        sample(m, "model_calibration_bin_mean_confidence", **key, bin=e)
        for e, f in zip(edges, full, strict=True)
        if f
    ]
    np.testing.assert_allclose(np.array(got_rate, dtype=float), observed, atol=EXACT, rtol=0)
    np.testing.assert_allclose(np.array(got_mean, dtype=float), predicted, atol=EXACT, rtol=0)
    ece = float(np.sum(counts[full] / counts.sum() * np.abs(observed - predicted)))
    assert sample(m, "model_expected_calibration_error", **key) == pytest.approx(ece, abs=EXACT)


def test_binary_scores_equal_scikit_learn_exact_then_binned(make_exporter: Any) -> None:
    exp = make_exporter(windows=["5m", "1h"], quality={"max_exact_scores": 3000})
    rng = np.random.default_rng(7)
    truth: list[int] = []
    score: list[float] = []
    start = 0
    batches: list[tuple[list[int], list[float]]] = []
    for step in range(6):  # 6 x 600 events, one batch a minute: 3,600 in the hour
        events, y, s = _binary_events(rng, 600, start)
        exp.predictions("m", events, model_version="v1")
        # Labels come a little later, by id, in a shuffled order.
        order = rng.permutation(len(events))
        exp.labels("m", [{"id": events[i]["id"], "label": y[i]} for i in order])
        truth += y
        score += s
        batches.append((y, s))
        start += len(events)
        if step == 0:
            _check_binary(exp, "1h", truth, score, exact=True)
        # The 5m window holds the last five batches (at most 3,000): exact throughout.
        recent = batches[-5:]
        recent_truth = [v for b in recent for v in b[0]]
        recent_score = [v for b in recent for v in b[1]]
        _check_binary(exp, "5m", recent_truth, recent_score, exact=True)
        exp.clock.advance(60)
    # 3,600 scored outcomes in the hour: over the 3,000 kept, so binned, within the bound.
    _check_binary(exp, "1h", truth, score, exact=False)


def test_multiclass_probabilities_equal_scikit_learn(make_exporter: Any) -> None:
    exp = make_exporter(windows=["1h"])
    rng = np.random.default_rng(3)
    classes = ["cat", "dog", "owl"]
    n = 900
    truth = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), truth] += 1.4
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    events = [
        {
            "id": i,
            "features": {"x": 1.0},
            "prediction": classes[int(np.argmax(probs[i]))],
            "probabilities": {c: float(probs[i, k]) for k, c in enumerate(classes)},
            "label": classes[int(truth[i])],
        }
        for i in range(n)
    ]
    exp.predictions("zoo", events, model_version="v1")
    m = exp.metrics()
    key = {"model": "zoo", "model_version": "v1", "window": "1h"}
    # The exporter indexes classes by first appearance; scikit-learn sorts them: align.
    assert sample(m, "model_roc_auc", **key) == pytest.approx(
        skm.roc_auc_score(truth, probs, multi_class="ovr"), abs=EXACT
    )
    assert sample(m, "model_average_precision", **key) == pytest.approx(
        skm.average_precision_score(label_binarize(truth, classes=[0, 1, 2]), probs), abs=EXACT
    )
    assert sample(m, "model_log_loss", **key) == pytest.approx(
        skm.log_loss(truth, probs), abs=EXACT
    )
    assert sample(m, "model_brier_score", **key) == pytest.approx(
        skm.brier_score_loss(truth, probs, labels=[0, 1, 2]), abs=EXACT
    )
    top = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == truth).astype(float)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], top), minlength=10)
    sums = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], top), weights=top, minlength=10)
    hits = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], top), weights=hit, minlength=10)
    full = counts > 0
    ece = float(
        np.sum(counts[full] / n * np.abs(hits[full] / counts[full] - sums[full] / counts[full]))
    )
    assert sample(m, "model_expected_calibration_error", **key) == pytest.approx(ece, abs=EXACT)
    # The status API shows the same numbers (rounded to 12 digits), with the reliability bins.
    window = exp.status("zoo")["versions"]["v1"]["windows"]["1h"]
    assert window["scored_predictions"] == n
    shown = window["probabilities"]
    assert shown["exact"] is True and shown["outcomes"] == n
    assert shown["roc_auc"]["value"] == pytest.approx(sample(m, "model_roc_auc", **key), rel=1e-11)
    assert shown["roc_auc"]["max_error"] == 0
    assert shown["log_loss"] == pytest.approx(sample(m, "model_log_loss", **key), rel=1e-11)
    assert [b["predictions"] for b in shown["reliability"]] == counts.tolist()
    assert shown["reliability"][-1]["upper_edge"] == 1.0


def test_a_model_without_scores_shows_none(make_exporter: Any) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("plain", [{"id": 1, "features": {}, "prediction": 1, "label": 0}])
    window = exp.status("plain")["versions"]["default"]["windows"]["1h"]
    assert window["scored_predictions"] is None and window["probabilities"] is None
    assert not [k for k in exp.metrics() if k[0] == "model_window_scored_predictions"]


def test_probabilities_naming_classes_beyond_the_limit_are_refused_at_the_first(
    make_exporter: Any,
) -> None:
    """Each event naming a class of its own: refused at the first key over limits.max_classes,
    before any row as wide as the batch's classes is made (it once took 650 MB for 8,000)."""
    exp = make_exporter(limits={"max_classes": 5})
    events = [
        {"id": i, "features": {}, "prediction": "a", "probabilities": {"a": 0.5, f"c{i}": 0.5}}
        for i in range(2000)
    ]
    answer = exp.client.post("/v1/predictions", json={"model": "wide", "events": events})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["reason"] == "too_many_classes"
    assert body["field"] == "events[4].probabilities.c4" and body["value"] == "c4"


def test_scores_of_a_binary_model_that_turned_multiclass_are_counted_not_used(
    make_exporter: Any,
) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions(
        "grows", [{"id": i, "features": {}, "prediction": i % 2, "score": 0.25} for i in range(4)]
    )
    exp.labels("grows", [{"id": 0, "label": 0}])
    key = {"model": "grows", "model_version": "default", "window": "1h"}
    assert sample(exp.metrics(), "model_roc_auc", **key) is None  # one class only: undefined
    assert sample(exp.metrics(), "model_window_scored_predictions", **key) == 1
    # A third class: the model is multiclass now; the waiting binary scores cannot be used.
    exp.predictions("grows", [{"id": "x", "features": {}, "prediction": 2, "label": 2}])
    exp.labels("grows", [{"id": i, "label": 1} for i in range(1, 4)])
    m = exp.metrics()
    assert sample(m, "model_scores_unusable_total", model="grows", model_version="default") == 3
    # The binary score windows are stale: not shown until multiclass probabilities come.
    assert sample(m, "model_window_scored_predictions", **key) is None
    assert sample(m, "model_labels_total", model="grows", model_version="default") == 5
