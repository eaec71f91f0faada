"""End to end with real parts: the exporter (uvicorn), Debian's Prometheus (scrape and rule
evaluation every second, the shipped rules with their `for` scaled down) and Alertmanager
(the shipped routing, receivers pointed at a webhook this test runs). One model's accuracy
falls below 0.9, another's stays high: ModelAccuracyDrop reaches the pager webhook for the
first only. Then every dashboard query must return data from that Prometheus.

Loopback only; every process this test starts is stopped by its PID; bounded in time.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx2 as httpx
import numpy as np
import pytest
import yaml

from exporter.monitoring import dashboards
from exporter.monitoring.rules import Thresholds, render_rules
from tests.helpers import ROOT, ExporterProcess, alertmanager_command, require_binary, terminate
from tests.test_deploy import substitute

pytestmark = pytest.mark.e2e

DEADLINE = 120.0  # seconds for the whole test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Webhook.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Process:
    """A server started by this test, stopped by its PID."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._handle = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._handle, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        terminate(self.proc)
        self._handle.close()


def wait_ready(url: str, deadline: float, what: str, log: Path) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready:\n{log.read_text()[-3000:]}")


def test_alerts_route_and_dashboards_query_real_prometheus(tmp_path: Path) -> None:
    prometheus = require_binary("prometheus")
    alertmanager = require_binary("prometheus-alertmanager", "alertmanager")  # Debian, upstream
    deadline = time.monotonic() + DEADLINE
    Webhook.received = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    hook_thread = threading.Thread(target=hook.serve_forever, daemon=True)
    hook_thread.start()
    hook_url = f"http://127.0.0.1:{hook.server_address[1]}"

    cfg = tmp_path / "exporter.yaml"
    cfg.write_text(
        "windows: [1m, 1h]\nquality: {min_samples: 20}\n"
        "drift: {min_samples: 20, reference_size: 100, refresh_interval: 0.2}\n"
        "comparison: {min_samples: 20, sequential: {min_samples: 20, min_expected: 1}}\n"
    )
    processes: list[Any] = []
    try:
        exporter = ExporterProcess(cfg)
        processes.append(exporter)
        host_port = exporter.url.removeprefix("http://")

        # Alertmanager: the shipped route tree and inhibition, receivers -> this test's webhook.
        am_config = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
        am_config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1m")
        am_config["receivers"] = [
            {"name": name, "webhook_configs": [{"url": f"{hook_url}/{name}"}]}
            for name in ("pager", "chat")
        ]
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(am_config))
        am_port = free_port()
        am = Process(
            [
                *alertmanager_command(alertmanager),
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                f"--storage.path={tmp_path / 'am-data'}",
            ],
            tmp_path / "alertmanager.log",
        )
        processes.append(am)
        am_url = f"http://127.0.0.1:{am_port}"

        # Prometheus: scrape and evaluate every second, the shipped rules with short `for`.
        rules = tmp_path / "rules.yml"
        rules.write_text(render_rules(Thresholds().scaled(1 / 1800)))  # 1h -> 2s, 15m -> 1s
        prom_config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
            },
            "scrape_configs": [
                {"job_name": "model-exporter", "static_configs": [{"targets": [host_port]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        prom_port = free_port()
        prom = Process(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            ],
            tmp_path / "prometheus.log",
        )
        processes.append(prom)
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_ready(f"{am_url}/-/ready", deadline, "Alertmanager", am.log)
        wait_ready(f"{prom_url}/-/ready", deadline, "Prometheus", prom.log)

        send_traffic(exporter.client)
        alert = wait_for_alert(deadline, model="bad", name="ModelAccuracyDrop")
        assert alert["labels"]["alertname"] == "ModelAccuracyDrop"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["model_version"] == "v1"
        assert alert["labels"]["job"] == "model-exporter"
        assert alert["annotations"]["summary"] == "Model accuracy dropped below 90%"
        assert "Model bad v1 accuracy is" in alert["annotations"]["description"]
        for path, body in Webhook.received:
            for a in body["alerts"]:
                if a["labels"]["alertname"] == "ModelAccuracyDrop":
                    assert a["labels"]["model"] == "bad", "the healthy model must not alert"
                    assert path == "/pager"  # critical goes to the pager

        check_inhibition(am_url)
        send_traffic(exporter.client, start=10_000)  # a second round: rates and increases
        time.sleep(3)
        check_dashboard_queries(prom_url, deadline)
    finally:
        for proc in reversed(processes):
            proc.stop()
        hook.shutdown()
        hook.server_close()
        hook_thread.join(5)
    for proc in processes:
        code = proc.proc.returncode
        assert code is not None, "a process was left running"


def send_traffic(client: httpx.Client, start: int = 0) -> None:
    rng = np.random.default_rng(start)
    score_rng = np.random.default_rng(start + 1)

    def post(model: str, events: list[dict[str, Any]], version: str = "v1") -> None:
        r = client.post(
            "/v1/predictions", json={"model": model, "model_version": version, "events": events}
        )
        assert r.status_code == 200, r.text

    if start == 0:
        # A split comparison per task (v2 against v1) and a holdout reference for "good",
        # declared before their events: the comparison and baseline panels need them.
        for model in ("good", "price"):
            r = client.put(
                f"/v1/models/{model}/comparison",
                json={"champion": "v1", "challengers": ["v2"], "mode": "split"},
            )
            assert r.status_code == 200, r.text
        r = client.put(  # and a shadow one, for the paired (McNemar) panels
            "/v1/models/twin/comparison",
            json={"champion": "v1", "challengers": ["v2"], "mode": "shadow"},
        )
        assert r.status_code == 200, r.text
        twin_truth = rng.integers(0, 2, 200)
        for version, accuracy in (("v1", 0.99), ("v2", 0.96)):  # both above 0.9
            twin_pred = np.where(rng.random(200) < accuracy, twin_truth, 1 - twin_truth)
            post(
                "twin",
                [
                    {"id": f"t-{i}", "features": {"x": float(i)}, "prediction": int(twin_pred[i])}
                    for i in range(200)
                ],
                version,
            )
        twin_labels = [{"id": f"t-{i}", "label": int(twin_truth[i])} for i in range(200)]
        r = client.post("/v1/labels", json={"model": "twin", "labels": twin_labels})
        assert r.status_code == 200, r.text
        holdout_truth = rng.integers(0, 2, 200)
        holdout_pred = np.where(rng.random(200) < 0.98, holdout_truth, 1 - holdout_truth)
        r = client.put(
            "/v1/models/good/reference",
            json={
                "features": {"amount": rng.normal(0, 1, 200).tolist()},
                "predictions": holdout_pred.tolist(),
                "labels": holdout_truth.tolist(),
                # Scores of the same rows: the label-free estimate calibrates on them.
                "scores": np.clip(
                    0.5 + (holdout_pred - 0.5) * 0.8 + score_rng.normal(0, 0.08, 200), 0, 1
                ).tolist(),
            },
        )
        assert r.status_code == 200, r.text

    for model, accuracy, version in (
        ("bad", 0.7, "v1"),
        ("good", 0.98, "v1"),
        ("good", 0.95, "v2"),  # the challenger: a little worse, still above 0.9
    ):
        truth = rng.integers(0, 2, 300)
        pred = np.where(rng.random(300) < accuracy, truth, 1 - truth)
        shift = 0.0 if start == 0 else 2.0  # the second round drifts, with a new category
        channels = ["web", "app"] if not start else ["web", "kiosk"]
        # A positive-class score that agrees with the prediction (its own generator: the
        # traffic above stays the same), for the scores and calibration panels.
        scores = np.clip(0.5 + (pred - 0.5) * 0.8 + score_rng.normal(0, 0.08, 300), 0, 1)
        events = [
            {
                "id": f"{model}-{version}-{start + i}",
                "features": {
                    "amount": float(rng.normal(shift, 1)),
                    "channel": str(rng.choice(channels)),
                },
                "prediction": int(pred[i]),
                "score": float(scores[i]),
            }
            for i in range(300)
        ]
        post(model, events, version)
        half = [
            {"id": f"{model}-{version}-{start + i}", "label": int(truth[i])} for i in range(300)
        ]
        assert client.post("/v1/labels", json={"model": model, "labels": half}).status_code == 200
    for version in ("v1", "v2"):
        events = [
            {
                "id": f"p-{version}-{start + i}",
                "features": {"rooms": float(rng.integers(1, 6))},
                "prediction": float(rng.normal(100, 10)),
                "label": float(rng.normal(100, 12)),
            }
            for i in range(200)
        ]
        post("price", events, version)
    client.post("/v1/predictions", content=b"{", headers={"Content-Type": "application/json"})


def wait_for_alert(deadline: float, model: str, name: str) -> dict[str, Any]:
    while time.monotonic() < deadline:
        for _, body in Webhook.received:
            for alert in body["alerts"]:
                labels = alert["labels"]
                wanted = labels.get("model") == model and labels["alertname"] == name
                if wanted and alert["status"] == "firing":
                    return alert
        time.sleep(0.3)
    raise AssertionError(f"no alert reached the webhook; received: {Webhook.received}")


def check_inhibition(am_url: str) -> None:
    """While ModelExporterDown fires for a job, that job's model alerts are inhibited."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    alerts = [
        {
            "labels": {
                "alertname": "ModelExporterDown",
                "job": "inhibit-test",
                "severity": "critical",
            },
            "startsAt": now,
        },
        {
            "labels": {
                "alertname": "ModelFeatureDrift",
                "job": "inhibit-test",
                "severity": "warning",
                "model": "x",
            },
            "startsAt": now,
        },
    ]
    assert httpx.post(f"{am_url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    for _ in range(50):
        state = {
            a["labels"]["alertname"]: a["status"]["state"]
            for a in httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json()
            if a["labels"].get("job") == "inhibit-test"
        }
        if state.get("ModelFeatureDrift") == "suppressed":
            assert state["ModelExporterDown"] == "active"
            return
        time.sleep(0.2)
    raise AssertionError(f"ModelFeatureDrift was not inhibited: {state}")


def check_dashboard_queries(prom_url: str, deadline: float) -> None:
    empty: dict[str, str] = {}
    for name, board in dashboards.dashboards().items():
        for expr in dashboards.queries(board):
            query = substitute(expr)
            while True:
                if expr.startswith("label_values"):
                    r = httpx.get(
                        f"{prom_url}/api/v1/series", params={"match[]": query}, timeout=10
                    )
                else:
                    r = httpx.get(f"{prom_url}/api/v1/query", params={"query": query}, timeout=10)
                assert r.status_code == 200, (query, r.text)
                if (
                    r.json()["data"]
                    if expr.startswith("label_values")
                    else r.json()["data"]["result"]
                ):
                    empty.pop(query, None)
                    break
                empty[query] = name
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
    assert not empty, f"dashboard queries without data: {json.dumps(empty, indent=1)}"
