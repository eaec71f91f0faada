"""HTTP routes of API v1, ``/metrics`` and the health endpoints.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures, whose
limits come from the settings in :func:`build_router`'s scope.)
"""

import gzip
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter import __version__
from exporter.analysis import ModelView, model_view
from exporter.api.decode import decode, media_type, read_body, require_json
from exporter.api.schemas import Decoders, openapi_body
from exporter.collectors.drift import EOF_MARK, DriftExposition
from exporter.config import Settings
from exporter.errors import Reason, RejectedInput
from exporter.reference import (
    CSVFormatError,
    ReferenceError,
    parse_csv_columns,
    reference_for_model,
)
from exporter.results import DriftResult, TargetDrift
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.store import Store
from exporter.telemetry import Telemetry


@dataclass
class Context:
    settings: Settings
    store: Store
    telemetry: Telemetry
    registry: CollectorRegistry
    decoders: Decoders
    drift: DriftExposition
    ready: bool = False


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
_REFERENCE_EXAMPLE = {"features": {"amount": [10.0, 12.5, 8.1], "country": ["DE", "FR", "DE"]}}

_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Accepted. ``duplicates``: ids already seen (not counted again); "
        "``joined``: predictions joined with their label now; ``pending``: waiting.",
        "content": {
            "application/json": {
                "example": {"accepted": 2, "duplicates": 0, "joined": 1, "pending": 1}
            }
        },
    },
    400: {"description": "Malformed JSON."},
    404: {"description": "Unknown model (labels for a model that has no predictions)."},
    413: {"description": "Body or batch over the configured limit."},
    415: {"description": "Not JSON."},
    422: {"description": "Invalid field or value; the message names it."},
}


