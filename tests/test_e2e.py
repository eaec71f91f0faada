"""End to end: the real CLI under uvicorn on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from tests.conftest import parse_metrics, sample
from tests.helpers import ExporterProcess, promtool_check_metrics

pytestmark = pytest.mark.e2e

CONFIG = """
windows: [5m, 1h]
quality: {min_samples: 10}
drift: {min_samples: 50, refresh_interval: 0.1, reference_size: 300}
models:
  fraud: {task: binary, positive_class: 1}
"""


@pytest.fixture
def server(tmp_path: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    proc = ExporterProcess(cfg)
    yield proc
    # A clean, graceful shutdown: uvicorn re-raises SIGTERM after it, so -15 is the exit status.
    assert proc.stop() in (0, -15), "".join(proc.output)
    assert "Application shutdown complete" in "".join(proc.output)


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_predictions_labels_quality_and_drift_over_real_http(server: ExporterProcess) -> None:
    c = server.client
    assert c.get("/-/ready").json() == {"status": "ready"}
    rng = np.random.default_rng(0)
    amounts = rng.gamma(2.0, 50.0, 800)
    amounts[300:] *= 1.3  # drift after the first 300 (the reference)
    truth = rng.integers(0, 2, 800)
    pred = np.where(rng.random(800) < 0.85, truth, 1 - truth)
    for lo in range(0, 800, 200):
        events = [
            {
                "id": f"t{i}",
                "features": {"amount": float(amounts[i]), "channel": "web"},
                "prediction": int(pred[i]),
            }
            for i in range(lo, lo + 200)
        ]
        r = c.post(
            "/v1/predictions", json={"model": "fraud", "model_version": "v7", "events": events}
        )
        assert r.status_code == 200, r.text
    # Labels for 600 of them, shuffled; 200 never arrive.
    labelled = rng.permutation(800)[:600]
    r = c.post(
        "/v1/labels",
        json={
            "model": "fraud",
            "labels": [{"id": f"t{i}", "label": int(truth[i])} for i in labelled],
        },
    )
    assert r.json() == {"accepted": 600, "duplicates": 0, "joined": 600, "pending": 0}

    key = {"model": "fraud", "model_version": "v7", "window": "1h"}

    def drift_ready():
        m = parse_metrics(c.get("/metrics").text)
        n = sample(m, "model_feature_drift_window_values", **key, feature="amount")
        return m if n == 800 else None

    m = wait_for(drift_ready)
    y_true, y_pred = truth[labelled], pred[labelled]
    assert sample(m, "model_accuracy", **key) == pytest.approx(
        skm.accuracy_score(y_true, y_pred), abs=1e-12
    )
    assert sample(m, "model_f1_score", **key, average="binary") == pytest.approx(
        skm.f1_score(y_true, y_pred), abs=1e-12
    )
    expected = stats.ks_2samp(amounts[:300], amounts, method="asymp")
    got = sample(m, "model_feature_drift_ks_statistic", **key, feature="amount")
    assert got == expected.statistic
    assert sample(m, "model_feature_drift_ks_pvalue", **key, feature="amount") == pytest.approx(
        expected.pvalue, rel=1e-9
    )
    assert sample(m, "model_pending_predictions", model="fraud", model_version="v7") == 200

    text = c.get("/metrics").text
    lint = promtool_check_metrics(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    status = c.get("/v1/models/fraud").json()
    assert status["task"] == "binary" and status["task_declared"] is True
    assert status["versions"]["v7"]["reference"]["source"] == "first_events"
    assert c.get("/v1/models").json()["models"][0]["predictions_total"] == 800


def test_bad_input_over_real_http_is_4xx_and_server_survives(server: ExporterProcess) -> None:
    c = server.client
    bodies = [b"{", b"\x00\xff", b'{"model": 1}', b"[" * 100_000, b'{"model":"m","events":[{}]}']
    for body in bodies:
        r = c.post("/v1/predictions", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (body[:20], r.status_code, r.text)
    r = c.post(
        "/v1/predictions", content=b"x" * (17 * 2**20), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert c.get("/-/healthy").status_code == 200
    m = parse_metrics(c.get("/metrics").text)
    assert sample(m, "model_exporter_events_rejected_total", reason="body_too_large") == 1


def test_invalid_config_fails_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("drift:\n  sample_size: many\n")
    with pytest.raises(RuntimeError, match=r"drift\.sample_size.*'many'"):
        ExporterProcess(cfg)
