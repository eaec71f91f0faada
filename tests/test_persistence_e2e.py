"""State across real restarts of ``python -m exporter serve`` on 127.0.0.1: SIGTERM, kill -9,
and a corrupt snapshot."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import parse_metrics
from tests.helpers import ExporterProcess

pytestmark = pytest.mark.timeout(90)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def start(path: Path, interval: str = "1h") -> ExporterProcess:
    return ExporterProcess(
        env={
            "MODEL_EXPORTER_STATE__PATH": str(path),
            "MODEL_EXPORTER_STATE__INTERVAL": interval,
            "MODEL_EXPORTER_SHUTDOWN__DRAIN": "0s",
        }
    )


def fill(exporter: ExporterProcess) -> None:
    events = [
        {"id": f"e{i}", "features": {"x": float(i), "c": "ab"[i % 2]}, "prediction": i % 2}
        for i in range(200)
    ]
    r = exporter.client.post("/v1/predictions", json={"model": "fraud", "events": events})
    assert r.status_code == 200, r.text
    labels = [{"id": f"e{i}", "label": (i // 3) % 2} for i in range(150)]
    r = exporter.client.post("/v1/labels", json={"model": "fraud", "labels": labels})
    assert r.status_code == 200, r.text


def model_samples(exporter: ExporterProcess) -> Samples:
    samples = parse_metrics(exporter.client.get("/metrics").text)
    return {
        k: v
        for k, v in samples.items()
        if k[0].startswith("model_")
        and not k[0].startswith("model_exporter_")
        and "computed" not in k[0]
    }


def test_sigterm_then_restart_keeps_every_model_sample(tmp_path: Path) -> None:
    first = start(tmp_path)
    try:
        fill(first)
        before = model_samples(first)
    finally:
        first.stop()
    second = start(tmp_path)
    try:
        after = model_samples(second)
    finally:
        second.stop()
    assert (
        before[
            (
                "model_predictions_total",
                frozenset({("model", "fraud"), ("model_version", "default")}),
            )
        ]
        == 200
    )
    windows = {k: v for k, v in before.items() if not k[0].startswith("model_feature_drift")}
    assert {k: after.get(k) for k in windows} == windows


def test_kill_9_after_one_interval_restores_windows_and_counters_from_zero(
    tmp_path: Path,
) -> None:
    first = start(tmp_path, interval="1s")
    try:
        fill(first)
        before = model_samples(first)
        time.sleep(2.5)  # at least one periodic snapshot after the writes
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        first.stop()
    second = start(tmp_path, interval="1s")
    try:
        after = model_samples(second)
        text = second.client.get("/metrics").text
    finally:
        second.stop()
    key = frozenset({("model", "fraud"), ("model_version", "default"), ("window", "1h")})
    assert after[("model_window_predictions", key)] == before[("model_window_predictions", key)]
    counter = frozenset({("model", "fraud"), ("model_version", "default")})
    assert after[("model_predictions_total", counter)] == 0
    assert 'model_exporter_state_restores_total{outcome="restored_without_counters"} 1.0' in text


def test_a_corrupt_snapshot_is_moved_aside_and_the_exporter_starts(tmp_path: Path) -> None:
    (tmp_path / "state.mxs").write_bytes(b"MXSTATE\n\x00\x00\x00\x05junk")
    exporter = start(tmp_path)
    try:
        assert exporter.client.get("/-/healthy").status_code == 200
        text = exporter.client.get("/metrics").text
    finally:
        exporter.stop()
    assert 'model_exporter_state_restores_total{outcome="moved_aside"} 1.0' in text
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())