def build_router(ctx: Context) -> APIRouter:
    router = APIRouter()
    settings = ctx.settings
    limits = settings.limits

    def check_batch(count: int, what: str) -> None:
        if count > limits.max_batch_events:
            raise RejectedInput(
                Reason.BATCH_TOO_LARGE,
                f"{what}: {count} items in one batch is over limits.max_batch_events "
                f"({limits.max_batch_events})",
                events=count,
            )

    @router.post(
        "/v1/predictions",
        tags=["ingest"],
        summary="Send a batch of prediction events",
        openapi_extra={
            "requestBody": openapi_body(ctx.decoders, "PredictionBatch", _PREDICTIONS_EXAMPLE)
        },
        responses=_INGEST_RESPONSES,
    )
    async def post_predictions(request: Request) -> dict[str, int]:
        """Prediction events of one model version. ``model_version`` defaults to the configured
        ``default_model_version`` (``"default"``). Ids are unique per model; an id seen before
        is a duplicate (a retried batch is safe). ``timestamp`` is RFC 3339 or epoch seconds,
        default now. ``label`` is optional inline ground truth."""
        require_json(request)
        batch = decode(ctx.decoders.predictions, await read_body(request, limits.max_body_bytes))
        check_batch(len(batch.events), "events")
        try:
            result = ctx.store.add_predictions(batch.model, batch.model_version, batch.events)
        except RejectedInput as exc:
            exc.events = max(1, len(batch.events))
            raise
        ctx.telemetry.count_received("prediction", len(batch.events))
        return result.as_dict()

    @router.post(
        "/v1/labels",
        tags=["ingest"],
        summary="Send ground-truth labels for earlier predictions",
        openapi_extra={"requestBody": openapi_body(ctx.decoders, "LabelBatch", _LABELS_EXAMPLE)},
        responses=_INGEST_RESPONSES,
    )
    async def post_labels(request: Request) -> dict[str, int]:
        """Labels joined by id to the prediction of the same model, whichever version made it.
        A label may come hours later (up to ``join.prediction_ttl``) or shortly before its
        prediction (it then waits up to ``join.label_ttl``). A second label for the same id is
        a duplicate: the first one counts."""
        require_json(request)
        batch = decode(ctx.decoders.labels, await read_body(request, limits.max_body_bytes))
        check_batch(len(batch.labels), "labels")
        try:
            result = ctx.store.add_labels(batch.model, batch.labels)
        except RejectedInput as exc:
            exc.events = max(1, len(batch.labels))
            raise
        ctx.telemetry.count_received("label", len(batch.labels))
        return result.as_dict()

    @router.put(
        "/v1/models/{model}/reference",
        tags=["reference"],
        summary="Replace the drift reference of a model (or of one version)",
        openapi_extra={
            "requestBody": {
                **openapi_body(ctx.decoders, "ReferenceBody", _REFERENCE_EXAMPLE),
                "content": {
                    **openapi_body(ctx.decoders, "ReferenceBody", _REFERENCE_EXAMPLE)["content"],
                    "text/csv": {
                        "schema": {"type": "string"},
                        "example": "amount,country\n10.0,DE\n12.5,FR\n",
                    },
                },
            }
        },
    )
    async def put_reference(
        request: Request,
        model: Annotated[str, Path(min_length=1, max_length=limits.max_name_length)],
        model_version: Annotated[
            str | None, Query(min_length=1, max_length=limits.max_name_length)
        ] = None,
        prediction_column: Annotated[
            str | None, Query(min_length=1, max_length=limits.max_name_length)
        ] = None,
        label_column: Annotated[
            str | None, Query(min_length=1, max_length=limits.max_name_length)
        ] = None,
    ) -> dict[str, Any]:
        """Columnar JSON ``{"features": {name: [values]}, "predictions"?: [...], "labels"?:
        [...]}`` or CSV (``Content-Type: text/csv``, a header row of column names;
        ``prediction_column`` and ``label_column`` name the CSV columns holding reference
        predictions and labels). Without ``model_version`` the reference applies to every
        version of the model, present and future. Without any upload, the first
        ``drift.reference_size`` predictions of each version become its reference."""
        kind = media_type(request)
        body = await read_body(request, limits.max_reference_bytes)
        spec = settings.models.get(model)
        predictions = labels = None
        try:
            if kind in ("text/csv", "application/csv"):
                try:
                    text = body.decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    raise RejectedInput(
                        Reason.MALFORMED_CSV, f"body: not UTF-8 text ({exc.reason})"
                    ) from None
                columns = parse_csv_columns(text, max_name_length=limits.max_name_length)
                prediction_column = prediction_column or (
                    spec.reference_prediction_column if spec else None
                )
                label_column = label_column or (spec.reference_label_column if spec else None)
            elif not kind or kind == "application/json" or kind.endswith("+json"):
                parsed = decode(ctx.decoders.reference, body)
                columns, predictions, labels = parsed.features, parsed.predictions, parsed.labels
                prediction_column = label_column = None
            else:
                raise RejectedInput(
                    Reason.UNSUPPORTED_MEDIA_TYPE,
                    f"Content-Type {kind!r} is not supported here; send application/json "
                    "or text/csv",
                )
            reference = reference_for_model(
                columns,
                categorical=spec.categorical if spec else (),
                prediction_column=prediction_column,
                label_column=label_column,
                predictions=predictions,
                labels=labels,
                created=ctx.store.clock(),
                max_values=settings.drift.reference_max_values,
                bins=settings.drift.bins,
                max_categories=settings.drift.max_categories,
                source="upload",
            )
        except ReferenceError as exc:
            malformed = isinstance(exc, CSVFormatError)
            reason = Reason.MALFORMED_CSV if malformed else Reason.INVALID_REFERENCE
            raise RejectedInput(reason, f"reference: {exc}") from None
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

    @router.get("/v1/models", tags=["status"], summary="All monitored models")
    def list_models() -> dict[str, Any]:
        now = ctx.store.clock()
        out = []
        for state in ctx.store.models():
            view = model_view(state, now, settings.quality.min_samples, with_scores=False)
            out.append(
                {
                    "model": view.name,
                    "task": view.task,
                    "versions": [v.name for v in view.versions],
                    "predictions_total": sum(v.predictions_total for v in view.versions),
                    "labels_total": sum(v.labels_total for v in view.versions),
                }
            )
        return {"models": out}

    @router.get("/v1/models/{model}", tags=["status"], summary="Status of one model")
    def get_model(model: str) -> dict[str, Any]:
        state = ctx.store.get(model)
        view = model_view(state, ctx.store.clock(), settings.quality.min_samples)
        return _model_json(view, settings)

    @router.get("/metrics", tags=["prometheus"], summary="Prometheus metrics")
    def metrics(request: Request) -> Response:
        """Text format 0.0.4 or OpenMetrics, as the ``Accept`` header asks; gzip if accepted."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        body = encoder(ctx.registry)
        drift = ctx.drift.render(encoder, openmetrics)  # cached until drift changes
        if openmetrics:
            body = body.removesuffix(EOF_MARK) + drift + EOF_MARK
        else:
            body += drift
        headers = {}
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = gzip.compress(body, compresslevel=1)  # level 1: ~7x cheaper than 9, ~same size
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    @router.get("/-/healthy", tags=["health"], summary="Liveness")
    def healthy() -> dict[str, str]:
        return {"status": "healthy"}

    @router.get("/-/ready", tags=["health"], summary="Readiness")
    def ready() -> JSONResponse:
        if not ctx.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get("/", include_in_schema=False)
    def landing() -> HTMLResponse:
        return HTMLResponse(_LANDING.format(version=__version__))

    return router


def _scores_json(scores: ClassificationScores | RegressionScores | None, classes: list[str]) -> Any:
    if scores is None:
        return None
    if isinstance(scores, RegressionScores):
        return {
            "mean_absolute_error": scores.mean_absolute_error,
            "root_mean_squared_error": scores.root_mean_squared_error,
        }
    return {
        "accuracy": scores.accuracy,
        "precision": dict(scores.precision),
        "recall": dict(scores.recall),
        "f1_score": dict(scores.f1),
        "classes": {
            classes[c]: {
                "precision": float(scores.class_precision[j]),
                "recall": float(scores.class_recall[j]),
                "f1_score": float(scores.class_f1[j]),
                "support": int(scores.class_support[j]),
            }
            for j, c in enumerate(scores.classes.tolist())
        },
    }


def _drift_json(drift: DriftResult) -> dict[str, Any]:
    def target(t: TargetDrift | None) -> Any:
        if t is None:
            return None
        tests = asdict(t.numeric) if t.numeric is not None else {}
        if t.categorical is not None:
            tests = asdict(t.categorical)
        return {**tests, "drifted": t.drifted}

    return {
        "computed_at": drift.computed_at,
        "window_predictions": drift.window_events,
        "sample_predictions": drift.window_sample,
        "reference_source": drift.reference_source,
        "correction": drift.correction,
        "alpha": drift.alpha,
        "features_tested": drift.tested,
        "features_drifted": drift.drifted,
        "features": {
            name: {
                "kind": f.kind,
                "window_values": f.window_values,
                "reference_values": f.reference_values,
                "missing_ratio": f.missing,
                "drifted": f.drifted,
                **(asdict(f.numeric) if f.numeric is not None else {}),
                **(asdict(f.categorical) if f.categorical is not None else {}),
            }
            for name, f in drift.features.items()
        },
        "predictions": target(drift.predictions),
        "labels": target(drift.labels),
    }


def _model_json(view: ModelView, settings: Settings) -> dict[str, Any]:
    versions: dict[str, Any] = {}
    for v in view.versions:
        ref = v.reference
        reference: dict[str, Any] = {
            "source": ref.source,
            "scope": ref.scope,
            "rows": ref.rows,
        }
        if ref.source == "collecting":
            reference["target_rows"] = ref.target_rows
        if ref.reference is not None:
            reference.update(ref.reference.summary())
            reference["source"] = ref.source
        windows: dict[str, Any] = {}
        for w in v.windows:
            drift = v.drift.get(w.window)
            windows[w.window] = {
                "predictions": w.predictions,
                "labeled_predictions": w.labeled,
                "quality": _scores_json(w.scores, view.classes),
                "drift": None if drift is None else _drift_json(drift),
            }
        versions[v.name] = {
            "predictions_total": v.predictions_total,
            "labels_total": v.labels_total,
            "pending_predictions": v.pending,
            "predictions_expired": v.expired,
            "reference": reference,
            "windows": windows,
        }
    return {
        "model": view.name,
        "task": view.task,
        "task_declared": view.task_declared,
        "positive_class": view.positive_class,
        "classes": view.classes,
        "features": [{"name": n, "kind": k} for n, k in view.features],
        "pending_labels": view.pending_labels,
        "labels_received_total": view.labels_received_total,
        "labels_expired": view.labels_expired,
        "duplicates": {
            "prediction": view.duplicate_predictions_total,
            "label": view.duplicate_labels_total,
        },
        "feature_type_mismatches": view.type_mismatches,
        "feature_categories_pooled": view.categories_pooled,
        "min_samples": {
            "quality": settings.quality.min_samples,
            "drift": settings.drift.min_samples,
        },
        "versions": versions,
    }


_LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>model-exporter</title></head>
<body>
<h1>model-exporter {version}</h1>
<p>Prometheus exporter for machine-learning model quality and drift.</p>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
<li><a href="/v1/models">/v1/models</a>: monitored models (JSON)</li>
<li><a href="/docs">/docs</a>: API reference (OpenAPI)</li>
<li><a href="/-/healthy">/-/healthy</a> and <a href="/-/ready">/-/ready</a>: health</li>
</ul>
</body></html>
"""
