"""Reference data that drift is measured against.

A reference holds, per feature, either a :class:`~exporter.stats.drift.NumericReference`
(values sorted once, decile bins) or a :class:`CategoricalReference` (category counts), and
optionally the model's reference predictions and labels. It comes from an upload (JSON columns or
CSV), a file named in the config (CSV or Parquet), the first N predictions of a version
(:class:`ReferenceBuilder`), or the previous window. Pure numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from exporter.schema import category_label
from exporter.stats.drift import NumericReference

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ReferenceSource = Literal["upload", "file", "first_events", "previous_window"]
Value = float | int | str | bool | None

#: Quantiles reported for numeric features in the reference summary.
SUMMARY_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


class ReferenceError(ValueError):
    """The reference data cannot be used; the message says which feature and why."""


class CSVFormatError(ReferenceError):
    """The CSV body itself is malformed (as opposed to well-formed but unusable data)."""


@dataclass(frozen=True)
class CategoricalReference:
    """Counts of the ``max_categories`` most frequent categories; the rest pooled as one bin."""

    categories: tuple[str, ...]
    counts: IntArray
    pooled: int = 0

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], max_categories: int) -> CategoricalReference:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = ranked[:max_categories]
        return cls(
            categories=tuple(k for k, _ in kept),
            counts=np.array([v for _, v in kept], dtype=np.int64),
            pooled=sum(v for _, v in ranked[max_categories:]),
        )

    @property
    def size(self) -> int:
        return int(self.counts.sum()) + self.pooled

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories)}


@dataclass(frozen=True)
class TargetReference:
    """Reference predictions or labels. Whether they are compared as numbers (regression) or as
    classes depends on the model's task, known only later, so both forms are kept."""

    numeric: NumericReference | None
    categories: CategoricalReference


@dataclass(frozen=True)
class Reference:
    """What drift is measured against, for one model (or one version)."""

    source: ReferenceSource
    rows: int
    created: float
    numeric: dict[str, NumericReference] = field(default_factory=dict)
    categorical: dict[str, CategoricalReference] = field(default_factory=dict)
    predictions: TargetReference | None = None
    labels: TargetReference | None = None
    subsampled: bool = False

    @property
    def features(self) -> set[str]:
        return set(self.numeric) | set(self.categorical)

    def summary(self, top: int = 10) -> dict[str, Any]:
        """Size, source and, per feature, quantiles (numeric) or top category shares."""
        features: dict[str, Any] = {}
        for name, ref in self.numeric.items():
            q = np.quantile(ref.values, SUMMARY_QUANTILES)
            features[name] = {
                "kind": "numeric",
                "values": ref.size,
                "quantiles": {
                    f"{p:g}": float(v) for p, v in zip(SUMMARY_QUANTILES, q, strict=True)
                },
            }
        for name, cat in self.categorical.items():
            features[name] = _category_summary(cat, top)
        out: dict[str, Any] = {
            "source": self.source,
            "rows": self.rows,
            "subsampled": self.subsampled,
            "features": features,
        }
        for key, target in (("predictions", self.predictions), ("labels", self.labels)):
            if target is not None:
                out[key] = _category_summary(target.categories, top) | (
                    {}
                    if target.numeric is None
                    else {"mean": float(np.mean(target.numeric.values))}
                )
        return out


def _category_summary(cat: CategoricalReference, top: int) -> dict[str, Any]:
    size = max(cat.size, 1)
    return {
        "kind": "categorical",
        "values": cat.size,
        "categories": len(cat.categories),
        "shares": {
            c: int(n) / size
            for c, n in zip(cat.categories[:top], cat.counts[:top].tolist(), strict=False)
        },
        "pooled_share": cat.pooled / size,
    }


def _subsample(values: list[Any], limit: int, seed: int) -> tuple[list[Any], bool]:
    if len(values) <= limit:
        return values, False
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(values), limit, replace=False))
    return [values[i] for i in picked.tolist()], True


def _is_category(value: Value, declared: bool) -> bool:
    return declared or isinstance(value, bool | str)


def _numeric(values: list[Any], name: str, bins: int) -> NumericReference:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)][0]
        raise ReferenceError(f"feature {name!r} holds a non-finite value ({bad})")
    return NumericReference.from_values(arr, bins)


