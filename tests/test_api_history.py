"""``GET /v1/models/{model}/history`` over HTTP: the body's shape, its filters, its numbers
against ``/metrics`` at the same moment, its refusals, and its OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from exporter.api.status import DIGITS
from exporter.errors import json_value
from exporter.history_recorder import COUNT_SERIES, SERIES_NAMES
from tests.conftest import T0, Exporter, sample
from tests.test_exposition import populated

RES = 60


def history(exp: Exporter, model: str, **query: Any) -> Any:
    r = exp.client.get(f"/v1/models/{quote(model, safe='')}/history", params=query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def record(exp: Exporter) -> None:
    exp.app.state.history_recorder.record(exp.clock.now)


def small(make_exporter: Any) -> Exporter:
    """Model "m": 4 events with inline labels (truth 1 0 0 0, predicted 1 1 0 0), recorded
    5 s into T0's slot."""
    exp: Exporter = make_exporter(quality={"min_samples": 1})
    exp.predictions(
        "m",
        [
            {"id": f"e{i}", "features": {"x": float(i)}, "prediction": p, "label": t}
            for i, (p, t) in enumerate([(1, 1), (1, 0), (0, 0), (0, 0)])
        ],
    )
    exp.clock.advance(5)
    record(exp)
    return exp


def version(name: str, window: str | None = None, average: str | None = None) -> dict[str, str]:
    out = {"model_version": name}
    if window is not None:
        out["window"] = window
    if average is not None:
        out["average"] = average
    return out


def test_the_body_is_the_contract_s(make_exporter: Any) -> None:
    exp = small(make_exporter)
    d, w = version("default"), version("default", "1h")

    def one(name: str, labels: dict[str, str], value: float) -> dict[str, Any]:
        return {"name": name, "labels": labels, "points": [[int(T0), value]]}

    def averaged(name: str, binary: float, macro: float, weighted: float) -> list[dict[str, Any]]:
        return [
            one(name, version("default", "1h", average), value)
            for average, value in (("binary", binary), ("macro", macro), ("weighted", weighted))
        ]

    assert history(exp, "m") == {
        "model": "m",
        "series": [
            one("accuracy", w, 0.75),
            *averaged("f1_score", 0.666666666667, 0.733333333333, 0.766666666667),
            one("label_delay_seconds_mean", d, 0.0),
            one("labeled_predictions", w, 4),
            one("labels_expired_total", {}, 0),
            one("labels_total", d, 4),
            one("pending_labels", {}, 0),
            one("pending_predictions", d, 0),
            *averaged("precision", 0.5, 0.75, 0.875),
            one("predictions", w, 4),
            one("predictions_expired_total", d, 0),
            one("predictions_total", d, 4),
            *averaged("recall", 1.0, 0.833333333333, 0.75),
        ],
    }


def test_times_and_counts_are_integers_and_points_follow_the_slots(make_exporter: Any) -> None:
    exp = small(make_exporter)
    exp.clock.advance(RES)
    exp.predictions("m", [{"id": "e9", "features": {"x": 1.0}, "prediction": 1, "label": 1}])
    record(exp)
    body = history(exp, "m", series="accuracy,predictions_total,pending_labels")
    assert [(s["name"], s["points"]) for s in body["series"]] == [
        ("accuracy", [[int(T0), 0.75], [int(T0) + RES, 0.8]]),
        ("pending_labels", [[int(T0), 0], [int(T0) + RES, 0]]),
        ("predictions_total", [[int(T0), 4], [int(T0) + RES, 5]]),
    ]
    for series in history(exp, "m")["series"]:
        for t, value in series["points"]:
            assert type(t) is int
            assert type(value) is (int if series["name"] in COUNT_SERIES else float), series


