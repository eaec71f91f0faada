"""What a model's data looks like: its task, its classes and its features.

:class:`ModelSchema` owns them for one model. The functions below turn decoded wire values into
the numbers the windows keep (class indices, float columns) and refuse what does not fit, with a
:class:`~exporter.errors.RejectedInput` naming the field and the value. They never change the
schema: a batch is encoded against the schema plus the additions it would make, and
:meth:`ModelSchema.commit` registers those only once the whole batch is valid. Pure Python and
numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from exporter.errors import Reason, RejectedInput, describe_value
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


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


#: Largest magnitude of an int class (it fits in 64 bits, and its label in 20 characters).
MAX_INT_CLASS = 2**63 - 1
#: Floats with an integer value count as int classes only up to here (exact in a float64):
#: ``1e308`` is a number, not class number 10^308 with a 309-digit label.
MAX_INTEGRAL_FLOAT = 2.0**53


def _integral(value: float) -> bool:
    return value.is_integer() and abs(value) <= MAX_INTEGRAL_FLOAT


def class_kind_of(value: WireValue) -> ClassKind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, float) and _integral(value):
        return "int"
    return None


def category_label(value: object) -> str:
    """The canonical name of a category value (also the ``class`` label of class values).

    >>> [category_label(v) for v in (True, 3, 3.0, 2.5, "a", 1e308)]
    ['true', '3', '3', '2.5', 'a', '1e+308']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and _integral(value):
        return str(int(value))
    return str(value)


def infer_task(values: Sequence[WireValue]) -> Task:
    """The task of an undeclared model from its first predictions (and inline labels).

    Bools make a binary classifier; ints in {0, 1} a binary one; other ints or strings a
    multiclass one; any non-integer float a regression. A declared task always wins over this.
    """
    kinds = {type(v) for v in values if v is not None}
    if float in kinds and not kinds & {str, bool}:
        return "regression"
    if kinds == {bool}:
        return "binary"
    if kinds == {int}:
        return "binary" if all(v in (0, 1) for v in values if v is not None) else "multiclass"
    if kinds == {str}:
        return "multiclass"
    shown = ", ".join(sorted(type_name(v) for v in {type(v): v for v in values}.values()))
    raise RejectedInput(
        Reason.TASK_MISMATCH,
        f"predictions mix value types ({shown}); a model's classes must all be ints, all "
        "strings or all bools, or its predictions all numbers (regression)",
    )


class ClassCodec:
    """The classes of a classification model, in order of first appearance."""

    def __init__(self, kind: ClassKind | None = None) -> None:
        self.kind: ClassKind | None = kind
        self.values: list[ClassValue] = []
        self.index: dict[ClassValue, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    def label(self, index: int) -> str:
        """The Prometheus label value of a class."""
        return category_label(self.values[index])

    def add(self, value: ClassValue) -> int:
        idx = self.index.get(value)
        if idx is None:
            idx = len(self.values)
            self.values.append(value)
            self.index[value] = idx
        return idx


@dataclass
class FeatureSchema:
    """Feature names in order of first appearance, their kind (None until a value is seen) and,
    for categorical features, the code of each category (bounded; the rest pooled as -1)."""

    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    kinds: list[FeatureKind | None] = field(default_factory=list)
    codes: list[dict[str, int]] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    declared_categorical: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self.names)

    def commit(self, batch: FeatureBatch) -> None:
        """Register what a validated batch introduced: names, kinds and categories."""
        for name in batch.new_names:
            self.index[name] = len(self.names)
            self.names.append(name)
            self.kinds.append("categorical" if name in self.declared_categorical else None)
            self.codes.append({})
            self.labels.append([])
        for col, kind in batch.learnt.items():
            self.kinds[col] = kind
        for col, new in batch.new_categories.items():
            for label, code in new.items():
                self.codes[col][label] = code
                self.labels[col].append(label)


