"""Integer ids: a JSON integer id is its decimal string, so ``42`` and ``"42"`` are one id.

Checked where each part of the rule lives: the wire decoder (integers in, floats and bools
refused), the batch (ids come out as strings, a duplicate is found across both spellings, the
length limit holds), the store (a prediction sent as 42 is joined by a label sent as "42"), and
end to end over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from exporter.api.decode import decode
from exporter.api.schemas import build_decoders
from exporter.batch import prepare_labels, prepare_predictions
from exporter.config import LimitSettings
from exporter.errors import Reason, RejectedInput
from exporter.schema import ModelSchema
from tests.conftest import T0, sample
from tests.test_store import Event, Label, make_store, snap, version

LIMITS = LimitSettings(max_value_length=24)
DECODERS = build_decoders(LIMITS)


def prepare(ids: list[Any]) -> list[str]:
    events = [Event(ident, {"x": 1.0}, 1) for ident in ids]
    schema = ModelSchema(None, None, ())
    batch = prepare_predictions(schema, events, T0, model="m", limits=LIMITS, max_categories=10)
    return batch.ids


def refused(ids: list[Any]) -> RejectedInput:
    with pytest.raises(RejectedInput) as info:
        prepare(ids)
    return info.value


# -- the wire decoder ---------------------------------------------------------------------------


@pytest.mark.parametrize("ident", [42, -3, 0, 2**70, "42"])
def test_integer_and_string_ids_decode(ident: Any) -> None:
    body = {"model": "m", "events": [{"id": ident, "features": {}, "prediction": 1}]}
    event = decode(DECODERS.predictions, json.dumps(body).encode()).events[0]
    assert event.id == ident and type(event.id) is type(ident)


@pytest.mark.parametrize(
    ("raw", "value", "fragment"),
    [
        ("1.0", 1.0, "not an integer: write 1)"),
        ("1e3", 1000.0, "not an integer: write 1000)"),
        ("1.5", 1.5, "expected a string or an integer, got 1.5"),
        ("true", True, "expected a string or an integer, got True"),
        ("null", None, "expected a string or an integer, got None"),
    ],
)
def test_a_float_or_bool_id_is_refused_naming_field_and_value(
    raw: str, value: Any, fragment: str
) -> None:
    body = '{"model": "m", "labels": [{"id": "a", "label": 1}, {"id": ' + raw + ', "label": 0}]}'
    with pytest.raises(RejectedInput) as info:
        decode(DECODERS.labels, body.encode())
    exc = info.value
    assert (exc.reason, exc.field) == (Reason.INVALID_FIELD, "labels[1].id")
    assert exc.value == value and type(exc.value) is type(value)
    assert fragment in exc.message


# -- the batch ----------------------------------------------------------------------------------


def test_integer_ids_become_their_decimal_strings() -> None:
    assert prepare([42, "x", -7, 0, 2**70]) == ["42", "x", "-7", "0", str(2**70)]
    labels = [Label(5, 1), Label("6", 0)]
    batch = prepare_labels(ModelSchema("binary", None, ()), labels, T0, model="m", limits=LIMITS)
    assert batch.ids == ["5", "6"]


def test_string_ids_are_kept_as_they_are() -> None:
    ids = ["a", "42", "é"]
    assert prepare(ids) == ids


@pytest.mark.parametrize(
    ("ids", "index", "value", "fragments"),
    [
        ([42, "x", "42"], 2, "42", ["'42' appears more than once", "events[0]", "42 and '42'"]),
        (["7", 7], 1, 7, ["'7' appears more than once", "'7' and 7 are the same id"]),
        ([7, 8, 7], 2, 7, ["'7' appears more than once", "(first at events[0])"]),
    ],
)
def test_the_same_id_twice_in_one_batch_is_a_duplicate_in_either_spelling(
    ids: list[Any], index: int, value: Any, fragments: list[str]
) -> None:
    exc = refused(ids)
    assert (exc.reason, exc.field) == (Reason.DUPLICATE_ID, f"events[{index}].id")
    assert exc.value == value and type(exc.value) is type(value)
    for fragment in fragments:
        assert fragment in exc.message, exc.message
    if type(ids[index]) is type(ids[0]):
        assert "same id" not in exc.message


def test_an_integer_id_obeys_the_length_limit_of_string_ids() -> None:
    assert prepare([10**23]) == [str(10**23)]  # 24 characters: the limit
    exc = refused(["a", -(10**23)])  # 25 with its sign
    assert (exc.reason, exc.field, exc.value) == (Reason.STRING_TOO_LONG, "events[1].id", -(10**23))
    assert "25 characters" in exc.message and "max_value_length (24)" in exc.message


def test_a_bool_id_is_refused_by_the_batch_too() -> None:
    exc = refused(["a", True])
    assert (exc.reason, exc.field, exc.value) == (Reason.INVALID_FIELD, "events[1].id", True)


# -- the store ----------------------------------------------------------------------------------


def test_a_prediction_sent_as_an_integer_is_joined_by_its_string_and_back() -> None:
    store, clock = make_store()
    store.add_predictions("m", None, [Event(42, {"x": 1.0}, 1), Event("7", {"x": 1.0}, 0)])
    clock.advance(10)
    result = store.add_labels("m", [Label("42", 1), Label(7, 0)])
    assert (result.joined, result.pending) == (2, 0)
    # A retry in the other spelling is a duplicate, for predictions and for labels.
    assert store.add_predictions("m", None, [Event("42", {"x": 1.0}, 1)]).duplicates == 1
    assert store.add_labels("m", [Label(42, 1)]).duplicates == 1
    v = version(snap(store))
    assert (v.counters.predictions, v.counters.labels) == (2, 2)
    assert v.counters.outcomes.sum() == 2


# -- over HTTP ----------------------------------------------------------------------------------


def test_integer_ids_over_http(make_exporter) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("m", [{"id": i, "features": {"a": 1.0}, "prediction": i % 2} for i in range(4)])
    assert exp.labels("m", [{"id": str(i), "label": i % 2} for i in range(3)])["joined"] == 3
    assert exp.labels("m", [{"id": 3, "label": 0}])["joined"] == 1
    m = exp.metrics()
    key = {"model": "m", "model_version": "default"}
    assert sample(m, "model_labels_total", **key) == 4
    assert sample(m, "model_pending_predictions", **key) == 0
    assert sample(m, "model_accuracy", **key, window="1h") == 0.75

    r = exp.client.post(
        "/v1/predictions",
        json={"model": "m", "events": [{"id": 1.0, "features": {}, "prediction": 1}]},
    )
    assert r.status_code == 422
    assert r.json() == {
        "detail": "events[0].id: expected a string or an integer, got 1.0 (a number with a "
        "fraction or an exponent is not an integer: write 1)",
        "reason": "invalid_field",
        "field": "events[0].id",
        "value": 1.0,
    }
    twice = [
        {"id": 9, "features": {}, "prediction": 1},
        {"id": "9", "features": {}, "prediction": 0},
    ]
    r = exp.client.post("/v1/predictions", json={"model": "m", "events": twice})
    assert r.status_code == 422
    assert (r.json()["reason"], r.json()["field"], r.json()["value"]) == (
        "duplicate_id",
        "events[1].id",
        "9",
    )
    assert sample(exp.metrics(), "model_predictions_total", **key) == 4
