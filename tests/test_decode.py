"""Decoding request bodies with the real wire types, directly (no HTTP): what decodes, and for
what does not, the reason, field path, value and event count of the rejection. Ends with a
property: whatever the body, ``decode`` returns or raises a ``RejectedInput`` whose field is a
path into the document, never anything else."""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.api.decode import decode, diagnose
from exporter.api.schemas import build_decoders
from exporter.config import LimitSettings
from exporter.errors import NO_VALUE, Reason, RejectedInput

NAME, VALUE = 16, 24  # limits.max_name_length, limits.max_value_length
DECODERS = build_decoders(LimitSettings(max_name_length=NAME, max_value_length=VALUE))
PREDICTIONS, LABELS, REFERENCE = DECODERS.predictions, DECODERS.labels, DECODERS.reference


def event(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": f"e{i}", "features": {"x": float(i), "c": "a"}, "prediction": i % 2, **fields}


def batch(events: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "events": events, **fields}


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def rejected(decoder: Any, body: bytes | str) -> RejectedInput:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(RejectedInput) as info:
        decode(decoder, raw)
    return info.value


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, and a bool never equal to a number."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


# -- what decodes -------------------------------------------------------------------------------


def test_a_valid_prediction_batch_decodes() -> None:
    body = batch(
        [
            event(0, timestamp="2026-01-02T03:04:05.5+02:00", label=1),
            event(1, timestamp=1_700_000_000.25),
            {
                "id": "x" * VALUE,
                "features": {"n" * NAME: None, "b": True},
                "prediction": "c" * VALUE,
            },
        ],
        model_version="v1",
    )
    out = decode(PREDICTIONS, dumps(body))
    assert (out.model, out.model_version, len(out.events)) == ("m", "v1", 3)
    first, second, third = out.events
    assert first.timestamp == datetime(2026, 1, 2, 1, 4, 5, 500_000, tzinfo=UTC)
    assert (first.label, first.features) == (1, {"x": 0.0, "c": "a"})
    assert (second.timestamp, second.label) == (1_700_000_000.25, None)
    assert third.features == {"n" * NAME: None, "b": True}
    assert third.prediction == "c" * VALUE and third.timestamp is None


def test_valid_label_and_reference_bodies_decode() -> None:
    labels = decode(
        LABELS,
        dumps({"model": "m", "labels": [{"id": "a", "label": 2.5}, {"id": "b", "label": "x"}]}),
    )
    assert [(lbl.id, lbl.label, lbl.timestamp) for lbl in labels.labels] == [
        ("a", 2.5, None),
        ("b", "x", None),
    ]
    ref = decode(
        REFERENCE,
        dumps({"features": {"a": [1, None, 2.5], "b": ["u", True]}, "labels": [0, None, "k"]}),
    )
    assert ref.features == {"a": [1.0, None, 2.5], "b": ["u", True]}
    assert (ref.predictions, ref.labels) == (None, [0, None, "k"])


# -- malformed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \r\n\t "])
def test_an_empty_body_is_malformed(body: bytes) -> None:
    exc = rejected(PREDICTIONS, body)
    assert (exc.reason, exc.field, exc.events) == (Reason.MALFORMED_JSON, None, 1)
    assert "empty" in exc.message


def test_invalid_json_names_its_line_and_column() -> None:
    text = '{\n  "model": "m",\n  "events": [1, 2,, 3]\n}'
    with pytest.raises(json.JSONDecodeError) as oracle:
        json.loads(text)
    exc = rejected(PREDICTIONS, text)
    assert (exc.reason, exc.field, exc.events) == (Reason.MALFORMED_JSON, None, 1)
    assert (oracle.value.lineno, oracle.value.colno) == (3, 19)
    assert "line 3, column 19" in exc.message and oracle.value.msg in exc.message
    assert exc.status_code == 400


@pytest.mark.parametrize("cut", [1, 10, 25, -1])
def test_truncated_json_says_so(cut: int) -> None:
    body = dumps(batch([event(0), event(1)]))[:cut]
    exc = rejected(PREDICTIONS, body)
    assert exc.reason == Reason.MALFORMED_JSON
    assert f"ends after {len(body)} bytes" in exc.message and "truncated" in exc.message


def test_trailing_garbage_is_malformed() -> None:
    exc = rejected(PREDICTIONS, dumps(batch([])) + b" x")
    assert exc.reason == Reason.MALFORMED_JSON and "Extra data" in exc.message


def test_a_body_that_is_not_utf8() -> None:
    body = b'{"model": "caf\xe9", "events": []}'
    exc = rejected(PREDICTIONS, body)
    assert (exc.reason, exc.field) == (Reason.MALFORMED_JSON, None)
    assert f"at byte {body.index(0xE9)}" in exc.message and "UTF-8" in exc.message


def test_a_body_nested_too_deeply() -> None:
    exc = rejected(PREDICTIONS, '{"model": "m", "events": [], "x": ' + "[" * 100_000)
    assert exc.reason == Reason.MALFORMED_JSON


@pytest.mark.parametrize(
    ("body", "kind"),
    [("[1, 2]", "an array"), ('"m"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_the_body_must_be_an_object(body: str, kind: str) -> None:
    exc = rejected(PREDICTIONS, body)
    assert (exc.reason, exc.field, exc.events) == (Reason.INVALID_FIELD, None, 1)
    assert exc.message == f"the body must be a JSON object, got {kind}"


# -- non-finite numbers -------------------------------------------------------------------------


def with_literal(document: Any, literal: str) -> bytes:
    """The document with the placeholder string "@" replaced by a raw JSON literal."""
    return json.dumps(document).replace('"@"', literal).encode()


LITERALS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


def check_non_finite(exc: RejectedInput, literal: str, field: str) -> None:
    assert exc.reason == Reason.NON_FINITE
    assert exc.field == field
    value = float(literal)
    assert (math.isnan(exc.value) and math.isnan(value)) or exc.value == value


@pytest.mark.parametrize("literal", LITERALS)
@pytest.mark.parametrize(
    ("document", "field"),
    [
        (batch([event(0), event(1, features={"x": 1.0, "age": "@"})]), "events[1].features.age"),
        (batch([event(0), event(1), event(2, timestamp="@")]), "events[2].timestamp"),
        (batch([event(0, prediction="@")]), "events[0].prediction"),
        (batch([event(0), event(1, label="@")]), "events[1].label"),
        (batch([event(0)], extra="@"), "extra"),  # even in an unknown field
        (
            {"model": "m", "labels": [{"id": "a", "label": 1}, {"id": "b", "label": "@"}]},
            "labels[1].label",
        ),
        (
            {"model": "m", "labels": [{"id": "a", "label": 1, "timestamp": "@"}]},
            "labels[0].timestamp",
        ),
    ],
)
def test_non_finite_numbers_in_events_are_refused_with_their_path(
    literal: str, document: dict[str, Any], field: str
) -> None:
    decoder = LABELS if "labels" in document else PREDICTIONS
    exc = rejected(decoder, with_literal(document, literal))
    check_non_finite(exc, literal, field)
    assert exc.events == len(document.get("events", document.get("labels")))


@pytest.mark.parametrize("literal", LITERALS)
@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"features": {"a": [1, 2], "b.c": [None, "@"]}}, "features.b.c[1]"),
        ({"features": {"a": [1]}, "predictions": [0, 1, "@"]}, "predictions[2]"),
        ({"features": {}, "labels": ["@"]}, "labels[0]"),
    ],
)
def test_non_finite_numbers_in_a_reference_are_refused_with_their_path(
    literal: str, document: dict[str, Any], field: str
) -> None:
    check_non_finite(rejected(REFERENCE, with_literal(document, literal)), literal, field)