@dataclass
class FeatureBatch:
    """A batch's features as a matrix, and what it would add to the schema."""

    matrix: FloatArray  # (events, features); NaN missing; categorical columns hold codes
    new_names: list[str]
    learnt: dict[int, FeatureKind]  # column -> kind learnt from this batch
    mismatches: dict[int, int]  # column -> values of the wrong type (stored as missing)
    new_categories: dict[int, dict[str, int]]  # column -> categories new in this batch -> code
    pooled: dict[int, int]  # column -> values in categories beyond the limit (code -1)


class ModelSchema:
    """A model's task, classes and features; changed only by :meth:`commit` (and, for a
    reference uploaded before any event, :meth:`adopt_features`)."""

    def __init__(
        self,
        task: Task | None = None,
        positive_class: ClassValue | None = None,
        categorical: Collection[str] = (),
    ) -> None:
        self.task: Task | None = task
        self.task_declared = task is not None
        self.positive_value: ClassValue | None = positive_class
        kind = class_kind_of(positive_class) if positive_class is not None else None
        self.codec = ClassCodec(kind)
        self.features = FeatureSchema(declared_categorical=frozenset(categorical))

    def _positive(self) -> ClassValue | None:
        if self.task != "binary":
            return None
        if self.positive_value is not None:
            return self.positive_value
        return True if self.codec.kind == "bool" else 1

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class of a binary model (None before it has been seen)."""
        value = self._positive()
        return None if value is None else self.codec.index.get(value)

    @property
    def positive_label(self) -> str | None:
        value = self._positive()
        return None if value is None else category_label(value)

    def class_labels(self) -> list[str] | None:
        """Labels of the class indices stored for a classifier; None for regression."""
        if self.task == "regression":
            return None
        return [self.codec.label(i) for i in range(len(self.codec))]

    def check_classes(
        self, task: Task, new_classes: dict[ClassValue, int], max_classes: int, model: str
    ) -> Task:
        """Refuse too many classes; an inferred binary model with a third class turns multiclass."""
        if task == "regression":
            return task
        total = len(self.codec) + len(new_classes)
        shown = ", ".join(repr(c) for c in list(new_classes)[:5])
        if total > max_classes:
            raise RejectedInput(
                Reason.TOO_MANY_CLASSES,
                f"model {model!r} would have {total} classes (new: {shown}); "
                f"limits.max_classes is {max_classes}",
            )
        if task == "binary" and total > 2:
            if self.task_declared:
                raise RejectedInput(
                    Reason.TOO_MANY_CLASSES,
                    f"model {model!r} is declared binary, but these values would make "
                    f"{total} classes (new: {shown})",
                )
            return "multiclass"
        return task

    def commit(
        self,
        task: Task,
        class_kind: ClassKind | None,
        new_classes: dict[ClassValue, int],
        features: FeatureBatch | None = None,
    ) -> None:
        """Register what a validated batch established: the task (inferred, or promoted from
        binary to multiclass), the class kind, new classes and new features."""
        self.task = task
        if class_kind is not None and self.codec.kind is None:
            self.codec.kind = class_kind
        for value in sorted(new_classes, key=new_classes.__getitem__):
            self.codec.add(value)
        if features is not None:
            self.features.commit(features)

    def kind_conflicts(self, numeric: Collection[str], categorical: Collection[str]) -> str | None:
        """The first feature whose kind in a reference contradicts the events' (its name)."""
        for name, kind in zip(self.features.names, self.features.kinds, strict=True):
            other = "numeric" if name in numeric else "categorical" if name in categorical else None
            if kind is not None and other is not None and other != kind:
                return name
        return None

    def adopt_features(self, numeric: Collection[str], categorical: Collection[str]) -> None:
        """Features a reference knows and the events have not shown yet take the reference's
        kind: a reference uploaded first declares the schema."""
        new = sorted((set(numeric) | set(categorical)) - set(self.features.names))
        self.features.commit(FeatureBatch(np.empty((0, 0)), new, {}, {}, {}, {}))
        for name in itertools.chain(numeric, categorical):
            col = self.features.index[name]
            if self.features.kinds[col] is None:
                self.features.kinds[col] = "numeric" if name in numeric else "categorical"


