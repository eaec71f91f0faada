"""`model-exporter demo` and `model-exporter replay`, run as the user runs them."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from exporter import demo
from exporter import replay as replay_module
from exporter.config import Settings, load_settings
from tests.conftest import parse_metrics, sample
from tests.helpers import ROOT, ExporterProcess, terminate


@pytest.mark.e2e
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
            match = re.search(r"serving on (http://127\.0\.0\.1:\d+)", line)
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
        # The demo model sends its probabilities: ROC AUC and calibration are shown too.
        auc = sample(m, "model_roc_auc", model="breast-cancer", model_version="v1", window="20s")
        assert auc is not None and 0.5 < auc <= 1.0
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
    # The status line and the list name the status page first.
    assert re.search(r"\| page http://127\.0\.0\.1:\d+/\n", text), text
    assert re.search(r"Look at:\n  http://127\.0\.0\.1:\d+/ .*status page", text), text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("replay") / "c.yaml"
    cfg.write_text(
        "quality: {min_samples: 1}\nlimits: {max_versions_per_model: 20}\n"
        "models:\n  churn: {task: binary}\n"
    )
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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
    progress = [line for line in result.stderr.splitlines() if " rows " in line]
    assert progress and "\r" not in result.stderr  # stderr is a pipe: whole lines, no redraw
    status = server.client.get("/v1/models/churn").json()
    names = {f["name"] for f in status["features"]}
    assert {"f1", "f2"} <= names and "ignored" not in names


@pytest.mark.e2e
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


@pytest.mark.e2e
@pytest.mark.parametrize("form", ["score", "pairs", "prefix", "json_object"])
def test_replay_sends_scores_and_probabilities(server, tmp_path: Path, form: str) -> None:
    """A log's scores reach the exporter: ROC AUC and log loss equal scikit-learn's."""
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 60)
    score = np.round(np.clip(rng.normal(0.35 + 0.3 * truth, 0.2), 0, 1), 4)
    rows = []
    for i in range(60):
        row: dict[str, object] = {
            "id": f"{form}-{i}",
            "prediction": int(score[i] > 0.5),
            "amount": 1.0,
        }
        row["label"] = int(truth[i])
        if form == "json_object":
            row["probabilities"] = {"1": float(score[i]), "0": float(1 - score[i])}
        else:
            row["p_1"], row["p_0"] = float(score[i]), float(1 - score[i])
        rows.append(row)
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flags = {
        "score": ["--score-column", "p_1", "--feature-columns", "amount"],
        "pairs": ["--probability-columns", "1=p_1,0=p_0"],
        "prefix": ["--probability-columns", "p_*"],
        "json_object": [],
    }[form]
    version = f"scores-{form}".replace("_", "-")
    result = replay(server, path, "--model", "churn", "--model-version", version, "--quiet", *flags)
    assert result.returncode == 0, result.stderr
    m = parse_metrics(server.client.get("/metrics").text)
    key = {"model": "churn", "model_version": version, "window": "1h"}
    assert sample(m, "model_roc_auc", **key) == pytest.approx(
        roc_auc_score(truth, score), abs=1e-12
    )
    assert sample(m, "model_log_loss", **key) == pytest.approx(log_loss(truth, score), abs=1e-9)
    features = {f["name"] for f in server.client.get("/v1/models/churn").json()["features"]}
    assert not features & {"p_1", "p_0", "probabilities"}  # not features


@pytest.mark.e2e
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


ROWS = [{"request": f"n{i}", "score": i % 2, "amount": float(i)} for i in range(5)]


def write_log(path: Path, rows: list[dict[str, object]]) -> None:
    if path.suffix == ".csv":
        body = [",".join(rows[0]), *(",".join(str(v) for v in row.values()) for row in rows)]
        path.write_text("\n".join(body) + "\n")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_replay_without_an_id_column_stops_before_sending(server, tmp_path: Path, kind) -> None:
    path = tmp_path / f"log.{kind}"
    write_log(path, ROWS)
    result = replay(server, path, "--model", "churn", "--prediction-column", "score")
    assert result.returncode == 2, result.stderr
    assert "no column 'id' (--id-column)" in result.stderr
    assert "its columns: " + ", ".join(repr(c) for c in ROWS[0]) in result.stderr
    assert "skipped" not in result.stderr and result.stdout == ""  # no row was read, none sent


@pytest.mark.e2e
def test_replay_with_a_misspelt_label_column_sends_nothing(server, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write_log(path, ROWS)
    args = ["--model", "churn", "--model-version", "misspelt", "--id-column", "request"]
    result = replay(server, path, *args, "--prediction-column", "score", "--label-column", "lable")
    assert result.returncode == 2 and "'lable' (--label-column)" in result.stderr
    m = parse_metrics(server.client.get("/metrics").text)
    assert sample(m, "model_predictions_total", model="churn", model_version="misspelt") is None


@pytest.mark.e2e
@pytest.mark.parametrize("batch_size", ["1000", "3"])
def test_replay_reports_skipped_rows_in_file_order(server, tmp_path: Path, batch_size) -> None:
    """The exporter's refusals come when a batch is sent, after later lines were read, and in
    the order the exporter checks a batch (timestamps before predictions), not by position."""
    now = time.time()
    good = [f"{{id}},{now},1,{i % 2}" for i in range(5)]
    cases = {  # each faulty row follows a good one; the last repeats the first good id
        "refused: prediction": f"{{id}},{now},1,maybe",
        "refused: timestamp": f"{{id}},{now + 86_400},1,1",
        "no id": f",{now},1,0",
        "repeated id": f"{{first}},{now},2,1",
    }
    body = ["id,timestamp,x,prediction"]
    expected = {}
    for i, (case, template) in enumerate(cases.items()):
        body.append(good[i].format(id=f"g{batch_size}-{i}"))
        expected[len(body) + 1] = case
        body.append(template.format(id=f"b{batch_size}-{i}", first=f"g{batch_size}-0"))
    body.append(good[4].format(id=f"g{batch_size}-4"))
    path = tmp_path / "log.csv"
    path.write_text("\n".join(body) + "\n")
    version = f"order-{batch_size}"
    result = replay(
        server, path, "--model", "churn", "--model-version", version, "--batch-size", batch_size
    )
    assert result.returncode == 3, result.stderr
    skipped = re.findall(r"log\.csv:(\d+): skipped: (.*)", result.stderr)
    assert [int(line) for line, _ in skipped] == sorted(expected)
    reasons = dict(zip(expected.values(), (why for _, why in skipped), strict=True))
    assert "'maybe'" in reasons["refused: prediction"]
    assert "timestamp" in reasons["refused: timestamp"] and "no id" in reasons["no id"]
    first_line = body.index(good[0].format(id=f"g{batch_size}-0")) + 1
    assert reasons["repeated id"] == f"duplicate id 'g{batch_size}-0' (first on line {first_line})"
    assert f"{len(expected)} skipped (1 repeating an earlier id)" in result.stdout
    m = parse_metrics(server.client.get("/metrics").text)
    sent = sample(m, "model_predictions_total", model="churn", model_version=version)
    assert sent == len(good)


@pytest.mark.e2e
def test_replay_progress_on_a_terminal_is_redrawn(server, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("id,prediction,x\n" + "".join(f"t{i},1,{i}\n" for i in range(20)))
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "exporter", "replay", str(path), "--url", server.url]
    proc = subprocess.Popen(
        [*command, "--model", "churn", "--model-version", "tty"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    seen = b""
    try:
        while select.select([leader], [], [], 30)[0]:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, seen
    text = seen.decode()
    assert "\r[" in text and "20/20 rows" in text  # drawn over the line (the tty adds \r\n)
    assert "20 sent" in stdout


def read_until(proc: subprocess.Popen[str], pattern: str, output: list[str]) -> re.Match[str]:
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        output.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError("".join(output))


@pytest.mark.e2e
def test_demo_announces_the_bound_address_and_its_settings(monkeypatch) -> None:
    """The line derives from the Settings the demo runs with: a setting of the environment
    shows too, and the windows it names are the ones /metrics exports."""
    monkeypatch.setenv("MODEL_EXPORTER_DRIFT__THREADS", "3")
    flags = {"host": "127.0.0.1", "port": 0, "windows": "5s,20s"}
    settings = demo.demo_settings(argparse.Namespace(**flags))
    defaults = Settings.model_construct()
    assert settings.drift.threads == 3 != defaults.drift.threads
    command = [sys.executable, "-m", "exporter", "demo", "--rate", "200", "--label-delay", "0.1"]
    for name, value in flags.items():
        command += [f"--{name}", str(value)]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        url = read_until(proc, r"demo: serving on (http://127\.0\.0\.1:(\d+)) \(metrics", output)
        assert int(url.group(2)) > 0 and "listening on" not in url.group(0)
        line = read_until(proc, r"demo: (settings that differ .*)", output).group(1)
        assert line == demo.settings_line(settings, defaults)
        for key, ours, theirs in [
            ("windows", ",".join(settings.window_labels), ",".join(defaults.window_labels)),
            ("quality.min_samples", settings.quality.min_samples, defaults.quality.min_samples),
            ("drift.min_samples", settings.drift.min_samples, defaults.drift.min_samples),
            ("drift.threads", settings.drift.threads, defaults.drift.threads),
        ]:
            assert f"{key}={ours} (default {theirs})" in line
        assert "drift.alpha" not in line and "port=" not in line  # unchanged; shown above
        windows: set[str] = set()
        deadline = time.monotonic() + 30
        while windows != set(settings.window_labels) and time.monotonic() < deadline:
            time.sleep(0.2)
            m = parse_metrics(httpx.get(url.group(1) + "/metrics", timeout=5).text)
            windows = {dict(labels).get("window", "") for name, labels in m} - {""}
        assert windows == set(settings.window_labels)
    finally:
        terminate(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def test_settings_line_names_exactly_the_changed_options() -> None:
    defaults = Settings.model_construct()
    assert demo.settings_line(load_settings(None), defaults).endswith(": none")
    ours = load_settings(
        None, windows=["5m", "1h"], quality={"min_samples": 7}, models={"m": {"task": "binary"}}
    )
    line = demo.settings_line(ours, defaults)
    pattern = r"([\w.]+)=([^ ;]+) \(default ([^)]+)\)"
    changed = {key: (value, default) for key, value, default in re.findall(pattern, line)}
    assert changed == {
        "windows": (",".join(ours.window_labels), ",".join(defaults.window_labels)),
        "quality.min_samples": (str(ours.quality.min_samples), str(defaults.quality.min_samples)),
    }
    assert line.endswith(f"; model m: task={ours.models['m'].task}")


def option_help(text: str) -> dict[str, str]:
    """``--help`` text by option: each option's help, its wrapped lines joined."""
    blocks: dict[str, str] = {}
    option = None
    for line in text.splitlines():
        match = re.match(r"  (-[\w-]+)(?: \S+)?(?:, (--[\w-]+)(?: \S+)?)?\s*(.*)", line)
        if match:
            option = match.group(2) or match.group(1)
            blocks[option] = match.group(3)
        elif option is not None and line.startswith("   "):
            blocks[option] += " " + line.strip()
        else:
            option = None
    return blocks


