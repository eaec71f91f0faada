"""Labels waiting for their model (exporter.client._waiting): directly with a fake clock, and
end to end against a real exporter (labels first, their predictions later, all joined)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from exporter.client import MonitorClient
from exporter.client._delivery import Backoff, Batch
from exporter.client._waiting import WaitingLabels
from tests.conftest import T0, parse_metrics, sample
from tests.helpers import ExporterProcess


def labels(model: str, n: int) -> Batch:
    return Batch("label", model, None, [b'{"id":"a","label":1}'] * n)


def test_held_labels_come_due_with_backoff_until_their_deadline() -> None:
    waiting = WaitingLabels(10.0, Backoff(1.0, 4.0))
    assert waiting.hold(labels("m", 3), T0)
    assert waiting and waiting.events == 3
    due = waiting.next_due()
    assert due is not None and T0 + 0.5 <= due <= T0 + 1.5  # the first delay, +-50 %
    assert waiting.due(T0 + 0.4) == []
    (held,) = waiting.due(T0 + 1.5)
    assert not waiting and waiting.events == 0 and held.deadline == T0 + 10
    now = T0 + 1.5
    for attempt in range(1, 20):  # refused again and again: delays double up to the cap
        if not waiting.hold(held.batch, now, held):
            break
        (held,) = waiting.due(float("inf"))
        assert held.attempt == attempt and held.due <= held.deadline
        assert held.due - now <= min(4.0, 2.0**attempt) * 1.5
        now = held.due
    assert now == T0 + 10  # the last try is at the deadline
    assert not waiting.hold(held.batch, now, held)  # then it is dropped (by the caller)


def test_a_delivered_prediction_makes_its_models_labels_due_now() -> None:
    waiting = WaitingLabels(60.0, Backoff(5.0, 10.0))
    waiting.hold(labels("a", 1), T0)
    waiting.hold(labels("b", 2), T0)
    waiting.wake("b", T0 + 0.1)
    assert [h.batch.model for h in waiting.due(T0 + 0.1)] == ["b"]
    assert waiting.events == 1
    assert [h.batch.model for h in waiting.drain()] == ["a"] and not waiting


def test_no_patience_means_no_waiting() -> None:
    waiting = WaitingLabels(0.0, Backoff(0.2, 10.0))
    assert not waiting.hold(labels("m", 1), T0) and not waiting


# -- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = tmp_path_factory.mktemp("waiting") / "config.yaml"
    cfg.write_text("quality: {min_samples: 1}\n")  # no model declared: early labels get 404
    proc = ExporterProcess(cfg)
    yield proc
    proc.stop()


def metric(server: ExporterProcess, name: str, model: str, **labels: str) -> float | None:
    metrics = parse_metrics(server.client.get("/metrics").text)
    return sample(metrics, name, model=model, model_version="default", **labels)


@pytest.mark.e2e
def test_labels_sent_before_their_model_is_known_are_joined_when_it_is(
    server: ExporterProcess,
) -> None:
    with MonitorClient(
        server.url, model="deploy", flush_interval=0.02, backoff=0.05, flush_on_exit=False
    ) as client:
        assert client.log_labels((f"r{i}", i % 2) for i in range(100)) == 100
        assert not client.flush(0.3)  # refused as unknown_model: waiting, not dropped
        stats = client.stats()
        assert stats.queued == 100 and stats.dropped_rejected == 0 and stats.requests >= 1
        for i in range(100):
            client.log_prediction(f"r{i}", {"x": float(i)}, 1)
        assert client.flush(10)
        stats = client.stats()
    assert stats.sent_events == 200 and stats.dropped_rejected == stats.dropped_failed == 0
    assert metric(server, "model_labels_total", "deploy") == 100  # every label joined
    assert metric(server, "model_accuracy", "deploy", window="1h") == 0.5


@pytest.mark.e2e
def test_labels_of_a_model_that_never_comes_are_dropped_after_unknown_model_retry(
    server: ExporterProcess,
) -> None:
    with MonitorClient(
        server.url,
        model="never",
        flush_interval=0.02,
        backoff=0.05,
        max_backoff=0.1,
        unknown_model_retry=0.5,
        flush_on_exit=False,
    ) as client:
        started = time.monotonic()
        client.log_labels((f"r{i}", 1) for i in range(30))
        assert client.flush(10)
        waited = time.monotonic() - started
        stats = client.stats()
    assert 0.5 <= waited < 5
    assert stats.rejected_by_reason == {"unknown_model": 30} and stats.dropped_rejected == 30
    assert stats.requests >= 3  # tried again meanwhile


@pytest.mark.e2e
def test_closing_drops_labels_still_waiting_and_counts_them(server: ExporterProcess) -> None:
    client = MonitorClient(server.url, model="closing", flush_interval=0.02, flush_on_exit=False)
    client.log_labels((f"r{i}", 1) for i in range(10))
    started = time.monotonic()
    client.close(timeout=0.3)
    assert time.monotonic() - started < 2
    stats = client.stats()
    assert stats.rejected_by_reason == {"unknown_model": 10} and stats.queued == 0
