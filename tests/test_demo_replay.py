"""`model-exporter demo` and `model-exporter replay`, run as the user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import parse_metrics, sample
from tests.helpers import ROOT, ExporterProcess

pytestmark = pytest.mark.e2e


def test_demo_shows_drift_and_an_accuracy_drop(tmp_path: Path) -> None:
    """Accelerated: 150 predictions/s, drift after 8 s, 5 s and 20 s windows."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            "demo",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--rate",
            "150",
            "--drift-after",
            "8",
            "--duration",
            "40",
            "--label-delay",
            "0.5",
            "--windows",
            "5s,20s",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            output.append(line)
            match = re.search(r"exporter running on (http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url, "".join(output)
        seen_healthy = seen_drop = seen_drift = False
        while time.monotonic() < deadline and not (seen_healthy and seen_drop and seen_drift):
            try:
                m = parse_metrics(httpx.get(url + "/metrics", timeout=5).text)
            except httpx.HTTPError:
                break
            key = {"model": "breast-cancer", "model_version": "v1", "window": "5s"}
            accuracy = sample(m, "model_accuracy", **key)
            drifted = sample(m, "model_drift_features_drifted", **key)
            seen_healthy |= accuracy is not None and accuracy > 0.9 and drifted == 0
            seen_drop |= seen_healthy and accuracy is not None and accuracy < 0.9
            seen_drift |= seen_healthy and bool(drifted)
            time.sleep(0.5)
        assert seen_healthy and seen_drop and seen_drift
        v2 = sample(m, "model_predictions_total", model="breast-cancer", model_version="v2")
        assert v2 is not None and v2 > 0  # A/B: the second version serves too
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        output.extend(proc.stdout.readlines())
        proc.stdout.close()
    text = "".join(output)
    assert "DRIFTING" in text and "Look at:" in text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("replay") / "c.yaml"
    cfg.write_text("quality: {min_samples: 1}\nmodels:\n  churn: {task: binary}\n")
    proc = ExporterProcess(cfg)
    yield proc
    proc.stop()


def replay(server: ExporterProcess, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(path), "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_replay_csv_honours_timestamps_and_reports_bad_lines(server, tmp_path: Path) -> None:
    now = time.time()
    lines = ["id,timestamp,tenure,plan,prediction,label"]
    for i in range(40):
        stamp = now - 7200 if i < 10 else now - 60  # the first 10 are two hours old
        lines.append(f"c{i},{stamp},{i % 7},{'gold' if i % 2 else 'basic'},{i % 2},{(i // 2) % 2}")
    lines.insert(5, ",1,1,basic,0,0")  # line 6: no id
    lines.insert(9, "cx,1,2,3")  # line 10: wrong number of cells
    lines.insert(13, f"cy,{now},1,gold,maybe,1")  # line 14: the exporter refuses the prediction
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    result = replay(server, path, "--model", "churn", "--model-version", "csv", "--quiet")
    assert result.returncode == 3, result.stderr  # 3: some rows were skipped
    skipped = re.findall(r"log\.csv:(\d+): skipped: (.*)", result.stderr)
    assert [int(line) for line, _ in skipped] == [6, 10, 14]
    assert "no id" in skipped[0][1] and "cells" in skipped[1][1]
    assert "'maybe'" in skipped[2][1]
    assert "40 sent" in result.stdout and "3 skipped" in result.stdout
    m = parse_metrics(server.client.get("/metrics").text)
    key = {"model": "churn", "model_version": "csv"}
    assert sample(m, "model_predictions_total", **key) == 40
    assert sample(m, "model_window_predictions", **key, window="1h") == 30  # by their timestamps
    assert sample(m, "model_labels_total", **key) == 40  # inline labels


def test_replay_jsonl_with_column_mapping_and_rate(server, tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    rows = [
        {"request": f"j{i}", "score_class": i % 2, "f1": i * 0.5, "f2": "x", "ignored": 1}
        for i in range(30)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    started = time.monotonic()
    result = replay(
        server,
        path,
        "--model",
        "churn",
        "--model-version",
        "jsonl",
        "--id-column",
        "request",
        "--prediction-column",
        "score_class",
        "--feature-columns",
        "f1,f2",
        "--rate",
        "100",
    )
    assert time.monotonic() - started >= 0.25  # 31 rows at 100 rows/s
    assert re.search(r"log\.jsonl:31: skipped: not valid JSON", result.stderr)
    assert "rows" in result.stderr  # the progress line
    status = server.client.get("/v1/models/churn").json()
    names = {f["name"] for f in status["features"]}
    assert {"f1", "f2"} <= names and "ignored" not in names


def test_replay_parquet(server, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "log.parquet"
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i in range(25)],
                "prediction": [1] * 25,
                "amount": [float(i) for i in range(25)],
            }
        ),
        path,
    )
    result = replay(server, path, "--model", "churn", "--model-version", "parquet")
    assert result.returncode == 0, result.stderr
    assert "25 sent" in result.stdout
    m = parse_metrics(server.client.get("/metrics").text)
    assert sample(m, "model_predictions_total", model="churn", model_version="parquet") == 25
    again = replay(server, path, "--model", "churn", "--model-version", "parquet")
    assert "25 duplicates" in again.stdout  # a replayed log is idempotent


def test_replay_errors(server, tmp_path: Path) -> None:
    missing = replay(server, tmp_path / "nope.csv", "--model", "churn")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    path = tmp_path / "log.csv"
    path.write_text("id,prediction\na,1\n")
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "replay",
            str(path),
            "--url",
            "http://127.0.0.1:9",
            "--model",
            "churn",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert down.returncode == 1 and "cannot reach" in down.stderr


def test_a_rejection_names_the_event_by_its_field() -> None:
    from exporter.client._transport import Response

    def rejection(body: bytes):
        return Response(422, body, None).rejection()

    r = rejection(b'{"detail": "x", "reason": "task_mismatch", "field": "events[3].label"}')
    assert (r.reason, r.field, r.event(), r.event("labels")) == (
        "task_mismatch",
        "events[3].label",
        3,
        None,
    )
    assert (
        rejection(b'{"detail": "y", "reason": "unknown_model", "field": "model"}').event() is None
    )
    assert rejection(b'{"detail": "z", "reason": "malformed_json"}').event() is None
    assert rejection(b"not json").detail == "not json"
