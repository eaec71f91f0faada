"""The label-free estimate (CBPE) against a direct implementation of the published algorithm
(NannyML's confidence-based performance estimation: isotonic calibration on a labeled
reference, then expected confusion counts), through the HTTP API and directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import accuracy_score, f1_score

from exporter.estimation import fit_estimator
from exporter.scored_reference import build_scored
from exporter.stats.cbpe import estimated_scores, expected_confusion
from tests.conftest import Exporter, sample

TOL = 1e-9


# -- the published algorithm, written out directly -------------------------------------------------


def cbpe_binary(
    ref_scores: np.ndarray, ref_labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """NannyML's CBPE for a binary classifier: calibrate, then expected TP/FP/FN/TN per row."""
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(
        ref_scores, ref_labels
    )
    p = calibrator.predict(scores)
    tp = np.where(predicted == 1, p, 0).sum()
    fp = np.where(predicted == 1, 1 - p, 0).sum()
    fn = np.where(predicted == 0, p, 0).sum()
    tn = np.where(predicted == 0, 1 - p, 0).sum()
    n = len(scores)
    f1_pos = 2 * tp / (2 * tp + fp + fn)
    f1_neg = 2 * tn / (2 * tn + fn + fp)
    return {
        "accuracy": (tp + tn) / n,
        "f1_binary": f1_pos,
        "precision_binary": tp / (tp + fp),
        "recall_binary": tp / (tp + fn),
        "f1_macro": (f1_pos + f1_neg) / 2,
    }


def cbpe_multiclass(
    ref_probs: np.ndarray, ref_labels: np.ndarray, probs: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """NannyML's multiclass CBPE: one isotonic calibrator per class (one against the rest),
    rows divided by their sum, then per class expected TP/FP/FN; macro F1."""
    k = probs.shape[1]
    calibrated = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            .fit(ref_probs[:, c], ref_labels == c)
            .predict(probs[:, c])
            for c in range(k)
        ]
    )
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    f1s = []
    for c in range(k):
        tp = np.where(predicted == c, calibrated[:, c], 0).sum()
        fp = np.where(predicted == c, 1 - calibrated[:, c], 0).sum()
        fn = np.where(predicted != c, calibrated[:, c], 0).sum()
        f1s.append(2 * tp / (2 * tp + fp + fn))
    accuracy = calibrated[np.arange(len(predicted)), predicted].mean()
    return {"accuracy": accuracy, "f1_macro": float(np.mean(f1s))}


