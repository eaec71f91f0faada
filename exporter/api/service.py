"""``/metrics`` and the health endpoints (the landing page is the status page: api/ui.py).

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

import gzip
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from exporter.api.context import Context
from exporter.api.responses import refusals


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    @r.get(
        "/metrics",
        tags=["prometheus"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"description": "The exposition.", "content": _EXPOSITION},
            **refusals((401, 503)),
        },
    )
    async def metrics(request: Request) -> Response:
        """Text format 0.0.4 or OpenMetrics, as the ``Accept`` header asks; gzip if accepted.
        Rendered in the thread pool, never on the event loop, with priority over ingest
        (:mod:`exporter.api.priority`)."""
        accept = request.headers.get("accept", "")
        compress = "gzip" in request.headers.get("accept-encoding", "")

        def render() -> tuple[bytes, str]:
            body, content_type = ctx.exposition.render(accept)
            if compress:  # level 1: ~7x cheaper than 9, about the same size
                body = gzip.compress(body, compresslevel=1)
            return body, content_type

        body, content_type = await ctx.priority.scrape(render)
        headers = {"Content-Encoding": "gzip"} if compress else {}
        return Response(body, media_type=content_type, headers=headers)

    @r.get(
        "/-/healthy",
        tags=["health"],
        summary="Liveness",
        responses={200: {"content": {"application/json": {"schema": _status("healthy")}}}},
    )
    def healthy() -> dict[str, str]:
        return {"status": "healthy"}

    @r.get(
        "/-/ready",
        tags=["health"],
        summary="Readiness",
        responses={
            200: {"content": {"application/json": {"schema": _status("ready")}}},
            503: {
                "description": "Starting (restoring state) or stopping (draining).",
                "content": {"application/json": {"schema": _status("starting", "stopping")}},
            },
        },
    )
    def ready() -> JSONResponse:
        if ctx.stopping or not ctx.ready:
            status = "stopping" if ctx.stopping else "starting"
            return JSONResponse({"status": status}, status_code=503)
        return JSONResponse({"status": "ready"})

    return r


#: The two exposition formats, as ``Accept`` chooses (gzip-encoded when accepted).
_EXPOSITION: Final = {
    "text/plain; version=0.0.4": {"schema": {"type": "string"}},
    "application/openmetrics-text; version=1.0.0": {"schema": {"type": "string"}},
}


def _status(*values: str) -> dict[str, Any]:
    """The JSON schema of ``{"status": value}``."""
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": list(values)}},
    }
