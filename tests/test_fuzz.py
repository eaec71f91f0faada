"""Random and mutated bodies never produce a 5xx, and every 4xx carries a known reason."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.errors import Reason

REASONS = {r.value for r in Reason}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
feature_values = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-1000, 1000),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=2),
)
events = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(min_size=0, max_size=30), st.integers()),
        "features": st.one_of(
            st.dictionaries(st.text(max_size=20), feature_values, max_size=6), json_values
        ),
        "prediction": st.one_of(
            st.integers(0, 5),
            st.text(max_size=5),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
            json_values,
        ),
    },
    optional={
        "timestamp": st.one_of(st.floats(allow_nan=False), st.text(max_size=30), st.integers()),
        "label": st.one_of(st.integers(0, 5), st.text(max_size=5), st.booleans(), st.none()),
        "extra": json_values,
    },
)
batches = st.fixed_dictionaries(
    {"model": st.sampled_from(["m", "n", "", "x" * 200]), "events": st.lists(events, max_size=8)},
    optional={"model_version": st.one_of(st.text(max_size=10), st.none(), st.integers())},
)
label_batches = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["m", "n", "unknown"]),
        "labels": st.lists(
            st.fixed_dictionaries({"id": st.text(max_size=10), "label": json_values}), max_size=6
        ),
    }
)
mutations = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b: b, batches.map(lambda b: json.dumps(b).encode())),
    batches.map(lambda b: json.dumps(b).encode()[: max(1, len(json.dumps(b)) // 2)]),
    json_values.map(lambda v: json.dumps(v).encode()),
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # the same examples every run: no flaky CI
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def healthy(exp: Any) -> None:
    """No collector failed and no drift computation raised, whatever got in."""
    text = exp.client.get("/metrics").text
    assert 'model_exporter_collector_success{collector="quality"} 1.0' in text
    assert 'model_exporter_collector_success{collector="drift"} 1.0' in text
    assert 'model_exporter_collector_success{collector="traffic"} 1.0' in text
    assert 'model_exporter_drift_computations_total{result="error"} 0.0' in text


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.status_code not in (404, 405):
        assert response.json()["reason"] in REASONS
    elif response.status_code == 404:
        assert response.json()["reason"] == "unknown_model"


@FUZZ
@given(body=mutations)
def test_random_prediction_bodies(make_exporter, body: bytes) -> None:
    exp = fuzz_target(make_exporter)
    r = exp.client.post(
        "/v1/predictions", content=body, headers={"Content-Type": "application/json"}
    )
    check(r)
    healthy(exp)


@FUZZ
@given(batch=batches)
def test_structured_prediction_batches(make_exporter, batch: dict[str, Any]) -> None:
    exp = fuzz_target(make_exporter)
    check(
        exp.client.post(
            "/v1/predictions",
            content=json.dumps(batch),
            headers={"Content-Type": "application/json"},
        )
    )
    exp.refresh_drift()  # drift over whatever got in must not fail either
    check(exp.client.get("/v1/models/m"))
    healthy(exp)


@FUZZ
@given(batch=label_batches)
def test_structured_label_batches(make_exporter, batch: dict[str, Any]) -> None:
    exp = fuzz_target(make_exporter)
    check(
        exp.client.post(
            "/v1/labels", content=json.dumps(batch), headers={"Content-Type": "application/json"}
        )
    )


@FUZZ
@given(
    columns=st.dictionaries(st.text(max_size=10), st.lists(feature_values, max_size=6), max_size=4)
)
def test_structured_references(make_exporter, columns: dict[str, Any]) -> None:
    exp = fuzz_target(make_exporter)
    check(exp.client.put("/v1/models/m/reference", json={"features": columns}))
    csv = "\n".join(",".join(map(str, row)) for row in zip(*columns.values(), strict=False))
    check(
        exp.client.put("/v1/models/m/reference", content=csv, headers={"Content-Type": "text/csv"})
    )
    exp.refresh_drift()
    healthy(exp)


_cache: dict[int, Any] = {}


def fuzz_target(make_exporter):
    """One exporter per test function (hypothesis reuses the fixture across examples): it
    accumulates state from earlier examples, which is the point."""
    key = id(make_exporter)
    if key not in _cache:
        exp = make_exporter(
            limits={"max_models": 3, "max_features": 5, "max_classes": 4},
            quality={"min_samples": 1},
            drift={"min_samples": 2, "reference_size": 3},
        )
        exp.predictions("m", [{"id": "seed", "features": {"a": 1.0}, "prediction": 1}])
        _cache.clear()
        _cache[key] = exp
    return _cache[key]
