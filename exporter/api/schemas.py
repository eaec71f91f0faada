"""Wire schemas of API v1, decoded and validated by msgspec straight from the request body.

Why msgspec rather than FastAPI's pydantic body models: parsing a 1000-event batch into pydantic
models caps ingest near 50,000 events/s on one core; msgspec's typed decoder validates the same
body about 4x faster (``bench/ingest.py`` measures both). FastAPI still documents these schemas in
OpenAPI: :func:`openapi_body` turns them into JSON Schema for ``/docs``.

String lengths are bounded here by the configured limits (:func:`build_decoders`), so an
over-long id or name is refused while decoding, before it can reach any state.

The JSON Schema says what the API accepts, no more (schemathesis checks both ways,
``tests/test_schemathesis.py``): model and version names follow :func:`name_pattern`,
timestamps :data:`TIMESTAMP_PATTERN` or epoch seconds from 2000, numbers are finite, a batch
holds at most ``limits.max_batch_events`` items. Those parts are documentation only
(``extra_json_schema``): the decoder and the checks behind it enforce the same rules with their
own reasons and messages. What a schema cannot say (a class that conflicts with the model's
task, a limit reached, an id twice in one batch, a timestamp in the future) is a documented 422.

(No ``from __future__ import annotations`` here: msgspec must see the limits-bearing types built
inside :func:`_structs`, which string annotations would hide.)
"""

import functools
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from fastapi import Path

from exporter.api.decode import REASON
from exporter.config import LimitSettings
from exporter.encoding import EARLIEST_TIME
from exporter.errors import Reason
from exporter.reference import MAX_MAGNITUDE

