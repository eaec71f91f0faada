"""``model-exporter generate``: render the rules and dashboards into ``deploy/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporter.errors import ConfigError
from exporter.monitoring import dashboards
from exporter.monitoring.rules import Thresholds, render_prometheus_rule, render_rules


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("deploy"), help="default: deploy")
    parser.add_argument("--thresholds", type=Path, help="YAML overriding alert thresholds")
    parser.add_argument(
        "--check", action="store_true", help="only verify the files are current (exit 1 if not)"
    )


def outputs(thresholds: Thresholds) -> dict[str, str]:
    files = {
        "prometheus/rules/model-exporter.rules.yml": render_rules(thresholds),
        "kubernetes/prometheusrule.yaml": render_prometheus_rule(thresholds),
    }
    for name, board in dashboards.dashboards().items():
        files[f"grafana/dashboards/{name}"] = dashboards.render(board)
    return files


def run(args: argparse.Namespace) -> int:
    try:
        thresholds = Thresholds.load(args.thresholds)
    except ConfigError as exc:
        print(f"model-exporter generate: {exc}", file=sys.stderr)
        return 2
    stale = []
    for relative, text in outputs(thresholds).items():
        path = args.out / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date (run `model-exporter generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
