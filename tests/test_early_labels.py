"""Labels that arrive before a known model's first prediction wait for it (over HTTP).

A model is known before its first prediction when it is declared in the config or has an
uploaded reference. Its early labels wait in the early-label buffer like any other (until the
task is known, as sent; encoded when it is), and join when the predictions come. An unknown
model still gets 404.
"""

from __future__ import annotations

from tests.conftest import sample

DECLARED = "models:\n  fraud:\n    task: binary\n"


def test_labels_for_a_declared_model_wait_for_its_first_predictions(make_exporter, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DECLARED)
    exp = make_exporter(config=str(cfg), quality={"min_samples": 1})
    assert exp.labels("fraud", [{"id": "a", "label": 1}, {"id": "b", "label": 0}]) == {
        "accepted": 2,
        "duplicates": 0,
        "joined": 0,
        "pending": 2,
    }
    m = exp.metrics()
    assert sample(m, "model_pending_labels", model="fraud") == 2
    exp.clock.advance(30)
    result = exp.predictions(
        "fraud",
        [
            {"id": "a", "features": {"x": 1.0}, "prediction": 1},
            {"id": "b", "features": {"x": 2.0}, "prediction": 1},
        ],
    )
    assert result == {"accepted": 2, "duplicates": 0, "joined": 2, "pending": 0}
    m = exp.metrics()
    key = {"model": "fraud", "model_version": "default"}
    assert sample(m, "model_labels_total", **key) == 2
    assert sample(m, "model_accuracy", **key, window="1h") == 0.5
    assert sample(m, "model_pending_labels", model="fraud") == 0


def test_labels_for_a_model_with_a_reference_wait_as_sent_until_the_task_is_known(make_exporter):
    exp = make_exporter(quality={"min_samples": 1})
    r = exp.client.put("/v1/models/iris/reference", json={"features": {"x": [1.0, 2.0, 3.0]}})
    assert r.status_code == 200, r.text
    # The task is unknown: classes or numbers? The labels wait as they were sent.
    assert (
        exp.labels(
            "iris",
            [
                {"id": "a", "label": "setosa"},
                {"id": "b", "label": 2.5},
                {"id": "c", "label": "virginica"},
            ],
        )["pending"]
        == 3
    )
    assert exp.status("iris")["task"] is None
    exp.predictions(
        "iris",
        [
            {"id": "a", "features": {"x": 1.0}, "prediction": "setosa"},
            {"id": "c", "features": {"x": 2.0}, "prediction": "setosa"},
            {"id": "d", "features": {"x": 2.0}, "prediction": "versicolor"},
        ],
    )
    status = exp.status("iris")
    assert status["task"] == "multiclass"
    assert status["versions"]["default"]["labels_total"] == 2  # a and c joined
    # 2.5 cannot be a class of a string-class classifier: dropped, and counted as such.
    assert status["labels_expired"]["task_mismatch"] == 1
    m = exp.metrics()
    assert sample(m, "model_labels_expired_total", model="iris", reason="task_mismatch") == 1
    assert sample(m, "model_pending_labels", model="iris") == 0
    assert set(status["classes"]) == {"setosa", "virginica", "versicolor"}


def test_labels_for_an_unknown_model_are_still_404(make_exporter, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DECLARED)
    exp = make_exporter(config=str(cfg))
    r = exp.client.post("/v1/labels", json={"model": "other", "labels": [{"id": "a", "label": 1}]})
    assert r.status_code == 404 and r.json()["reason"] == "unknown_model"
    assert r.json()["field"] == "model" and r.json()["value"] == "other"


def test_refused_early_labels_register_nothing(make_exporter, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DECLARED)
    exp = make_exporter(config=str(cfg))
    r = exp.client.post(
        "/v1/labels", json={"model": "fraud", "labels": [{"id": "a", "label": 0.5}]}
    )
    assert r.status_code == 422 and r.json()["reason"] == "task_mismatch"
    assert r.json()["field"] == "labels[0].label"
    assert exp.client.get("/v1/models").json() == {"models": []}


def test_without_waiting_labels_a_declared_model_refuses_unknown_ids(make_exporter, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(DECLARED)
    exp = make_exporter(config=str(cfg), join={"label_ttl": 0})
    r = exp.client.post("/v1/labels", json={"model": "fraud", "labels": [{"id": "a", "label": 1}]})
    assert r.status_code == 422 and r.json()["reason"] == "unknown_id"
    assert r.json()["field"] == "labels[0].id"
    assert exp.client.get("/v1/models").json() == {"models": []}


def test_a_reference_of_predictions_and_labels_only_is_a_valid_holdout_set(make_exporter):
    """A holdout set (no features) is accepted over HTTP, as JSON and as CSV columns, and
    becomes the model's reference for prediction and label drift."""
    exp = make_exporter()
    body = {"features": {}, "predictions": [1, 0, 1, 1], "labels": [1, 0, 0, 1]}
    r = exp.client.put("/v1/models/fraud/reference", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["features"] == {} and r.json()["rows"] == 4
    assert r.json()["predictions"]["values"] == 4 and r.json()["labels"]["values"] == 4
    csv = b"p,y\n1,1\n0,0\n1,0\n"
    r = exp.client.put(
        "/v1/models/fraud/reference?model_version=v2&prediction_column=p&label_column=y",
        content=csv,
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "version" and r.json()["labels"]["values"] == 3
    reference = exp.status("fraud")["versions"]["v2"]["reference"]
    assert reference["source"] == "upload" and reference["scope"] == "version"
