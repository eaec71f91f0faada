"""Imports only point down: the pure layers know nothing of HTTP or Prometheus."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "exporter.typedefs",
    "exporter.errors",
    "exporter.names",
    "exporter.comparison",
    "exporter.comparison_view",
    "exporter.baseline_view",
    "exporter.sequential_tracker",
    "exporter.stats.performance",
    "exporter.stats.drift",
    "exporter.stats.comparison",
    "exporter.stats.sequential",
    "exporter.stats.concept_drift",
    "exporter.window",
    "exporter.join",
    "exporter.counters",
    "exporter.reference",
    "exporter.reference_io",
    "exporter.schema",
    "exporter.encoding",
    "exporter.batch",
    "exporter.version",
    "exporter.comparison_state",
    "exporter.reference_state",
    "exporter.early_labels",
    "exporter.model",
    "exporter.store",
    "exporter.snapshot",
    "exporter.views",
    "exporter.detector",
    "exporter.drift_worker",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_neither_http_nor_prometheus(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fastapi', 'starlette', 'uvicorn', 'prometheus_client', 'msgspec'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"
