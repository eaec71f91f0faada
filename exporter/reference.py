"""Reference data that drift is measured against, per feature.

A reference comes from an upload (JSON columns or CSV) or from the first N prediction events of a
model version (:class:`ReferenceBuilder`). Numeric features keep their values sorted once, so each
drift computation only sorts the window. Pure numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ReferenceSource = Literal["upload", "first_events"]
Value = float | int | str | bool | None


class ReferenceError(ValueError):
    """The reference data cannot be used; the message says which feature and why."""


class CSVFormatError(ReferenceError):
    """The CSV body itself is malformed (as opposed to well-formed but unusable data)."""


@dataclass(frozen=True)
class Reference:
    """Per-feature reference data.

    ``numeric[name]`` is sorted and NaN-free; ``categorical[name]`` counts each category.
    ``rows`` is the number of rows (events) it was built from, before any subsampling.
    """

    source: ReferenceSource
    rows: int
    created: float
    numeric: dict[str, FloatArray] = field(default_factory=dict)
    categorical: dict[str, dict[str, int]] = field(default_factory=dict)
    subsampled: bool = False

    def summary(self) -> dict[str, object]:
        features: dict[str, object] = {}
        for name, values in self.numeric.items():
            features[name] = {"kind": "numeric", "values": int(values.shape[0])}
        for name, counts in self.categorical.items():
            features[name] = {"kind": "categorical", "values": sum(counts.values())}
        return {
            "source": self.source,
            "rows": self.rows,
            "subsampled": self.subsampled,
            "features": features,
        }


def _subsample(values: FloatArray, limit: int, seed: int) -> FloatArray:
    if values.shape[0] <= limit:
        return values
    rng = np.random.default_rng(seed)
    picked: FloatArray = values[rng.choice(values.shape[0], limit, replace=False)]
    return picked


def reference_from_columns(
    columns: Mapping[str, Sequence[Value]],
    *,
    created: float,
    max_values: int,
    seed: int = 0,
) -> Reference:
    """Build an uploaded reference from columns of event-style values.

    A column is numeric when its non-null values are all numbers, categorical when they are all
    strings or bools. Mixed columns, non-finite numbers and a reference without any value are
    refused with :class:`ReferenceError`.
    """
    if not columns:
        raise ReferenceError("the reference has no features")
    numeric: dict[str, FloatArray] = {}
    categorical: dict[str, dict[str, int]] = {}
    rows = 0
    subsampled = False
    for name, values in columns.items():
        rows = max(rows, len(values))
        present = [v for v in values if v is not None]
        if not present:
            raise ReferenceError(f"feature {name!r} has no values (all null or empty)")
        kinds = {_kind(v) for v in present}
        if kinds == {"numeric"}:
            arr = np.asarray(present, dtype=np.float64)
            if not np.isfinite(arr).all():
                bad = arr[~np.isfinite(arr)][0]
                raise ReferenceError(f"feature {name!r} holds a non-finite value ({bad})")
            arr = _subsample(arr, max_values, seed)
            subsampled |= arr.shape[0] < len(present)
            numeric[name] = np.sort(arr)
        elif kinds == {"categorical"}:
            categorical[name] = dict(Counter(_category(v) for v in present))
        else:
            sample_num = next(v for v in present if _kind(v) == "numeric")
            sample_cat = next(v for v in present if _kind(v) == "categorical")
            raise ReferenceError(
                f"feature {name!r} mixes numbers ({sample_num!r}) and categories "
                f"({sample_cat!r}); a feature must be one or the other"
            )
    return Reference(
        source="upload",
        rows=rows,
        created=created,
        numeric=numeric,
        categorical=categorical,
        subsampled=subsampled,
    )


def _kind(value: Value) -> str:
    if isinstance(value, bool | str):
        return "categorical"
    return "numeric"


def _category(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_csv_columns(text: str, *, max_name_length: int) -> dict[str, list[Value]]:
    """Columns of a CSV reference: a header row of feature names, then one row per sample.

    Cells parse as numbers where they can, ``true``/``false`` as bools, empty (or ``NaN``,
    ``null``) as missing, anything else as a category string.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CSVFormatError(
            "the CSV body is empty: expected a header row of feature names"
        ) from None
    except csv.Error as exc:
        raise CSVFormatError(f"CSV line 1: {exc}") from None
    names = [h.strip() for h in header]
    for i, name in enumerate(names):
        if not name:
            raise CSVFormatError(f"CSV header column {i + 1} has no feature name")
        if len(name) > max_name_length:
            raise CSVFormatError(
                f"CSV header column {i + 1}: feature name is {len(name)} characters, "
                f"over the limit of {max_name_length}"
            )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CSVFormatError(f"CSV header names feature {dup!r} twice")
    columns: dict[str, list[Value]] = {name: [] for name in names}
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(names):
                raise CSVFormatError(
                    f"CSV line {line_no} has {len(row)} cells, the header has {len(names)}"
                )
            for name, cell in zip(names, row, strict=True):
                columns[name].append(_parse_cell(cell, line_no, name))
    except csv.Error as exc:
        raise CSVFormatError(f"CSV: {exc}") from None
    return columns


_MISSING = {"", "nan", "null", "none", "na"}


def _parse_cell(cell: str, line_no: int, name: str) -> Value:
    text = cell.strip()
    lowered = text.lower()
    if lowered in _MISSING:
        return None
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise CSVFormatError(f"CSV line {line_no}, feature {name!r}: non-finite value {text!r}")
    return number


class ReferenceBuilder:
    """Collects the first ``size`` rows of numeric features; then :meth:`build` freezes them."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.rows = 0
        self._chunks: list[FloatArray] = []

    @property
    def complete(self) -> bool:
        return self.rows >= self.size

    def add(self, rows: FloatArray) -> None:
        need = self.size - self.rows
        if need <= 0 or rows.shape[0] == 0:
            return
        take = rows[:need].copy()
        self._chunks.append(take)
        self.rows += take.shape[0]

    def build(self, names: Sequence[str], numeric: Sequence[bool], created: float) -> Reference:
        width = len(names)
        matrix = np.full((self.rows, width), np.nan)
        start = 0
        for chunk in self._chunks:
            matrix[start : start + chunk.shape[0], : chunk.shape[1]] = chunk
            start += chunk.shape[0]
        values: dict[str, FloatArray] = {}
        for j, (name, is_numeric) in enumerate(zip(names, numeric, strict=True)):
            if not is_numeric:
                continue
            column = matrix[:, j]
            column = column[~np.isnan(column)]
            if column.shape[0]:
                values[name] = np.sort(column)
        return Reference(source="first_events", rows=self.rows, created=created, numeric=values)