@pytest.mark.parametrize(
    ("command", "given"), [("demo", []), ("replay", ["log.csv", "--model", "m"])]
)
def test_help_shows_the_default_of_every_option(capsys, monkeypatch, command, given) -> None:
    from exporter.__main__ import main

    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    blocks = option_help(capsys.readouterr().out)
    parser = argparse.ArgumentParser()
    (demo if command == "demo" else replay_module).add_arguments(parser)
    defaults = vars(parser.parse_args(given))
    options = set(blocks) - {"--help", *given}
    assert len(options) >= 8
    for option in options:
        default = defaults[option.removeprefix("--").replace("-", "_")]
        if default is False:
            continue  # a flag: off unless given
        shown = "default: " if default is None else f"(default: {default})"  # None: described
        assert shown in blocks[option], (option, blocks[option])


def test_demo_with_an_invalid_window_says_so(capsys) -> None:
    from exporter.__main__ import main

    assert main(["demo", "--windows", "5m,5x", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("model-exporter demo: invalid configuration: config key 'windows.1'")
    assert "'5x'" in err


@pytest.mark.e2e
def test_demo_declares_the_comparison_and_reaches_a_verdict() -> None:
    """Accelerated (300 predictions/s, labels after 0.1 s): the comparison is declared from the
    demo's settings, the faulty v2 measures worse on the held-out split by about what its
    construction predicts, and the sequential gauges appear and find v2 worse."""
    command = [sys.executable, "-m", "exporter", "demo", "--port", "0", "--host", "127.0.0.1"]
    command += ["--rate", "300", "--label-delay", "0.1", "--drift-after", "600"]
    command += ["--windows", "5s,20s", "--duration", "60"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    try:
        url = read_until(proc, r"demo: serving on (http://127\.0\.0\.1:\d+)", output).group(1)
        line = read_until(proc, r"demo: (settings that differ .*)", output).group(1)
        assert f"comparison={json.dumps(demo.COMPARISON, separators=(',', ':'))}" in line
        held_out = read_until(proc, r"held-out accuracy .*: v1 ([\d.]+), v2 ([\d.]+)", output)
        v1, v2 = float(held_out.group(1)), float(held_out.group(2))
        assert v2 - v1 == pytest.approx(-demo.FAULT * (2 * v1 - 1), abs=0.01)
        status = httpx.get(f"{url}/v1/models/{demo.MODEL}", timeout=5).json()
        assert status["comparison"]["champion"] == "v1"
        assert status["comparison"]["challengers"] == ["v2"]
        key = {"model": demo.MODEL, "champion": "v1", "challenger": "v2"}
        pvalue = upper = None
        deadline = time.monotonic() + 40
        while not (pvalue is not None and pvalue <= 0.05) and time.monotonic() < deadline:
            time.sleep(0.5)
            m = parse_metrics(httpx.get(url + "/metrics", timeout=5).text)
            pvalue = sample(m, "model_comparison_sequential_pvalue", **key)
            upper = sample(m, "model_comparison_sequential_difference_upper", **key)
        assert pvalue is not None and pvalue <= 0.05, "".join(output)
        assert upper is not None and upper < 0  # v2 worse: the sequence excludes 0 below it
        assert sample(m, "model_comparison_accuracy_difference", **key, window="20s") is not None
        verdict = r"v2 vs v1 since the start .*\[.*, -[\d.]+\], always-valid p ([\d.e-]+) v2 WORSE"
        assert float(read_until(proc, verdict, output).group(1)) <= 0.05  # the status line too
    finally:
        terminate(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def exposition(values: dict[str, float], arms: tuple[int, int]) -> str:
    """The sequential gauges of the demo's comparison, and another model's, as /metrics has."""
    lines = []
    for model in (demo.MODEL, "other"):
        key = f'model="{model}",champion="v1",challenger="v2"'
        for arm, count in zip(("champion", "challenger"), arms, strict=True):
            name = "model_comparison_sequential_labeled_predictions"
            lines.append(f'{name}{{{key},arm="{arm}"}} {count + (model == "other")}')
        lines += [f"model_comparison_sequential_{n}{{{key}}} {v}" for n, v in values.items()]
    return "\n".join(lines) + "\n"


def test_the_status_line_shows_the_comparison_from_metrics() -> None:
    assert demo.comparison_part(exposition({}, (150, 40))).endswith("(150 / 40 labels): burn-in")
    worse = {"pvalue": 0.0123, "accuracy_difference": -0.047, "difference_lower": -0.081}
    part = demo.comparison_part(exposition(worse | {"difference_upper": -0.012}, (1400, 350)))
    assert "(1,400 / 350 labels)" in part and "difference -0.047 [-0.081, -0.012]" in part
    assert part.endswith("always-valid p 0.012 v2 WORSE")
    unsure = demo.comparison_part(exposition(worse | {"difference_upper": 0.002}, (9, 9)))
    assert unsure.endswith("[-0.081, +0.002], always-valid p 0.012")  # no verdict: 0 inside
    better = {"pvalue": 0.001, "accuracy_difference": 0.05, "difference_lower": 0.01}
    part = demo.comparison_part(exposition(better | {"difference_upper": 0.09}, (500, 500)))
    assert part.endswith("[+0.010, +0.090], always-valid p 0.001 v2 BETTER")


def test_v2_inverts_its_share_of_answers() -> None:
    rng = np.random.default_rng(1)
    answers = rng.integers(0, 2, 200_000)
    out = demo.faulty(answers, rng)
    assert set(np.unique(out)) <= {0, 1}
    assert np.mean(out != answers) == pytest.approx(demo.FAULT, abs=0.003)
    labels = np.where(rng.random(answers.shape) < 0.9, answers, 1 - answers)  # v1: 0.90
    line = demo.held_out_line(answers, labels, np.random.default_rng(2), passes=5)
    found = re.search(r"v1 ([\d.]+), v2 ([\d.]+); v2 - v1 = ([+-][\d.]+)", line)
    assert found is not None
    v1, v2, difference = (float(g) for g in found.groups())
    assert v1 == pytest.approx(np.mean(answers == labels), abs=5e-4)
    assert difference == pytest.approx(v2 - v1, abs=1e-3)
    assert difference == pytest.approx(-demo.FAULT * (2 * v1 - 1), abs=0.003)
