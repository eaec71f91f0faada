"""``PUT`` and ``DELETE /v1/models/{model}/comparison``: declaring and ending a comparison.

The body is read on the event loop (bounded by ``limits.max_body_bytes``) and checked by
:func:`~exporter.comparison.parse_declaration`, the same reading as the config key
``models.<name>.comparison``; applying it waits for the model's lock, in the thread pool. What a
comparison pins, and how shadow mode keys the join, is :mod:`exporter.model`'s.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from exporter.api.context import Context
from exporter.api.decode import decode, read_body, require_json
from exporter.api.responses import WRITE, refusals
from exporter.api.schemas import name_json_schema, name_param
from exporter.api.status import comparison_json, rfc3339, tidy
from exporter.comparison import parse_declaration
from exporter.config import LimitSettings

#: The body is any JSON; parse_declaration judges its shape (as it does the config's).
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()

_EXAMPLE = {"champion": "v1", "challengers": ["v2"], "mode": "split"}


def _body(limits: LimitSettings) -> dict[str, Any]:
    """The request body: version names, distinct, at most ``max_versions_per_model`` in all
    (a challenger that is the champion is a 422 the schema cannot express)."""
    version = name_json_schema(limits.max_name_length)
    challengers = {
        "type": "array",
        "items": version,
        "minItems": 1,
        "maxItems": limits.max_versions_per_model - 1,
        "uniqueItems": True,
    }
    schema = {
        "type": "object",
        "required": ["champion", "challengers", "mode"],
        "additionalProperties": False,
        "properties": {
            "champion": version,
            "challengers": challengers,
            "mode": {"type": "string", "enum": ["split", "shadow"]},
        },
    }
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": _EXAMPLE}},
    }


#: 422: a declaration that breaks the rules (invalid_comparison, invalid_field, invalid_name,
#: string_too_long); 404: a model name holding '/'.
_PUT_RESPONSES = refusals((*WRITE, 404))
#: 404: unknown model or no comparison; 422: a model name over limits.max_name_length.
_DELETE_RESPONSES = refusals((401, 403, 404, 422, 429, 503))


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["comparison"])
    limits = ctx.settings.limits
    model_name = Annotated[str, name_param(limits, "A model name.")]

    @r.put(
        "/v1/models/{model}/comparison",
        summary="Declare or replace the comparison of a model's versions",
        openapi_extra={"requestBody": _body(limits)},
        responses=_PUT_RESPONSES,
    )
    async def put_comparison(request: Request, model: model_name) -> dict[str, Any]:
        """``{"champion": "v1", "challengers": ["v2"], "mode": "split" | "shadow"}``: each
        challenger version against the champion version, ``split`` for independent traffic,
        ``shadow`` when every challenger predicts the same requests. Starts now, replacing any
        comparison the model has (its sequential statistics then start again); the versions
        named are pinned (never replaced, idle-expired or deleted) and need not exist yet. The
        model is registered if it is new. Answers the comparison as stored."""
        require_json(request)
        body = await read_body(request, limits.max_body_bytes)
        declaration = parse_declaration(decode(_ANY, body))

        def work() -> dict[str, Any]:
            return comparison_json(ctx.store.set_comparison(model, declaration))

        result: dict[str, Any] = tidy(await run_in_threadpool(work))
        return result

    @r.delete(
        "/v1/models/{model}/comparison",
        summary="End the comparison of a model's versions",
        responses=_DELETE_RESPONSES,
    )
    def delete_comparison(model: model_name) -> dict[str, Any]:
        """End the model's comparison: its versions are unpinned (idle replacement, expiry and
        deletion apply to them again). A comparison declared in the config may be ended too."""
        ended = ctx.store.end_comparison(model)
        now = ctx.store.clock()
        out: dict[str, Any] = tidy(
            {
                "model": model,
                **comparison_json(ended, pinned=False),
                "ended": rfc3339(now),
                "ended_unix": now,
                "unpinned_versions": [ended.champion, *ended.challengers],
            }
        )
        return out

    return r