def target_reference(
    values: Sequence[Value], what: str, *, bins: int, max_categories: int, max_values: int
) -> TargetReference:
    """Reference predictions or labels from wire values (classes or numbers)."""
    present = [v for v in values if v is not None]
    if not present:
        raise ReferenceError(f"{what} has no values")
    present, _ = _subsample(present, max_values, seed=1)
    numeric = None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        numeric = _numeric(present, what, bins)
    counts = Counter(category_label(v) for v in present)
    return TargetReference(numeric, CategoricalReference.from_counts(counts, max_categories))


def reference_from_columns(
    columns: Mapping[str, Sequence[Value]],
    *,
    created: float,
    max_values: int,
    bins: int = 10,
    max_categories: int = 100,
    categorical: Collection[str] = (),
    predictions: Sequence[Value] | None = None,
    labels: Sequence[Value] | None = None,
    source: ReferenceSource = "upload",
    seed: int = 0,
) -> Reference:
    """Build a reference from columns of event-style values.

    A column is numeric when its non-null values are all numbers, categorical when they are all
    strings or bools (or when its name is in ``categorical``). An empty reference, a column
    without values, mixed kinds and non-finite numbers are refused with
    :class:`ReferenceError`. Columns longer than ``max_values`` are uniformly subsampled.
    """
    if not columns and predictions is None and labels is None:
        raise ReferenceError("the reference has no features")
    numeric: dict[str, NumericReference] = {}
    cats: dict[str, CategoricalReference] = {}
    rows = 0
    subsampled = False
    for name, values in columns.items():
        rows = max(rows, len(values))
        present = [v for v in values if v is not None]
        if not present:
            raise ReferenceError(f"feature {name!r} has no values (all null or empty)")
        declared = name in categorical
        kinds = {_is_category(v, declared) for v in present}
        if len(kinds) > 1:
            sample_num = next(v for v in present if not _is_category(v, False))
            sample_cat = next(v for v in present if _is_category(v, False))
            raise ReferenceError(
                f"feature {name!r} mixes numbers ({sample_num!r}) and categories "
                f"({sample_cat!r}); a feature must be one or the other"
            )
        present, cut = _subsample(present, max_values, seed)
        subsampled |= cut
        if kinds == {True}:
            counts = Counter(category_label(v) for v in present)
            cats[name] = CategoricalReference.from_counts(counts, max_categories)
        else:
            numeric[name] = _numeric(present, name, bins)
    targets = {}
    for key, given in (("predictions", predictions), ("labels", labels)):
        if given is not None:
            rows = max(rows, len(given))
            targets[key] = target_reference(
                given, key, bins=bins, max_categories=max_categories, max_values=max_values
            )
    return Reference(
        source=source,
        rows=rows,
        created=created,
        numeric=numeric,
        categorical=cats,
        predictions=targets.get("predictions"),
        labels=targets.get("labels"),
        subsampled=subsampled,
    )


def parse_csv_columns(text: str, *, max_name_length: int) -> dict[str, list[Value]]:
    """Columns of a CSV reference: a header row of column names, then one row per sample.

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


def read_reference_file(path: Path, *, max_name_length: int) -> dict[str, list[Value]]:
    """Columns of a reference file: CSV (``.csv``) or Parquet (``.parquet``, needs pyarrow)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReferenceError(f"cannot read {str(path)!r}: {exc}") from None
        return parse_csv_columns(text, max_name_length=max_name_length)
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ReferenceError(
                f"{str(path)!r} is Parquet, which needs pyarrow: "
                "pip install 'model-exporter[parquet]'"
            ) from None
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise ReferenceError(f"cannot read {str(path)!r} as Parquet: {exc}") from None
        columns: dict[str, list[Value]] = {}
        for name, values in table.to_pydict().items():
            cleaned: list[Value] = []
            for v in values:
                if isinstance(v, float) and math.isnan(v):
                    v = None
                if v is not None and not isinstance(v, int | float | str | bool):
                    raise ReferenceError(
                        f"{str(path)!r}: column {name!r} holds {type(v).__name__} values; "
                        "only numbers, strings, bools and nulls are supported"
                    )
                cleaned.append(v)
            columns[str(name)] = cleaned
        return columns
    raise ReferenceError(f"{str(path)!r}: unknown reference file type; use .csv or .parquet")


