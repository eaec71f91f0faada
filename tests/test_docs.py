"""The README's metric reference matches what /metrics really exports."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT
from tests.test_exposition import populated

ROW = re.compile(r"^\| `(model_[a-z0-9_]+)` \| ([a-z]+)[^|]*\|([^|]*)\|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    out = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            out[name] = (kind, frozenset(x.strip() for x in labels.split(",") if x.strip()))
    return out


#: Families exported only by the HTTP server's own bounds (``exporter.server``, running under
#: ``model-exporter serve``; their values are checked in tests/test_server.py).
SERVER_ONLY = {
    "model_exporter_connections",
    "model_exporter_connections_closed_total",
    "model_exporter_writes_in_flight",
}
#: Families exported only with ``state.path`` set (checked below).
STATE_ONLY = {
    "model_exporter_state_restores_total",
    "model_exporter_state_snapshot_duration_seconds",
    "model_exporter_state_snapshot_failures_total",
    "model_exporter_state_snapshot_size_bytes",
    "model_exporter_state_snapshot_timestamp_seconds",
    "model_exporter_state_snapshots_total",
}


def exported_families(
    text: str, *, skip_empty: bool = False
) -> dict[str, tuple[str, frozenset[str]]]:
    exported = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("model_") or (skip_empty and not family.samples):
            continue
        keys = {
            frozenset(k for k in s.labels if k not in ("le", "quantile")) for s in family.samples
        }
        assert len(keys) == 1, f"{family.name} has samples with different label sets: {keys}"
        name = family.name + ("_total" if family.type == "counter" else "")
        exported[name] = (family.type, keys.pop())
    return exported


def test_metric_reference_matches_the_exposition(make_exporter) -> None:
    exported = exported_families(populated(make_exporter).metrics_text())
    docs = {k: v for k, v in documented().items() if k not in SERVER_ONLY | STATE_ONLY}
    assert set(exported) == set(docs), (
        f"exported but not documented: {sorted(set(exported) - set(docs))}; "
        f"documented but not exported: {sorted(set(docs) - set(exported))}"
    )
    for name, (kind, labels) in exported.items():
        assert docs[name] == (kind, labels), (name, docs[name], (kind, labels))


def test_every_rejection_reason_is_documented_with_its_status() -> None:
    from exporter.errors import STATUS, Reason

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Bad input") : text.index("## Limits and memory")]
    documented = set()
    for line in section.splitlines():
        match = re.match(r"^\| ((?:`[a-z_]+`(?: / )?)+) \| (\d{3}) \|", line)
        if match:
            documented |= {(r, int(match.group(2))) for r in re.findall(r"`([a-z_]+)`", match[1])}
    assert documented == {(r.value, STATUS.get(r, 422)) for r in Reason}


def test_the_state_families_are_exported_with_a_state_path_as_documented(
    make_exporter, tmp_path
) -> None:
    exp = make_exporter(state={"path": str(tmp_path)})
    exp.predictions("m", [{"id": "a", "features": {"x": 1.0}, "prediction": 1}])
    assert exp.app.state.state_keeper.save(clean=False)
    exported = exported_families(exp.metrics_text(), skip_empty=True)
    docs = documented()
    for name in STATE_ONLY:
        assert name in exported, name
        assert docs[name] == exported[name], (name, docs[name], exported[name])
