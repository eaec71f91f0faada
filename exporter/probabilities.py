"""Predicted probabilities sent with prediction events, checked and encoded against the
model's classes, changing nothing.

An event may carry ``score`` (the positive class's probability, binary models) or
``probabilities`` (``{class: probability}``, any classifier; keys are class values as strings:
``"1"``, ``"true"``, ``"cat"``). What the join keeps per event is a :data:`Score`:

* a binary model: a float, the positive class's probability (from ``score``, or from
  ``probabilities``, where a class left out has probability 0);
* a multiclass model: ``bytes`` holding float64 probabilities by class index (a class left out
  has probability 0), divided by their sum.

Both are atoms to CPython's garbage collector, so the join's waiting tuples stay untracked (see
``exporter.join``). A class named only in ``probabilities`` is a class of the model like one a
prediction brings (within ``limits.max_classes``); a key that cannot be one of its classes
(``"cat"`` for a model with int classes, ``"01"``) is refused, as is a probability outside
0..1, a sum off 1 by more than ``quality.probability_tolerance``, a score on a regression or
multiclass model, and both fields on one event. Every refusal is ``invalid_score`` and names
the field. Pure Python and numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from exporter.encoding import encode_targets
from exporter.errors import Reason, RejectedInput, describe_value
from exporter.schema import ClassCodec
from exporter.typedefs import ClassKind, ClassValue, FloatArray, IntArray, Task, WireValue

#: What the join keeps of an event's probabilities (None: the event had none).
Score = float | bytes | None

#: An int class's canonical text: no sign on 0 ("-0" would name class 0 a second time).
_INT_KEY: Final = re.compile(r"0|-?[1-9]\d*")


def _refuse(message: str, field: str, value: object) -> RejectedInput:
    return RejectedInput(Reason.INVALID_SCORE, message, field=field, value=value)


def class_of_key(key: str, kind: ClassKind | None, field: str) -> WireValue:
    """The class a ``probabilities`` key names, as a prediction would send it.

    >>> keys = (("3", "int"), ("true", "bool"), ("a", "string"))
    >>> [class_of_key(key, kind, "f") for key, kind in keys]
    [3, True, 'a']
    """
    if kind == "int" and _INT_KEY.fullmatch(key):
        return int(key)
    if kind == "bool" and key in ("true", "false"):
        return key == "true"
    if kind == "string":
        return key
    shown = {"int": 'integers such as "1"', "bool": '"true" or "false"'}.get(
        kind or "", "class values"
    )
    raise _refuse(
        f"{describe_value(key)} cannot be a class of this model: its classes are {kind}s, so "
        f"the keys of probabilities are {shown}",
        field,
        key,
    )


def encode_scores(
    scores: Sequence[float | None],
    probabilities: Sequence[Mapping[str, float] | None],
    *,
    task: Task,
    kind: ClassKind | None,
    codec: ClassCodec,
    new_classes: dict[ClassValue, int],
    positive: ClassValue | None,
    tolerance: float,
    model: str,
    max_classes: int,
    first_at: dict[ClassValue, str] | None = None,
) -> list[Score] | None:
    """Each event's :data:`Score`, or None when no event has one. ``new_classes`` and
    ``first_at`` are extended with classes only ``probabilities`` name; more than
    ``max_classes`` in all are refused (``too_many_classes``) as soon as a key brings one, so
    that no row is ever wider than the limit. ``positive``: the positive class of a binary
    model."""
    given = [
        i
        for i, (s, p) in enumerate(zip(scores, probabilities, strict=True))
        if s is not None or p is not None
    ]
    if not given:
        return None
    if task == "regression":
        i = given[0]
        name = "score" if scores[i] is not None else "probabilities"
        raise _refuse(
            f"model {model!r} is a regression: its predictions have no class probabilities",
            f"events[{i}].{name}",
            scores[i] if scores[i] is not None else "{...}",
        )
    classes = _Classes(
        task, kind, codec, new_classes, positive, tolerance, model, max_classes, first_at
    )
    fast = _alike(scores, probabilities, given, classes)
    return fast if fast is not None else _one_by_one(scores, probabilities, given, classes)


@dataclass(frozen=True, slots=True)
class _Classes:
    """What the scores of a batch are checked against: the model's classes with the batch's
    new ones (``new_classes`` and ``first_at`` grow as probabilities name classes)."""

    task: Task
    kind: ClassKind | None
    codec: ClassCodec
    new_classes: dict[ClassValue, int]
    positive: ClassValue | None
    tolerance: float
    model: str
    max_classes: int
    first_at: dict[ClassValue, str] | None

    @property
    def width(self) -> int:
        return len(self.codec) + len(self.new_classes)

    @property
    def binary(self) -> bool:
        """Scores are a float, the positive class's probability (else bytes per class)."""
        return self.task == "binary" and self.width <= 2

    def indices(self, keys: Sequence[str], where: str) -> IntArray:
        """The class indices ``probabilities`` keys name (new classes get the next ones)."""
        values = [class_of_key(k, self.kind, f"{where}.{k}") for k in keys]
        out = encode_targets(
            values,
            task=self.task,
            codec=self.codec,
            kind=self.kind,
            new_classes=self.new_classes,
            field_of=lambda j: f"{where}.{keys[j]}",
            model=self.model,
            first_at=self.first_at,
        )
        if self.width > self.max_classes:
            over = list(self.new_classes)[self.max_classes - len(self.codec)]
            raise RejectedInput(
                Reason.TOO_MANY_CLASSES,
                f"model {self.model!r} would have {self.width} classes with those probabilities "
                f"name; limits.max_classes is {self.max_classes}",
                field=(self.first_at or {}).get(over, where),
                value=over,
            )
        return out.astype(np.int64)  # class indices: a classifier's task

    def positive_index(self) -> int | None:
        value = self.positive
        if value is None:
            return None
        index = self.codec.index.get(value)
        return self.new_classes.get(value) if index is None else index


