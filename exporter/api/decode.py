"""Reading and decoding request bodies, with limits and structured rejections.

The fast path is msgspec's typed decoder. When it refuses a body, :func:`diagnose` finds out
where and why without reading msgspec's message: the standard library parses the body (its
``JSONDecodeError`` carries the position), then a walk of the document against the same wire
types (``msgspec.structs.fields``, ``typing.get_args``) checks each part with
``msgspec.convert`` and names the first that fails: a
:class:`~exporter.errors.RejectedInput` with its reason, its field path
(``events[3].features.age``) and its value. The walk only runs on refused bodies, and checks
whole events at C speed before looking inside the one that fails.
"""

from __future__ import annotations

import json
import math
import sys
import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from starlette.requests import Request

from exporter.errors import NO_VALUE, Reason, RejectedInput, describe_value

_FLOAT_MAX = sys.float_info.max

#: ``msgspec.Meta(extra={REASON: ...})`` on a wire type sets the reason its failures get.
REASON = "reason"


async def read_body(request: Request, limit: int, setting: str = "max_body_bytes") -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes (the value of
    ``limits.<setting>``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RejectedInput(
            Reason.BODY_TOO_LARGE,
            f"{int(declared)} bytes is over the limit of {limit} bytes "
            f"(limits.{setting}); send less at once",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RejectedInput(
                Reason.BODY_TOO_LARGE,
                f"over the limit of {limit} bytes (limits.{setting}); send less at once",
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
            value=kind,
        )


def decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """Decode and validate ``body``; a refusal becomes a RejectedInput naming field and value."""
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise diagnose(body, decoder.type, exc) from None
    except RecursionError:  # an untyped decoder (``Any``) recurses into every nesting level
        raise RejectedInput(Reason.MALFORMED_JSON, "not valid JSON: nested too deeply") from None


#: Integer literals longer than this may be beyond a float (which ends near 1.8e308).
_FLOAT_DIGITS = 308
#: Python refuses to parse longer integer literals (``sys.get_int_max_str_digits()``).
_INT_DIGITS = 4300


class _Constant(float):
    """``NaN``, ``Infinity`` or ``-Infinity`` as written in a body (the standard library reads
    them; JSON has no such numbers)."""


def diagnose(body: bytes, schema: Any, refusal: Exception) -> RejectedInput:
    """Why ``body`` does not decode as ``schema``, found structurally."""
    if not body.strip():
        return RejectedInput(Reason.MALFORMED_JSON, "the body is empty; expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RejectedInput(
            Reason.MALFORMED_JSON,
            f"the body is not valid UTF-8 at byte {exc.start} ({exc.reason}); JSON must be UTF-8",
        )
    non_finite: list[bool] = []

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            non_finite.append(True)
        return value

    def integer(literal: str) -> int | float:
        digits = len(literal.lstrip("-"))
        if digits > _FLOAT_DIGITS:  # beyond every number type we accept
            non_finite.append(True)
            if digits > _INT_DIGITS:  # beyond Python's int-parsing limit too: read it as inf
                return -math.inf if literal.startswith("-") else math.inf
        return int(literal)

    def constant(literal: str) -> float:
        non_finite.append(True)
        return _Constant(literal)

    try:
        document = json.loads(text, parse_float=number, parse_int=integer, parse_constant=constant)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return RejectedInput(
                Reason.MALFORMED_JSON,
                f"not valid JSON: it ends after {len(body)} bytes, in the middle of a value "
                "(truncated?)",
            )
        snippet = text[max(0, exc.pos - 20) : exc.pos + 20]
        return RejectedInput(
            Reason.MALFORMED_JSON,
            f"not valid JSON at line {exc.lineno}, column {exc.colno} (near {snippet!r}): "
            f"{exc.msg}",
        )
    except RecursionError:
        return RejectedInput(Reason.MALFORMED_JSON, "not valid JSON: nested too deeply")
    events = _count_events(document)
    if not isinstance(document, dict):
        return RejectedInput(
            Reason.INVALID_FIELD,
            f"the body must be a JSON object, got {_kind(document)}",
            events=events,
        )
    # msgspec.convert (used by the walk) accepts non-finite floats: find them first.
    found = _first_non_finite(document, "") if non_finite else None
    found = found or _walk(document, schema, "")
    if found is None:  # msgspec refused what the walk accepts: say what msgspec said
        return RejectedInput(Reason.INVALID_FIELD, f"not accepted: {refusal}", events=events)
    return RejectedInput(
        found.reason, found.message, field=found.field or None, value=found.value, events=events
    )


def _first_non_finite(node: Any, path: str) -> RejectedInput | None:
    if isinstance(node, dict):
        items: Any = ((_join(path, str(k)), v) for k, v in node.items())
    elif isinstance(node, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(node))
    else:
        return _leaf(node, float, path) if _non_finite(node) else None
    for where, value in items:
        found = _first_non_finite(value, where)
        if found is not None:
            return found
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fits(node: Any, tp: Any) -> bool:
    if _non_finite(node):
        return False
    try:
        msgspec.convert(node, tp)
    except msgspec.ValidationError:
        return False
    return True


def _non_finite(node: Any) -> bool:
    """NaN, an infinity, or an int no float can hold."""
    if isinstance(node, float):
        return not math.isfinite(node)
    return isinstance(node, int) and not isinstance(node, bool) and abs(node) > _FLOAT_MAX


def _walk(node: Any, tp: Any, path: str) -> RejectedInput | None:
    """The first part of ``node`` that does not fit ``tp``, as a rejection (None: it fits)."""
    inner, meta = _unwrap(tp)
    if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
        return _walk_struct(node, inner, path)
    origin = get_origin(inner)
    if origin is list and isinstance(node, list):
        (item,) = get_args(inner)
        for i, value in enumerate(node):
            if not _fits(value, item):
                return _walk(value, item, f"{path}[{i}]")
        return None
    if origin is dict and isinstance(node, dict):
        key_type, value_type = get_args(inner)
        for key, value in node.items():
            where = _join(path, key)
            if not _fits(key, key_type):
                return _leaf(key, key_type, where, name=True)
            if not _fits(value, value_type):
                return _walk(value, value_type, where)
        return None
    if _is_union(inner):
        for member in get_args(inner):
            member_inner, _ = _unwrap(member)
            container = get_origin(member_inner) or member_inner
            if (container is list and isinstance(node, list)) or (
                (container is dict or _is_struct(member_inner)) and isinstance(node, dict)
            ):
                return _walk(node, member, path)
    return None if _fits(node, tp) else _leaf(node, tp, path, reason=meta.get(REASON))


def _walk_struct(node: Any, struct: type[msgspec.Struct], path: str) -> RejectedInput | None:
    if not isinstance(node, dict):
        return _invalid(path, f"expected an object, got {describe_value(node)}", node)
    fields = msgspec.structs.fields(struct)
    names = [f.encode_name for f in fields]
    for key in node:
        if key not in names:
            return RejectedInput(
                Reason.INVALID_FIELD,
                f"unknown field (the fields are {', '.join(names)})",
                field=_join(path, key),
            )
    for f in fields:
        where = _join(path, f.encode_name)
        if f.encode_name not in node:
            if f.required:
                return RejectedInput(Reason.INVALID_FIELD, "required field missing", field=where)
            continue
        value = node[f.encode_name]
        if not _fits(value, f.type):
            return _walk(value, f.type, where) or _leaf(value, f.type, where)
    return None


def _leaf(
    node: Any, tp: Any, path: str, *, name: bool = False, reason: str | None = None
) -> RejectedInput:
    """A value that does not fit its type."""
    if _non_finite(node):
        if isinstance(node, _Constant):
            message = (
                "NaN and Infinity are not JSON numbers and not valid values; "
                "send null for a missing value"
            )
        else:
            message = (
                f"Number out of range of a 64-bit float (it would be Infinity), got {_shown(node)}"
            )
        return RejectedInput(Reason.NON_FINITE, message, field=path or None, value=node)
    length = _string_limits(tp)
    if isinstance(node, str) and length is not None:
        low, high = length
        what = "name" if name else "string"
        if high is not None and len(node) > high:
            return RejectedInput(
                Reason.STRING_TOO_LONG,
                f"expected a {what} of at most {high} characters, got {_shown(node)}",
                field=path or None,
                value=node,
            )
        if low is not None and len(node) < low:
            return _invalid(path, f"expected a non-empty {what} (length >= {low}), got ''", node)
    if reason == Reason.INVALID_TIMESTAMP:
        return RejectedInput(
            Reason.INVALID_TIMESTAMP,
            f"expected RFC 3339 text with a UTC offset or epoch seconds, got {_shown(node)}",
            field=path or None,
            value=node,
        )
    hint = ""
    if isinstance(node, float) and node.is_integer() and abs(node) < 2**53 and _integers_only(tp):
        hint = f" (a number with a fraction or an exponent is not an integer: write {int(node)})"
    return _invalid(path, f"expected {_describe(tp)}, got {_shown(node)}{hint}", node)


def _integers_only(tp: Any) -> bool:
    """Whether ``tp`` takes integers but no other numbers (an id: ``1.0`` is refused)."""
    inner, _ = _unwrap(tp)
    members = {_unwrap(m)[0] for m in get_args(inner)} if _is_union(inner) else {inner}
    return int in members and float not in members


def _invalid(path: str, message: str, value: Any = NO_VALUE) -> RejectedInput:
    return RejectedInput(Reason.INVALID_FIELD, message, field=path or None, value=value)


def _shown(value: Any) -> str:
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:37]!r}... ({len(value)} characters)"
    return describe_value(value)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return (
        "a number" if isinstance(value, int | float) and not isinstance(value, bool) else "a bool"
    )


