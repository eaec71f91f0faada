"""The per-window comparison families: labels, absence below the minimum, and the cached
exposition of a registry holding them (lint-clean for promtool), and over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from exporter.collectors.base import ServiceCollector, Timings
from exporter.collectors.comparison import comparison_families
from exporter.collectors.models import PARTS, ModelCollector
from exporter.comparison_view import AccuracyComparison, MaeComparison, compare_windows
from exporter.config import load_settings
from exporter.drift_worker import DriftCache
from exporter.exposition import Exposition
from exporter.snapshot import ComparisonInfo, ModelSnapshot
from exporter.store import Store
from tests.conftest import T0, Exporter, FakeClock, parse_metrics, sample
from tests.helpers import promtool_check_metrics
from tests.test_comparison_view import classifier_arm, regression_arm, send

MIN = 100
KEY = ("model", "champion", "challenger", "window")
DECLARED = {
    "fraud": ComparisonInfo("v1", ("v2", "v3"), "split", T0),
    "price": ComparisonInfo("v1", ("v2",), "split", T0),
}


def populated() -> Store:
    """A binary model whose challenger v3 is below the minimum, and a regression model."""
    settings = load_settings(
        windows=["5m", "1h"],
        models={
            "fraud": {"task": "binary"},
            "price": {"task": "regression"},
            "idle": {"task": "binary"},
        },
    )
    store = Store(settings, clock=FakeClock())
    rng = np.random.default_rng(20)
    for version, n in (("v1", 400), ("v2", 150), ("v3", MIN - 1)):
        send(store, version, *classifier_arm(rng, n, 0.9, [0, 1]), model="fraud")
    for version, n in (("v1", 300), ("v2", 120)):
        send(store, version, *regression_arm(rng, n, 2.0), model="price")
    send(store, "v1", *classifier_arm(rng, 200, 0.9, [0, 1]), model="idle")  # no comparison
    return store


def snapshots(store: Store) -> list[ModelSnapshot]:
    return [
        replace(s, comparison=DECLARED.get(s.name))
        for s in (state.snapshot(store.clock()) for state in store.models())
    ]


def by_name(families: list[Metric]) -> dict[str, Metric]:
    return {f.name: f for f in families}


def label_sets(family: Metric) -> set[tuple[str, ...]]:
    return {tuple(s.labels[k] for k in KEY) for s in family.samples}


def test_families_carry_the_contract_labels_and_nothing_below_the_minimum() -> None:
    families = by_name(comparison_families(snapshots(populated()), MIN))
    for family in families.values():
        assert family.type == "gauge"
        assert family.name.startswith("model_comparison_")
        for s in family.samples:
            assert set(s.labels) - {"arm", "average"} == set(KEY), family.name
    windows = ("5m", "1h")
    counted = {
        (m, "v1", c, w)
        for m, c in (("fraud", "v2"), ("fraud", "v3"), ("price", "v2"))
        for w in windows
    }
    labeled = families["model_comparison_labeled_predictions"]
    assert {(*k, a) for k in counted for a in ("champion", "challenger")} == {
        (*(s.labels[k] for k in KEY), s.labels["arm"]) for s in labeled.samples
    }
    assert {s.value for s in labeled.samples if s.labels["challenger"] == "v3"} == {400, MIN - 1}
    fraud = {("fraud", "v1", "v2", w) for w in windows}
    price = {("price", "v1", "v2", w) for w in windows}
    for name in (
        "model_comparison_accuracy_difference",
        "model_comparison_accuracy_pvalue",
        "model_comparison_accuracy_difference_lower",
        "model_comparison_accuracy_difference_upper",
        "model_comparison_f1_difference",
    ):
        assert label_sets(families[name]) == fraud, name  # v3 below the minimum: absent
    for name in (
        "model_comparison_mean_absolute_error_difference",
        "model_comparison_mean_absolute_error_pvalue",
        "model_comparison_mean_absolute_error_difference_lower",
        "model_comparison_mean_absolute_error_difference_upper",
    ):
        assert label_sets(families[name]) == price, name
    averages = {s.labels["average"] for s in families["model_comparison_f1_difference"].samples}
    assert averages == {"binary", "macro", "weighted"}


def test_values_are_the_views() -> None:
    taken = snapshots(populated())
    families = by_name(comparison_families(taken, MIN))
    values = {
        (f.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }

    def value(name: str, labels: Mapping[str, str]) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    checked = 0
    for snapshot in taken:
        for c in compare_windows(snapshot, MIN):
            labels = dict(
                zip(KEY, (snapshot.name, c.champion, c.challenger, c.window), strict=True)
            )
            assert value("model_comparison_labeled_predictions", {**labels, "arm": "champion"}) == (
                c.champion_labeled
            )
            s = c.scores
            if isinstance(s, AccuracyComparison):
                assert s.test is not None
                assert value("model_comparison_accuracy_difference", labels) == s.difference
                assert value("model_comparison_accuracy_pvalue", labels) == s.test.pvalue
                assert value("model_comparison_accuracy_difference_upper", labels) == s.test.upper
                for average, f1 in s.f1.items():
                    f1_labels = {**labels, "average": average}
                    assert value("model_comparison_f1_difference", f1_labels) == f1
                checked += 1
            elif isinstance(s, MaeComparison):
                assert s.test is not None
                assert value("model_comparison_mean_absolute_error_difference", labels) == (
                    s.difference
                )
                assert value("model_comparison_mean_absolute_error_pvalue", labels) == (
                    s.test.pvalue
                )
                checked += 1
    assert checked == 4  # fraud v2 and price v2, two windows each


class DeclaredComparisons(ModelCollector):
    """The model collector, its snapshots given the declared comparisons (until the API
    declares them)."""

    def snapshots(
        self, errors: list[str], latest: Mapping[str, ModelSnapshot] | None = None
    ) -> list[ModelSnapshot]:
        taken = super().snapshots(errors, latest)
        return [replace(s, comparison=DECLARED.get(s.name)) for s in taken]


def test_the_cached_exposition_holds_the_families_and_is_lint_clean() -> None:
    store = populated()
    registry = CollectorRegistry(auto_describe=False)
    timings = Timings([*PARTS, "exporter"])
    models = DeclaredComparisons(store, DriftCache(), timings)
    registry.register(models)
    registry.register(ServiceCollector(list, timings))
    exposition = Exposition(registry, models)
    text = exposition.render()[0].decode()
    lint = promtool_check_metrics(text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    metrics = parse_metrics(text)
    assert sample(metrics, "model_exporter_collector_success", collector="comparison") == 1.0
    labels = {"model": "fraud", "champion": "v1", "challenger": "v2", "window": "1h"}
    assert sample(metrics, "model_comparison_accuracy_difference", **labels) is not None
    v3 = {**labels, "challenger": "v3"}
    assert sample(metrics, "model_comparison_accuracy_difference", **v3) is None
    # The cached page, a second (cached) render and the registry's own collection agree.
    comparison = comparison_series(text)
    assert len(comparison) > 20
    assert comparison_series(exposition.render()[0].decode()) == comparison
    assert comparison_series(generate_latest(registry).decode()) == comparison


def comparison_series(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {k: v for k, v in parse_metrics(text).items() if k[0].startswith("model_comparison_")}


def test_declaring_and_ending_a_comparison_over_http_shows_and_removes_the_families(
    make_exporter: Callable[..., Exporter],
) -> None:
    """End to end: the exposition's per-model cache follows the declaration (its key does)."""
    exp = make_exporter(windows=["1h"], comparison={"min_samples": 20})
    rng = np.random.default_rng(21)
    for version, n in (("v1", 60), ("v2", 30)):
        truth, predicted = classifier_arm(rng, n, 0.9, [0, 1])
        events = [
            {"id": f"{version}-{i}", "features": {"x": 1.0}, "prediction": p, "label": t}
            for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
        ]
        exp.predictions("fraud", events, model_version=version)
    labels = {"model": "fraud", "champion": "v1", "challenger": "v2", "window": "1h"}
    assert not comparison_series(exp.metrics_text())  # scraped (and cached) before declaring
    body = {"champion": "v1", "challengers": ["v2"], "mode": "split"}
    assert exp.client.put("/v1/models/fraud/comparison", json=body).status_code == 200
    text = exp.metrics_text()
    assert promtool_check_metrics(text).returncode == 0
    metrics = parse_metrics(text)
    for arm, n in (("champion", 60), ("challenger", 30)):
        assert sample(metrics, "model_comparison_labeled_predictions", **labels, arm=arm) == n
    assert sample(metrics, "model_comparison_accuracy_pvalue", **labels) is not None
    assert exp.client.delete("/v1/models/fraud/comparison").status_code == 200
    assert not comparison_series(exp.metrics_text())
