"""A reference's scored holdout: its rows' scores (or probabilities) with their labels, what the
label-free estimate calibrates on (exporter.estimation, exporter.stats.cbpe).

An upload gives ``scores`` (a binary model's positive-class probability per row) or
``probabilities`` (``{class: probability}`` per row), aligned with its ``labels``; a CSV or
Parquet reference names a score column or probability columns. Rows without a label or a
score are left out; the rest are kept up to ``drift.reference_max_values`` (a uniform
subsample beyond). A score outside 0..1 is an
:class:`~exporter.errors.InvalidReference` naming the row. Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from exporter.errors import InvalidReference
from exporter.persist.plain import State, pack, unpack
from exporter.schema import category_label
from exporter.typedefs import FloatArray, WireValue

#: The one column of binary scores: the positive class's probability, whichever it is.
POSITIVE = ""


@dataclass(frozen=True)
class ScoredHoldout:
    """``scores[i, c]`` is row i's probability of class ``columns[c]`` (a class label;
    :data:`POSITIVE` for a binary model's score), ``labels[i]`` its true class's label."""

    columns: tuple[str, ...]
    scores: FloatArray
    labels: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.labels)

    def to_state(self) -> State:
        return {
            "columns": list(self.columns),
            "scores": pack(self.scores),
            "labels": list(self.labels),
        }

    @classmethod
    def from_state(cls, state: State) -> ScoredHoldout:
        scores = unpack(state["scores"])
        columns, labels = tuple(state["columns"]), tuple(state["labels"])
        if scores.shape != (len(labels), len(columns)):
            raise ValueError("saved reference scores do not fit their labels and columns")
        return cls(columns, scores.astype(np.float64), labels)


def build_scored(
    labels: Sequence[WireValue] | None,
    *,
    scores: Sequence[float | None] | None = None,
    probabilities: Sequence[Mapping[str, float] | None] | None = None,
    limit: int,
    max_classes: int = 1000,
    where: str = "",
) -> ScoredHoldout | None:
    """The scored holdout of a reference (None without scores); ``where`` prefixes the field
    of a refusal (``scores[3]``, ``probabilities[3].cat``). Probabilities may name at most
    ``max_classes`` classes in all; each row is divided by its sum, as an event's are (a row
    of ``{}`` counts as missing, one that sums to 0 is refused)."""
    if scores is not None and probabilities is not None:
        raise InvalidReference(
            "a reference carries scores or probabilities, not both", field=where + "scores"
        )
    if probabilities is not None:
        probabilities = [row or None for row in probabilities]
    given = scores if scores is not None else probabilities
    if given is None:
        return None
    name = "scores" if scores is not None else "probabilities"
    if labels is None:
        raise InvalidReference(
            f"reference {name} need the reference's labels: the estimate calibrates them "
            "against the labels of the same rows",
            field=where + name,
        )
    if len(given) != len(labels):
        raise InvalidReference(
            f"reference {name} ({len(given)}) and labels ({len(labels)}) must have one value "
            "per row",
            field=where + name,
        )
    rows = [
        i
        for i, (s, y) in enumerate(zip(given, labels, strict=True))
        if s is not None and y is not None
    ]
    if not rows:
        raise InvalidReference(f"reference {name} have no row with a label", field=where + name)
    if scores is not None:
        columns: tuple[str, ...] = (POSITIVE,)
        matrix = np.array([_probability(scores[i], f"{where}scores[{i}]") for i in rows]).reshape(
            -1, 1
        )
    else:
        assert probabilities is not None
        seen: dict[str, int] = {}
        for i in rows:
            for key in probabilities[i] or {}:
                if seen.setdefault(key, len(seen)) >= max_classes:
                    raise InvalidReference(
                        f"reference probabilities name more than limits.max_classes "
                        f"({max_classes}) classes",
                        field=f"{where}probabilities[{i}].{key}",
                        value=key,
                    )
        columns = tuple(seen)
        matrix = np.zeros((len(rows), len(columns)))
        for r, i in enumerate(rows):
            row = probabilities[i] or {}
            for key, value in row.items():
                matrix[r, seen[key]] = _probability(value, f"{where}probabilities[{i}].{key}")
        total = matrix.sum(axis=1)
        if (total == 0).any():
            i = rows[int(np.flatnonzero(total == 0)[0])]
            raise InvalidReference(
                "reference probabilities of a row sum to 0", field=f"{where}probabilities[{i}]"
            )
        matrix /= total[:, None]
    truth = tuple(category_label(labels[i]) for i in rows)
    if len(rows) > limit:
        keep = np.sort(np.random.default_rng(2).choice(len(rows), limit, replace=False))
        matrix = matrix[keep]
        truth = tuple(truth[i] for i in keep.tolist())
    return ScoredHoldout(columns, matrix, truth)


def _probability(value: object, field: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and 0.0 <= number <= 1.0:
            return number
    raise InvalidReference(
        f"a reference score is a probability within 0..1, got {value!r}", field=field, value=value
    )


def probability_columns(spec: str | None, columns: Sequence[str]) -> dict[str, str] | None:
    """Probability columns named as ``"cat=p_cat,dog=p_dog"`` (class -> column), or as
    ``"p_*"``: every column of ``columns`` that starts with ``p_``, its class the rest of its
    name. Raises ValueError, saying why, for a spec of neither form or a prefix no column has.

    >>> probability_columns("p_*", ["id", "p_cat", "p_dog"])
    {'cat': 'p_cat', 'dog': 'p_dog'}
    >>> probability_columns("1=yes, 0=no", [])
    {'1': 'yes', '0': 'no'}
    """
    if not spec:
        return None
    spec = spec.strip()
    if spec.endswith("*") and "=" not in spec:
        prefix = spec[:-1]
        found = {c[len(prefix) :]: c for c in columns if c.startswith(prefix) and c != prefix}
        if not found:
            shown = ", ".join(repr(c) for c in columns)
            raise ValueError(f"no column starts with {prefix!r}; the columns: {shown}")
        return found
    out: dict[str, str] = {}
    for part in spec.split(","):
        label, sep, column = part.partition("=")
        if not sep or not label.strip() or not column.strip():
            raise ValueError(f"expected CLASS=COLUMN pairs or PREFIX*, got {part.strip()!r}")
        out[label.strip()] = column.strip()
    return out