def test_the_first_non_finite_number_is_named() -> None:
    body = with_literal(
        batch([event(0), event(1, features={"x": "@"}), event(2, prediction="@")]), "NaN"
    )
    assert rejected(PREDICTIONS, body).field == "events[1].features.x"


def test_large_finite_numbers_are_accepted() -> None:
    body = with_literal(batch([event(0, features={"x": "@"})]), "1.7976931348623157e308")
    assert decode(PREDICTIONS, body).events[0].features["x"] == 1.7976931348623157e308


def test_an_integer_literal_beyond_float_range_is_non_finite() -> None:
    exc = rejected(
        PREDICTIONS, with_literal(batch([event(0, features={"x": "@"})]), "1" + "0" * 400)
    )
    assert (exc.reason, exc.field) == (Reason.NON_FINITE, "events[0].features.x")


def test_an_integer_literal_of_5000_digits_is_rejected() -> None:
    exc = rejected(PREDICTIONS, with_literal(batch([event(0, features={"x": "@"})]), "1" * 5000))
    assert exc.field == "events[0].features.x"


# -- wrong, missing and unknown fields ----------------------------------------------------------


@pytest.mark.parametrize(
    ("decoder", "document", "field", "value"),
    [
        (
            PREDICTIONS,
            batch([event(i) for i in range(3)] + [event(3, features={"b": {}})]),
            "events[3].features.b",
            {},
        ),
        (
            PREDICTIONS,
            batch([event(0), event(1, features={"b": [1]})]),
            "events[1].features.b",
            [1],
        ),
        (PREDICTIONS, batch([event(0), event(1, prediction=None)]), "events[1].prediction", None),
        (PREDICTIONS, batch([event(0), event(1, prediction=[0])]), "events[1].prediction", [0]),
        (PREDICTIONS, batch([event(0, label={"a": 1})]), "events[0].label", {"a": 1}),
        (PREDICTIONS, batch([event(0, id=7.0)]), "events[0].id", 7.0),  # an int id is fine
        (PREDICTIONS, batch([event(0), event(1, features=[1, 2])]), "events[1].features", [1, 2]),
        (PREDICTIONS, batch([event(0), 5]), "events[1]", 5),
        (PREDICTIONS, {"model": "m", "events": {"0": event(0)}}, "events", {"0": event(0)}),
        (PREDICTIONS, {"model": 3, "events": []}, "model", 3),
        (PREDICTIONS, batch([], model_version=1), "model_version", 1),
        (
            LABELS,
            {"model": "m", "labels": [{"id": "a", "label": 1}, {"id": "b", "label": None}]},
            "labels[1].label",
            None,
        ),
        (REFERENCE, {"features": {"a": [1, {}]}}, "features.a[1]", {}),
        (REFERENCE, {"features": {"a": 1}}, "features.a", 1),
        (REFERENCE, {"features": {}, "predictions": [1, [2]]}, "predictions[1]", [2]),
        (REFERENCE, {"features": {}, "labels": "abc"}, "labels", "abc"),
    ],
)
def test_a_wrong_type_is_named_with_its_path_and_value(
    decoder: Any, document: Any, field: str, value: Any
) -> None:
    exc = rejected(decoder, dumps(document))
    assert (exc.reason, exc.field) == (Reason.INVALID_FIELD, field)
    assert same(exc.value, value)
    assert exc.status_code == 422
    items = document.get("events", document.get("labels"))
    assert exc.events == (max(1, len(items)) if isinstance(items, list) else 1)


