"""``DELETE /v1/models/{model}`` and ``DELETE /v1/models/{model}/versions/{model_version}``.

Plain ``def`` routes (the thread pool): a removal waits for the model's lock, never on the event
loop. What is removed and counted, and how readers forget it, is :mod:`exporter.store`'s.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from typing import Annotated, Any

from fastapi import APIRouter

from exporter.api.context import Context
from exporter.api.responses import refusals
from exporter.api.schemas import name_param

#: 404: unknown model or version; 409: a version a comparison names; 422: a name over
#: limits.max_name_length.
_RESPONSES = refusals((401, 403, 404, 409, 422, 429, 503))


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["models"])
    model_name = Annotated[str, name_param(ctx.settings.limits, "A model name.")]
    version_name = Annotated[str, name_param(ctx.settings.limits, "A version of the model.")]

    @r.delete("/v1/models/{model}", summary="Remove a model", responses=_RESPONSES)
    def delete_model(model: model_name) -> dict[str, Any]:
        """Remove a model: every version, window, counter and reference; its series are gone
        from the next scrape. Predictions and labels waiting in its join are dropped (counted
        in ``model_exporter_pending_dropped_total``). A model declared in the config stays
        declared (``declared``): its next event registers it again, empty."""
        removal = ctx.store.delete(model)
        return {
            "model": removal.model,
            "declared": removal.model in ctx.settings.models,
            "removed_versions": list(removal.versions),
            "pending_predictions_dropped": removal.pending_predictions,
            "pending_labels_dropped": removal.pending_labels,
        }

    @r.delete(
        "/v1/models/{model}/versions/{model_version}",
        summary="Remove one version of a model",
        responses=_RESPONSES,
    )
    def delete_version(model: model_name, model_version: version_name) -> dict[str, Any]:
        """Remove a version: its windows, counters and reference; its series are gone from the
        next scrape. Its predictions waiting for a label are dropped (counted); the model and
        its other versions stay."""
        dropped = ctx.store.delete_version(model, model_version)
        return {
            "model": model,
            "model_version": model_version,
            "pending_predictions_dropped": dropped,
        }

    return r
