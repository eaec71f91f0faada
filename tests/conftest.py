"""Shared fixtures: an app per test with a fake clock, and a /metrics parser."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import create_app
from exporter.config import load_settings

T0 = 1_800_000_000.0  # a fixed "now": 2027-01-15T08:00:00Z


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Exporter:
    """A test client, its app and clock, with helpers for the common calls."""

    def __init__(self, client: TestClient, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.app: Any = client.app

    def predictions(self, model: str, events: list[dict[str, Any]], **extra: Any) -> Any:
        r = self.client.post("/v1/predictions", json={"model": model, "events": events, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def labels(self, model: str, labels: list[dict[str, Any]]) -> Any:
        r = self.client.post("/v1/labels", json={"model": model, "labels": labels})
        assert r.status_code == 200, r.text
        return r.json()

    def refresh_drift(self) -> None:
        self.app.state.drift_worker.run_once()

    def metrics_text(self) -> str:
        r = self.client.get("/metrics")
        assert r.status_code == 200
        return r.text

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(self.metrics_text())

    def status(self, model: str) -> Any:
        r = self.client.get(f"/v1/models/{model}")
        assert r.status_code == 200, r.text
        return r.json()


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


@pytest.fixture
def make_exporter() -> Iterator[Callable[..., Exporter]]:
    """``make_exporter(**settings)`` starts an app (lifespan included) with a fake clock."""
    clients: list[TestClient] = []

    def make(
        *, clock: FakeClock | None = None, config: str | None = None, **overrides: Any
    ) -> Exporter:
        clock = clock or FakeClock()
        settings = load_settings(config, **overrides)
        app = create_app(settings, clock=clock, drift_worker=False)
        client = TestClient(app, client=("127.0.0.1", 50000))  # a loopback peer may write
        client.__enter__()
        clients.append(client)
        return Exporter(client, clock)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# Headless Chromium (tests/browser.py): ``browser`` (session), ``browser_context_factory``,
# ``page`` and ``page_log``.
from tests.browser import browser, browser_context_factory, page, page_log  # noqa: E402, F401