@pytest.mark.parametrize(
    ("decoder", "document", "field"),
    [
        (PREDICTIONS, {"events": []}, "model"),
        (PREDICTIONS, {"model": "m"}, "events"),
        (PREDICTIONS, batch([event(0), {"id": "b", "features": {}}]), "events[1].prediction"),
        (PREDICTIONS, batch([{"id": "b", "prediction": 1}]), "events[0].features"),
        (LABELS, {"model": "m", "labels": [{"label": 1}]}, "labels[0].id"),
        (REFERENCE, {"predictions": [1]}, "features"),
    ],
)
def test_a_missing_required_field(decoder: Any, document: Any, field: str) -> None:
    exc = rejected(decoder, dumps(document))
    assert (exc.reason, exc.field, exc.value) == (Reason.INVALID_FIELD, field, NO_VALUE)
    assert exc.message == "required field missing"


@pytest.mark.parametrize(
    ("decoder", "document", "field"),
    [
        (PREDICTIONS, batch([event(0), event(1), event(2, extra=1)]), "events[2].extra"),
        (PREDICTIONS, batch([], version="1"), "version"),
        (LABELS, {"model": "m", "labels": [{"id": "a", "label": 1, "ts": 0}]}, "labels[0].ts"),
        (REFERENCE, {"features": {}, "prediction": [1]}, "prediction"),
    ],
)
def test_an_unknown_field(decoder: Any, document: Any, field: str) -> None:
    exc = rejected(decoder, dumps(document))
    assert (exc.reason, exc.field) == (Reason.INVALID_FIELD, field)
    assert "unknown field" in exc.message


# -- strings, names and timestamps --------------------------------------------------------------

LONG_ID, LONG_NAME = "i" * (VALUE + 1), "n" * (NAME + 1)


