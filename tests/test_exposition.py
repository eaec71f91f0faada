"""/metrics: lint-clean for promtool, right content type, no *_created, never blocked."""

from __future__ import annotations

import gzip
import threading
from typing import Any

import numpy as np
import pytest

import exporter.detector as detector
import exporter.views as views
from tests.conftest import Exporter, parse_metrics
from tests.helpers import promtool_check_metrics


def populated(make_exporter, **extra: Any) -> Exporter:
    """Every kind of model and series: binary, multiclass, regression, drift, concept drift
    (scores on fraud v1, probabilities on iris, whose reference has them: the estimate)
    (DDM on "shift", ADWIN on the others), rejections,
    comparisons (fraud v2 against v1, price v2 against default, shadowed v2 in shadow of v1,
    appraisal's regression v2 in shadow of v1),
    and holdout baselines (the
    references of iris and of price's default version have predictions and labels)."""
    exp = make_exporter(
        windows=["5m", "1h"],
        quality={"min_samples": 1},
        comparison={"min_samples": 5, "sequential": {"min_samples": 5, "min_expected": 1}},
        drift={"min_samples": 5, "reference_size": 20, "max_categories": 3},
        models={"shift": {"concept_drift": {"detector": "ddm"}}},
        **extra,
    )
    rng = np.random.default_rng(0)
    for model, champion in (("fraud", "v1"), ("price", "default")):
        answer = exp.client.put(
            f"/v1/models/{model}/comparison",
            json={"champion": champion, "challengers": ["v2"], "mode": "split"},
        )
        assert answer.status_code == 200, answer.text
    # A shadow comparison, declared before the model's first event: both versions predict the
    # same 30 ids, then one label per id joins both.
    answer = exp.client.put(
        "/v1/models/shadowed/comparison",
        json={"champion": "v1", "challengers": ["v2"], "mode": "shadow"},
    )
    assert answer.status_code == 200, answer.text
    shadow_rng = np.random.default_rng(1)  # its own: the other models' values stay put
    truth = shadow_rng.integers(2, size=30)
    for version, accuracy in (("v1", 0.9), ("v2", 0.6)):
        exp.predictions(
            "shadowed",
            [
                {
                    "id": f"s{i}",
                    "features": {"score": float(i)},
                    "prediction": int(truth[i] if shadow_rng.random() < accuracy else 1 - truth[i]),
                }
                for i in range(30)
            ],
            model_version=version,
        )
    exp.labels("shadowed", [{"id": f"s{i}", "label": int(truth[i])} for i in range(30)])
    # A shadow comparison of a regression model: the paired t-test on absolute errors.
    answer = exp.client.put(
        "/v1/models/appraisal/comparison",
        json={"champion": "v1", "challengers": ["v2"], "mode": "shadow"},
    )
    assert answer.status_code == 200, answer.text
    appraisal_rng = np.random.default_rng(2)
    value = appraisal_rng.normal(250.0, 40.0, 30)
    error = appraisal_rng.normal(0.0, 10.0, 30)
    for version, noise in (("v1", 2.0), ("v2", 6.0)):
        exp.predictions(
            "appraisal",
            [
                {
                    "id": f"a{i}",
                    "features": {"area": float(60 + i)},
                    "prediction": float(value[i] + error[i] + appraisal_rng.normal(0.0, noise)),
                }
                for i in range(30)
            ],
            model_version=version,
        )
    exp.labels("appraisal", [{"id": f"a{i}", "label": float(value[i])} for i in range(30)])
    for model, label in (("fraud", lambda: int(rng.integers(2))), ("price", None)):
        exp.predictions(
            model,
            [
                {
                    "id": f"{model}-v2-{i}",
                    "features": {"amount": float(rng.gamma(2))}
                    if model == "fraud"
                    else {"rooms": float(rng.integers(1, 6))},
                    "prediction": int(rng.integers(2)) if label else float(rng.normal(100, 9)),
                    "label": label() if label else float(rng.normal(100, 12)),
                }
                for i in range(20)
            ],
            model_version="v2",
        )
    scores = np.random.default_rng(3).random(50)  # its own: the other values stay put
    exp.predictions(
        "fraud",
        [
            {
                "id": f"f{i}",
                "features": {"amount": float(rng.gamma(2)), "country": "DE"},
                "prediction": int(rng.integers(2)),
                "label": int(rng.integers(2)),
                "score": float(scores[i]),
            }
            for i in range(50)
        ],
        model_version="v1",
    )
    holdout = exp.client.put(
        "/v1/models/iris/reference",
        json={
            "features": {
                "petal": [float(i) for i in range(40)],
                "colour": [f"c{i % 5}" for i in range(40)],
            },
            "predictions": [["a", "b", "c"][i % 3] for i in range(40)],
            "labels": [["a", "b", "c"][(i * 7) % 4 % 3] for i in range(40)],
            # Scored: the label-free estimate calibrates on them.
            "probabilities": [
                {"a": 0.6, "b": 0.2, "c": 0.2} if i % 3 == 0 else {"b": 0.5, "c": 0.5}
                for i in range(40)
            ],
        },
    )
    assert holdout.status_code == 200, holdout.text
    # A regression holdout too, for the champion of price only.
    holdout = exp.client.put(
        "/v1/models/price/reference?model_version=default",
        json={
            "features": {"rooms": [float(1 + i % 5) for i in range(30)]},
            "predictions": [100.0 + (i % 7) for i in range(30)],
            "labels": [100.0 + (i % 11) - 3 for i in range(30)],
        },
    )
    assert holdout.status_code == 200, holdout.text
    exp.predictions(
        "iris",
        [
            {
                "id": f"i{i}",
                "features": {"petal": float(i), "colour": f"c{i % 5}"},
                "prediction": ["a", "b", "c"][i % 3],
                "probabilities": {"a": 0.5, "b": 0.25, "c": 0.25}
                if i % 3 == 0
                else {"b": 0.75, "c": 0.25},
            }
            for i in range(30)
        ],
    )
    exp.labels("iris", [{"id": f"i{i}", "label": ["a", "b", "c"][i % 2]} for i in range(30)])
    exp.predictions(
        "price",
        [
            {
                "id": f"p{i}",
                "features": {"rooms": float(rng.integers(1, 6))},
                "prediction": float(rng.normal(100, 10)),
                "label": float(rng.normal(100, 12)),
            }
            for i in range(40)
        ],
    )
    exp.predictions(
        'we"ird\\model name',  # a newline is no name (exporter/names.py): it is a feature's
        [{"id": "r1", "features": {"x\nline": 1.0}, "prediction": 1.5, "label": 2.0}],
    )
    # A string where a number is expected: counted as a type mismatch, stored as missing.
    exp.predictions(
        "fraud",
        [{"id": "odd", "features": {"amount": "high"}, "prediction": 1}],
        model_version="v1",
    )
    exp.client.post("/v1/predictions", content=b"{", headers={"Content-Type": "application/json"})
    # Concept drift DDM finds: 300 right answers, then wrong ones (labels inline).
    exp.predictions(
        "shift",
        [
            {"id": f"c{i}", "features": {"x": 1.0}, "prediction": 1, "label": int(i < 300)}
            for i in range(330)
        ],
    )
    exp.refresh_drift()
    return exp


