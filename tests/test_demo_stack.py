"""What ``docker compose up`` and ``kubectl apply`` get: the compose stack's Prometheus with its
quick demo alert, and the image tag the Kubernetes manifest runs, as the README builds it."""

from __future__ import annotations

import re
import subprocess

import yaml

import exporter
from tests.helpers import ROOT, require_binary

PROMETHEUS = ROOT / "deploy" / "prometheus"
DEMO_RULES = PROMETHEUS / "rules" / "demo"


def run(*args: str, cwd: object = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_demo_alert_fires_after_two_minutes_and_promtool_accepts_the_config() -> None:
    promtool = require_binary("promtool")
    tested = run(promtool, "test", "rules", "model-exporter-demo.rules.test.yml", cwd=DEMO_RULES)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    checked = run(promtool, "check", "config", str(PROMETHEUS / "prometheus-demo.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_demo_alert_is_model_accuracy_drop_with_a_short_for() -> None:
    def rules(path: str) -> dict[str, dict[str, object]]:
        groups = yaml.safe_load((PROMETHEUS / "rules" / path).read_text())["groups"]
        return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}

    real = rules("model-exporter.rules.yml")["ModelAccuracyDrop"]
    demo = rules("demo/model-exporter-demo.rules.yml")["ModelAccuracyDropDemo"]
    assert demo["expr"] == real["expr"] == "model_accuracy < 0.9"
    assert (real["for"], demo["for"]) == ("1h", "2m")


def test_the_compose_prometheus_is_the_real_config_plus_the_demo_rule() -> None:
    real = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    demo = yaml.safe_load((PROMETHEUS / "prometheus-demo.yml").read_text())
    assert demo["rule_files"] == [*real["rule_files"], "rules/demo/model-exporter-demo.rules.yml"]
    assert {k: v for k, v in demo.items() if k != "rule_files"} == {
        k: v for k, v in real.items() if k != "rule_files"
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus-demo.yml" in command


def test_kubernetes_runs_the_image_the_readme_builds() -> None:
    readme = (ROOT / "README.md").read_text()
    built = re.findall(r"docker build -t (\S+) \.", readme)
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert built == [f"model-exporter:{exporter.__version__}"]
    assert images["model-exporter"] == built[0]
    assert f"docker run -p 17090:17090 {built[0]}" in readme
