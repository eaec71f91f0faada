"""The golden /metrics exposition: every metric a seeded stream produces.

Dashboards and alerts may only use metrics that exist here (tests/test_deploy.py). Regenerate
after changing the metrics with:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_deploy.py -k golden
"""

from __future__ import annotations

import math
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


#: Values may differ this much (relative) from the golden file: SciPy's special functions and
#: libm round differently across releases and CPUs (a KS p-value moved by 2e-13 between two
#: machines); anything larger is a change of the exposition.
VALUE_TOLERANCE = 1e-9


def differences(current: str, golden: str) -> list[str]:
    """The lines of two :func:`normalise` outputs that differ: in their series, or in their
    values by more than :data:`VALUE_TOLERANCE` (relative; NaN equals NaN)."""
    now, then = current.splitlines(), golden.splitlines()
    if len(now) != len(then):
        return [f"{len(now)} lines where the golden file has {len(then)}"]
    out = []
    for new, old in zip(now, then, strict=True):
        if new == old:
            continue
        series, _, value = new.rpartition(" ")
        old_series, _, old_value = old.rpartition(" ")
        if new.startswith("#") or series != old_series or not _close(value, old_value):
            out.append(f"{old!r} is now {new!r}")
    return out


def _close(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=VALUE_TOLERANCE) or (math.isnan(x) and math.isnan(y))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metric_names(text: str) -> set[str]:
    """Every sample name (``x_total``, ``h_bucket`` ...) and family name in an exposition."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names
