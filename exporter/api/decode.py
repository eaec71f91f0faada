"""Reading and decoding request bodies, with limits and client-facing error messages.

Every failure becomes a :class:`~exporter.errors.RejectedInput` whose message names the field
(as a path like ``events[3].features.age``) and, where it can be recovered, the offending value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec
from starlette.requests import Request

from exporter.errors import Reason, RejectedInput

_AT = re.compile(r"^(?P<what>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_AT_KEY = re.compile(r"^(?P<what>.*?) - at `key` in `\$(?P<path>[^`]*)`$", re.DOTALL)
_BYTE = re.compile(r"\(byte (\d+)\)")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RejectedInput(
            Reason.BODY_TOO_LARGE,
            f"body: {int(declared)} bytes is over the limit of {limit} bytes "
            "(limits.max_body_bytes); send smaller batches",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RejectedInput(
                Reason.BODY_TOO_LARGE,
                f"body: over the limit of {limit} bytes (limits.max_body_bytes); "
                "send smaller batches",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_json(request: Request) -> None:
    kind = media_type(request)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise RejectedInput(
            Reason.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {kind!r} is not supported here; send JSON with "
            "'Content-Type: application/json'",
        )


def decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode and validate ``body``; errors become RejectedInput naming the field and value."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc), body) from None
    except msgspec.DecodeError as exc:
        raise _decode_error(str(exc), body) from None
    except UnicodeDecodeError as exc:
        raise RejectedInput(
            Reason.MALFORMED_JSON,
            f"body: not valid UTF-8 at byte {exc.start} ({exc.reason}); JSON must be UTF-8",
        ) from None


def _decode_error(text: str, body: bytes) -> RejectedInput:
    if not body.strip():
        return RejectedInput(Reason.MALFORMED_JSON, "body: empty; expected a JSON object")
    match = _BYTE.search(text)
    if "truncated" in text:
        return RejectedInput(
            Reason.MALFORMED_JSON,
            f"body: not valid JSON: it ends after {len(body)} bytes, in the middle of a value "
            "(truncated?)",
        )
    if match:
        pos = int(match.group(1))
        tail = body[pos : pos + 9].lstrip(b"-")
        if tail.startswith((b"NaN", b"Infinity", b"nan", b"inf", b"Inf")):
            return RejectedInput(
                Reason.NON_FINITE,
                f"body: byte {pos}: NaN and Infinity are not JSON numbers and not valid values; "
                "send null for a missing value",
            )
        line = body.count(b"\n", 0, pos) + 1
        column = pos - (body.rfind(b"\n", 0, pos) + 1) + 1
        snippet = body[max(0, pos - 20) : pos + 20].decode("utf-8", "replace")
        return RejectedInput(
            Reason.MALFORMED_JSON,
            f"body: not valid JSON at line {line}, column {column} (near {snippet!r}): {text}",
        )
    return RejectedInput(Reason.MALFORMED_JSON, f"body: not valid JSON: {text}")


def _validation_error(text: str, body: bytes) -> RejectedInput:
    key_match = _AT_KEY.match(text)
    match = key_match or _AT.match(text)
    what, path = (match.group("what"), match.group("path")) if match else (text, "")
    if key_match:  # a map key failed (e.g. a feature name too long): find and name it
        path += "[...]"
    path, value = _value_at(body, path, what)
    field = path.lstrip(".") or "body"
    shown = ""
    if value is not _MISSING:
        rendered = repr(value)
        if isinstance(value, str) and len(value) > 40:
            rendered = f"{value[:37]!r}... ({len(value)} characters)"
        elif len(rendered) > 80:
            rendered = rendered[:77] + "..."
        shown = f", got {rendered}"
    if "of length <=" in what:
        reason = Reason.STRING_TOO_LONG
    elif field.endswith(".timestamp"):
        reason = Reason.INVALID_TIMESTAMP
        what = "expected RFC 3339 text with a UTC offset or epoch seconds"
    elif "out of range" in what:
        reason = Reason.NON_FINITE
        what = "Number out of range of a 64-bit float (it would be Infinity)"
    else:
        reason = Reason.INVALID_FIELD
    return RejectedInput(reason, f"{field}: {what}{shown}", events=_count_events(body))


class _Missing:
    pass


_MISSING = _Missing()


def _value_at(body: bytes, path: str, what: str) -> tuple[str, Any]:
    """The raw JSON value at a msgspec error path like ``.events[3].id`` (for messages only).

    msgspec writes a map key it cannot name as ``[...]``; the offending entry is then found by
    looking for what the error describes, and the path is returned with the key filled in.
    """
    try:
        # The standard library, unlike msgspec, reads 1e400 (as inf): errors only, speed moot.
        node: Any = json.loads(body)
    except (ValueError, RecursionError):
        return path, _MISSING
    resolved = ""
    for key, index in _STEP.findall(path):
        if key:
            if not isinstance(node, dict) or key not in node:
                return path, _MISSING
            node = node[key]
            resolved += f".{key}"
        elif index == "...":
            if not isinstance(node, dict):
                return path, _MISSING
            found = _offending_entry(node, what)
            if found is None:
                return path, _MISSING
            name, node = found
            resolved += f".{name}"
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return path, _MISSING
            node = node[int(index)]
            resolved += f"[{index}]"
    return resolved, node


def _offending_entry(mapping: dict[str, Any], what: str) -> tuple[str, Any] | None:
    limit = re.search(r"length <= (\d+)", what)
    for name, value in mapping.items():
        if limit and (len(name) > int(limit.group(1))):
            return name, name
        if limit and isinstance(value, str) and len(value) > int(limit.group(1)):
            return name, value
        if "length >= 1" in what and name == "":
            return name, name
        if isinstance(value, dict | list):
            return name, value
        if isinstance(value, float) and not math.isfinite(value):
            return name, value
    return None


def _count_events(body: bytes) -> int:
    """Items in the request's ``events`` or ``labels`` array, if it parses at all (else 1)."""
    try:
        node = json.loads(body)
    except (ValueError, RecursionError):
        return 1
    if isinstance(node, dict):
        for key in ("events", "labels"):
            items = node.get(key)
            if isinstance(items, list):
                return max(1, len(items))
    return 1
