"""``GET /`` and ``GET /ui/models/{model}``: the status pages (HTML), a thin adapter over
:mod:`exporter.ui`.

Each page takes one snapshot per model (``state.snapshot``: a copy made under the model's lock,
which is released before anything is computed), the drift worker's and the sequential
tracker's results and an excerpt of the history (one lock), and hands them as one job to the
page renderer (``ctx.pages``, exporter/ui/process.py): by default a child process, so the
rendering never holds this process's interpreter while scrapes and ingest need it. With
``ui.render_process: false`` it renders here, in the thread pool, giving way to a rendering
scrape before each chart and every 200 chunks of its HTML (api/priority.py). More than
``MAX_WAITING`` pages at once get 429 ``overloaded`` with ``Retry-After``. Read-only; the read
authentication covers these paths as every other ``GET`` (api/security.py).

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from exporter.api.context import Context
from exporter.api.responses import refusals
from exporter.api.schemas import name_param
from exporter.errors import Reason, RejectedInput
from exporter.model import ModelState
from exporter.monitoring.rules import Thresholds
from exporter.sequential_tracker import NOTHING, SequentialStates
from exporter.ui.jobs import ModelInputs, ModelPageJob, OverviewJob, PageJob
from exporter.ui.pages import SortKey, earliest_read
from exporter.ui.process import MAX_WAITING, PagesBusy

#: Seconds a page refused as busy is told to wait.
RETRY_AFTER = 1

#: The pages' media type, stated in the OpenAPI document.
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _refusals(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    """Refusals answer JSON (the Rejection body) though the page is HTML: stated so, or
    FastAPI would document them under the route's text/html."""
    out = refusals(statuses)
    if 429 in out:
        out[429]["description"] = (
            f"More than {MAX_WAITING} pages are waiting to be rendered (``overloaded``): retry "
            "after ``Retry-After`` seconds."
        )
    for response in out.values():
        del response["model"]
        response["content"] = {
            "application/json": {"schema": {"$ref": "#/components/schemas/Rejection"}}
        }
    return out


def _inputs(ctx: Context, state: ModelState, now: float) -> ModelInputs:
    return ModelInputs.of(
        state.snapshot(now), ctx.drift.results(state.name), _sequential(ctx, state.name)
    )


def _page(ctx: Context, job: PageJob) -> HTMLResponse:
    ctx.priority.yield_to_scrapes()  # the job is pickled here: after a rendering scrape
    try:
        return HTMLResponse(ctx.pages.render(job))
    except PagesBusy as exc:
        raise RejectedInput(
            Reason.OVERLOADED, f"{exc}; retry after {RETRY_AFTER} s", retry_after=RETRY_AFTER
        ) from None


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

    @r.get(
        "/",
        summary="Status page: every model at a glance",
        response_class=HTMLResponse,
        responses={
            200: {"description": "The page.", "content": _HTML},
            **_refusals((401, 429, 503)),
        },
    )
    def overview() -> HTMLResponse:
        """Every model with its versions, traffic, quality per window with its recent history,
        drifted features, join health and comparison verdict, coloured by the alert rules."""
        now = ctx.store.clock()
        models = tuple(_inputs(ctx, state, now) for state in ctx.store.models())
        job = OverviewJob(
            models,
            ctx.settings,
            ctx.thresholds,
            ctx.history.excerpt(
                (m.snapshot.name for m in models),
                earliest_read(now, ctx.thresholds, model_page=False),
            ),
            now,
            _common(ctx, now),
        )
        return _page(ctx, job)

    @r.get(
        "/ui/models/{model}",
        summary="Status page of one model",
        response_class=HTMLResponse,
        responses={
            200: {"description": "The page.", "content": _HTML},
            **_refusals((401, 404, 422, 429, 503)),
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
        inputs = _inputs(ctx, ctx.store.get(model), now)
        job = ModelPageJob(
            inputs,
            ctx.settings,
            ctx.thresholds,
            ctx.history.excerpt([model], earliest_read(now, ctx.thresholds, model_page=True)),
            now,
            _common(ctx, now),
            sort=sort,
            feature=feature,
        )
        return _page(ctx, job)

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
