"""A scrape shows one consistent state of each model and takes each model's lock once.

Quality (by window), traffic (counters) and drift of a model all come from one snapshot taken
under the model's lock, so numbers that must agree do agree on every scrape, even while ingest
runs: a test against the real server checks that on every scrape of a concurrent load.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import parse_metrics
from tests.helpers import ExporterProcess
from tests.test_exposition import populated


class CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> CountingLock:
        self._lock.acquire()
        self.taken += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def counted_locks(exp: Any) -> dict[str, CountingLock]:
    locks = {}
    for state in exp.app.state.store.models():
        state.lock = locks.setdefault(state.name, CountingLock())
    return locks


@pytest.mark.parametrize(
    "read",
    [
        lambda exp: exp.client.get("/metrics"),
        lambda exp: exp.client.get("/metrics", headers={"Accept": "application/openmetrics-text"}),
        lambda exp: list(exp.app.state.registry.collect()),
    ],
    ids=["text", "openmetrics", "registry.collect"],
)
def test_a_scrape_takes_each_models_lock_once(make_exporter, read) -> None:
    exp = populated(make_exporter)
    locks = counted_locks(exp)
    assert len(locks) == 7  # the models of populated()
    read(exp)
    assert {name: lock.taken for name, lock in locks.items()} == dict.fromkeys(locks, 1)
    read(exp)  # from the exposition's cache: still one snapshot per model
    assert {name: lock.taken for name, lock in locks.items()} == dict.fromkeys(locks, 2)


def test_the_status_of_a_model_takes_its_lock_once(make_exporter) -> None:
    exp = populated(make_exporter)
    locks = counted_locks(exp)
    exp.status("fraud")
    assert locks["fraud"].taken == 1 and locks["iris"].taken == 0


def test_the_registry_is_complete(make_exporter) -> None:
    """Drift reaches /metrics through a registered collector: the registry sees it all."""
    exp = populated(make_exporter)
    registry = exp.app.state.registry
    collected = {
        family.name + "_total" if family.type == "counter" else family.name
        for family in registry.collect()
    }
    text = exp.metrics_text()
    assert collected == {line.split()[2] for line in text.splitlines() if line[:6] == "# HELP"}
    key = {"model": "fraud", "model_version": "v1", "window": "1h", "feature": "amount"}
    pvalue = registry.get_sample_value("model_feature_drift_ks_pvalue", key)
    assert pvalue is not None and 0.0 <= pvalue <= 1.0
    text_value = parse_metrics(exp.metrics_text())[
        ("model_feature_drift_ks_pvalue", frozenset(key.items()))
    ]
    assert pvalue == text_value


CONFIG = """
windows: [1h]
quality: {min_samples: 1}
drift: {refresh_interval: 0.2, min_samples: 20, reference_size: 200}
join: {prediction_ttl: 1d, max_pending_predictions: 1000000}
limits: {max_batch_events: 1000}
"""

COUNTERS = (
    "model_predictions_total",
    "model_labels_total",
    "model_labels_received_total",
    "model_outcomes_total",
    "model_duplicate_events_total",
)


@pytest.mark.e2e
def test_every_scrape_under_concurrent_ingest_is_consistent(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG)
    server = ExporterProcess(cfg)
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest(model: str) -> None:
        """Batches of predictions (every third with an inline label), then their labels."""
        try:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                n = 0
                while not stop.is_set():
                    events = [
                        {
                            "id": f"{model}-{n + i}",
                            "features": {"x": float(i), "y": float(n % 7)},
                            "prediction": i % 2,
                            **({"label": (i // 2) % 2} if i % 3 == 0 else {}),
                        }
                        for i in range(200)
                    ]
                    version = ["v1", "v2"][n // 200 % 2]
                    body = {"model": model, "model_version": version, "events": events}
                    c.post("/v1/predictions", json=body).raise_for_status()
                    labels = [
                        {"id": f"{model}-{n + i}", "label": i % 2}
                        for i in range(200)
                        if i % 3 and i % 5  # some never come; some come twice below
                    ]
                    c.post("/v1/labels", json={"model": model, "labels": labels}).raise_for_status()
                    c.post(
                        "/v1/labels", json={"model": model, "labels": labels[:10]}
                    ).raise_for_status()
                    n += 200
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(m,)) for m in ("a", "b")]
    previous: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    scrapes = 0
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 4.0
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while time.monotonic() < deadline and not errors:
                metrics = parse_metrics(c.get("/metrics").text)
                check_consistent(metrics)
                for key, value in metrics.items():
                    if key[0] in COUNTERS and key in previous:
                        assert value >= previous[key], (key, previous[key], value)
                previous = {k: v for k, v in metrics.items() if k[0] in COUNTERS}
                scrapes += 1
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    assert not errors, errors
    assert scrapes >= 10
    total = sum(v for (name, _), v in previous.items() if name == "model_predictions_total")
    assert total >= 2000, "the load did not run"


def check_consistent(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
    """What must agree within one model's part of one scrape."""
    by_version: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    outcomes: dict[tuple[str, str], float] = defaultdict(float)
    support: dict[tuple[str, str], float] = defaultdict(float)
    for (name, labels), value in metrics.items():
        lab = dict(labels)
        if "model_version" not in lab or "model" not in lab:
            continue
        key = (lab["model"], lab["model_version"])
        if name == "model_outcomes_total":
            outcomes[key] += value
        elif name == "model_class_support":
            support[key] += value
        elif name in (
            "model_predictions_total",
            "model_labels_total",
            "model_pending_predictions",
            "model_window_predictions",
            "model_window_labeled_predictions",
        ):
            by_version[key][name] = value
    for key, v in by_version.items():
        predictions, labels = v["model_predictions_total"], v["model_labels_total"]
        assert outcomes[key] == labels, (key, outcomes[key], labels)
        assert labels + v["model_pending_predictions"] == predictions, (key, v)
        assert v["model_window_predictions"] == predictions, (key, v)  # all within the window
        assert v["model_window_labeled_predictions"] == labels, (key, v)
        if labels:
            assert support[key] == labels, (key, support[key], labels)
