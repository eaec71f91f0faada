"""The golden /metrics exposition: every metric a seeded stream produces.

Dashboards and alerts may only use metrics that exist here (tests/test_deploy.py). Regenerate
after changing the metrics with:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_deploy.py -k golden
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"

# Families whose values depend on the machine or the moment, not on the stream.
VOLATILE_PREFIXES = ("process_", "python_gc_")
VOLATILE = {
    "model_exporter_collector_duration_seconds",
    "model_exporter_drift_run_duration_seconds",
    "model_exporter_start_time_seconds",
    "model_exporter_build_info",
}


def normalise(text: str) -> str:
    """Every family in a stable order (by name: the exposition format gives the order no
    meaning), its samples sorted; the values of the volatile ones (and the build's labels) are
    zeroed, since they depend on the machine and the moment."""
    lines = []
    for family in sorted(text_string_to_metric_families(text), key=lambda f: f.name):
        volatile = family.name.startswith(VOLATILE_PREFIXES) or family.name in VOLATILE
        lines.append(f"# HELP {family.name} {family.documentation}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for s in sorted(family.samples, key=lambda s: (s.name, sorted(s.labels.items()))):
            pairs = sorted(s.labels.items())
            if family.name == "model_exporter_build_info":
                pairs = [(k, "-") for k, _ in pairs]
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            value = 0.0 if volatile else s.value
            lines.append(f"{s.name}{{{labels}}} {value!r}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metric_names(text: str) -> set[str]:
    """Every sample name (``x_total``, ``h_bucket`` ...) and family name in an exposition."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names
