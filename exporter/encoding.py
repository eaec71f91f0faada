"""Turning a batch's decoded values into the numbers the windows keep.

Timestamps become epoch seconds, features an (events, features) matrix in the schema's column
order (categories as codes), predictions and labels class indices or floats. Each function
checks a batch against a :class:`~exporter.schema.ModelSchema`'s parts plus what the batch
itself would add, never changing them, and refuses what does not fit with a
:class:`~exporter.errors.RejectedInput` naming the field and the value. Pure Python and numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import numpy as np

from exporter.errors import Reason, RejectedInput, describe_value
from exporter.schema import (
    MAX_INT_CLASS,
    ClassCodec,
    FeatureBatch,
    FeatureSchema,
    category_label,
    class_kind_of,
    type_name,
)
from exporter.typedefs import (
    ClassKind,
    ClassValue,
    FeatureKind,
    FloatArray,
    IntArray,
    Task,
    WireValue,
)

#: Names the field of the i-th value of a batch, e.g. ``lambda i: f"events[{i}].label"``.
FieldOf = Callable[[int], str]


#: The earliest event time accepted: 2000-01-01T00:00:00Z, as epoch seconds. Replayed logs are
#: newer; anything older is a mix-up (a duration, epoch minutes or days, a placeholder date).
EARLIEST_TIME: Final = 946_684_800.0
EARLIEST_TEXT: Final = "2000-01-01T00:00:00Z"

#: Units that a number meant as a time may be in instead of seconds, by size.
_UNITS: Final = (("minutes", 60.0), ("hours", 3600.0), ("days", 86400.0))


def to_epoch(value: float | datetime | None, now: float, max_skew: float, where: str) -> float:
    """Seconds since the epoch of an event timestamp (``None`` is ``now``), from
    :data:`EARLIEST_TIME` to ``max_skew`` seconds after ``now``."""
    if value is None:
        return now
    sent: float | str = value.isoformat() if isinstance(value, datetime) else value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RejectedInput(
                Reason.INVALID_TIMESTAMP,
                f"{sent!r} has no UTC offset; RFC 3339 needs one (e.g. '2026-01-02T03:04:05Z')",
                field=where,
                value=sent,
            )
        ts = value.timestamp()
    else:
        ts = float(value)
    if not math.isfinite(ts):
        raise RejectedInput(
            Reason.INVALID_TIMESTAMP,
            f"{describe_value(sent)} is not a valid time",
            field=where,
            value=sent,
        )
    if ts < EARLIEST_TIME:
        raise RejectedInput(
            Reason.INVALID_TIMESTAMP,
            f"{describe_value(sent)} is before {EARLIEST_TEXT} ({EARLIEST_TIME:.0f} in epoch "
            f"seconds), the earliest time accepted{_past_hint(value, ts, now)}",
            field=where,
            value=sent,
        )
    if ts > now + max_skew:
        hint = " (epoch seconds are expected, not milliseconds)" if ts > now * 100 else ""
        raise RejectedInput(
            Reason.INVALID_TIMESTAMP,
            f"{describe_value(sent)} is {ts - now:.0f} s in the future, beyond "
            f"limits.max_clock_skew ({max_skew:g} s){hint}",
            field=where,
            value=sent,
        )
    return ts


def _past_hint(value: float | datetime, ts: float, now: float) -> str:
    """The likely mix-up behind a time before :data:`EARLIEST_TIME`."""
    if isinstance(value, datetime):
        return " (a placeholder date such as 1970-01-01, or a two-digit year?)"
    for unit, seconds in _UNITS:
        if EARLIEST_TIME <= ts * seconds <= now:
            return f" (epoch seconds are expected; this looks like {unit} since the epoch)"
    return " (epoch seconds are expected; is it a duration, or a time since the start of a run?)"


def timestamps(
    values: Sequence[float | datetime | None], now: float, max_skew: float, field_of: FieldOf
) -> FloatArray:
    """Epoch seconds of a batch's timestamps; the common all-absent case costs O(1) per event."""
    if all(v is None for v in values):
        return np.full(len(values), now)
    return np.array(
        [to_epoch(v, now, max_skew, field_of(i)) for i, v in enumerate(values)],
        dtype=np.float64,
    )


