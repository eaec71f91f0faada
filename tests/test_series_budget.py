"""The series budget of a scrape (limits.max_series): the page is cut by whole (model, family)
chunks, the largest first, never a family a shipped alert reads, and says what it left out."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.monitoring.rules import alert_series
from tests.conftest import parse_metrics
from tests.helpers import promtool_check_metrics
from tests.test_exposition import populated

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
OWN = ("model_exporter_", "process_", "python_")


def model_samples(text: str) -> Samples:
    return {k: v for k, v in parse_metrics(text).items() if not k[0].startswith(OWN)}


def chunk_sizes(text: str) -> Counter[tuple[str, str]]:
    """Series per (model, family) of the models' families."""
    return Counter(
        (sample.labels.get("model", ""), family.name)
        for family in text_string_to_metric_families(text)
        if not family.name.startswith(OWN)
        for sample in family.samples
    )


def budget_of(samples: Samples) -> dict[str, float]:
    return {
        name: value
        for (name, _), value in samples.items()
        if name.startswith("model_exporter_scrape_")
    }


@pytest.fixture
def full_text(make_exporter: Any) -> str:
    """The populated exposition with no budget."""
    exp = populated(make_exporter, limits={"max_series": 0})
    text: str = exp.metrics_text()
    assert "model_exporter_scrape_series" not in text  # no budget, no budget families
    return text


@pytest.fixture
def full(full_text: str) -> Samples:
    return model_samples(full_text)


def test_under_the_budget_nothing_is_left_out(make_exporter: Any, full: Samples) -> None:
    exp = populated(make_exporter, limits={"max_series": len(full) + 10})
    text = exp.metrics_text()
    assert model_samples(text) == full
    assert budget_of(parse_metrics(text)) == {
        "model_exporter_scrape_series_limit": len(full) + 10,
        "model_exporter_scrape_series": len(full),
        "model_exporter_scrape_series_dropped": 0,
        "model_exporter_scrape_truncations_total": 0,
    }


def test_over_the_budget_the_largest_chunks_go_and_alert_families_stay(
    make_exporter: Any, full: Samples, full_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    budget = len(full) // 2
    exp = populated(make_exporter, limits={"max_series": budget})
    with caplog.at_level(logging.WARNING, logger="exporter.exposition"):
        text = exp.metrics_text()
        again = exp.metrics_text()
    sent = model_samples(text)
    assert len(sent) <= budget
    assert set(sent) <= set(full) and all(sent[k] == full[k] for k in sent)  # nothing altered
    protected = alert_series()
    assert {k for k in full if k[0] in protected} <= set(sent)  # every alert family, whole
    # Whole chunks: a (model, name) is sent entirely or not at all; every dropped chunk is at
    # least as large as every optional chunk that was kept (the largest go first).
    sizes, kept = chunk_sizes(full_text), chunk_sizes(text)
    assert all(kept[c] in (0, n) for c, n in sizes.items())
    dropped = [n for c, n in sizes.items() if kept[c] == 0]
    optional_kept = [
        n for c, n in sizes.items() if kept[c] and not {c[1], f"{c[1]}_total"} & protected
    ]
    assert dropped and min(dropped) >= max(optional_kept)
    counts = budget_of(parse_metrics(again))
    assert counts["model_exporter_scrape_series"] == len(sent)
    assert counts["model_exporter_scrape_series_dropped"] == len(full) - len(sent)
    assert counts["model_exporter_scrape_truncations_total"] == 2
    warnings = [r for r in caplog.records if "limits.max_series" in r.getMessage()]
    assert len(warnings) == 1  # at most once a minute
    lint = promtool_check_metrics(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_budget_below_the_alert_families_still_sends_them(
    make_exporter: Any, full: Samples
) -> None:
    exp = populated(make_exporter, limits={"max_series": 1})
    sent = model_samples(exp.metrics_text())
    protected = {k for k in full if k[0] in alert_series()}
    assert protected and set(sent) == protected