def _unwrap(tp: Any) -> tuple[Any, dict[str, Any]]:
    """``Annotated[T, Meta(...)]`` -> (T, the metas' ``extra``)."""
    if get_origin(tp) is Annotated:
        inner, *metas = get_args(tp)
        extra: dict[str, Any] = {}
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.extra:
                extra.update(meta.extra)
        return inner, extra
    return tp, {}


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _string_limits(tp: Any) -> tuple[int | None, int | None] | None:
    """(min_length, max_length) of the string member of ``tp``, if it has one."""
    members = get_args(tp) if _is_union(tp) else (tp,)
    for member in members:
        inner, _ = _unwrap(member)
        if inner is str:
            if get_origin(member) is Annotated:
                for meta in get_args(member)[1:]:
                    if isinstance(meta, msgspec.Meta):
                        return meta.min_length, meta.max_length
            return None, None
    return None


def _describe(tp: Any) -> str:
    """What a wire type accepts, for a person."""
    inner, _ = _unwrap(tp)
    if _is_union(inner):
        parts = [_describe(m) for m in get_args(inner)]
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    if inner is str:
        return "a string"
    if inner is float:
        return "a number"
    if inner is int:
        return "an integer"
    if inner is bool:
        return "a bool"
    if inner is type(None):
        return "null"
    if inner is datetime:
        return "an RFC 3339 timestamp"
    if get_origin(inner) is list:
        return "an array"
    return "an object"


def _count_events(document: Any) -> int:
    """Items in the request's ``events`` or ``labels`` array, if it has one (else 1)."""
    if isinstance(document, dict):
        for key in ("events", "labels"):
            items = document.get(key)
            if isinstance(items, list):
                return max(1, len(items))
    return 1
