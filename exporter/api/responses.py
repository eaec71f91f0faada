"""What the routes answer, as the OpenAPI document says it: the one body of every refusal, and
the statuses each route can refuse with.

Every 4xx has the body :meth:`exporter.errors.RejectedInput.body` builds: ``detail`` (a string
for a person), ``reason`` (one of :class:`~exporter.errors.Reason`), and ``field`` and ``value``
when the rejection names them; a path no route has (404 ``unknown_path``) adds ``endpoints``,
a method a path does not take (405) ``allowed`` (:mod:`exporter.api.handlers`). A route lists
its statuses with :func:`refusals`, one short description each, from :data:`REFUSALS`.

(No ``from __future__ import annotations``: pydantic must evaluate :class:`Rejection`.)
"""

from collections.abc import Iterable
from typing import Any, Final, NotRequired

from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

from exporter.errors import Reason


class Rejection(TypedDict):
    """The body of every refusal (4xx)."""

    detail: str
    reason: Reason
    field: NotRequired[str]
    value: NotRequired[Any]
    endpoints: NotRequired[list[str]]
    allowed: NotRequired[list[str]]


#: What each refusal status means, in one line; a route picks those it can answer.
REFUSALS: Final[dict[int, str]] = {
    400: "The body is not valid JSON (``malformed_json``) or CSV (``malformed_csv``).",
    401: "Credentials missing or not configured (``unauthorized``): once write tokens are "
    "configured every write needs ``Authorization: Bearer <token>``; protected reads need "
    "basic auth or a read token. ``WWW-Authenticate`` says which.",
    403: "Not allowed (``forbidden``): a write from a non-loopback peer with no write token "
    "configured, a token not allowed this model, or a write on the main listener while a "
    "write listener is configured.",
    404: "Unknown model (``unknown_model``) or version (``unknown_version``), no comparison "
    "(``no_comparison``), or no such path (``unknown_path``: a name holding ``/``).",
    409: "A comparison names the version (``pinned_version``).",
    413: "The body or the batch is over its limit (``body_too_large``, ``batch_too_large``).",
    415: "A media type the route does not take (``unsupported_media_type``).",
    422: "The request breaks a rule (``reason`` says which, ``field`` where, ``value`` what): "
    "the schema's, or one it cannot express (a class or task that conflicts with earlier "
    "events, a model, version, feature or class limit, an id twice in one batch, a timestamp "
    "beyond ``limits.max_clock_skew``, a reference or comparison that breaks its rules).",
    429: "Too many writes at once (``overloaded``): retry after ``Retry-After`` seconds.",
    503: "Starting (``starting``): the exporter is still restoring its state snapshot; retry "
    "after ``Retry-After`` seconds (``/-/ready`` answers 503 meanwhile).",
}

_RETRY_AFTER: Final[dict[str, Any]] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_HEADERS: Final[dict[int, dict[str, Any]]] = {429: _RETRY_AFTER, 503: _RETRY_AFTER}


def refusals(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these refusal statuses, each with the
    :class:`Rejection` body."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": Rejection, "description": REFUSALS[status]}
        if status in _HEADERS:
            out[status]["headers"] = _HEADERS[status]
    return out


#: Statuses of a route that reads a JSON body and writes.
WRITE: Final = (400, 401, 403, 413, 415, 422, 429, 503)