#: The largest finite float: JSON numbers beyond it are refused (``non_finite``).
FLOAT_MAX: Final = sys.float_info.max
#: RFC 3339 text with a UTC offset, as msgspec reads it (``T``, ``t`` or a space; the offset's
#: colon optional), from the year 2001: 2000-01-01 with a positive offset is before the earliest
#: time accepted. 29 February is left out (the pattern cannot tell leap years), so that every
#: text it matches is a real date.
TIMESTAMP_PATTERN: Final = (
    r"^(?:200[1-9]|20[1-9]\d|2[1-9]\d\d|[3-9]\d{3})-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)"
    r"[Tt ](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)$"
)
_FINITE: Final = {"minimum": -FLOAT_MAX, "maximum": FLOAT_MAX}
_PRESENT: Final = {"contains": {"not": {"type": "null"}}}
_MAGNITUDE: Final = {"minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}
_COLUMN: Final = {
    **_PRESENT,
    "anyOf": [
        {"items": {"anyOf": [{"type": "number", **_MAGNITUDE}, {"type": "null"}]}},
        {"items": {"type": ["string", "boolean", "null"]}},
    ],
}
_TARGET: Final = {
    **_PRESENT,
    "anyOf": [
        {"items": {"anyOf": [{"type": "number", **_MAGNITUDE}, {"type": "null"}]}},
        {"contains": {"type": ["string", "boolean"]}},
    ],
}
#: A reference holds features, predictions or labels.
_SOME_DATA: Final = {
    "anyOf": [
        {"properties": {"features": {"minProperties": 1}}},
        {"required": ["predictions"], "properties": {"predictions": {"type": "array"}}},
        {"required": ["labels"], "properties": {"labels": {"type": "array"}}},
    ]
}
#: Hangul vowel and trailing jamo: they compose with the syllable before them (NFC).
_JAMO: Final = (range(0x1161, 0x1176), range(0x11A8, 0x11C3))


@functools.cache
def name_pattern() -> str:
    """:mod:`exporter.names`' rule as a regular expression (ECMA-262, as JSON Schema has them):
    printable characters but ``/``, no space first or last, not ``.`` or ``..``, and only
    characters that are in NFC on their own.

    Two approximations, both stricter than the rule: the ~110 characters that compose with the
    one before them (combining accents, Hangul jamo) are left out, so that a decomposed ``é``
    never matches; and the order of several combining marks is not checked. Built once (~0.1 s).

    >>> import re
    >>> [bool(re.match(name_pattern(), n)) for n in ("betrug prüfung", "a/b", " a", "..", "\\x00")]
    [True, False, False, False, False]
    """
    ranges: list[list[int]] = []
    combining: set[int] = {cp for jamo in _JAMO for cp in jamo}
    allowed: list[int] = []
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        if not char.isprintable() or char == "/":
            continue
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<"):
            if unicodedata.normalize("NFC", char) != char:
                continue  # never in NFC text
            parts = decomposition.split()
            if len(parts) == 2:
                combining.add(int(parts[1], 16))
        allowed.append(cp)
    for cp in allowed:
        if cp in combining:
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    members = "".join(
        _literal(low) if low == high else f"{_literal(low)}-{_literal(high)}"
        for low, high in ranges
    )
    return rf"^(?!\.\.?$)(?! )(?!.* $)[{members}]+$"


def _literal(cp: int) -> str:
    """A code point as it stands in a character class."""
    char = chr(cp)
    return "\\" + char if char in "\\]^-[" else char


def documented(**schema: Any) -> msgspec.Meta:
    """JSON Schema keywords for the document only: the decoder does not check them, the code
    behind it does, with its own reasons (``batch_too_large``, ``too_many_features``)."""
    return msgspec.Meta(extra_json_schema=schema)


def name_json_schema(max_length: int) -> dict[str, Any]:
    """The JSON Schema of a model or version name."""
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": name_pattern()}


def name_param(limits: LimitSettings, description: str) -> Any:
    """A path parameter holding a model or version name: its length is checked (422
    ``string_too_long``), its pattern documented (the route checks the rule, or answers 404)."""
    return Path(
        min_length=1,
        max_length=limits.max_name_length,
        description=description,
        json_schema_extra={"pattern": name_pattern()},
    )


def _structs(limits: LimitSettings) -> dict[str, Any]:
    """Build the schema classes with the configured string limits baked into their types."""
    name = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_name_length)]
    # A model or version name: the same, and exporter.names' rule documented as a pattern.
    model_name = Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=limits.max_name_length,
            extra_json_schema={"pattern": name_pattern()},
        ),
    ]
    # An integer id is its decimal string (exporter/batch.py); floats and bools are refused.
    ident = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_value_length)] | int
    value = Annotated[str, msgspec.Meta(max_length=limits.max_value_length)]
    number = Annotated[float, msgspec.Meta(extra_json_schema=_FINITE)]
    feature_value = number | value | bool | None
    label_value = Annotated[int, msgspec.Meta(extra_json_schema=_FINITE)] | number | value | bool
    epoch = Annotated[float, msgspec.Meta(extra_json_schema={**_FINITE, "minimum": EARLIEST_TIME})]
    text_time = Annotated[datetime, msgspec.Meta(extra_json_schema={"pattern": TIMESTAMP_PATTERN})]
    # The reason tag names this field's failures for the structured rejection (api/decode.py).
    when = Annotated[
        epoch | text_time | None, msgspec.Meta(extra={REASON: Reason.INVALID_TIMESTAMP.value})
    ]
    batch = documented(minItems=1, maxItems=limits.max_batch_events)  # exporter/batch.py
    # A reference column: one value at least, numbers (within what drift statistics can take)
    # or categories, never both.
    column = Annotated[list[feature_value], msgspec.Meta(extra_json_schema=_COLUMN)]
    target = Annotated[list[label_value | None], msgspec.Meta(extra_json_schema=_TARGET)]

    class PredictionEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """One prediction. ``label`` is optional inline ground truth."""

        id: ident
        features: Annotated[
            dict[name, feature_value], documented(maxProperties=limits.max_features)
        ]
        prediction: label_value
        timestamp: when = None
        label: label_value | None = None
        #: A binary model's positive-class probability (exporter/probabilities.py checks it).
        score: Annotated[float, documented(minimum=0, maximum=1)] | None = None
        #: A probability per class, keyed by the class as a string ("1", "true", "cat").
        probabilities: (
            Annotated[
                dict[value, Annotated[float, documented(minimum=0, maximum=1)]],
                documented(minProperties=1, maxProperties=limits.max_classes),
            ]
            | None
        ) = None

    class PredictionBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        model: model_name
        model_version: model_name | None = None
        events: Annotated[list[PredictionEvent], batch]

    class Label(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """Ground truth for the prediction with this id. ``timestamp`` defaults to arrival."""

        id: ident
        label: label_value
        timestamp: when = None

    class LabelBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        model: model_name
        labels: Annotated[list[Label], batch]

    class ReferenceBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """Columnar reference data: one list of values per feature, and optionally the
        reference predictions and labels (for prediction and label drift)."""

        features: dict[name, column]
        predictions: target | None = None
        labels: target | None = None
        #: Per row, a binary model's positive-class probability (exporter/scored_reference.py).
        scores: list[Annotated[float, documented(minimum=0, maximum=1)] | None] | None = None
        #: Per row, a probability per class, keyed by the class as a string.
        probabilities: (
            list[dict[value, Annotated[float, documented(minimum=0, maximum=1)]] | None] | None
        ) = None

    return {
        "PredictionEvent": PredictionEvent,
        "PredictionBatch": PredictionBatch,
        "Label": Label,
        "LabelBatch": LabelBatch,
        "ReferenceBody": Annotated[ReferenceBody, msgspec.Meta(extra_json_schema=_SOME_DATA)],
    }


@dataclass(frozen=True)
class Decoders:
    predictions: msgspec.json.Decoder[Any]
    labels: msgspec.json.Decoder[Any]
    reference: msgspec.json.Decoder[Any]
    types: dict[str, Any]


def build_decoders(limits: LimitSettings) -> Decoders:
    types = _structs(limits)
    return Decoders(
        predictions=msgspec.json.Decoder(types["PredictionBatch"]),
        labels=msgspec.json.Decoder(types["LabelBatch"]),
        reference=msgspec.json.Decoder(types["ReferenceBody"]),
        types=types,
    )


def openapi_body(decoders: Decoders, type_name: str, example: Any) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for a msgspec type (components inlined under ``$defs``)."""
    schema = msgspec.json.schema(decoders.types[type_name])
    schema = _inline_refs(schema)
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve msgspec's ``#/$defs/...`` references so the schema stands alone in OpenAPI."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                siblings = {k: resolve(v) for k, v in node.items() if k not in ("$ref", "$defs")}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **siblings}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
