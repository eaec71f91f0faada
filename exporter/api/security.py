"""Who may do what, at the edge: :class:`AccessGuard` sorts each request and asks the policies.

======================================  ==========================================================
request                                 policy
======================================  ==========================================================
``GET /-/healthy``, ``GET /-/ready``    open, always (probes carry no credentials)
any other ``GET`` or ``HEAD``           :class:`~exporter.auth.ReadPolicy`: ``/metrics``, the
                                        status pages, ``/docs``, ``/openapi.json``, ``/``
any other method                        :class:`~exporter.auth.WritePolicy`, on every path (a
                                        write route added later is guarded without a change
                                        here); a path ``/v1/models/{model}...`` is checked
                                        against the models the token may write
======================================  ==========================================================

A batch names its model in the body: its route calls :func:`require_model` once the body is
decoded, before anything is committed. A refusal here is answered at once (the body is not
read), counted in ``model_exporter_events_rejected_total`` like every rejection (one per
request: the events it carries are not known yet), with a ``WWW-Authenticate`` header on a 401.
The guard is a plain ASGI middleware, so that the routes FastAPI adds itself (``/docs``,
``/openapi.json``) are guarded too; it runs inside
:class:`~exporter.api.handlers.IgnoreTrailingSlash`, so ``/-/healthy/`` is the health endpoint.

The peer is ``scope["client"]``: behind a reverse proxy on loopback, uvicorn's proxy headers
(``X-Forwarded-For``, trusted from 127.0.0.1 only) make it the proxy's client. A loopback peer
on a connection to a non-loopback local address (``scope["server"]``) is a proxy on this host
relaying another machine (a mesh sidecar), and is not taken as local
(:func:`exporter.auth.is_local`).
"""

from __future__ import annotations

import re
from typing import Final

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from exporter.auth import Grant, ReadPolicy, WritePolicy
from exporter.errors import Reason, RejectedInput
from exporter.telemetry import Telemetry

#: Paths open to everyone, whatever is configured.
OPEN: Final = frozenset({"/-/healthy", "/-/ready"})
#: Methods that read; every other one writes.
READING: Final = frozenset({"GET", "HEAD"})
#: The model a write path is about (names never hold '/'; the path is percent-decoded).
_MODEL_PATH: Final = re.compile(r"/v1/models/([^/]+)")
#: Where the guard leaves a write's :class:`~exporter.auth.Grant` in the request's state.
_GRANT: Final = "write_grant"
_BEARER_CHALLENGE: Final = 'Bearer realm="model-exporter"'


class AccessGuard:
    """ASGI middleware: every request allowed by its policy, or refused before the app sees it."""

    def __init__(
        self, app: ASGIApp, *, writes: WritePolicy, reads: ReadPolicy, telemetry: Telemetry
    ) -> None:
        self.app = app
        self.writes = writes
        self.reads = reads
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN:
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        reading = scope["method"] in READING
        try:
            if reading:
                await self._read(authorization)
            else:
                scope.setdefault("state", {})[_GRANT] = self._write(scope, authorization)
        except RejectedInput as exc:
            self.telemetry.count_rejected(exc.reason, 1)
            headers = None
            if exc.reason is Reason.UNAUTHORIZED:
                challenge = self.reads.challenge if reading else _BEARER_CHALLENGE
                headers = {"WWW-Authenticate": challenge}
            response = JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _read(self, authorization: str | None) -> None:
        if self.reads.slow(authorization):  # bcrypt: ~70 ms, never on the event loop
            await run_in_threadpool(self.reads.authenticate, authorization)
        else:
            self.reads.authenticate(authorization)

    def _write(self, scope: Scope, authorization: str | None) -> Grant:
        client, server = scope.get("client"), scope.get("server")
        grant = self.writes.authorize(
            client[0] if client else None, authorization, server[0] if server else None
        )
        match = _MODEL_PATH.match(scope["path"])
        if match is not None:
            grant.check(match.group(1))
        return grant


def require_model(request: Request, model: str, field: str = "model") -> None:
    """Raises 403 ``forbidden`` unless this write may write ``model``: for a route whose model
    is in the body, once it is decoded. A request the guard did not see may write nothing."""
    grant = getattr(request.state, _GRANT, None)
    if not isinstance(grant, Grant):
        raise RejectedInput(
            Reason.FORBIDDEN, "this request was not authorized (no access guard)", field=field
        )
    grant.check(model, field)
