"""``PUT /v1/models/{model}/reference``: JSON columns or CSV.

The body is read on the event loop (bounded by ``limits.max_reference_bytes``); parsing it and
building the reference (which sorts every numeric column) run in the thread pool: a 64 MiB
upload takes seconds of CPU that must not stall other requests.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from exporter.api.context import Context
from exporter.api.decode import decode, media_type, read_body
from exporter.api.responses import WRITE, refusals
from exporter.api.schemas import name_param, name_pattern, openapi_body
from exporter.errors import InvalidReference, Reason, RejectedInput
from exporter.names import check_name
from exporter.reference import Reference, build_reference
from exporter.reference_io import parse_csv_columns
from exporter.scored_reference import probability_columns as probability_columns_of

_EXAMPLE = {"features": {"amount": [10.0, 12.5, 8.1], "country": ["DE", "FR", "DE"]}}
_CSV = ("text/csv", "application/csv")


def reference_from_body(
    ctx: Context,
    model: str,
    kind: str,
    body: bytes,
    prediction_column: str | None,
    label_column: str | None,
    score_column: str | None = None,
    probability_columns: str | None = None,
) -> Reference:
    """Parse an uploaded reference (JSON or CSV, by media type) and build it."""
    settings = ctx.settings
    spec = settings.models.get(model)
    predictions = labels = scores = probabilities = None
    columns_of_probabilities: dict[str, str] | None = None
    if kind in _CSV:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidReference(
                f"the body is not UTF-8 text ({exc.reason})", reason=Reason.MALFORMED_CSV
            ) from None
        columns = parse_csv_columns(text, max_name_length=settings.limits.max_name_length)
        prediction_column = prediction_column or (
            spec.reference_prediction_column if spec else None
        )
        label_column = label_column or (spec.reference_label_column if spec else None)
        score_column = score_column or (spec.reference_score_column if spec else None)
        spec_columns = probability_columns or (spec.reference_probability_columns if spec else None)
        try:
            columns_of_probabilities = probability_columns_of(spec_columns, list(columns))
        except ValueError as exc:
            raise InvalidReference(
                f"probability_columns: {exc}", field="probability_columns", value=spec_columns
            ) from None
    elif not kind or kind == "application/json" or kind.endswith("+json"):
        parsed = decode(ctx.decoders.reference, body)
        columns, predictions, labels = parsed.features, parsed.predictions, parsed.labels
        scores, probabilities = parsed.scores, parsed.probabilities
        prediction_column = label_column = score_column = None
    else:
        raise RejectedInput(
            Reason.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {kind!r} is not supported here; send application/json or text/csv",
            value=kind,
        )
    return build_reference(
        columns,
        settings=settings.drift,
        source="upload",
        created=ctx.store.clock(),
        categorical=spec.categorical if spec else (),
        prediction_column=prediction_column,
        label_column=label_column,
        predictions=predictions,
        labels=labels,
        score_column=score_column,
        probability_columns=columns_of_probabilities,
        scores=scores,
        probabilities=probabilities,
        max_classes=settings.limits.max_classes,
    )


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["reference"])
    limits = ctx.settings.limits
    name = Annotated[str | None, Query(min_length=1, max_length=limits.max_name_length)]
    version = Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=limits.max_name_length,
            json_schema_extra={"pattern": name_pattern()},
        ),
    ]
    body_doc = openapi_body(ctx.decoders, "ReferenceBody", _EXAMPLE)

    @r.put(
        "/v1/models/{model}/reference",
        summary="Replace the drift reference of a model (or of one version)",
        openapi_extra={
            "requestBody": {
                **body_doc,
                "content": {
                    **body_doc["content"],
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "amount,country\n10.0,DE\n12.5,FR\n",
                    },
                },
            }
        },
        # 404: a model name holding '/'; 400 and 422 for a CSV body: what a schema of text
        # cannot say (malformed_csv, invalid_reference).
        responses=refusals((*WRITE, 404)),
    )
    async def put_reference(
        request: Request,
        model: Annotated[str, name_param(limits, "A model name.")],
        model_version: version = None,
        prediction_column: name = None,
        label_column: name = None,
        score_column: name = None,
        probability_columns: Annotated[str | None, Query(min_length=1, max_length=4096)] = None,
    ) -> dict[str, Any]:
        """Columnar JSON ``{"features": {name: [values]}, "predictions"?: [...], "labels"?:
        [...]}`` or CSV (``Content-Type: text/csv``, a header row of column names;
        ``prediction_column`` and ``label_column`` name the CSV columns holding reference
        predictions and labels, ``score_column`` a binary model's scores and
        ``probability_columns`` (``CLASS=COLUMN,...`` or ``PREFIX*``) the probabilities per
        class; in JSON, ``scores`` and ``probabilities``, a value per row). Without
        ``model_version`` the reference applies to every version of the model, present and
        future. Without any upload, the first
        ``drift.reference_size`` predictions of each version become its reference. A reference
        of predictions and labels only (a holdout set) is valid."""
        check_name(model, "model")  # before reading a body of up to max_reference_bytes
        if model_version is not None:
            check_name(model_version, "model_version")
        kind = media_type(request)
        body = await read_body(request, limits.max_reference_bytes, "max_reference_bytes")

        def work() -> dict[str, Any]:
            reference = reference_from_body(
                ctx,
                model,
                kind,
                body,
                prediction_column,
                label_column,
                score_column,
                probability_columns,
            )
            known = ctx.store.set_reference(model, model_version, reference)
            ctx.telemetry.count_received("reference", 1)
            return {
                "model": model,
                "model_version": model_version,
                "scope": "version" if model_version else "model",
                **reference.summary(),
                "unknown_features": sorted(reference.features - set(known)) if known else [],
                "missing_features": sorted(set(known) - reference.features),
            }

        return await run_in_threadpool(work)

    return r