def two_versions(make_exporter: Any) -> Exporter:
    exp: Exporter = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    for name in ("v1", "v2"):
        exp.predictions(
            "m",
            [
                {"id": f"{name}{i}", "features": {"x": 1.0}, "prediction": i % 2, "label": 1}
                for i in range(4)
            ],
            model_version=name,
        )
    exp.clock.advance(5)
    record(exp)
    exp.clock.advance(RES)
    late = {"id": "late", "features": {"x": 1.0}, "prediction": 1, "label": 1}
    exp.predictions("m", [late], model_version="v2")
    record(exp)
    return exp


def selected(body: Any) -> list[tuple[str, dict[str, str], int]]:
    return [(s["name"], s["labels"], len(s["points"])) for s in body["series"]]


def test_the_filters_select_by_version_window_name_and_time(make_exporter: Any) -> None:
    exp = two_versions(make_exporter)
    everything = history(exp, "m")
    assert len(everything["series"]) == 2 * (2 * 12 + 5) + 2
    assert selected(history(exp, "m", version="v2", window="5m", series="accuracy,f1_score")) == [
        ("accuracy", version("v2", "5m"), 2),
        ("f1_score", version("v2", "5m", "binary"), 2),
        ("f1_score", version("v2", "5m", "macro"), 2),
        ("f1_score", version("v2", "5m", "weighted"), 2),
    ]
    assert selected(history(exp, "m", version="v1", series="labels_total,pending_labels")) == [
        ("labels_total", version("v1"), 2),  # pending_labels has no version: left out
    ]
    assert selected(history(exp, "m", window="1h", series="labels_total,predictions")) == [
        ("predictions", version("v1", "1h"), 2),
        ("predictions", version("v2", "1h"), 2),
    ]
    since = history(exp, "m", since=T0 + 1, series="predictions_total")
    assert since["series"] == [
        {"name": "predictions_total", "labels": version("v1"), "points": [[int(T0) + RES, 4]]},
        {"name": "predictions_total", "labels": version("v2"), "points": [[int(T0) + RES, 5]]},
    ]
    assert history(exp, "m", since=T0 + RES + 1) == {"model": "m", "series": []}
    assert history(exp, "m", version="v9") == {"model": "m", "series": []}
    assert len(history(exp, "m", since=T0)["series"]) == len(everything["series"])
    assert history(exp, "m", since=T0)["series"] == everything["series"]


#: History series name -> the /metrics family it is (those summed over a label: see below).
METRIC = {
    "accuracy": "model_accuracy",
    "precision": "model_precision",
    "recall": "model_recall",
    "f1_score": "model_f1_score",
    "mean_absolute_error": "model_mean_absolute_error",
    "root_mean_squared_error": "model_root_mean_squared_error",
    "roc_auc": "model_roc_auc",
    "estimated_accuracy": "model_estimated_accuracy",
    "predictions": "model_window_predictions",
    "labeled_predictions": "model_window_labeled_predictions",
    "features_drifted": "model_drift_features_drifted",
    "predictions_total": "model_predictions_total",
    "labels_total": "model_labels_total",
    "pending_predictions": "model_pending_predictions",
    "pending_labels": "model_pending_labels",
}
SUMMED = {  # summed over reason
    "predictions_expired_total": "model_predictions_expired_total",
    "labels_expired_total": "model_labels_expired_total",
}


