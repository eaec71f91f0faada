"""What a model's data looks like: its task, its classes and its features.

:class:`ModelSchema` owns them for one model. It changes only by :meth:`ModelSchema.commit` of
what a valid batch established (:mod:`exporter.encoding` encodes a batch against the schema
plus the additions the batch would make, and :mod:`exporter.batch` validates it whole first),
or by a reference uploaded before any event. Pure Python and numpy.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from exporter.errors import Reason, RejectedInput
from exporter.persist.plain import State
from exporter.typedefs import (
    ClassKind,
    ClassValue,
    FeatureKind,
    FloatArray,
    Task,
    WireValue,
)


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
        return self.positive_for(self.task, self.codec.kind)

    def positive_for(self, task: Task | None, kind: ClassKind | None) -> ClassValue | None:
        """The positive class of a model with this task and class kind (the declared one, or
        ``True`` / ``1``); None unless binary."""
        if task != "binary":
            return None
        if self.positive_value is not None:
            return self.positive_value
        return True if kind == "bool" else 1

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
        self,
        task: Task,
        new_classes: dict[ClassValue, int],
        max_classes: int,
        model: str,
        first_at: Mapping[ClassValue, str] | None = None,
    ) -> Task:
        """Refuse too many classes; an inferred binary model with a third class turns multiclass.

        A refusal names the event whose value is the first class over the limit (its field in
        ``first_at``, as :func:`~exporter.encoding.encode_targets` recorded it)."""
        if task == "regression":
            return task
        total = len(self.codec) + len(new_classes)
        shown = ", ".join(repr(c) for c in list(new_classes)[:5])
        if total > max_classes:
            raise self._too_many(
                new_classes,
                max_classes,
                first_at,
                f"model {model!r} would have {total} classes (new: {shown}); "
                f"limits.max_classes is {max_classes}",
            )
        if task == "binary" and total > 2:
            if self.task_declared:
                raise self._too_many(
                    new_classes,
                    2,
                    first_at,
                    f"model {model!r} is declared binary, but these values would make "
                    f"{total} classes (new: {shown})",
                )
            return "multiclass"
        return task

    def _too_many(
        self,
        new_classes: dict[ClassValue, int],
        limit: int,
        first_at: Mapping[ClassValue, str] | None,
        message: str,
    ) -> RejectedInput:
        over = list(new_classes)[max(0, limit - len(self.codec))]
        where = None if first_at is None else first_at.get(over)
        if where is None:
            return RejectedInput(Reason.TOO_MANY_CLASSES, message)
        return RejectedInput(Reason.TOO_MANY_CLASSES, message, field=where, value=over)

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

    def to_state(self) -> State:
        """The task, classes (values in index order, bools and ints kept apart) and features."""
        f = self.features
        return {
            "task": self.task,
            "task_declared": self.task_declared,
            "positive_value": self.positive_value,
            "class_kind": self.codec.kind,
            "classes": list(self.codec.values),
            "features": list(f.names),
            "kinds": list(f.kinds),
            "codes": [dict(codes) for codes in f.codes],
            "labels": [list(labels) for labels in f.labels],
            "declared_categorical": sorted(f.declared_categorical),
        }

    @classmethod
    def from_state(cls, state: State) -> ModelSchema:
        schema = cls(state["task"], state["positive_value"], state["declared_categorical"])
        schema.task_declared = bool(state["task_declared"])
        schema.codec.kind = state["class_kind"]
        for value in state["classes"]:
            schema.codec.add(value)
        names = list(state["features"])
        f = schema.features
        f.names, f.index = names, {name: i for i, name in enumerate(names)}
        f.kinds = list(state["kinds"])
        f.codes = [dict(codes) for codes in state["codes"]]
        f.labels = [list(labels) for labels in state["labels"]]
        if not len(f.kinds) == len(f.codes) == len(f.labels) == len(names):
            raise ValueError("saved feature schema columns differ in length")
        return schema

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
