"""``GET /`` and ``GET /ui/models/{model}``: the status pages (HTML), a thin adapter over
:mod:`exporter.ui`.

Each page takes one snapshot per model (``state.snapshot``: a copy made under the model's lock,
which is released before anything is computed), reads the drift worker's and the sequential
tracker's results and the history, and renders outside every lock, in the thread pool (the
routes are plain functions), so neither ingest nor ``/metrics`` waits for a lock of it. And as
ingest does, a page gives way to a scrape that renders meanwhile (api/priority.py): before each
chart and every 200 chunks of its HTML it sleeps while one renders (at most 50 ms), so the
scrape has the interpreter instead of waiting behind the page in 5 ms GIL turns. Read-only; the
read authentication covers these paths as every other ``GET`` (api/security.py).

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from exporter.api.context import Context
from exporter.api.responses import refusals
from exporter.api.schemas import name_param
from exporter.monitoring.rules import Thresholds
from exporter.sequential_tracker import NOTHING, SequentialStates
from exporter.ui.pages import (
    SORT_KEYS,
    HistoryReader,
    HistorySeries,
    SortKey,
    model_card,
    model_page,
)
from exporter.ui.render import render

#: The pages' media type, stated in the OpenAPI document.
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _refusals(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """Refusals answer JSON (the Rejection body) though the page is HTML: stated so, or
    FastAPI would document them under the route's text/html."""
    out = refusals(statuses)
    for response in out.values():
        del response["model"]
        response["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/Rejection"}}
        }
    return out


def _history_reader(ctx: Context) -> HistoryReader:
    """The history as the pages read it; each read first gives way to a rendering scrape
    (before each chart: between them, a scrape rendering meanwhile goes first)."""

    def read(
        model: str,
        version: str | None,
        window: str | None,
        names: Collection[str] | None,
        since: float | None,
    ) -> Sequence[HistorySeries]:
        ctx.priority.yield_to_scrapes()
        found = ctx.history.read(model, version=version, window=window, names=names, since=since)
        return [HistorySeries(s.name, s.labels, s.times.tolist(), s.values.tolist()) for s in found]

    return read


def _common(ctx: Context, now: float) -> dict[str, object]:
    """What every page shows: the time, and the rules with the thresholds they use."""
    file = ctx.settings.ui.thresholds_file
    return {
        "now_text": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "thresholds_file": None if file is None else str(file),
        "rules": rule_list(ctx.thresholds),
    }


def _sequential(ctx: Context, model: str) -> SequentialStates:
    return NOTHING if ctx.sequential is None else ctx.sequential.states(model)


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["status pages"])
    model_name = Annotated[str, name_param(ctx.settings.limits, "A model name.")]
    limits = ctx.settings.limits
    history = _history_reader(ctx)

    @r.get(
        "/",
        summary="Status page: every model at a glance",
        response_class=HTMLResponse,
        responses={200: {"description": "The page.", "content": _HTML}, **_refusals((401, 503))},
    )
    def overview() -> HTMLResponse:
        """Every model with its versions, traffic, quality per window with its recent history,
        drifted features, join health and comparison verdict, coloured by the alert rules."""
        now = ctx.store.clock()
        cards = []
        for state in ctx.store.models():
            snapshot = state.snapshot(now)
            cards.append(
                model_card(
                    snapshot,
                    ctx.drift.results(snapshot.name),
                    _sequential(ctx, snapshot.name),
                    ctx.settings,
                    ctx.thresholds,
                    history,
                    now,
                )
            )
        return HTMLResponse(
            render("index.html", ctx.priority.yield_to_scrapes, cards=cards, **_common(ctx, now))
        )

    @r.get(
        "/ui/models/{model}",
        summary="Status page of one model",
        response_class=HTMLResponse,
        responses={
            200: {"description": "The page.", "content": _HTML},
            **_refusals((401, 404, 422, 503)),
        },
    )
    def model(
        model: model_name,
        sort: Annotated[
            SortKey, Query(description="order of the drift tables (default: drifted first)")
        ] = "verdict",
        feature: Annotated[
            str | None,
            Query(
                max_length=limits.max_name_length,
                description="the feature whose distribution is drawn (default: the first row)",
            ),
        ] = None,
    ) -> HTMLResponse:
        """Per version and window: quality over time, confusion matrix and per-class scores,
        the drift table, a feature's window drawn over its reference, data quality, label
        delays, prediction and label drift."""
        now = ctx.store.clock()
        snapshot = ctx.store.get(model).snapshot(now)
        page = model_page(
            snapshot,
            ctx.drift.results(model),
            _sequential(ctx, model),
            ctx.settings,
            ctx.thresholds,
            history,
            now,
            sort=sort,
            feature=feature,
        )
        return HTMLResponse(
            render(
                "model.html",
                ctx.priority.yield_to_scrapes,
                page=page,
                sort_keys=SORT_KEYS,
                **_common(ctx, now),
            )
        )

    return r


def rule_list(t: Thresholds) -> list[tuple[str, str]]:
    """The rules the pages colour by, with their conditions at these thresholds."""
    return [
        ("ModelAccuracyDrop", f"model_accuracy < {t.accuracy_below} for {t.accuracy_for}"),
        ("ModelF1Drop", f"model_f1_score (binary, else macro) < {t.f1_below} for {t.f1_for}"),
        (
            "ModelEstimatedAccuracyDrop",
            f"model_estimated_accuracy < {t.estimated_accuracy_below} "
            f"for {t.estimated_accuracy_for}",
        ),
        ("ModelFeatureDrift", f"model_drift_features_drifted > 0 for {t.feature_drift_for}"),
        (
            "ModelPredictionDrift",
            f"model_prediction_drift_detected == 1 for {t.prediction_drift_for}",
        ),
        (
            "ModelConceptDrift",
            f"a detection in the last {t.concept_drift_lookback} for {t.concept_drift_for}",
        ),
        ("ModelNoPredictions", f"no prediction in 15m for {t.no_predictions_for}"),
        (
            "ModelGroundTruthStale",
            f"predictions flow, no label joined in {t.ground_truth_stale_after} "
            f"for {t.ground_truth_stale_for}",
        ),
        (
            "ModelChallengerWorse / ModelChallengerBetter",
            f"always-valid p < {t.sequential_alpha} with the confidence sequence on one side of "
            f"0, each arm >= {t.comparison_min_labels} labeled, for {t.challenger_for}",
        ),
    ]