def binary_world(
    rng: np.random.Generator, n: int, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A miscalibrated binary model: truth from a logistic law, scores that overstate it."""
    x = rng.normal(shift, 1, n)
    truth = (rng.random(n) < 1 / (1 + np.exp(-3 * x))).astype(int)
    score = 1 / (1 + np.exp(-5 * x))  # overconfident: calibration matters
    return truth, score, (score > 0.5).astype(int)


# -- through the API ------------------------------------------------------------------------------


def test_binary_estimate_equals_the_direct_implementation(make_exporter: Any) -> None:
    exp: Exporter = make_exporter(windows=["1h"], quality={"min_samples": 50})
    rng = np.random.default_rng(1)
    ref_truth, ref_score, ref_pred = binary_world(rng, 4000)
    answer = exp.client.put(
        "/v1/models/churn/reference",
        json={
            "features": {"x": ref_score.tolist()},
            "predictions": ref_pred.tolist(),
            "labels": ref_truth.tolist(),
            "scores": ref_score.tolist(),
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scored_rows"] == 4000
    truth, score, pred = binary_world(rng, 1500, shift=0.4)  # the population moved
    events = [
        {
            "id": i,
            "features": {"x": float(score[i])},
            "prediction": int(pred[i]),
            "score": float(score[i]),
        }
        for i in range(1500)
    ]
    exp.predictions("churn", events)
    m = exp.metrics()
    key = {"model": "churn", "model_version": "default", "window": "1h"}
    want = cbpe_binary(ref_score, ref_truth, score, pred)
    assert sample(m, "model_window_estimated_predictions", **key) == 1500
    assert sample(m, "model_estimated_accuracy", **key) == pytest.approx(want["accuracy"], abs=TOL)
    for avg, name in (("binary", "f1_binary"), ("macro", "f1_macro")):
        got = sample(m, "model_estimated_f1_score", **key, average=avg)
        assert got == pytest.approx(want[name], abs=TOL)
    assert sample(m, "model_estimated_precision", **key, average="binary") == pytest.approx(
        want["precision_binary"], abs=TOL
    )
    assert sample(m, "model_estimated_recall", **key, average="binary") == pytest.approx(
        want["recall_binary"], abs=TOL
    )
    # No label yet: nothing to check against.
    assert sample(m, "model_estimated_accuracy_error", **key) is None
    assert sample(m, "model_accuracy", **key) is None
    # Labels of the first 600 come: realised minus estimated over exactly those.
    exp.labels("churn", [{"id": i, "label": int(truth[i])} for i in range(600)])
    m = exp.metrics()
    first = cbpe_binary(ref_score, ref_truth, score[:600], pred[:600])
    realised = accuracy_score(truth[:600], pred[:600])
    assert sample(m, "model_window_estimate_checked_predictions", **key) == 600
    assert sample(m, "model_estimated_accuracy_error", **key) == pytest.approx(
        realised - first["accuracy"], abs=TOL
    )
    assert sample(m, "model_estimated_f1_score_error", **key, average="binary") == pytest.approx(
        f1_score(truth[:600], pred[:600]) - first["f1_binary"], abs=TOL
    )
    # The estimate still covers every prediction, labeled or not.
    assert sample(m, "model_estimated_accuracy", **key) == pytest.approx(want["accuracy"], abs=TOL)


def test_multiclass_estimate_equals_the_direct_implementation(make_exporter: Any) -> None:
    exp: Exporter = make_exporter(windows=["1h"], quality={"min_samples": 50})
    rng = np.random.default_rng(2)
    classes = ["cat", "dog", "owl"]

    def world(n: int, tilt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        truth = rng.choice(3, n, p=[0.5 - tilt, 0.3, 0.2 + tilt])
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), truth] += 2.0
        probs = np.exp(1.6 * logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return truth, probs, probs.argmax(axis=1)

    ref_truth, ref_probs, _ = world(3000, 0.0)
    answer = exp.client.put(
        "/v1/models/zoo/reference",
        json={
            "features": {"x": [1.0] * 3000},
            "labels": [classes[t] for t in ref_truth],
            "probabilities": [{c: float(p[k]) for k, c in enumerate(classes)} for p in ref_probs],
        },
    )
    assert answer.status_code == 200, answer.text
    _truth, probs, pred = world(1200, 0.15)
    events = [
        {
            "id": i,
            "features": {"x": 1.0},
            "prediction": classes[int(pred[i])],
            "probabilities": {c: float(probs[i, k]) for k, c in enumerate(classes)},
        }
        for i in range(1200)
    ]
    # The first events name the classes in the reference's order, so indices agree.
    exp.predictions("zoo", events)
    m = exp.metrics()
    key = {"model": "zoo", "model_version": "default", "window": "1h"}
    order = [classes.index(c) for c in exp.status("zoo")["classes"]]
    want = cbpe_multiclass(
        ref_probs[:, order], _reindex(ref_truth, order), probs[:, order], _reindex(pred, order)
    )
    assert sample(m, "model_estimated_accuracy", **key) == pytest.approx(want["accuracy"], abs=TOL)
    assert sample(m, "model_estimated_f1_score", **key, average="macro") == pytest.approx(
        want["f1_macro"], abs=TOL
    )
    assert sample(m, "model_estimated_f1_score", **key, average="binary") is None


def _reindex(values: np.ndarray, order: list[int]) -> np.ndarray:
    """Class indices of the sklearn order (position in ``classes``) as the model's indices."""
    return np.array([order.index(v) for v in values])


def test_without_a_scored_reference_there_is_no_estimate(make_exporter: Any) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("plain", [{"id": 1, "features": {"x": 1.0}, "prediction": 1, "score": 0.8}])
    assert not [k for k in exp.metrics() if k[0].startswith("model_estimated")]


# -- directly -------------------------------------------------------------------------------------


def test_expected_confusion_scores_as_nannyml_counts() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1, 1, 1, 1], 500)
    predicted = rng.integers(0, 4, 500)
    expected = expected_confusion(p, predicted, 4)
    assert expected.sum() == pytest.approx(500)
    for c in range(4):  # column c: what predictions of c are expected to be
        assert expected[:, c] == pytest.approx(p[predicted == c].sum(axis=0))
    scores = estimated_scores(expected, positive_class=None)
    assert scores.accuracy == pytest.approx(p[np.arange(500), predicted].mean())