def feature_matrix(
    feature_dicts: Sequence[dict[str, float | str | bool | None]],
    schema: FeatureSchema,
    max_features: int,
    model: str,
    max_categories: int = 100,
) -> FeatureBatch:
    """Feature values as an (events, features) matrix in the schema's column order.

    Numeric values are stored as they are; categories as their code (a float), with codes beyond
    ``max_categories`` per feature pooled as -1. Missing values, and values whose type contradicts
    the feature's kind (counted), are NaN. The schema itself is not modified.
    """
    n = len(feature_dicts)
    first_keys = tuple(feature_dicts[0]) if n else ()
    uniform = all(tuple(f) == first_keys for f in feature_dicts)
    columns = dict(schema.index)  # name -> column, with the batch's new names appended
    new_names: list[str] = []
    for i, keys in enumerate([first_keys] if uniform else [tuple(f) for f in feature_dicts]):
        for name in keys:
            if name not in columns:
                columns[name] = len(columns)
                new_names.append(name)
                if len(columns) > max_features:
                    # Name the event that goes over the limit: a client can drop it alone.
                    raise RejectedInput(
                        Reason.TOO_MANY_FEATURES,
                        f"feature {name!r} would be number {len(columns)} of model "
                        f"{model!r} (new in this batch: "
                        f"{', '.join(map(repr, new_names[:5]))}"
                        f"{', ...' if len(new_names) > 5 else ''}); "
                        f"limits.max_features is {max_features}",
                        field=f"events[{i}].features",
                        value=name,
                    )
    declared = schema.declared_categorical
    kinds: list[FeatureKind | None] = [
        *schema.kinds,
        *("categorical" if name in declared else None for name in new_names),
    ]
    batch = FeatureBatch(np.full((n, len(columns)), np.nan), new_names, {}, {}, {}, {})
    if (
        uniform
        and n
        and _numeric_block(feature_dicts, [columns[k] for k in first_keys], kinds, batch)
    ):
        return batch
    _general(feature_dicts, columns, kinds, schema, max_categories, batch)
    return batch


def _numeric_block(
    feature_dicts: Sequence[dict[str, float | str | bool | None]],
    cols: list[int],
    kinds: list[FeatureKind | None],
    batch: FeatureBatch,
) -> bool:
    """The fast path, when every event has the same keys in the same order and every value is
    a number or null: C-speed passes only (this is most of the ingest cost at 20 features x
    1000 events). Returns False, having done nothing, when it does not apply."""
    n = len(feature_dicts)
    types = set(map(type, itertools.chain.from_iterable(map(dict.values, feature_dicts))))
    if not types <= {float, type(None)} or any(kinds[c] == "categorical" for c in cols):
        return False
    if types == {float}:
        flat = itertools.chain.from_iterable(map(dict.values, feature_dicts))
        block = np.fromiter(flat, dtype=np.float64, count=n * len(cols))
    else:  # None becomes NaN (missing)
        block = np.array([list(f.values()) for f in feature_dicts], dtype=np.float64)
    block = block.reshape(n, len(cols))
    batch.matrix[:, cols] = block
    for j, c in enumerate(cols):
        if kinds[c] is None and not np.isnan(block[:, j]).all():
            batch.learnt[c] = "numeric"
    return True


def _general(
    feature_dicts: Sequence[dict[str, float | str | bool | None]],
    columns: dict[str, int],
    kinds: list[FeatureKind | None],
    schema: FeatureSchema,
    max_categories: int,
    batch: FeatureBatch,
) -> None:
    """The general path: categories, mixed types, missing or reordered keys. A feature's kind
    is learnt from the majority of this batch's values, so that one odd first value (a stray
    string in a numeric column) does not decide it."""
    votes: dict[int, list[int]] = {}
    for feats in feature_dicts:
        for name, value in feats.items():
            if value is not None and kinds[c := columns[name]] is None:
                votes.setdefault(c, [0, 0])[isinstance(value, str | bool)] += 1
    for c, (numbers, categories) in votes.items():
        kinds[c] = batch.learnt[c] = "numeric" if numbers >= categories else "categorical"
    matrix, declared = batch.matrix, schema.declared_categorical
    for i, feats in enumerate(feature_dicts):
        for name, value in feats.items():
            if value is None:
                continue
            c = columns[name]
            is_category = isinstance(value, str | bool)
            if kinds[c] == "numeric":
                if is_category:
                    batch.mismatches[c] = batch.mismatches.get(c, 0) + 1
                else:
                    matrix[i, c] = value
            elif not is_category and name not in declared:
                batch.mismatches[c] = batch.mismatches.get(c, 0) + 1
            else:
                code = _category_code(batch, schema, c, category_label(value), max_categories)
                matrix[i, c] = code


