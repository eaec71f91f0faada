"""Starting: the restore runs once the app serves; until it is done /-/ready and every other
route answer 503 ``starting``, counted, and nothing reads or writes a half-restored store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from exporter.app import create_app
from exporter.config import load_settings
from exporter.errors import ConfigError
from exporter.persistence import StateKeeper
from tests.conftest import FakeClock, parse_metrics
from tests.test_persistence import Event

PREDICTIONS = {
    "model": "fraud",
    "events": [{"id": "n1", "features": {"x": 1.0}, "prediction": True}],
}


def saved_state(path: Path, clock: FakeClock, **overrides: Any) -> None:
    """A snapshot at ``path`` holding model 'fraud' with three predictions."""
    settings = load_settings(None, state={"path": str(path), "interval": 3600}, **overrides)
    app = create_app(settings, clock=clock, drift_worker=False)
    app.state.store.add_predictions(
        "fraud", None, [Event(f"e{i}", {"x": float(i)}, True) for i in range(3)]
    )
    app.state.state_keeper.stop()


def background_app(path: Path, clock: FakeClock, **overrides: Any) -> Any:
    settings = load_settings(None, state={"path": str(path), "interval": 3600}, **overrides)
    return create_app(settings, clock=clock, drift_worker=False, start_in_background=True)


def test_requests_get_503_starting_until_the_restore_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    saved_state(tmp_path, clock)
    entered, release = threading.Event(), threading.Event()
    restore = StateKeeper.restore

    def slow_restore(self: StateKeeper) -> str:
        entered.set()
        assert release.wait(10)
        return restore(self)

    monkeypatch.setattr(StateKeeper, "restore", slow_restore)
    app = background_app(tmp_path, clock)
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        assert entered.wait(10)
        ready = client.get("/-/ready")
        assert ready.status_code == 503 and ready.json() == {"status": "starting"}
        assert client.get("/-/healthy").status_code == 200
        refused = [
            client.post("/v1/predictions", json=PREDICTIONS),
            client.get("/metrics"),
            client.get("/v1/models/fraud"),
        ]
        for response in refused:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["reason"] == "starting"
        assert app.state.store.models() == []  # nothing written, nothing restored yet
        release.set()
        for _ in range(200):
            if client.get("/-/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/-/ready").json() == {"status": "ready"}
        status = client.get("/v1/models/fraud").json()
        assert status["versions"]["default"]["predictions_total"] == 3  # restored
        assert client.post("/v1/predictions", json=PREDICTIONS).status_code == 200
        samples = parse_metrics(client.get("/metrics").text)
    rejected = samples[
        ("model_exporter_events_rejected_total", frozenset({("reason", "starting")}))
    ]
    assert rejected == 3


def test_a_comparison_the_restored_state_refuses_stops_the_exporter(tmp_path: Path) -> None:
    """Built in the foreground, the refusal is a ConfigError; in the background the failure is
    kept (``serve`` exits 2 on it) and the server is asked to stop."""
    clock = FakeClock()
    limits = {"limits": {"max_models": 1}}
    saved_state(tmp_path, clock, **limits, models={"churn": {}})  # 'fraud' fills the one slot
    comparison = {"champion": "a", "challengers": ["b"], "mode": "split"}
    settings = load_settings(
        None,
        state={"path": str(tmp_path), "interval": 3600},
        **limits,
        models={"churn": {"comparison": comparison}},
    )
    with pytest.raises(ConfigError, match=r"models\.churn\.comparison"):
        create_app(settings, clock=clock, drift_worker=False)
    app = create_app(settings, clock=clock, drift_worker=False, start_in_background=True)
    stopped = threading.Event()
    app.state.ctx.request_exit = stopped.set
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        assert stopped.wait(10)
        assert "models.churn.comparison" in (app.state.ctx.failure or "")
        assert client.get("/-/ready").status_code == 503
        assert client.post("/v1/predictions", json=PREDICTIONS).status_code == 503