def test_a_binary_estimator_needs_the_positive_class_and_a_multiclass_one_probabilities() -> None:
    labels = [1, 0, 1, 1, 0]
    binary = build_scored(labels, scores=[0.9, 0.2, 0.7, 0.6, 0.4], limit=100)
    assert binary is not None
    assert fit_estimator(binary, "binary", ["0", "1"], "1") is not None
    assert fit_estimator(binary, "multiclass", ["0", "1", "2"], None) is None
    probs = build_scored(
        ["a", "b", "a"], probabilities=[{"a": 0.8, "b": 0.2}, {"a": 0.1, "b": 0.9}, None], limit=100
    )
    assert probs is not None and probs.rows == 2 and probs.columns == ("a", "b")
    assert fit_estimator(probs, "binary", ["a", "b"], "c") is None  # no column for "c"
    estimator = fit_estimator(probs, "multiclass", ["b", "a", "z"], None)
    assert estimator is not None and estimator.calibrators[2] is None  # "z": raw probabilities


def test_estimate_error_within_002_on_calibrated_data_at_09_accuracy() -> None:
    """On calibrated synthetic data near 0.9 accuracy, windows of 1,000 predictions: the
    estimate's mean absolute error against the realised accuracy is at most 0.02 (the README
    reports it with its 95th percentile, from bench/estimation.py)."""
    rng = np.random.default_rng(12)
    ref_truth, ref_score, _ = calibrated_world(rng, 10_000)
    holdout = build_scored(ref_truth.tolist(), scores=ref_score.tolist(), limit=10_000)
    assert holdout is not None
    estimator = fit_estimator(holdout, "binary", ["0", "1"], "1")
    assert estimator is not None
    errors = []
    for _ in range(200):
        truth, score, _ = calibrated_world(rng, 1000)
        pred = (score > 0.5).astype(np.int64)
        _rows, matrix, classes = estimator.calibrated(score.tolist(), pred, 1)  # type: ignore[misc]
        est = estimated_scores(expected_confusion(matrix, classes, 2), positive_class=1)
        errors.append(abs(est.accuracy - accuracy_score(truth, pred)))
    assert 0.87 < accuracy_score(truth, pred) < 0.93
    assert float(np.mean(errors)) <= 0.02