class ReferenceBuilder:
    """Collects the first ``size`` rows of a version (column 0: the prediction); then
    :meth:`build` freezes them into a reference."""

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

    def matrix(self, width: int) -> FloatArray:
        out = np.full((self.rows, width), np.nan)
        start = 0
        for chunk in self._chunks:
            out[start : start + chunk.shape[0], : chunk.shape[1]] = chunk
            start += chunk.shape[0]
        return out


def reference_from_rows(
    rows: FloatArray,
    *,
    names: Sequence[str],
    kinds: Sequence[str | None],
    category_labels: Sequence[Sequence[str] | None],
    target_labels: Sequence[str] | None,
    source: ReferenceSource,
    created: float,
    bins: int,
    max_categories: int,
) -> Reference:
    """A reference from stored rows: column 0 the prediction (a class index, or the value when
    ``target_labels`` is None), columns 1.. the features (numbers, or category codes)."""
    numeric: dict[str, NumericReference] = {}
    cats: dict[str, CategoricalReference] = {}
    for j, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        column = rows[:, j + 1] if j + 1 < rows.shape[1] else np.empty(0)
        column = column[~np.isnan(column)]
        if column.shape[0] == 0 or kind is None:
            continue
        if kind == "numeric":
            numeric[name] = NumericReference.from_values(column, bins)
        else:
            labels = category_labels[j] or ()
            cats[name] = CategoricalReference.from_counts(
                _code_counts(column, labels), max_categories
            )
    predictions = None
    if rows.shape[0] and rows.shape[1]:
        column = rows[:, 0][~np.isnan(rows[:, 0])]
        if column.shape[0]:
            predictions = target_from_column(column, target_labels, bins, max_categories)
    return Reference(
        source=source,
        rows=int(rows.shape[0]),
        created=created,
        numeric=numeric,
        categorical=cats,
        predictions=predictions,
    )


def target_from_column(
    column: FloatArray, labels: Sequence[str] | None, bins: int, max_categories: int
) -> TargetReference:
    """Predictions or labels stored as class indices (``labels`` given) or values."""
    if labels is None:
        return TargetReference(
            NumericReference.from_values(column, bins),
            CategoricalReference.from_counts({}, max_categories),
        )
    return TargetReference(
        None, CategoricalReference.from_counts(_code_counts(column, labels), max_categories)
    )


def _code_counts(codes: FloatArray, labels: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(codes[codes >= 0].astype(np.int64), minlength=len(labels))
    out = {labels[i]: int(c) for i, c in enumerate(counts.tolist()) if c and i < len(labels)}
    pooled = int(np.count_nonzero(codes < 0))
    if pooled:
        out["__pooled__"] = out.get("__pooled__", 0) + pooled
    return out


def reference_for_model(
    columns: dict[str, list[Value]],
    *,
    categorical: Collection[str],
    prediction_column: str | None,
    label_column: str | None,
    predictions: Sequence[Value] | None,
    labels: Sequence[Value] | None,
    created: float,
    max_values: int,
    bins: int,
    max_categories: int,
    source: ReferenceSource,
) -> Reference:
    """A reference from uploaded or file columns; ``prediction_column`` / ``label_column`` name
    the columns (of a CSV or Parquet file) holding reference predictions and labels."""
    columns = dict(columns)
    for what, column in (("prediction_column", prediction_column), ("label_column", label_column)):
        if column is not None and column not in columns:
            raise ReferenceError(
                f"{what} {column!r} is not a column of the reference "
                f"(columns: {', '.join(sorted(columns)) or 'none'})"
            )
    if prediction_column is not None:
        predictions = columns.pop(prediction_column)
    if label_column is not None:
        labels = columns.pop(label_column)
    return reference_from_columns(
        columns,
        created=created,
        max_values=max_values,
        bins=bins,
        max_categories=max_categories,
        categorical=categorical,
        predictions=predictions,
        labels=labels,
        source=source,
    )
