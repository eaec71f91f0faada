"""``model-exporter backtest``: a log through the windows on its own clock, written as
OpenMetrics, imported by the real ``promtool`` and queried through a real Prometheus."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from exporter.openmetrics_writer import OpenMetricsWriter
from tests.helpers import ROOT, require_binary, terminate
from tests.test_stack_e2e import free_port, wait_ready

HOUR = 3600
#: Two days ago, on a whole hour: within Prometheus's default retention, in the past.
T0 = (math.floor(time.time() / HOUR) - 48) * HOUR


def write_log(path: Path, hours: float, *, shift_after: float, label_delay: float | None) -> None:
    """One prediction a second, 5 numeric features; after ``shift_after`` hours the first two
    shift by 1 standard deviation. Labels inline, or ``label_delay`` seconds later."""
    rng = np.random.default_rng(0)
    columns = ["id", "timestamp", "prediction", "label", *(f"f{j}" for j in range(5))]
    if label_delay is not None:
        columns.insert(4, "label_time")
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(columns)
        for i in range(int(hours * HOUR)):
            x = rng.normal(size=5)
            if i >= shift_after * HOUR:
                x[:2] += 1.0
            truth = int(rng.random() < 1 / (1 + math.exp(-2 * x[0])))
            row: list[Any] = [f"r{i}", T0 + i, int(x[0] > 0), truth]
            if label_delay is not None:
                row.append(T0 + i + label_delay)
            out.writerow(row + [round(v, 5) for v in x])


def read_summary(out: Path) -> list[dict[str, str]]:
    with out.with_suffix(".csv").open(newline="") as f:
        return list(csv.DictReader(f))


def arguments(log: Path, out: Path, *args: str) -> list[str]:
    """``model-exporter``'s arguments for a backtest of ``log`` as model ``m`` into ``out``."""
    return ["backtest", str(log), "--model", "m", "--out", str(out), *args]


