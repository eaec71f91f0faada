"""Model registration, declared tasks and versions."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import sample


def test_auto_register_off_accepts_only_declared_models(make_exporter, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("auto_register: false\nmodels:\n  known: {task: regression}\n")
    exp = make_exporter(config=str(cfg))
    event = {"id": "1", "features": {"x": 1.0}, "prediction": 3}
    r = exp.client.post("/v1/predictions", json={"model": "other", "events": [event]})
    assert r.status_code == 404 and r.json()["reason"] == "unknown_model"
    assert "auto_register" in r.json()["detail"]
    # Declared regression accepts whole-number predictions (they would infer a classifier).
    exp.predictions("known", [event | {"label": 5}])
    assert exp.status("known")["task"] == "regression"
    assert exp.client.get("/v1/models").json()["models"][0]["model"] == "known"


def test_declared_bool_binary_and_positive_false(make_exporter, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "quality: {min_samples: 1}\nmodels:\n  m: {task: binary, positive_class: false}\n"
    )
    exp = make_exporter(config=str(cfg))
    exp.predictions(
        "m",
        [
            {"id": "1", "features": {}, "prediction": False, "label": False},
            {"id": "2", "features": {}, "prediction": False, "label": True},
            {"id": "3", "features": {}, "prediction": True, "label": True},
        ],
    )
    m = exp.metrics()
    key = {"model": "m", "model_version": "default", "window": "1h"}
    # Positive class false: 2 predicted false, 1 of them right; 1 actual false, found.
    assert sample(m, "model_precision", **key, average="binary") == 0.5
    assert sample(m, "model_recall", **key, average="binary") == 1.0
    assert exp.status("m")["positive_class"] == "false"


def test_versions_are_separate_and_labels_join_across_them(make_exporter) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("m", [{"id": "a", "features": {}, "prediction": 1}], model_version="blue")
    exp.predictions("m", [{"id": "b", "features": {}, "prediction": 0}], model_version="green")
    assert exp.labels("m", [{"id": "a", "label": 1}, {"id": "b", "label": 1}])["joined"] == 2
    m = exp.metrics()
    assert sample(m, "model_accuracy", model="m", model_version="blue", window="1h") == 1.0
    assert sample(m, "model_accuracy", model="m", model_version="green", window="1h") == 0.0


def test_idle_version_is_replaced_when_the_limit_is_reached(make_exporter) -> None:
    exp = make_exporter(limits={"max_versions_per_model": 2}, join={"prediction_ttl": "10m"})
    for v in ("v1", "v2"):
        exp.predictions(
            "m", [{"id": v, "features": {}, "prediction": 1, "label": 1}], model_version=v
        )
    r = exp.client.post(
        "/v1/predictions",
        json={
            "model": "m",
            "model_version": "v3",
            "events": [{"id": "x", "features": {}, "prediction": 1}],
        },
    )
    assert r.status_code == 422 and r.json()["reason"] == "too_many_versions"
    exp.clock.advance(3601)  # v1 and v2 idle for longer than the 1h window
    exp.predictions("m", [{"id": "y", "features": {}, "prediction": 1}], model_version="v3")
    assert sorted(exp.status("m")["versions"]) == ["v2", "v3"]