def to_epoch(value: float | datetime | None, now: float, max_skew: float, where: str) -> float:
    """Seconds since the epoch of an event timestamp (``None`` is ``now``)."""
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
    if not math.isfinite(ts) or ts < 0:
        raise RejectedInput(
            Reason.INVALID_TIMESTAMP,
            f"{describe_value(sent)} is not a valid time",
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
    known = len(schema.names)
    new_names: list[str] = []
    new_index: dict[str, int] = {}
    first_keys = tuple(feature_dicts[0]) if n else ()
    uniform = all(tuple(f) == first_keys for f in feature_dicts)
    key_sets = [first_keys] if uniform else [tuple(f) for f in feature_dicts]
    for keys in key_sets:
        for name in keys:
            if name not in schema.index and name not in new_index:
                new_index[name] = known + len(new_names)
                new_names.append(name)
    width = known + len(new_names)
    if width > max_features:
        raise RejectedInput(
            Reason.TOO_MANY_FEATURES,
            f"model {model!r} would have {width} features (new: "
            f"{', '.join(map(repr, new_names[:5]))}{', ...' if len(new_names) > 5 else ''}); "
            f"limits.max_features is {max_features}",
        )

    def column_of(name: str) -> int:
        idx = schema.index.get(name)
        return new_index[name] if idx is None else idx

    declared = schema.declared_categorical
    kinds: list[FeatureKind | None] = [
        *schema.kinds,
        *("categorical" if name in declared else None for name in new_names),
    ]
    batch = FeatureBatch(np.full((n, width), np.nan), new_names, {}, {}, {}, {})

    if uniform and n:
        # Fast path (every event has the same keys in the same order, all numbers or null):
        # C-speed passes only; this is most of the ingest cost at 20 features x 1000 events.
        cols = [column_of(name) for name in first_keys]
        types = set(map(type, itertools.chain.from_iterable(map(dict.values, feature_dicts))))
        if types <= {float, type(None)} and all(kinds[c] != "categorical" for c in cols):
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
            return batch

    # General path: categories, mixed types, missing or reordered keys.
    # A feature's kind is learnt from the majority of this batch's values, so that one odd
    # first value (a stray string in a numeric column) does not decide it.
    votes: dict[int, list[int]] = {}
    for feats in feature_dicts:
        for name, value in feats.items():
            if value is None:
                continue
            c = column_of(name)
            if kinds[c] is None:
                tally = votes.setdefault(c, [0, 0])
                tally[isinstance(value, str | bool)] += 1
    for c, (numbers, categories) in votes.items():
        kinds[c] = batch.learnt[c] = "numeric" if numbers >= categories else "categorical"
    matrix = batch.matrix
    for i, feats in enumerate(feature_dicts):
        for name, value in feats.items():
            if value is None:
                continue
            c = column_of(name)
            is_category = isinstance(value, str | bool)
            if kinds[c] == "numeric":
                if is_category:
                    batch.mismatches[c] = batch.mismatches.get(c, 0) + 1
                else:
                    matrix[i, c] = value
                continue
            if not is_category and name not in declared:
                batch.mismatches[c] = batch.mismatches.get(c, 0) + 1
                continue
            matrix[i, c] = _category_code(batch, schema, c, category_label(value), max_categories)
    return batch


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
) -> FloatArray | IntArray:
    """Predictions or labels as class indices (classification) or floats (regression).

    Unknown classes get the next free indices and are recorded in ``new_classes`` (the codec is
    not modified). ``kind`` is the class kind the values must have (the codec's, or the one the
    batch establishes). ``field_of(i)`` names the field of the i-th value in a rejection.
    """
    if task == "regression":
        if set(map(type, values)) <= {int, float}:
            try:
                return np.array(values, dtype=np.float64)
            except OverflowError:
                pass  # an int beyond float range: the loop below names it
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
        return out
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
        indices[i] = idx
    return indices