def calibrated_world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that are the true probability of the positive class, accuracy about 0.9."""
    x = rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-5.5 * x))
    truth = (rng.random(n) < score).astype(int)
    return truth, score, (score > 0.5).astype(int)


def test_a_csv_reference_names_its_score_columns(make_exporter: Any) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    rows = ["x,y,p_a,p_b", "1.0,a,0.9,0.1", "2.0,b,0.2,0.8", "3.0,a,0.7,0.3", "4.0,b,0.4,0.6"]
    answer = exp.client.put(
        "/v1/models/ab/reference?label_column=y&probability_columns=p_*",
        content="\n".join(rows).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["scored_rows"] == 4 and set(summary["features"]) == {"x"}  # not features
    binary = exp.client.put(
        "/v1/models/bin/reference?label_column=y&score_column=p",
        content=b"x,y,p\n1.0,1,0.9\n2.0,0,0.2\n",
        headers={"Content-Type": "text/csv"},
    )
    assert binary.status_code == 200 and binary.json()["scored_rows"] == 2


def test_a_reference_file_with_a_score_column_calibrates_the_estimate(
    make_exporter: Any, tmp_path: Any
) -> None:
    rng = np.random.default_rng(5)
    truth, score, _ = calibrated_world(rng, 2000)
    path = tmp_path / "reference.csv"
    path.write_text(
        "x,y,p\n" + "".join(f"{s},{t},{s}\n" for t, s in zip(truth, score, strict=True))
    )
    exp = make_exporter(
        quality={"min_samples": 10},
        models={
            "m": {
                "task": "binary",
                "reference_file": str(path),
                "reference_label_column": "y",
                "reference_score_column": "p",
            }
        },
    )
    truth, score, pred = calibrated_world(rng, 300)
    exp.predictions(
        "m",
        [
            {
                "id": i,
                "features": {"x": float(score[i])},
                "prediction": int(pred[i]),
                "score": float(score[i]),
            }
            for i in range(300)
        ],
    )
    got = sample(
        exp.metrics(), "model_estimated_accuracy", model="m", model_version="default", window="1h"
    )
    want = cbpe_binary(*_file_reference(path), score, pred)["accuracy"]
    assert got == pytest.approx(want, abs=TOL)


def _file_reference(path: Any) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()[1:]
    values = np.array([[float(v) for v in line.split(",")] for line in lines])
    return values[:, 2], values[:, 1]


def test_estimate_windows_slide_grow_and_round_trip() -> None:
    import zlib

    import msgspec

    from exporter.estimate_window import EstimateWindow
    from exporter.persist import fileformat

    t0 = 1_800_000_000.0
    w = EstimateWindow(600.0, 10, binary=False, labeled=True)
    p = np.array([[0.7, 0.3], [0.2, 0.8]])
    w.add(np.full(2, t0), p, np.array([0, 1]), t0, truth=np.array([0, 0]))
    # A third class later: the matrices grow, earlier cells stay.
    w.add(np.full(1, t0 + 60), np.array([[0.1, 0.1, 0.8]]), np.array([2]), t0 + 60, np.array([2]))
    counts = w.counts(t0 + 60)
    assert counts.expected.shape == (3, 3) and counts.predictions == 3
    assert counts.expected[:, 0].tolist() == [0.7, 0.3, 0.0]
    assert counts.realised is not None and counts.realised.tolist() == [
        [1, 1, 0],
        [0, 0, 0],
        [0, 0, 1],
    ]
    saved = msgspec.msgpack.decode(zlib.decompress(fileformat.encode_body({"w": w.to_state()})))[
        "w"
    ]
    back = EstimateWindow.from_state(saved, 600.0, 10)
    assert np.array_equal(back.counts(t0 + 60).expected, counts.expected)
    # The first bucket leaves the window 600 s after it: only the third class's prediction stays.
    assert w.counts(t0 + 600).predictions == 1
    assert w.counts(t0 + 700).predictions == 0


def test_the_status_api_shows_the_estimate(make_exporter: Any) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.client.put(
        "/v1/models/s/reference",
        json={"features": {"x": [1.0, 2.0]}, "labels": [1, 0], "scores": [0.9, 0.1]},
    )
    exp.predictions(
        "s", [{"id": 1, "features": {"x": 1.0}, "prediction": 1, "score": 0.9, "label": 1}]
    )
    window = exp.status("s")["versions"]["default"]["windows"]["1h"]
    m = exp.metrics()
    key = {"model": "s", "model_version": "default", "window": "1h"}
    assert window["estimate"]["accuracy"] == sample(m, "model_estimated_accuracy", **key)
    assert window["estimate"]["checked_predictions"] == 1
    assert window["estimate"]["accuracy_error"] == sample(
        m, "model_estimated_accuracy_error", **key
    )