def backtest(log: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *arguments(log, out, *args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.mark.e2e
def test_a_backtest_imports_into_prometheus_and_shows_the_drift_in_time(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    prometheus = require_binary("prometheus")
    log = tmp_path / "log.csv"
    write_log(log, 3, shift_after=2, label_delay=None)
    out = tmp_path / "m.om"
    # A 3-hour log: its first 1,000 events are the reference (the default 10,000 take 2.8 h).
    config = tmp_path / "exporter.yml"
    config.write_text("drift:\n  reference_size: 1000\n")
    result = backtest(log, out, "--step", "1m", "--quiet", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "backtested 10,800 rows" in result.stdout and "180 steps of 1m" in result.stdout
    assert out.read_text().endswith("# EOF\n")
    data = tmp_path / "data"
    imported = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(out), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 1h}\n")
    log_file = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={data}",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(
            f"{url}/-/ready", time.monotonic() + 60, "Prometheus", tmp_path / "prometheus.log"
        )

        def at(query: str, when: float) -> list[Any]:
            answer = httpx.get(
                f"{url}/api/v1/query", params={"query": query, "time": when}, timeout=10
            )
            assert answer.status_code == 200, answer.text
            result: list[Any] = answer.json()["data"]["result"]
            return result

        window = 'model_window_predictions{model="m",window="1h"}'
        # A full hour of one event a second: 3,540-3,600 in the window (its edge moves by 1m).
        (value,) = at(window, T0 + 1.5 * HOUR)
        assert 3540 <= float(value["value"][1]) <= 3600
        drifted = 'model_drift_features_drifted{model="m",window="1h"}'
        assert float(at(drifted, T0 + 1.9 * HOUR)[0]["value"][1]) == 0  # before the shift
        assert float(at(drifted, T0 + 3 * HOUR)[0]["value"][1]) == 2  # the two features
        # The accuracy over the labeled hour, by its own time.
        (accuracy,) = at('model_accuracy{model="m",window="1h"}', T0 + 1.5 * HOUR)
        assert 0.6 < float(accuracy["value"][1]) < 0.9
    finally:
        terminate(proc)
        log_file.close()
    summary = read_summary(out)
    rows = [r for r in summary if r["metric"] == "model_drift_features_drifted"]
    assert len(rows) == 180 and json.loads(rows[0]["labels"])["window"] == "1h"
    first_drift = min(float(r["timestamp"]) for r in rows if float(r["value"]) > 0)
    assert T0 + 2 * HOUR < first_drift <= T0 + 2.5 * HOUR


@pytest.mark.e2e
def test_labels_with_their_own_time_count_when_they_come(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    write_log(log, 1, shift_after=9, label_delay=1800)  # every label 30 minutes late
    out = tmp_path / "m.om"
    result = backtest(log, out, "--step", "5m", "--label-timestamp-column", "label_time", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = read_summary(out)
    labeled = {
        float(r["timestamp"]) - T0: float(r["value"])
        for r in summary
        if r["metric"] == "model_window_labeled_predictions"
    }
    assert labeled[25 * 60] == 0  # no label is due before 30 minutes
    assert labeled[35 * 60] == pytest.approx(5 * 60, abs=1)  # those of the first 5 minutes
    # After the last prediction the run goes on until every label has come.
    assert max(labeled) >= 90 * 60 - 300
    assert "label_time" not in out.read_text()  # the label's time is not a feature


def test_the_writer_groups_each_family_and_escapes_labels(tmp_path: Path) -> None:
    out = tmp_path / "x.om"
    writer = OpenMetricsWriter(out)
    for step in range(3):
        gauge = GaugeMetricFamily("model_thing", "A thing.", labels=["model"])
        gauge.add_metric(['we"ird\\name\n'], 0.5 + step)
        counter = CounterMetricFamily("model_events", "Events.", labels=["model"])
        counter.add_metric(["m"], 10 * step)
        writer.add([gauge, counter], 1000.0 + 60 * step)
    writer.finish()
    text = out.read_text()
    lines = text.splitlines()
    assert lines[:2] == ["# HELP model_thing A thing.", "# TYPE model_thing gauge"]
    assert lines[2] == 'model_thing{model="we\\"ird\\\\name\\n"} 0.5 1000'
    assert lines[5:7] == ["# HELP model_events Events.", "# TYPE model_events counter"]
    assert lines[7:10] == [
        'model_events_total{model="m"} 0 1000',
        'model_events_total{model="m"} 10 1060',
        'model_events_total{model="m"} 20 1120',
    ]
    assert lines[-1] == "# EOF" and not list(tmp_path.glob(".openmetrics-*"))


def test_a_missing_label_time_column_stops_before_anything(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    write_log(log, 0.05, shift_after=9, label_delay=None)
    result = backtest(log, tmp_path / "m.om", "--label-timestamp-column", "label_at", "--quiet")
    assert result.returncode == 2
    assert "no column 'label_at' (--label-timestamp-column)" in result.stderr
    assert not (tmp_path / "m.om").exists()


def test_labels_beyond_the_join_ttl_are_counted_not_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    write_log(log, 0.05, shift_after=9, label_delay=365 * 86400.0)  # a year late
    out = tmp_path / "m.om"
    result = backtest(log, out, "--label-timestamp-column", "label_time", "--quiet")
    assert result.returncode == 3, result.stderr
    assert "180 labels later than join.prediction_ttl" in result.stdout
    assert "3 steps of 1m" in result.stdout  # 180 s of events: not a year of steps


def test_ranked_windows_change_no_byte_of_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's log (ties from rounding, a score, three features shifting half way) and an
    uploaded reference: the backtest with windows kept ranked writes exactly what the full
    computation at every step writes, OpenMetrics and summary."""
    from bench import backtest as bench
    from exporter import backtest as command
    from exporter.__main__ import _parser
    from exporter.ranked_windows import RankedWindows

    used = []
    ranked_of = RankedWindows.ranked

    def counted(self: RankedWindows, *args: Any, **kwargs: Any) -> Any:
        view = ranked_of(self, *args, **kwargs)
        used.append(view is not None)
        return view

    monkeypatch.setattr(RankedWindows, "ranked", counted)

    log = tmp_path / "log.csv"
    bench.write_log(log, 2.0)
    reference, config = bench.write_reference(tmp_path)
    written = []
    for ranked in (True, False):
        out = tmp_path / f"{ranked}.om"
        options = ["--reference", str(reference), "--config", str(config), "--quiet"]
        args = _parser().parse_args(arguments(log, out, "--score-column", "score", *options))
        monkeypatch.setattr(command, "KEEP_RANKED", ranked)
        assert command.run(args) == 0
        written.append((out.read_bytes(), out.with_suffix(".csv").read_bytes()))
    assert used and all(used)  # every step of the first run read its ranked window
    assert written[0] == written[1]
    assert b"model_feature_drift_ks_statistic" in written[0][0]
    summary = written[0][1].decode().splitlines()
    drifted = [line for line in summary if ",model_drift_features_drifted," in line]
    assert drifted and any(not line.endswith(",0.0") for line in drifted)  # the shift is seen