def test_promtool_check_metrics_is_clean(make_exporter) -> None:
    text = populated(make_exporter).metrics_text()
    result = promtool_check_metrics(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
    # The check really ran on the interesting series.
    for name in (
        "model_accuracy",
        "model_feature_drift_ks_pvalue",
        "model_outcomes_total",
        "model_mean_absolute_error",
        "model_label_delay_seconds_bucket",
    ):
        assert f"\n{name}{{" in text


def test_promtool_catches_a_broken_exposition() -> None:
    bad = '# HELP x_total A counter without TYPE.\nx_total 1\n# TYPE y gauge\ny{a="1"} 1\n'
    assert promtool_check_metrics(bad + "not a metric line\n").returncode != 0


def test_label_values_are_escaped_and_round_trip(make_exporter) -> None:
    metrics = populated(make_exporter).metrics()
    names = {dict(labels).get("model") for _, labels in metrics}
    assert 'we"ird\\model name' in names
    assert "x\nline" in {dict(labels).get("feature") for _, labels in metrics}


def test_text_format_by_default(make_exporter) -> None:
    exp = make_exporter()
    r = exp.client.get("/metrics")
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# HELP model_exporter_build_info" in r.text


def test_openmetrics_when_asked_and_no_created_series(make_exporter) -> None:
    exp = populated(make_exporter)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    r = exp.client.get("/metrics", headers={"Accept": accept})
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")
    assert "_created" not in r.text
    assert "_created" not in exp.metrics_text()
    assert "model_predictions_total{" in r.text


def test_gzip_when_accepted(make_exporter) -> None:
    exp = populated(make_exporter)
    r = exp.client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    # httpx decodes transparently; compare with an uncompressed scrape's series names.
    plain = exp.client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert set(parse_metrics(r.text)) == set(parse_metrics(plain.text))
    # The bytes on the wire really are gzip (read undecoded).
    with exp.client.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as raw:
        wire = b"".join(raw.iter_raw())
    assert wire[:2] == b"\x1f\x8b"
    assert set(parse_metrics(gzip.decompress(wire).decode())) == set(parse_metrics(plain.text))


def test_every_metric_has_help_and_our_namespace(make_exporter) -> None:
    text = populated(make_exporter).metrics_text()
    helps = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP")}
    types = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert helps == types
    for name in helps:
        assert name.startswith(("model_", "process_", "python_")), name


def test_a_failing_collector_part_does_not_blank_the_others(make_exporter, monkeypatch) -> None:
    exp = populated(make_exporter)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("exporter.collectors.quality.window_quality", broken)
    metrics = exp.metrics()
    assert metrics[("model_exporter_collector_success", frozenset({("collector", "quality")}))] == 0
    assert metrics[("model_exporter_collector_success", frozenset({("collector", "drift")}))] == 1
    assert any(name == "model_feature_drift_ks_pvalue" for name, _ in metrics)
    assert not any(name == "model_accuracy" for name, _ in metrics)


def test_drift_computation_never_holds_up_ingest_or_scrapes(make_exporter, monkeypatch) -> None:
    """The drift worker computes outside the model lock: while a computation is stuck, ingest
    and /metrics still answer (they would deadlock if the lock were held)."""
    exp = populated(make_exporter)
    entered, release = threading.Event(), threading.Event()
    real = detector.numeric_drift

    def stuck(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(detector, "numeric_drift", stuck)
    exp.predictions(
        "fraud", [{"id": "new1", "features": {"amount": 1.0}, "prediction": 1}], model_version="v1"
    )
    worker = threading.Thread(target=exp.refresh_drift)
    worker.start()
    try:
        assert entered.wait(10)
        done = threading.Event()

        def client_work() -> None:
            exp.predictions(
                "fraud",
                [{"id": "new2", "features": {"amount": 2.0}, "prediction": 0}],
                model_version="v1",
            )
            exp.labels("fraud", [{"id": "new1", "label": 1}])
            exp.metrics_text()
            done.set()

        other = threading.Thread(target=client_work)
        other.start()
        assert done.wait(10), "ingest or scrape waited for the drift computation"
        other.join()
    finally:
        release.set()
        worker.join(30)


def test_scrape_computation_never_holds_up_ingest(make_exporter, monkeypatch) -> None:
    """Quality scores are computed after the model lock is released, and a stuck render makes
    ingest wait no longer than exporter.api.priority.MAX_WAIT."""
    exp = populated(make_exporter)
    entered, release = threading.Event(), threading.Event()
    real = views.classification_scores

    def stuck(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "classification_scores", stuck)
    scrape = threading.Thread(target=exp.metrics_text)
    scrape.start()
    try:
        assert entered.wait(10)
        result = {}

        def ingest() -> None:
            result["r"] = exp.predictions(
                "fraud",
                [{"id": "z1", "features": {"amount": 1.0}, "prediction": 1}],
                model_version="v1",
            )

        t = threading.Thread(target=ingest)
        t.start()
        t.join(10)
        assert result.get("r") == {"accepted": 1, "duplicates": 0, "joined": 0, "pending": 1}
    finally:
        release.set()
        scrape.join(30)


@pytest.mark.parametrize("path", ["/", "/-/healthy", "/-/ready", "/docs", "/openapi.json"])
def test_service_pages(make_exporter, path: str) -> None:
    r = make_exporter().client.get(path)
    assert r.status_code == 200


def test_openapi_documents_the_ingest_bodies(make_exporter) -> None:
    spec = make_exporter().client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predictions"]["post"]["requestBody"]["content"]["application/json"]
    event = body["schema"]["properties"]["events"]["items"]
    assert set(event["required"]) == {"id", "features", "prediction"}
    assert "timestamp" in event["properties"] and "label" in event["properties"]
    ref = spec["paths"]["/v1/models/{model}/reference"]["put"]["requestBody"]["content"]
    assert set(ref) == {"application/json", "text/csv"}
    assert "/v1/labels" in spec["paths"]


VOLATILE = (b"process_", b"python_gc_", b"model_exporter_collector_duration_seconds")


def stable_lines(body: bytes) -> list[bytes]:
    """The exposition's lines, minus those whose values change by themselves (CPU, GC, time)."""
    return [
        line
        for line in body.split(b"\n")
        if not line.removeprefix(b"# HELP ").removeprefix(b"# TYPE ").startswith(VOLATILE)
    ]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_cached_exposition_equals_a_fresh_encoding_of_the_registry(
    make_exporter, monkeypatch, openmetrics
) -> None:
    """The per-model cache of encoded families gives exactly what the client library's encoder
    gives for the whole registry, before and after one model changes, and re-encodes only the
    model that changed."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as generate_om

    exp = populated(make_exporter)
    exposition = exp.app.state.ctx.exposition
    registry = exp.app.state.registry
    encoder = generate_om if openmetrics else generate_latest
    accept = "application/openmetrics-text; version=1.0.0" if openmetrics else ""
    built: list[str] = []
    real_part = exposition.models.part

    def counting(name, snapshots, *inputs):
        built.extend(s.name for s in snapshots)
        return real_part(name, snapshots, *inputs)

    monkeypatch.setattr(exposition.models, "part", counting)

    def rendered() -> list[bytes]:
        body, content_type = exposition.render(accept)
        assert content_type.startswith("application/openmetrics-text") == openmetrics
        return stable_lines(body)

    assert rendered() == stable_lines(encoder(registry))
    built.clear()
    assert rendered() == stable_lines(encoder(registry))  # from the cache ...
    assert built.count("fraud") == 5  # ... (only registry.collect() built fraud's 5 parts)
    exp.predictions(
        "fraud",
        [{"id": f"z{i}", "features": {"amount": 50.0 + i}, "prediction": 1} for i in range(30)],
        model_version="v1",
    )
    exp.refresh_drift()
    built.clear()
    first = rendered()
    assert set(built) == {"fraud"}  # the only model that changed: its 5 parts, re-encoded
    assert first == stable_lines(encoder(registry))
    text = exp.client.get("/metrics", headers={"Accept": "application/openmetrics-text"}).text
    assert text.count("# EOF") == 1 and text.endswith("# EOF\n")
