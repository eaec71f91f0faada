"""Reading reference data into columns: CSV text, and CSV or Parquet files.

What comes out is a mapping ``column name -> values`` (numbers, strings, bools, None), which
:func:`exporter.reference.build_reference` turns into a reference. Every problem is an
:class:`~exporter.errors.InvalidReference`: ``malformed_csv`` for CSV that cannot be read,
``invalid_reference`` otherwise. Standard library only (Parquet needs the optional pyarrow).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from exporter.errors import InvalidReference, Reason
from exporter.typedefs import WireValue

Columns = dict[str, list[WireValue]]

_MISSING = {"", "nan", "null", "none", "na"}


def _csv_error(message: str) -> InvalidReference:
    return InvalidReference(message, reason=Reason.MALFORMED_CSV)


def parse_csv_columns(text: str, *, max_name_length: int) -> Columns:
    """Columns of a CSV reference: a header row of column names, then one row per sample.

    Cells parse as numbers where they can, ``true``/``false`` as bools, empty (or ``NaN``,
    ``null``) as missing, anything else as a category string.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise _csv_error("the CSV body is empty: expected a header row of feature names") from None
    except csv.Error as exc:
        raise _csv_error(f"CSV line 1: {exc}") from None
    names = [h.strip() for h in header]
    for i, name in enumerate(names):
        if not name:
            raise _csv_error(f"CSV header column {i + 1} has no feature name")
        if len(name) > max_name_length:
            raise _csv_error(
                f"CSV header column {i + 1}: feature name is {len(name)} characters, "
                f"over the limit of {max_name_length}"
            )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise _csv_error(f"CSV header names feature {dup!r} twice")
    columns: Columns = {name: [] for name in names}
    try:
        for row in reader:
            line_no = reader.line_num  # the physical line where the row ends
            if not row:
                continue
            if len(row) != len(names):
                raise _csv_error(
                    f"CSV line {line_no} has {len(row)} cells, the header has {len(names)}"
                )
            for name, cell in zip(names, row, strict=True):
                columns[name].append(_parse_cell(cell, line_no, name))
    except csv.Error as exc:
        raise _csv_error(f"CSV: {exc}") from None
    return columns


def _parse_cell(cell: str, line_no: int, name: str) -> WireValue:
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
        raise _csv_error(f"CSV line {line_no}, feature {name!r}: non-finite value {text!r}")
    return number


def read_reference_file(path: Path, *, max_name_length: int) -> Columns:
    """Columns of a reference file: CSV (``.csv``) or Parquet (``.parquet``, needs pyarrow)."""
    suffix = path.suffix.lower()
    shown = str(path)
    if suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidReference(f"cannot read {shown!r}: {exc}") from None
        return parse_csv_columns(text, max_name_length=max_name_length)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    raise InvalidReference(f"{shown!r}: unknown reference file type; use .csv or .parquet")


def _read_parquet(path: Path) -> Columns:
    shown = str(path)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidReference(
            f"{shown!r} is Parquet, which needs pyarrow: pip install 'model-exporter[parquet]'"
        ) from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InvalidReference(f"cannot read {shown!r} as Parquet: {exc}") from None
    columns: Columns = {}
    for name, values in table.to_pydict().items():
        cleaned: list[WireValue] = []
        for v in values:
            if isinstance(v, float) and math.isnan(v):
                v = None
            if v is not None and not isinstance(v, int | float | str | bool):
                raise InvalidReference(
                    f"{shown!r}: column {name!r} holds {type(v).__name__} values; "
                    "only numbers, strings, bools and nulls are supported",
                    field=str(name),
                )
            cleaned.append(v)
        columns[str(name)] = cleaned
    return columns