@pytest.mark.parametrize(
    ("decoder", "document", "field", "value"),
    [
        (PREDICTIONS, batch([event(0), event(1, id=LONG_ID)]), "events[1].id", LONG_ID),
        (PREDICTIONS, {"model": LONG_NAME, "events": []}, "model", LONG_NAME),
        (PREDICTIONS, batch([], model_version=LONG_NAME), "model_version", LONG_NAME),
        (PREDICTIONS, batch([event(0, features={"c": LONG_ID})]), "events[0].features.c", LONG_ID),
        (
            PREDICTIONS,
            batch([event(0, features={LONG_NAME: 1.0})]),
            f"events[0].features.{LONG_NAME}",
            LONG_NAME,
        ),
        (PREDICTIONS, batch([event(0, prediction=LONG_ID)]), "events[0].prediction", LONG_ID),
        (PREDICTIONS, batch([event(0), event(1, label=LONG_ID)]), "events[1].label", LONG_ID),
        (LABELS, {"model": "m", "labels": [{"id": LONG_ID, "label": 1}]}, "labels[0].id", LONG_ID),
        (
            LABELS,
            {"model": "m", "labels": [{"id": "a", "label": LONG_ID}]},
            "labels[0].label",
            LONG_ID,
        ),
        (REFERENCE, {"features": {LONG_NAME: [1]}}, f"features.{LONG_NAME}", LONG_NAME),
        (REFERENCE, {"features": {"c": ["a", LONG_ID]}}, "features.c[1]", LONG_ID),
        (REFERENCE, {"features": {}, "labels": ["a", LONG_ID]}, "labels[1]", LONG_ID),
    ],
)
def test_strings_over_the_limits_are_too_long(
    decoder: Any, document: Any, field: str, value: str
) -> None:
    exc = rejected(decoder, dumps(document))
    assert (exc.reason, exc.field, exc.value) == (Reason.STRING_TOO_LONG, field, value)
    limit = NAME if value == LONG_NAME else VALUE
    assert f"at most {limit} characters" in exc.message


@pytest.mark.parametrize(
    ("decoder", "document", "field"),
    [
        (PREDICTIONS, {"model": "", "events": []}, "model"),
        (PREDICTIONS, batch([], model_version=""), "model_version"),
        (PREDICTIONS, batch([event(0, id="")]), "events[0].id"),
        (PREDICTIONS, batch([event(0), event(1, features={"": 1.0})]), "events[1].features."),
        (LABELS, {"model": "m", "labels": [{"id": "", "label": 1}]}, "labels[0].id"),
        (REFERENCE, {"features": {"": [1]}}, "features."),
    ],
)
def test_empty_names_and_ids_are_invalid(decoder: Any, document: Any, field: str) -> None:
    exc = rejected(decoder, dumps(document))
    assert (exc.reason, exc.field, exc.value) == (Reason.INVALID_FIELD, field, "")
    assert "non-empty" in exc.message


def test_empty_category_values_are_fine() -> None:
    body = dumps(batch([event(0, features={"c": ""}, prediction="", label="")]))
    assert decode(PREDICTIONS, body).events[0].features == {"c": ""}


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "", True, {}, [1]])
def test_a_bad_timestamp_is_an_invalid_timestamp(bad: Any) -> None:
    document = batch([event(0), event(1, timestamp=bad)])
    exc = rejected(PREDICTIONS, dumps(document))
    assert (exc.reason, exc.field) == (Reason.INVALID_TIMESTAMP, "events[1].timestamp")
    assert same(exc.value, bad)
    assert exc.events == 2
    lab = {"model": "m", "labels": [{"id": "a", "label": 1, "timestamp": bad}]}
    exc = rejected(LABELS, dumps(lab))
    assert (exc.reason, exc.field) == (Reason.INVALID_TIMESTAMP, "labels[0].timestamp")


# -- large batches ------------------------------------------------------------------------------


def test_the_first_bad_event_of_a_large_batch_is_named_quickly() -> None:
    events = [event(i) for i in range(5001)]
    events[4321]["features"]["b"] = {"nested": True}
    events[4800]["prediction"] = None  # a later problem is not the one named
    body = dumps(batch(events))
    valid = dumps(batch(events[:4321]))
    decode(PREDICTIONS, valid)  # warm up

    def fastest(run: Callable[[], object]) -> float:
        """The fastest of 3 runs: robust to a busy machine (a ratio, not a wall-clock bound)."""
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    exc = rejected(PREDICTIONS, body)
    assert (exc.reason, exc.field, exc.value) == (
        Reason.INVALID_FIELD,
        "events[4321].features.b",
        {"nested": True},
    )
    assert exc.events == 5001
    # Linear, not quadratic: diagnosing costs a few decodes of the batch (a walk per event
    # re-decoding the rest would cost thousands).
    ratio = fastest(lambda: rejected(PREDICTIONS, body)) / fastest(
        lambda: decode(PREDICTIONS, valid)
    )
    assert ratio < 50, f"diagnosing took {ratio:.0f} decodes of the valid part"


