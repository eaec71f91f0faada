"""Through the HTTP API: categorical drift, distances, prediction and label drift, data quality,
reference files and the rolling reference, each against its oracle on the same samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from exporter.config import ConfigError
from tests.conftest import sample

KEY = {"model": "m", "model_version": "default", "window": "1h"}


def deciles(ref: np.ndarray, bins: int = 10) -> np.ndarray:
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, values, side="right")  # bin i = [e_{i-1}, e_i)
    return np.bincount(idx, minlength=edges.shape[0] + 1) / values.shape[0]


def psi_formula(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def post(exp, events, **kw):
    for lo in range(0, len(events), 1000):
        exp.predictions("m", events[lo : lo + 1000], **kw)


def test_numeric_distances_and_quality(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 20})
    rng = np.random.default_rng(0)
    ref = rng.normal(10, 2, 4000)
    exp.client.put("/v1/models/m/reference", json={"features": {"x": ref.tolist()}})
    win = rng.normal(11, 2.5, 1500)
    events = []
    for i, v in enumerate(win):
        value = None if i % 10 == 0 else ("oops" if i % 25 == 1 else float(v))
        events.append({"id": str(i), "features": {"x": value}, "prediction": 1})
    post(exp, events)
    exp.refresh_drift()
    m = exp.metrics()
    used = np.array([e["features"]["x"] for e in events if isinstance(e["features"]["x"], float)])
    fk = {**KEY, "feature": "x"}
    assert sample(m, "model_feature_drift_wasserstein_distance", **fk) == pytest.approx(
        stats.wasserstein_distance(ref, used), rel=1e-12
    )
    edges = deciles(ref)
    p, q = shares(ref, edges), shares(used, edges)
    assert sample(m, "model_feature_drift_psi", **fk) == pytest.approx(psi_formula(p, q), rel=1e-12)
    assert sample(m, "model_feature_drift_jensen_shannon_distance", **fk) == pytest.approx(
        jensenshannon(p, q, base=2), abs=1e-12
    )
    outside = np.mean((used < ref.min()) | (used > ref.max()))
    assert sample(m, "model_feature_out_of_range_ratio", **fk) == pytest.approx(outside)
    missing = 1 - used.shape[0] / len(events)  # nulls and strings for a numeric feature
    assert sample(m, "model_feature_missing_ratio", **fk) == pytest.approx(missing)
    assert sample(m, "model_feature_type_mismatches_total", model="m", feature="x") == sum(
        1 for e in events if e["features"]["x"] == "oops"
    )


def test_categorical_features_chi_squared(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 20})
    rng = np.random.default_rng(1)
    ref = rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])
    exp.client.put("/v1/models/m/reference", json={"features": {"colour": ref.tolist()}})
    win = rng.choice(["a", "b", "c", "new", "newer"], 900, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    post(
        exp,
        [
            {"id": str(i), "features": {"colour": str(v)}, "prediction": 0}
            for i, v in enumerate(win)
        ],
    )
    exp.refresh_drift()
    m = exp.metrics()
    cats = ["a", "b", "c"]
    ref_counts = [int((ref == c).sum()) for c in cats] + [0]
    win_counts = [int((win == c).sum()) for c in cats] + [int(np.isin(win, ["new", "newer"]).sum())]
    expected = stats.chi2_contingency(
        [ref_counts, win_counts], correction=False, lambda_="log-likelihood"
    )
    fk = {**KEY, "feature": "colour"}
    assert sample(m, "model_feature_drift_chi2_statistic", **fk) == pytest.approx(
        expected.statistic, rel=1e-12
    )
    assert sample(m, "model_feature_drift_chi2_pvalue", **fk) == pytest.approx(
        expected.pvalue, rel=1e-9
    )
    p = np.array(ref_counts) / sum(ref_counts)
    q = np.array(win_counts) / sum(win_counts)
    assert sample(m, "model_feature_drift_psi", **fk) == pytest.approx(psi_formula(p, q), rel=1e-12)
    assert sample(m, "model_feature_drift_jensen_shannon_distance", **fk) == pytest.approx(
        jensenshannon(p, q, base=2), abs=1e-12
    )
    assert sample(m, "model_feature_unseen_category_ratio", **fk) == pytest.approx(q[-1])
    assert sample(m, "model_feature_drift_ks_statistic", **fk) is None
    summary = exp.status("m")["versions"]["default"]["reference"]["features"]["colour"]
    assert summary["shares"] == pytest.approx({c: (ref == c).mean() for c in cats})


def test_bools_and_declared_categorical_numbers(make_exporter, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("drift: {min_samples: 5}\nmodels:\n  m: {task: binary, categorical: [zip]}\n")
    exp = make_exporter(config=str(cfg))
    exp.client.put(
        "/v1/models/m/reference",
        json={
            "features": {
                "zip": [10115, 10115, 20095, 80331] * 10,
                "vip": [True, False, False, False] * 10,
            }
        },
    )
    post(
        exp,
        [
            {
                "id": str(i),
                "features": {"zip": [10115, 99999][i % 2], "vip": i % 3 == 0},
                "prediction": 1,
            }
            for i in range(60)
        ],
    )
    exp.refresh_drift()
    features = exp.status("m")["versions"]["default"]["windows"]["1h"]["drift"]["features"]
    assert features["zip"]["kind"] == "categorical" and features["zip"]["unseen"] == 0.5
    assert features["vip"]["kind"] == "categorical" and features["vip"]["unseen"] == 0.0


def test_category_limit_pools_the_rest(make_exporter) -> None:
    exp = make_exporter(drift={"max_categories": 3, "min_samples": 2})
    post(
        exp, [{"id": str(i), "features": {"city": f"c{i % 5}"}, "prediction": 0} for i in range(50)]
    )
    m = exp.metrics()
    # c0, c1, c2 are tracked; c3 and c4 (20 values) are pooled.
    assert sample(m, "model_feature_categories_pooled_total", model="m", feature="city") == 20


def test_prediction_and_label_drift_for_a_classifier(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 20})
    rng = np.random.default_rng(2)
    ref_pred = rng.choice(["cat", "dog", "fox"], 2000, p=[0.6, 0.3, 0.1])
    ref_label = rng.choice(["cat", "dog", "fox"], 2000, p=[0.55, 0.35, 0.1])
    r = exp.client.put(
        "/v1/models/m/reference",
        json={
            "features": {"x": rng.normal(size=2000).tolist()},
            "predictions": ref_pred.tolist(),
            "labels": ref_label.tolist(),
        },
    )
    assert r.status_code == 200, r.text
    pred = rng.choice(["cat", "dog", "fox"], 800, p=[0.3, 0.3, 0.4])
    truth = rng.choice(["cat", "dog", "fox"], 800, p=[0.4, 0.4, 0.2])
    post(
        exp,
        [{"id": str(i), "features": {"x": 0.0}, "prediction": str(pred[i])} for i in range(800)],
    )
    exp.labels("m", [{"id": str(i), "label": str(truth[i])} for i in range(800)])
    exp.refresh_drift()
    m = exp.metrics()
    cats = ["cat", "dog", "fox"]
    for kind, ref_values, window in (("prediction", ref_pred, pred), ("label", ref_label, truth)):
        table = [
            [int((ref_values == c).sum()) for c in cats],
            [int((window == c).sum()) for c in cats],
        ]
        expected = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
        assert sample(m, f"model_{kind}_drift_chi2_statistic", **KEY) == pytest.approx(
            expected.statistic, rel=1e-12
        )
        assert sample(m, f"model_{kind}_drift_chi2_pvalue", **KEY) == pytest.approx(
            expected.pvalue, rel=1e-9
        )
        assert sample(m, f"model_{kind}_drift_detected", **KEY) == 1
        assert sample(m, f"model_{kind}_drift_window_values", **KEY) == 800


def test_prediction_and_label_drift_for_a_regression(make_exporter, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("drift: {min_samples: 20}\nmodels:\n  m: {task: regression}\n")
    exp = make_exporter(config=str(cfg))
    rng = np.random.default_rng(3)
    ref_pred, ref_label = rng.normal(50, 5, 3000), rng.normal(50, 6, 3000)
    csv = "x,yhat,y\n" + "".join(
        f"1.0,{p!r},{y!r}\n" for p, y in zip(ref_pred.tolist(), ref_label.tolist(), strict=True)
    )
    r = exp.client.put(
        "/v1/models/m/reference?prediction_column=yhat&label_column=y",
        content=csv,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    pred, truth = rng.normal(50, 5, 700), rng.normal(52, 6, 700)
    post(
        exp,
        [{"id": str(i), "features": {"x": 1.0}, "prediction": float(pred[i])} for i in range(700)],
    )
    exp.labels("m", [{"id": str(i), "label": float(truth[i])} for i in range(700)])
    exp.refresh_drift()
    m = exp.metrics()
    for kind, ref_values, window in (("prediction", ref_pred, pred), ("label", ref_label, truth)):
        expected = stats.ks_2samp(ref_values, window, method="asymp")
        assert sample(m, f"model_{kind}_drift_ks_statistic", **KEY) == expected.statistic
        assert sample(m, f"model_{kind}_drift_ks_pvalue", **KEY) == pytest.approx(
            expected.pvalue, rel=1e-9
        )
        assert sample(m, f"model_{kind}_drift_wasserstein_distance", **KEY) == pytest.approx(
            stats.wasserstein_distance(ref_values, window), rel=1e-12
        )
    assert sample(m, "model_prediction_drift_detected", **KEY) == 0
    assert sample(m, "model_label_drift_detected", **KEY) == 1


def test_first_events_reference_covers_predictions_and_labels(make_exporter) -> None:
    exp = make_exporter(drift={"reference_size": 100, "min_samples": 20})
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 2, 400)
    post(
        exp,
        [
            {"id": str(i), "features": {"x": float(i % 7)}, "prediction": int(pred[i])}
            for i in range(400)
        ],
    )
    exp.labels("m", [{"id": str(i), "label": int(pred[i])} for i in range(400)])
    exp.refresh_drift()
    m = exp.metrics()
    table = [
        [int((pred[:100] == c).sum()) for c in (0, 1)],
        [int((pred == c).sum()) for c in (0, 1)],
    ]
    expected = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert sample(m, "model_prediction_drift_chi2_statistic", **KEY) == pytest.approx(
        expected.statistic, rel=1e-12
    )
    # The first 100 joined labels are the label reference.
    assert sample(m, "model_label_drift_chi2_statistic", **KEY) == pytest.approx(
        expected.statistic, rel=1e-12
    )


def test_rolling_reference_is_the_previous_window(make_exporter) -> None:
    exp = make_exporter(windows=["10m"], drift={"reference": "previous_window", "min_samples": 50})
    rng = np.random.default_rng(5)
    first = rng.normal(0, 1, 600)
    second = rng.normal(0.4, 1, 600)
    for block, values in enumerate((first, second)):
        for step in range(60):  # 10 values every 10 s for 10 minutes
            exp.clock.advance(10)
            chunk = values[step * 10 : step * 10 + 10]
            post(
                exp,
                [
                    {"id": f"{block}-{step}-{i}", "features": {"x": float(v)}, "prediction": 0}
                    for i, v in enumerate(chunk)
                ],
            )
    exp.refresh_drift()
    m = exp.metrics()
    fk = {"model": "m", "model_version": "default", "window": "10m", "feature": "x"}
    expected = stats.ks_2samp(first, second, method="asymp")
    assert sample(m, "model_feature_drift_ks_statistic", **fk) == expected.statistic
    assert sample(m, "model_feature_drift_reference_values", **fk) == 600
    ref = exp.status("m")["versions"]["default"]["reference"]
    assert ref["source"] == "previous_window"


def write_reference_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(6)
    x = rng.normal(size=500)
    csv = tmp_path / "ref.csv"
    csv.write_text(
        "x,colour,pred\n"
        + "".join(f"{v!r},{'red' if i % 3 else 'blue'},{i % 2}\n" for i, v in enumerate(x.tolist()))
    )
    parquet = tmp_path / "ref.parquet"
    pq.write_table(
        pa.table(
            {
                "x": x,
                "colour": ["red" if i % 3 else "blue" for i in range(500)],
                "pred": [i % 2 for i in range(500)],
            }
        ),
        parquet,
    )
    return csv, parquet, x


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_reference_file_named_in_config_is_loaded_at_start(make_exporter, tmp_path, kind) -> None:
    csv, parquet, x = write_reference_files(tmp_path)
    path = csv if kind == "csv" else parquet
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "drift: {min_samples: 20}\nmodels:\n  m:\n    task: binary\n"
        f"    reference_file: {path}\n    reference_prediction_column: pred\n"
    )
    exp = make_exporter(config=str(cfg))
    status = exp.status("m")  # registered by its reference, before any event
    assert status["task"] == "binary" and status["versions"] == {}
    rng = np.random.default_rng(7)
    win = rng.normal(0.3, 1, 300)
    post(
        exp,
        [
            {"id": str(i), "features": {"x": float(v), "colour": "red"}, "prediction": 1}
            for i, v in enumerate(win)
        ],
    )
    exp.refresh_drift()
    m = exp.metrics()
    assert (
        sample(m, "model_feature_drift_ks_statistic", **KEY, feature="x")
        == stats.ks_2samp(x, win, method="asymp").statistic
    )
    assert sample(m, "model_prediction_drift_chi2_pvalue", **KEY) < 1e-10  # all 1s vs half
    ref = exp.status("m")["versions"]["default"]["reference"]
    assert (ref["source"], ref["scope"], ref["rows"]) == ("file", "model", 500)
    assert set(ref["features"]["x"]["quantiles"]) == {
        "0",
        "0.05",
        "0.25",
        "0.5",
        "0.75",
        "0.95",
        "1",
    }


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),
        ("x,y\n1,2\n", "prediction_column: 'pred' is not a column"),
        ("pred\n", "no values"),
    ],
)
def test_bad_reference_file_fails_at_start(make_exporter, tmp_path, content, fragment) -> None:
    path = tmp_path / "ref.csv"
    if content is not None:
        path.write_text(content)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"models:\n  m:\n    task: binary\n    reference_file: {path}\n"
        "    reference_prediction_column: pred\n"
    )
    with pytest.raises(ConfigError, match=r"models\.m\.reference_file") as info:
        make_exporter(config=str(cfg))
    assert fragment in str(info.value)


def test_reference_with_no_feature_of_the_model_is_refused(make_exporter) -> None:
    exp = make_exporter()
    post(exp, [{"id": "1", "features": {"age": 30.0, "income": 2.0}, "prediction": 1}])
    r = exp.client.put("/v1/models/m/reference", json={"features": {"agee": [1.0, 2.0]}})
    assert r.status_code == 422 and r.json()["reason"] == "invalid_reference"
    assert "(agee)" in r.json()["detail"] and "(age, income)" in r.json()["detail"]
    r = exp.client.put(
        "/v1/models/m/reference", json={"features": {"age": [1.0, 2.0], "extra": [1.0, 2.0]}}
    )
    assert r.status_code == 200
    assert r.json()["unknown_features"] == ["extra"]
    assert r.json()["missing_features"] == ["income"]
