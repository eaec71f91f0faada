"""A minimal keep-alive HTTP/1.1 transport on the standard library (no third-party client), the
exporter's answers as the client reads them, and whole request bodies as JSON."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


def _json_default(value: Any) -> Any:
    """numpy scalars (and anything with ``.item()`` or ``.tolist()``) without importing numpy."""
    for attr in ("item", "tolist"):
        method = getattr(value, attr, None)
        if callable(method):
            return method()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(payload: Any) -> bytes:
    """A whole request body as JSON (the standard library's; NaN and infinities refused)."""
    return json.dumps(
        payload, default=_json_default, allow_nan=False, separators=(",", ":")
    ).encode()


class TransportError(Exception):
    """The request did not complete (connection refused, timeout, reset)."""


@dataclass(frozen=True)
class Rejection:
    """The exporter's 4xx body: ``detail`` for a person; ``reason``, ``field`` (a path such as
    ``events[3].label``, None when the whole request is refused) and ``value`` for code."""

    detail: str
    reason: str | None = None
    field: str | None = None
    value: Any = None

    def event(self, items: str = "events") -> int | None:
        """The index of the item (``events[i]`` or ``labels[i]``) the rejection names."""
        prefix = f"{items}["
        if self.field is None or not self.field.startswith(prefix):
            return None
        index, _, _ = self.field[len(prefix) :].partition("]")
        return int(index) if index.isdigit() else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None

    def rejection(self) -> Rejection:
        try:
            data = json.loads(self.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return Rejection(self.body[:200].decode("utf-8", "replace"))
        field = data.get("field")
        return Rejection(
            detail=str(data.get("detail", ""))[:500],
            reason=data.get("reason") if isinstance(data.get("reason"), str) else None,
            field=field if isinstance(field, str) else None,
            value=data.get("value"),
        )

    def detail(self) -> str:
        return self.rejection().detail


class Transport:
    """One persistent connection, reopened after any error. Not thread-safe: one per thread.

    With a ``token``, every request carries ``Authorization: Bearer <token>`` (the exporter's
    write tokens, ``auth.write_tokens_file``).
    """

    def __init__(self, url: str, timeout: float, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must look like http://host:port, got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def request(self, method: str, path: str, body: bytes) -> Response:
        conn = self._connection()
        try:
            conn.request(
                method,
                self._prefix + path,
                body=body,
                headers=self._headers,
            )
            raw = conn.getresponse()
            data = raw.read()
            retry_after = raw.getheader("Retry-After")
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        if raw.getheader("Connection", "").lower() == "close":
            self.close()
        delay = None
        if retry_after is not None:
            try:
                delay = max(0.0, float(retry_after))
            except ValueError:
                delay = None
        return Response(raw.status, data, delay)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
