"""``POST /v1/predictions`` and ``POST /v1/labels``.

A batch is decoded, then committed, in two steps, each on the event loop when the body is small
(a 1000-event batch is ~5 ms of CPU in all; a hop to a thread would cost more than it saves)
and in the thread pool when the body is over :data:`OFFLOAD_BYTES`, so that one large batch
never stalls every other request. Before each step the request lets a scrape that is rendering
go first (:mod:`exporter.api.priority`).

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from exporter.api.context import Context
from exporter.api.decode import decode, read_body, require_json
from exporter.api.responses import WRITE, refusals
from exporter.api.schemas import openapi_body
from exporter.api.security import require_model
from exporter.errors import Reason, RejectedInput

#: Bodies larger than this are decoded and committed off the event loop (~2,000 events of
#: 20 features; ~10 ms of work).
OFFLOAD_BYTES = 1 << 20

T = TypeVar("T")

_PREDICTIONS_EXAMPLE = {
    "model": "fraud",
    "model_version": "v2",
    "events": [
        {
            "id": "req-1",
            "timestamp": "2026-01-02T03:04:05Z",
            "features": {"amount": 12.5, "country": "DE", "new_customer": True, "age": None},
            "prediction": 1,
        },
        {"id": "req-2", "features": {"amount": 3.0}, "prediction": 0, "label": 0},
    ],
}
_LABELS_EXAMPLE = {"model": "fraud", "labels": [{"id": "req-1", "label": 1}]}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Accepted. ``duplicates``: ids already seen (not counted again); "
        "``joined``: predictions joined with their label now; ``pending``: waiting.",
        "content": {
            "application/json": {
                "example": {"accepted": 2, "duplicates": 0, "joined": 1, "pending": 1}
            }
        },
    },
    # 404: labels for a model that has no predictions (unknown_model).
    **refusals((*WRITE, 404)),
}


async def _step(ctx: Context, body: bytes, work: Callable[[], T]) -> T:
    """One CPU-bound step of a request (decoding, or committing), after any scrape that is
    rendering; off the event loop when the body is large."""
    await ctx.priority.ingest()
    if len(body) > OFFLOAD_BYTES:
        return await run_in_threadpool(work)
    return work()


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["ingest"])
    limits = ctx.settings.limits

    def check_batch(count: int, what: str) -> None:
        if count > limits.max_batch_events:
            raise RejectedInput(
                Reason.BATCH_TOO_LARGE,
                f"{count} items in one batch is over limits.max_batch_events "
                f"({limits.max_batch_events})",
                field=what,
            )

    @r.post(
        "/v1/predictions",
        summary="Send a batch of prediction events",
        openapi_extra={
            "requestBody": openapi_body(ctx.decoders, "PredictionBatch", _PREDICTIONS_EXAMPLE)
        },
        responses=_RESPONSES,
    )
    async def post_predictions(request: Request) -> dict[str, int]:
        """Prediction events of one model version. ``model_version`` defaults to the configured
        ``default_model_version`` (``"default"``). Ids are unique per model; an id seen before
        is a duplicate (a retried batch is safe). ``timestamp`` is RFC 3339 or epoch seconds,
        default now. ``label`` is optional inline ground truth."""
        require_json(request)
        body = await read_body(request, limits.max_body_bytes)
        batch = await _step(ctx, body, lambda: decode(ctx.decoders.predictions, body))
        request.state.events = len(batch.events)  # what a rejection from here on counts
        require_model(request, batch.model)  # a token may be allowed some models only
        check_batch(len(batch.events), "events")
        result = await _step(
            ctx,
            body,
            lambda: ctx.store.add_predictions(batch.model, batch.model_version, batch.events),
        )
        ctx.telemetry.count_received("prediction", len(batch.events))
        return result.as_dict()

    @r.post(
        "/v1/labels",
        summary="Send ground-truth labels for earlier predictions",
        openapi_extra={"requestBody": openapi_body(ctx.decoders, "LabelBatch", _LABELS_EXAMPLE)},
        responses=_RESPONSES,
    )
    async def post_labels(request: Request) -> dict[str, int]:
        """Labels joined by id to the prediction of the same model, whichever version made it.
        A label may come hours later (up to ``join.prediction_ttl``) or shortly before its
        prediction (it then waits up to ``join.label_ttl``), also before the model's first
        prediction when the model is declared in the config or has a reference. A second label
        for the same id is a duplicate: the first one counts."""
        require_json(request)
        body = await read_body(request, limits.max_body_bytes)
        batch = await _step(ctx, body, lambda: decode(ctx.decoders.labels, body))
        request.state.events = len(batch.labels)
        require_model(request, batch.model)
        check_batch(len(batch.labels), "labels")
        result = await _step(ctx, body, lambda: ctx.store.add_labels(batch.model, batch.labels))
        ctx.telemetry.count_received("label", len(batch.labels))
        return result.as_dict()

    return r