def _category_code(
    batch: FeatureBatch, schema: FeatureSchema, col: int, label: str, limit: int
) -> float:
    codes = schema.codes[col] if col < len(schema.codes) else {}
    code = codes.get(label)
    if code is not None:
        return float(code)
    pending = batch.new_categories.setdefault(col, {})
    code = pending.get(label)
    if code is not None:
        return float(code)
    if len(codes) + len(pending) >= limit:
        batch.pooled[col] = batch.pooled.get(col, 0) + 1
        return -1.0
    code = pending[label] = len(codes) + len(pending)
    return float(code)


_PYTHON_TYPE: dict[ClassKind, type] = {"int": int, "bool": bool, "string": str}


def encode_targets(
    values: Sequence[WireValue],
    *,
    task: Task,
    codec: ClassCodec,
    kind: ClassKind | None,
    new_classes: dict[ClassValue, int],
    field_of: FieldOf,
    model: str,
    first_at: dict[ClassValue, str] | None = None,
) -> FloatArray | IntArray:
    """Predictions or labels as class indices (classification) or floats (regression).

    Unknown classes get the next free indices and are recorded in ``new_classes`` (the codec is
    not modified), and in ``first_at`` the field of the value that brought each (so that a
    refusal for too many classes can name the event). ``kind`` is the class kind the values must
    have (the codec's, or the one the batch establishes). ``field_of(i)`` names the field of the
    i-th value in a rejection.
    """
    if task == "regression":
        return _numbers(values, field_of, model)
    if kind is not None and set(map(type, values)) == {_PYTHON_TYPE[kind]}:
        try:  # fast path: every value is a known class of the right kind
            lookup: Any = codec.index.__getitem__  # values are all of the codec's kind
            return np.fromiter(map(lookup, values), np.int64, len(values))
        except KeyError:
            pass  # a new class: the loop below assigns it an index
    indices = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        vkind = class_kind_of(v)
        if vkind is None or (kind is not None and vkind != kind):
            raise RejectedInput(
                Reason.TASK_MISMATCH,
                f"{describe_value(v)} is {type_name(v)}, but model {model!r} is a {task} "
                f"classifier with {kind or 'int, string or bool'} classes",
                field=field_of(i),
                value=v,
            )
        # vkind is not None, so v is a bool, a string, an int or a float with an integer value.
        key: ClassValue = v if isinstance(v, bool | str) else int(v or 0)
        if isinstance(key, int) and not isinstance(key, bool) and abs(key) > MAX_INT_CLASS:
            raise RejectedInput(
                Reason.INVALID_FIELD,
                f"{describe_value(v)} is too large for a class: int classes fit in 64 bits",
                field=field_of(i),
                value=v,
            )
        idx = codec.index.get(key)
        if idx is None:
            idx = new_classes.get(key)
            if idx is None:
                idx = len(codec.values) + len(new_classes)
                new_classes[key] = idx
                if first_at is not None:
                    first_at[key] = field_of(i)
        indices[i] = idx
    return indices


#: The largest magnitude of a regression's prediction or label: the squared error of two such
#: values, (2e150)^2, stays far within float range, as do the sums the windows keep of them.
MAX_TARGET: Final = 1e150


def _numbers(values: Sequence[WireValue], field_of: FieldOf, model: str) -> FloatArray:
    """A regression model's predictions or labels as floats, each within +-:data:`MAX_TARGET`
    (beyond, an error or its square would overflow to infinity)."""
    if set(map(type, values)) <= {int, float}:
        try:
            out = np.array(values, dtype=np.float64)
        except OverflowError:
            pass  # an int beyond float range: the loop below names it
        else:
            _check_range(out, values, field_of)
            return out
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise RejectedInput(
                Reason.TASK_MISMATCH,
                f"{describe_value(v)} is {type_name(v)}, but model {model!r} is a "
                "regression model and needs numbers",
                field=field_of(i),
                value=v,
            )
        try:
            out[i] = v
        except OverflowError:  # an int beyond float range
            raise RejectedInput(
                Reason.NON_FINITE,
                "Number out of range of a 64-bit float (it would be Infinity)",
                field=field_of(i),
                value=v,
            ) from None
    _check_range(out, values, field_of)
    return out


def _check_range(out: FloatArray, values: Sequence[WireValue], field_of: FieldOf) -> None:
    beyond = np.abs(out) > MAX_TARGET
    if np.logical_or.reduce(beyond):
        i = int(np.argmax(beyond))
        raise RejectedInput(
            Reason.OUT_OF_RANGE,
            f"{describe_value(values[i])} is beyond +-{MAX_TARGET:g}: a regression's errors "
            "and their squares must stay within a 64-bit float",
            field=field_of(i),
            value=values[i],
        )