def test_diagnose_falls_back_to_the_decoders_message() -> None:
    """When the walk finds nothing wrong (the body is in fact valid), it says what msgspec said."""
    body = dumps(batch([event(0), event(1)]))
    exc = diagnose(body, PREDICTIONS.type, ValueError("something else"))
    assert (exc.reason, exc.field, exc.events) == (Reason.INVALID_FIELD, None, 2)
    assert exc.message == "not accepted: something else"


def test_a_lone_surrogate_is_rejected_without_a_field() -> None:
    exc = rejected(PREDICTIONS, b'{"model": "\\ud800", "events": []}')
    assert exc.field is None and "surrogate" in exc.message


# -- property: any body is decoded or rejected with a path into it ------------------------------

# Placeholder strings, replaced by raw literals after json.dumps (JSON has no such numbers).
RAW = {"\x00nan\x00": "NaN", "\x00inf\x00": "Infinity", "\x00ninf\x00": "-Infinity"}
RAW["\x00big\x00"] = "1e400"

# Valid documents first: names may hold dots and brackets, like real feature names can.
valid_names = st.text(alphabet="abz.[]0_ ", min_size=1, max_size=NAME)
valid_strings = st.text(max_size=VALUE)
feature_values = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), valid_strings
)
label_values = st.one_of(st.integers(-5, 5), st.floats(-1e9, 1e9), valid_strings, st.booleans())
valid_timestamps = st.one_of(
    st.none(),
    st.floats(0, 2e9),
    st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123+05:30"]),
)
valid_events = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=VALUE),
        "features": st.dictionaries(valid_names, feature_values, max_size=4),
        "prediction": label_values,
    },
    optional={"timestamp": valid_timestamps, "label": st.one_of(st.none(), label_values)},
)
valid_labels = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=VALUE), "label": label_values},
    optional={"timestamp": valid_timestamps},
)
DOCUMENTS = [
    (
        PREDICTIONS,
        st.fixed_dictionaries(
            {"model": valid_names, "events": st.lists(valid_events, max_size=5)},
            optional={"model_version": st.one_of(st.none(), valid_names)},
        ),
    ),
    (
        LABELS,
        st.fixed_dictionaries({"model": valid_names, "labels": st.lists(valid_labels, max_size=5)}),
    ),
    (
        REFERENCE,
        st.fixed_dictionaries(
            {"features": st.dictionaries(valid_names, st.lists(feature_values, max_size=4))},
            optional={
                "predictions": st.lists(st.one_of(st.none(), label_values), max_size=4),
                "labels": st.lists(st.one_of(st.none(), label_values), max_size=4),
            },
        ),
    ),
]
# Then corruptions: bad values, bad names, missing and unknown fields, broken bytes.
special_values = st.sampled_from(
    [
        *RAW,
        10**400,
        -(10**30),
        "x" * (VALUE + 1),
        "n" * (NAME + 1),
        "",
        "soon",
        "2026-01-02T03:04:05",
        True,
        None,
        {},
        [],
        [1, {}],
        {"a": None},
    ]
).map(copy.deepcopy)  # fresh containers: the corruptions below change them in place
bad_values = st.one_of(
    special_values,
    special_values,
    special_values,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=VALUE + 3),
)
bad_names = st.one_of(
    st.sampled_from(["", "n" * (NAME + 1), "id", "label", "events", "a.b", "[0]"]), valid_names
)


def locations(node: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield trail
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        yield from locations(value, (*trail, key))


def at(node: Any, trail: tuple[Any, ...]) -> Any:
    for key in trail:
        node = node[key]
    return node


@st.composite
def corrupted(draw: Any, document: Any) -> Any:
    document = copy.deepcopy(document)
    for _ in range(draw(st.sampled_from([0, 1, 2, 2, 3]))):
        trail = draw(st.sampled_from(list(locations(document))))
        node = at(document, trail)
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename", "lengthen"]))
        if op == "add" and isinstance(node, dict):
            node[draw(bad_names)] = draw(bad_values)
            continue
        if not trail:
            continue
        parent, key = at(document, trail[:-1]), trail[-1]
        if op == "replace":
            parent[key] = draw(bad_values)
        elif op == "delete":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(bad_names)] = parent.pop(key)
        elif op == "lengthen":
            parent[key] = f"{node}{'x' * VALUE}" if isinstance(node, str) else draw(bad_values)
    return document


