"""Rejections formatted once, at the edge: the JSON body of every 4xx, and its count.

A :class:`~exporter.errors.RejectedInput` arrives with its reason, field and value set where the
problem was found; this module only turns it into ``{"detail", "reason", "field"?, "value"?}``
and counts it by the events the request carried. FastAPI's own validation errors (path and
query parameters) become the same shape, their reason taken from pydantic's error type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from exporter.errors import NO_VALUE, Reason, RejectedInput
from exporter.telemetry import Telemetry

#: pydantic error types that are a string over its length limit.
_TOO_LONG = {"string_too_long"}


def install(app: FastAPI, telemetry: Telemetry) -> None:
    @app.exception_handler(RejectedInput)
    async def rejected(request: Request, exc: RejectedInput) -> JSONResponse:
        # A rejection after decoding counts every event of the batch; before, the decoder's.
        events = getattr(request.state, "events", None) or exc.events
        telemetry.count_rejected(exc.reason, max(1, events))
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        rejection = from_validation(exc.errors())
        if request.method in ("POST", "PUT"):
            telemetry.count_rejected(rejection.reason, 1)
        return JSONResponse(rejection.body(), status_code=422)


def from_validation(errors: Any) -> RejectedInput:
    """The first of FastAPI's validation errors (a path or query parameter) as a rejection."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("path", "query", "body")]
    reason = Reason.STRING_TOO_LONG if first.get("type") in _TOO_LONG else Reason.INVALID_FIELD
    value = first.get("input", NO_VALUE)
    message = f"{first.get('msg', 'invalid')} (got {value!r})"
    return RejectedInput(reason, message, field=".".join(loc) or None, value=value)
