"""Rejections formatted once, at the edge: the JSON body of every 4xx, and its count.

A :class:`~exporter.errors.RejectedInput` arrives with its reason, field and value set where the
problem was found; this module only turns it into ``{"detail", "reason", "field"?, "value"?}``
and counts it: the one event it names, else every event the request carried. FastAPI's own
validation errors (path and query parameters) become the same shape, their reason taken from
pydantic's error type, and so do the router's: a path no route matches is ``unknown_path``
(404, with the list of ``endpoints``), a method the path does not take ``method_not_allowed``
(405, with the ``allowed`` methods). A trailing slash is ignored (:class:`IgnoreTrailingSlash`)
rather than answered with Starlette's empty redirect.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.errors import NO_VALUE, Reason, RejectedInput
from exporter.telemetry import Telemetry

#: pydantic error types that are a string over its length limit.
_TOO_LONG = {"string_too_long"}
#: Requests that carry events: their rejections count in events_rejected_total.
_SENDING = ("POST", "PUT")


def install(app: FastAPI, telemetry: Telemetry) -> None:
    app.add_middleware(IgnoreTrailingSlash)

    @app.exception_handler(RejectedInput)
    async def rejected(request: Request, exc: RejectedInput) -> JSONResponse:
        # A rejection that names one event counts that event: the rest of the batch was not
        # judged, and a client may send it again (ours does). Otherwise every event of the
        # batch counts; before decoding, the decoder's count.
        if exc.event is not None:
            events = 1
        else:
            events = getattr(request.state, "events", None) or exc.events
        telemetry.count_rejected(exc.reason, max(1, events))
        headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        rejection = from_validation(exc.errors())
        if request.method in _SENDING:
            telemetry.count_rejected(rejection.reason, 1)
        return JSONResponse(rejection.body(), status_code=422)

    @app.exception_handler(HTTPException)
    async def routing(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            rejection, extra = unknown_path(request)
        elif exc.status_code == 405:
            rejection, extra = wrong_method(request, (exc.headers or {}).get("Allow", ""))
        else:
            return await http_exception_handler(request, exc)
        if request.method in _SENDING:
            telemetry.count_rejected(rejection.reason, 1)
        headers = {"Allow": ", ".join(extra["allowed"])} if "allowed" in extra else None
        return JSONResponse(
            {**rejection.body(), **extra}, status_code=rejection.status_code, headers=headers
        )


def from_validation(errors: Any) -> RejectedInput:
    """The first of FastAPI's validation errors (a path or query parameter) as a rejection."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("path", "query", "body")]
    reason = Reason.STRING_TOO_LONG if first.get("type") in _TOO_LONG else Reason.INVALID_FIELD
    value = first.get("input", NO_VALUE)
    message = f"{first.get('msg', 'invalid')} (got {value!r})"
    return RejectedInput(reason, message, field=".".join(loc) or None, value=value)


def _endpoints(request: Request) -> dict[str, set[str]]:
    """Every documented endpoint: path template -> methods (from the OpenAPI document, which
    FastAPI builds once)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    return {path: {method.upper() for method in ops} for path, ops in paths.items()}


def unknown_path(request: Request) -> tuple[RejectedInput, dict[str, list[str]]]:
    """No route has this path: a rejection, and every endpoint there is."""
    path = request.url.path
    endpoints = sorted(
        (template, method)
        for template, methods in _endpoints(request).items()
        for method in methods
    )
    rejection = RejectedInput(
        Reason.UNKNOWN_PATH,
        f"no endpoint at {path!r} (model and version names in a path are percent-encoded, "
        "and never hold '/'); the endpoints are listed in 'endpoints'",
        value=path,
    )
    return rejection, {"endpoints": [f"{method} {p}" for p, method in endpoints]}


def wrong_method(request: Request, allow: str) -> tuple[RejectedInput, dict[str, list[str]]]:
    """The path exists, not with this method: a rejection, and the methods it takes: those of
    every documented endpoint the path matches, and ``allow`` (Starlette's ``Allow`` header,
    which names the first matching route's only)."""
    path = request.url.path
    allowed = {method.strip() for method in allow.split(",") if method.strip()}
    for template, methods in _endpoints(request).items():
        if compile_path(template)[0].match(path):
            allowed |= methods
    ordered = sorted(allowed)
    rejection = RejectedInput(
        Reason.METHOD_NOT_ALLOWED,
        f"{request.method} is not allowed on {path!r}; allowed: {', '.join(ordered)}",
        value=request.method,
    )
    return rejection, {"allowed": ordered}


class IgnoreTrailingSlash:
    """ASGI middleware: ``/v1/predictions/`` is routed as ``/v1/predictions`` (no name holds
    ``/``, so nothing else can be meant), where Starlette would answer an empty 307."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)