def serialise(document: Any) -> str:
    text = json.dumps(document)
    for placeholder, literal in RAW.items():
        text = text.replace(json.dumps(placeholder), literal)
    return text


@st.composite
def bodies(draw: Any) -> tuple[Any, bytes]:
    decoder, documents = draw(st.sampled_from(DOCUMENTS))
    body = serialise(draw(corrupted(draw(documents)))).encode()
    damage = draw(st.sampled_from(["none"] * 8 + ["cut", "byte"]))
    if damage == "cut":
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif damage == "byte":
        where = draw(st.integers(0, len(body)))
        extra = draw(st.sampled_from([b"\xff", b",", b"]", b"{", b'"', b"0", b" ", b"\\"]))
        body = body[:where] + extra + body[where:]
    return decoder, body


def resolve(node: Any, path: str, top: bool = True) -> Iterator[tuple[str, Any, Any]]:
    """Every way ``path`` (``a.b[2].c``; keys may contain dots and brackets) leads into
    ``node``: ("node", value, key) for a part of the document, ("missing", parent, key) for a key
    absent from an object."""
    if path == "":
        yield ("node", node, None)
        return
    if isinstance(node, list):
        m = re.match(r"\[(\d+)\]", path)
        if m and int(m.group(1)) < len(node):
            for kind, value, key in resolve(node[int(m.group(1))], path[m.end() :], top=False):
                yield kind, value, key
        return
    if not isinstance(node, dict):
        return
    sep = "" if top else "."
    if not path.startswith(sep):
        return
    rest = path[len(sep) :]
    for key, value in node.items():
        if rest.startswith(key):
            tail = rest[len(key) :]
            if tail == "":
                yield ("node", value, key)
            elif tail[0] in ".[":
                yield from resolve(value, tail, top=False)
    if re.fullmatch(r"[a-z_]+", rest) and rest not in node:
        yield ("missing", node, rest)


def parsed(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body.decode("utf-8"), parse_constant=float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False, None


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=bodies())
def test_any_body_is_decoded_or_rejected_with_a_path_into_it(case: tuple[Any, bytes]) -> None:
    decoder, body = case
    ok, document = parsed(body)
    try:
        out = decode(decoder, body)
    except RejectedInput as exc:
        assert exc.reason in set(Reason)
        assert exc.events >= 1
        counted = [
            max(1, len(document[key]))
            for key in ("events", "labels")
            if isinstance(document, dict) and isinstance(document.get(key), list)
        ]
        assert exc.events == (counted[0] if counted else 1)
        if exc.field is None:
            return
        assert ok, f"{exc.field!r} named in a body that does not parse"
        found = list(resolve(document, exc.field))
        if exc.message == "required field missing":
            assert any(kind == "missing" for kind, _, _ in found), exc.field
            return
        nodes = [(value, key) for kind, value, key in found if kind == "node"]
        assert nodes, f"{exc.field!r} is not a path of {document!r}"
        if exc.value is not NO_VALUE:
            assert any(same(exc.value, v) or same(exc.value, k) for v, k in nodes), (
                exc.field,
                exc.value,
            )
    else:
        assert ok and isinstance(document, dict)
        assert type(out).__name__ in {"PredictionBatch", "LabelBatch", "ReferenceBody"}
        if type(out).__name__ == "PredictionBatch":
            assert len(out.events) == len(document["events"])


def test_the_path_resolver_of_the_property() -> None:
    document = {"features": {"a.b": {"c": [1, {"d": 2}]}, "a": 3}, "events": [{"id": "x"}]}
    assert [v for kind, v, _ in resolve(document, "features.a.b.c[1].d") if kind == "node"] == [2]
    assert [(v, k) for kind, v, k in resolve(document, "features.a") if kind == "node"] == [
        (3, "a")
    ]
    assert list(resolve(document, "features.a.b.c[2]")) == []
    assert list(resolve(document, "features.x.y")) == []
    assert list(resolve(document, "events[0]id")) == []
    assert [kind for kind, _, _ in resolve(document, "events[0].prediction")] == ["missing"]
