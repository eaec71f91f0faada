"""Wire schemas of API v1, decoded and validated by msgspec straight from the request body.

Why msgspec rather than FastAPI's pydantic body models: parsing a 1000-event batch into pydantic
models caps ingest near 50,000 events/s on one core; msgspec's typed decoder validates the same
body about 4x faster (``bench/ingest.py`` measures both). FastAPI still documents these schemas in
OpenAPI: :func:`openapi_body` turns them into JSON Schema for ``/docs``.

String lengths are bounded here by the configured limits (:func:`build_decoders`), so an
over-long id or name is refused while decoding, before it can reach any state.

(No ``from __future__ import annotations`` here: msgspec must see the limits-bearing types built
inside :func:`_structs`, which string annotations would hide.)
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec

from exporter.api.decode import REASON
from exporter.config import LimitSettings
from exporter.errors import Reason


def _structs(limits: LimitSettings) -> dict[str, Any]:
    """Build the schema classes with the configured string limits baked into their types."""
    name = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_name_length)]
    # An integer id is its decimal string (exporter/batch.py); floats and bools are refused.
    ident = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_value_length)] | int
    value = Annotated[str, msgspec.Meta(max_length=limits.max_value_length)]
    feature_value = float | value | bool | None
    label_value = int | float | value | bool
    # The reason tag names this field's failures for the structured rejection (api/decode.py).
    when = Annotated[
        float | datetime | None, msgspec.Meta(extra={REASON: Reason.INVALID_TIMESTAMP.value})
    ]

    class PredictionEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """One prediction. ``label`` is optional inline ground truth."""

        id: ident
        features: dict[name, feature_value]
        prediction: label_value
        timestamp: when = None
        label: label_value | None = None

    class PredictionBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        model: name
        model_version: name | None = None
        events: list[PredictionEvent]

    class Label(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """Ground truth for the prediction with this id. ``timestamp`` defaults to arrival."""

        id: ident
        label: label_value
        timestamp: when = None

    class LabelBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        model: name
        labels: list[Label]

    class ReferenceBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
        """Columnar reference data: one list of values per feature, and optionally the
        reference predictions and labels (for prediction and label drift)."""

        features: dict[name, list[feature_value]]
        predictions: list[label_value | None] | None = None
        labels: list[label_value | None] | None = None

    return {
        "PredictionEvent": PredictionEvent,
        "PredictionBatch": PredictionBatch,
        "Label": Label,
        "LabelBatch": LabelBatch,
        "ReferenceBody": ReferenceBody,
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
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