def on_metrics(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[Any, float]:
    """What /metrics says of each history series: (model, name, labels) -> value."""
    out: dict[Any, float] = {}
    names = {metric: name for name, metric in {**METRIC, **SUMMED}.items()}
    for (metric, labels), value in metrics.items():
        given = dict(labels)
        model = given.pop("model", None)
        if metric in names and model is not None:
            given.pop("reason", None)
            key = (model, names[metric], frozenset(given.items()))
            out[key] = out.get(key, 0.0) + value
    for (metric, labels), total in metrics.items():  # label delay: the mean since the start
        if metric == "model_label_delay_seconds_sum":
            count = metrics[("model_label_delay_seconds_count", labels)]
            given = dict(labels)
            model = given.pop("model")
            if count:
                out[(model, "label_delay_seconds_mean", frozenset(given.items()))] = total / count
    return out


def test_the_values_are_those_of_metrics_at_the_same_moment(make_exporter: Any) -> None:
    exp = populated(make_exporter)  # every kind of model; its refresh_drift recorded them
    expected = on_metrics(exp.metrics())
    got: dict[Any, float] = {}
    models = [m["model"] for m in exp.client.get("/v1/models").json()["models"]]
    assert len(models) == 7
    for model in models:
        for series in history(exp, model)["series"]:
            ((t, value),) = series["points"]  # one recording: one point
            assert t == int(T0)
            got[(model, series["name"], frozenset(series["labels"].items()))] = value
    rounded = {
        key: (int(v) if key[1] in COUNT_SERIES else float(f"{v:.{DIGITS}g}"))
        for key, v in expected.items()
    }
    assert got == rounded
    assert {key[1] for key in got} == set(SERIES_NAMES)  # every series name was compared
    assert len(got) > 200


def test_an_unknown_model_is_404(make_exporter: Any) -> None:
    exp = small(make_exporter)
    r = exp.client.get("/v1/models/nobody/history")
    assert r.status_code == 404
    assert {k: r.json()[k] for k in ("reason", "field", "value")} == {
        "reason": "unknown_model",
        "field": "model",
        "value": "nobody",
    }


@pytest.mark.parametrize(
    ("query", "field", "reason", "value"),
    [
        ({"window": "1d"}, "window", "invalid_field", "1d"),
        ({"series": "accuracy,bogus"}, "series", "invalid_field", "bogus"),
        ({"series": "accuracy, f1_score"}, "series", "invalid_field", " f1_score"),
        ({"series": ""}, "series", "invalid_field", ""),
        ({"version": " v1"}, "version", "invalid_name", " v1"),
        ({"version": ".."}, "version", "invalid_name", ".."),
        ({"version": ""}, "version", "invalid_field", ""),
        ({"version": "v" * 129}, "version", "string_too_long", json_value("v" * 129)),
        ({"since": "nan"}, "since", "invalid_field", "nan"),
        ({"since": "inf"}, "since", "invalid_field", "inf"),
        ({"since": "yesterday"}, "since", "invalid_field", "yesterday"),
    ],
)
def test_a_bad_filter_is_422_naming_its_field_and_changes_nothing(
    make_exporter: Any, query: dict[str, str], field: str, reason: str, value: str
) -> None:
    exp = small(make_exporter)
    store = exp.app.state.history_recorder.history
    before = (history(exp, "m"), store.refused, store.series_count(), store.models())
    metrics = steady(exp)
    for model in ("m", "nobody"):  # the filters are checked before the model is looked up
        r = exp.client.get(f"/v1/models/{model}/history", params=query)
        assert r.status_code == 422, r.text
        body = r.json()
        assert {k: body[k] for k in ("reason", "field", "value")} == {
            "reason": reason,
            "field": field,
            "value": value,
        }
        assert body["detail"].startswith(f"{field}: ")
    assert (history(exp, "m"), store.refused, store.series_count(), store.models()) == before
    assert steady(exp) == metrics


#: What moves between two scrapes of an idle exporter, and the count of refusals (the edge's
#: handler counts a RejectedInput of a GET as one event refused, as for every route).
VOLATILE = (
    "process_",
    "python_gc_",
    "model_exporter_collector_duration_seconds",
    "model_exporter_events_rejected_total",
)


def steady(exp: Exporter) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics without what moves by itself."""
    out = {k: v for k, v in exp.metrics().items() if not k[0].startswith(VOLATILE)}
    assert len(out) > 50
    return out


def test_the_route_is_documented(make_exporter: Any) -> None:
    exp: Exporter = make_exporter(windows=["5m", "1h"])
    doc = exp.client.get("/openapi.json").json()
    op = doc["paths"]["/v1/models/{model}/history"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert [(p["name"], p["in"], p["required"]) for p in op["parameters"]] == [
        ("model", "path", True),
        ("version", "query", False),
        ("window", "query", False),
        ("series", "query", False),
        ("since", "query", False),
    ]
    assert all(p["description"] for p in op["parameters"])
    assert params["window"]["schema"]["enum"] == ["5m", "1h"]
    pattern = re.compile(params["series"]["schema"]["pattern"])
    assert pattern.match("accuracy,f1_score") and pattern.match(",".join(SERIES_NAMES))
    assert not any(pattern.match(s) for s in ("accuracy,", "accuracy, f1_score", "bogus", ""))
    version = params["version"]["schema"]
    assert "pattern" in version and {"type": "string", "minLength": 1, "maxLength": 128} in [
        {k: v for k, v in s.items() if k in ("type", "minLength", "maxLength")}
        for s in version["anyOf"]
    ]
    assert {"type": "number"} in params["since"]["schema"]["anyOf"]
    assert sorted(op["responses"]) == ["200", "401", "404", "422", "503"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/HistoryBody"}
    schemas = doc["components"]["schemas"]
    assert schemas["HistoryBody"]["required"] == ["model", "series"]
    assert schemas["HistoryBody"]["properties"]["series"]["items"] == {
        "$ref": "#/components/schemas/HistorySeries"
    }
    series = schemas["HistorySeries"]
    assert series["required"] == ["name", "labels", "points"]
    assert series["properties"]["name"]["enum"] == list(SERIES_NAMES)
    assert series["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert series["properties"]["points"]["items"]["prefixItems"] == [
        {"type": "integer"},
        {"type": "number"},
    ]
    for status in ("404", "422"):
        assert op["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Rejection"
        }


def test_the_drift_worker_run_records_the_history(make_exporter: Any) -> None:
    exp: Exporter = make_exporter(quality={"min_samples": 1})
    exp.predictions("m", [{"id": "a", "features": {"x": 1.0}, "prediction": 1, "label": 1}])
    assert history(exp, "m") == {"model": "m", "series": []}
    exp.refresh_drift()
    body = history(exp, "m", series="accuracy,features_drifted")
    assert body["series"] == [
        {"name": "accuracy", "labels": version("default", "1h"), "points": [[int(T0), 1.0]]},
        {"name": "features_drifted", "labels": version("default", "1h"), "points": [[int(T0), 0]]},
    ]


def test_metrics_say_how_many_series_the_history_holds_and_what_it_refused(
    make_exporter: Callable[..., Exporter],
) -> None:
    from exporter.collectors.exporter import history_families
    from exporter.history import History

    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("fraud", [{"id": "a", "prediction": 1, "features": {"x": 1.0}}])
    exp.labels("fraud", [{"id": "a", "label": 1}])
    exp.refresh_drift()
    history = exp.client.app.state.history_recorder.history
    m = exp.metrics()
    assert history.series_count() > 0
    assert sample(m, "model_exporter_history_series") == history.series_count()
    for reason in ("models", "series", "removed"):
        assert sample(m, "model_exporter_history_refused_total", reason=reason) == 0
    # Refusals are counted by reason.
    small = History(resolution=60, points=2, max_models=1, max_series=1)
    small.record("a", 0.0, [("accuracy", (), 0.5), ("f1_score", (), 0.5)])  # 1 series over
    small.record("b", 0.0, [("accuracy", (), 0.5)])  # 1 model over
    families = {f.name: f for f in history_families(small)}
    refused = {
        s.labels["reason"]: s.value
        for s in families["model_exporter_history_refused"].samples
        if s.name.endswith("_total")
    }
    assert refused == {"models": 1.0, "series": 1.0, "removed": 0.0}
    assert families["model_exporter_history_series"].samples[0].value == 1.0