def _alike(
    scores: Sequence[float | None],
    probabilities: Sequence[Mapping[str, float] | None],
    given: list[int],
    classes: _Classes,
) -> list[Score] | None:
    """The usual batch at numpy speed: every scored event has probabilities with the same keys
    in the same order (a classifier's output), or every one a score, all within the rules.
    None for anything else, which the event-by-event path then checks, naming the field."""
    out: list[Score] = [None] * len(scores)
    first = probabilities[given[0]]
    if first is None:
        if any(probabilities[i] is not None for i in given) or not classes.binary:
            return None
        values = np.array([scores[i] for i in given], dtype=np.float64)
        if not (np.all(values >= 0.0) and np.all(values <= 1.0)):  # NaN fails too
            return None
        for i, value in zip(given, values.tolist(), strict=True):
            out[i] = value
        return out
    keys = tuple(first)
    if not keys or any(
        scores[i] is not None or (p := probabilities[i]) is None or tuple(p) != keys for i in given
    ):
        return None
    indices = classes.indices(keys, f"events[{given[0]}].probabilities")
    matrix = np.array([tuple(probabilities[i].values()) for i in given], dtype=np.float64)  # type: ignore[union-attr]
    total = matrix.sum(axis=1)
    if not (
        np.all(matrix >= 0.0)
        and np.all(matrix <= 1.0)
        and np.all(np.abs(total - 1.0) <= classes.tolerance)
    ):
        return None
    matrix /= total[:, None]
    if classes.binary:
        column = classes.positive_index()
        named = np.flatnonzero(indices == column) if column is not None else np.empty(0, np.intp)
        chosen = matrix[:, named[0]] if named.shape[0] else np.zeros(len(given))
        for i, value in zip(given, chosen.tolist(), strict=True):
            out[i] = value
        return out
    full = np.zeros((len(given), classes.width))
    full[:, indices] = matrix
    for i, row in zip(given, full, strict=True):
        out[i] = row.tobytes()
    return out


def _one_by_one(
    scores: Sequence[float | None],
    probabilities: Sequence[Mapping[str, float] | None],
    given: list[int],
    classes: _Classes,
) -> list[Score]:
    """Each event checked on its own: the first that breaks a rule is refused, by field."""
    vectors: dict[int, dict[int, float]] = {}
    for i in given:
        score, probs = scores[i], probabilities[i]
        if score is not None and probs is not None:
            raise _refuse(
                "an event carries score or probabilities, not both", f"events[{i}].score", score
            )
        if probs is not None:
            vectors[i] = _vector(probs, f"events[{i}].probabilities", classes)
        else:
            assert score is not None
            _check_probability(score, f"events[{i}].score")
    out: list[Score] = [None] * len(scores)
    if classes.binary:
        index = classes.positive_index()
        for i in given:
            score = scores[i]
            if score is not None:
                out[i] = float(score)
            else:
                out[i] = vectors[i].get(index, 0.0) if index is not None else 0.0
        return out
    for i in given:
        if scores[i] is not None:
            raise _refuse(
                f"model {classes.model!r} is a {classes.task} classifier: send probabilities, "
                "one per class, rather than one score (string classes make a multiclass model "
                "unless models.<name>.task is binary, with its positive_class)",
                f"events[{i}].score",
                scores[i],
            )
    for i, vector in vectors.items():
        row = np.zeros(classes.width)
        for index, p in vector.items():
            row[index] = p
        out[i] = row.tobytes()
    return out


def _check_probability(value: float, field: str) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise _refuse(f"a probability is within 0..1, got {describe_value(value)}", field, value)


def _vector(probs: Mapping[str, float], where: str, classes: _Classes) -> dict[int, float]:
    """One event's probabilities by class index, divided by their sum."""
    if not probs:
        raise _refuse("probabilities names no class", where, "{}")
    keys = list(probs)
    indices = classes.indices(keys, where)
    total = 0.0
    for key in keys:
        p = probs[key]
        _check_probability(p, f"{where}.{key}")
        total += p
    if abs(total - 1.0) > classes.tolerance:
        raise _refuse(
            f"probabilities sum to {total:.6g}, not 1 (quality.probability_tolerance is "
            f"{classes.tolerance:g})",
            where,
            round(total, 6),
        )
    return {int(j): probs[k] / total for j, k in zip(indices.tolist(), keys, strict=True)}


def decode_vector(score: bytes) -> FloatArray:
    """A multiclass :data:`Score` back as its probabilities by class index."""
    return np.frombuffer(score, dtype=np.float64)
