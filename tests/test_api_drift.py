"""Through the HTTP API, KS drift equals scipy.stats.ks_2samp(method="asymp") on the samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from tests.conftest import Exporter, sample

RTOL_P = 1e-9


def send(exp: Exporter, model: str, rows: dict[str, np.ndarray], start: int = 0, **extra: Any):
    n = len(next(iter(rows.values())))
    for lo in range(0, n, 500):
        events = [
            {
                "id": f"{model}-{start + i}",
                "features": {k: (None if np.isnan(v[i]) else float(v[i])) for k, v in rows.items()},
                "prediction": 0,
            }
            for i in range(lo, min(n, lo + 500))
        ]
        exp.predictions(model, events, **extra)


def assert_ks(m, key: dict[str, str], ref: np.ndarray, win: np.ndarray) -> None:
    ref = ref[~np.isnan(ref)]
    win = win[~np.isnan(win)]
    expected = stats.ks_2samp(ref, win, method="asymp")
    assert sample(m, "model_feature_drift_ks_statistic", **key) == expected.statistic
    assert sample(m, "model_feature_drift_ks_pvalue", **key) == pytest.approx(
        expected.pvalue, rel=RTOL_P
    )
    assert sample(m, "model_feature_drift_window_values", **key) == len(win)
    assert sample(m, "model_feature_drift_reference_values", **key) == len(ref)


def test_uploaded_json_reference(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 50})
    rng = np.random.default_rng(0)
    ref = {"age": rng.normal(40, 10, 3000), "income": rng.lognormal(10, 1, 3000)}
    r = exp.client.put(
        "/v1/models/credit/reference",
        json={"features": {k: v.tolist() for k, v in ref.items()}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 3000
    win = {"age": rng.normal(43, 10, 1800), "income": rng.lognormal(10, 1, 1800)}
    win["income"][rng.random(1800) < 0.2] = np.nan  # missing values are skipped
    send(exp, "credit", win, model_version="v1")
    exp.refresh_drift()
    m = exp.metrics()
    for feature in ("age", "income"):
        key = {"model": "credit", "model_version": "v1", "window": "1h", "feature": feature}
        assert_ks(m, key, ref[feature], win[feature])
    # The age shift of 0.3 sd is detected; the income distribution is unchanged.
    age = {"model": "credit", "model_version": "v1", "window": "1h", "feature": "age"}
    assert sample(m, "model_feature_drift_ks_pvalue", **age) < 1e-6
    status = exp.status("credit")["versions"]["v1"]
    assert status["reference"]["source"] == "upload"
    assert status["reference"]["scope"] == "model"
    drift = status["windows"]["1h"]["drift"]["features"]["age"]
    # The status JSON rounds to 12 significant digits; /metrics has full precision.
    ks = sample(m, "model_feature_drift_ks_statistic", **age)
    assert drift["ks_statistic"] == pytest.approx(ks, rel=1e-11) and drift["ks_statistic"] != 0


def test_uploaded_csv_reference_for_one_version(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 20})
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 1, 400)
    csv_body = "x,colour\n" + "".join(
        f"{float(v)!r},{'red' if i % 2 else 'blue'}\n" for i, v in enumerate(ref)
    )
    send(exp, "m", {"x": rng.uniform(0, 1, 10)}, model_version="a")
    send(exp, "m", {"x": rng.uniform(0, 1, 10)}, start=100, model_version="b")
    r = exp.client.put(
        "/v1/models/m/reference?model_version=a",
        content=csv_body,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    colour = r.json()["features"]["colour"]
    assert colour["kind"] == "categorical" and colour["values"] == 400
    assert colour["shares"] == {"blue": 0.5, "red": 0.5}
    win = rng.uniform(0.1, 1.1, 300)
    send(exp, "m", {"x": win}, start=1000, model_version="a")
    exp.refresh_drift()
    m = exp.metrics()
    key = {"model": "m", "model_version": "a", "window": "1h", "feature": "x"}
    window_a = np.concatenate([exp_window_of(exp, "a"), win])
    assert_ks(m, key, ref, window_a)
    status = exp.status("m")["versions"]
    assert status["a"]["reference"]["scope"] == "version"
    assert status["b"]["reference"]["source"] == "collecting"  # b still gathers first events


def test_reference_kind_must_match_the_events(make_exporter) -> None:
    exp = make_exporter()
    send(exp, "m", {"x": np.arange(5.0)})
    r = exp.client.put(
        "/v1/models/m/reference", content="x\nlow\nhigh\n", headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 422
    assert r.json()["reason"] == "invalid_reference"
    assert "'x'" in r.json()["detail"] and "numeric" in r.json()["detail"]
    assert exp.status("m")["versions"]["default"]["reference"]["source"] == "collecting"


def exp_window_of(exp: Exporter, version: str) -> np.ndarray:
    """The first 10 values sent to a version in the CSV test (same seed, same order)."""
    rng = np.random.default_rng(1)
    rng.uniform(0, 1, 400)
    first_a = rng.uniform(0, 1, 10)
    return first_a if version == "a" else rng.uniform(0, 1, 10)


def test_first_events_become_the_reference(make_exporter) -> None:
    exp = make_exporter(drift={"reference_size": 200, "min_samples": 50})
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 700)
    values[500:] += 1.0  # a shift after the reference was taken
    send(exp, "m", {"f": values[:150]})
    status = exp.status("m")["versions"]["default"]["reference"]
    assert status == {"source": "collecting", "scope": "version", "rows": 150, "target_rows": 200}
    send(exp, "m", {"f": values[150:]}, start=150)
    exp.refresh_drift()
    m = exp.metrics()
    key = {"model": "m", "model_version": "default", "window": "1h", "feature": "f"}
    assert_ks(m, key, values[:200], values)
    assert (
        sample(m, "model_reference_rows", model="m", model_version="default", source="first_events")
        == 200
    )


def test_model_wide_upload_replaces_every_version_reference(make_exporter) -> None:
    exp = make_exporter(drift={"reference_size": 20, "min_samples": 10})
    rng = np.random.default_rng(3)
    send(exp, "m", {"f": rng.normal(size=50)}, model_version="v1")
    send(exp, "m", {"f": rng.normal(size=50)}, start=50, model_version="v2")
    new_ref = rng.normal(5, 1, 100)
    r = exp.client.put("/v1/models/m/reference", json={"features": {"f": new_ref.tolist()}})
    assert r.status_code == 200
    exp.refresh_drift()
    m = exp.metrics()
    for v in ("v1", "v2"):
        key = {"model": "m", "model_version": v, "window": "1h", "feature": "f"}
        assert sample(m, "model_feature_drift_reference_values", **key) == 100
        assert exp.status("m")["versions"][v]["reference"]["scope"] == "model"
    # A version that appears later uses it too.
    send(exp, "m", {"f": rng.normal(5, 1, 30)}, start=100, model_version="v3")
    exp.refresh_drift()
    key = {"model": "m", "model_version": "v3", "window": "1h", "feature": "f"}
    assert sample(exp.metrics(), "model_feature_drift_reference_values", **key) == 100


def test_too_few_values_export_counts_but_no_drift(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 100})
    exp.client.put("/v1/models/m/reference", json={"features": {"f": list(range(500))}})
    send(exp, "m", {"f": np.arange(99.0)})
    exp.refresh_drift()
    m = exp.metrics()
    key = {"model": "m", "model_version": "default", "window": "1h", "feature": "f"}
    assert sample(m, "model_feature_drift_window_values", **key) == 99
    assert sample(m, "model_feature_drift_ks_pvalue", **key) is None
    assert sample(m, "model_feature_drift_ks_statistic", **key) is None
    send(exp, "m", {"f": np.array([5.0])}, start=99)
    exp.refresh_drift()
    assert sample(exp.metrics(), "model_feature_drift_ks_pvalue", **key) is not None


def test_drift_window_follows_prediction_time(make_exporter) -> None:
    """Events stamped more than a window ago are counted but not part of the drift window."""
    exp = make_exporter(drift={"min_samples": 10})
    exp.client.put("/v1/models/m/reference", json={"features": {"f": list(range(100))}})
    now = exp.clock.now
    old = [
        {"id": f"o{i}", "timestamp": now - 7200, "features": {"f": 1000.0}, "prediction": 0}
        for i in range(50)
    ]
    fresh = [
        {"id": f"n{i}", "timestamp": now - 60, "features": {"f": float(i)}, "prediction": 0}
        for i in range(30)
    ]
    exp.predictions("m", old + fresh)
    exp.refresh_drift()
    m = exp.metrics()
    key = {"model": "m", "model_version": "default", "window": "1h"}
    assert sample(m, "model_window_predictions", **key) == 30
    assert sample(m, "model_predictions_total", model="m", model_version="default") == 80
    assert_ks(m, {**key, "feature": "f"}, np.arange(100.0), np.arange(30.0))
    # An hour later, the fresh events have left the window too.
    exp.clock.advance(3600)
    exp.refresh_drift()
    m = exp.metrics()
    assert sample(m, "model_window_predictions", **key) == 0
    assert sample(m, "model_feature_drift_ks_pvalue", **key, feature="f") is None


def test_sample_capacity_bounds_the_values_used(make_exporter) -> None:
    exp = make_exporter(drift={"sample_size": 1000, "min_samples": 10})
    rng = np.random.default_rng(4)
    exp.client.put(
        "/v1/models/m/reference", json={"features": {"f": rng.normal(size=500).tolist()}}
    )
    send(exp, "m", {"f": rng.normal(size=6000)})
    exp.refresh_drift()
    m = exp.metrics()
    key = {"model": "m", "model_version": "default", "window": "1h"}
    assert sample(m, "model_window_predictions", **key) == 6000
    assert sample(m, "model_drift_window_sample_predictions", **key) == 1000
    assert sample(m, "model_feature_drift_window_values", **key, feature="f") == 1000
    p = sample(m, "model_feature_drift_ks_pvalue", **key, feature="f")
    assert p is not None and 0.0 <= p <= 1.0


def test_categorical_and_missing_features_get_no_ks(make_exporter) -> None:
    exp = make_exporter(drift={"min_samples": 2})
    exp.client.put(
        "/v1/models/m/reference",
        json={"features": {"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}},
    )
    exp.predictions(
        "m",
        [
            {"id": str(i), "features": {"x": float(i), "c": "a", "n": None}, "prediction": 1}
            for i in range(5)
        ],
    )
    exp.refresh_drift()
    features = exp.status("m")["versions"]["default"]["windows"]["1h"]["drift"]["features"]
    assert set(features) == {"x", "c"}  # "n" was never seen with a value: no kind yet
    assert {"ks_statistic", "mann_whitney_pvalue", "chi2_statistic"} <= set(features["x"])
    assert "chi2_statistic" in features["c"] and "ks_statistic" not in features["c"]
    assert "mann_whitney_pvalue" not in features["c"]
    for f in features.values():
        assert 0.0 <= f["pvalue"] <= f["adjusted_pvalue"] <= 1.0
