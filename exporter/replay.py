"""``model-exporter replay FILE``: send a log of predictions to a running exporter.

Reads CSV, Parquet or JSONL (by the file's suffix, or ``--format``). Each row is one prediction:
an id, an optional timestamp (epoch seconds or RFC 3339: honoured, so a historical log lands in
the windows of its time), the features, the prediction and an optional inline label; columns
are mapped by flags. Rows that cannot be sent are reported with their line number and skipped,
never silently: rows malformed in the file, and rows the exporter refuses (the rejection's
``field`` names the event, which maps back to the line). A progress line shows rows/s and the
ETA; ``--rate`` caps the rows per second.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.client import _dumps
from exporter.client._transport import Transport, TransportError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .csv, .parquet or .jsonl log of predictions")
    parser.add_argument("--url", default="http://127.0.0.1:17090", help="the exporter")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--model-version", help="model version (default: the exporter's)")
    parser.add_argument("--format", choices=["csv", "parquet", "jsonl"], help="default: suffix")
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--timestamp-column", help="default: 'timestamp' if present")
    parser.add_argument("--prediction-column", default="prediction")
    parser.add_argument("--label-column", help="inline ground truth (default: 'label' if present)")
    parser.add_argument("--feature-columns", help="comma-separated (default: every other column)")
    parser.add_argument("--rate", type=float, default=0.0, help="max rows per second (0: none)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--quiet", action="store_true", help="no progress line")


@dataclass
class Row:
    line: int
    values: dict[str, Any]


@dataclass
class Summary:
    rows: int = 0
    sent: int = 0
    duplicates: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


class ReplayError(Exception):
    """The replay cannot go on (unreadable file, exporter unreachable)."""


def _cell(text: str) -> Any:
    value = text.strip()
    if value == "" or value.lower() in ("nan", "null", "none", "na"):
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    return number if math.isfinite(number) else value


def read_rows(path: Path, fmt: str | None) -> Iterator[Row]:
    kind = fmt or path.suffix.lower().lstrip(".")
    if kind in ("jsonl", "ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    values = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Row(line_no, {"__error__": f"not valid JSON ({exc.msg})"})
                    continue
                if not isinstance(values, dict):
                    yield Row(line_no, {"__error__": "not a JSON object"})
                    continue
                yield Row(line_no, values)
    elif kind == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            names = [h.strip() for h in header]
            for row in reader:
                line_no = reader.line_num
                if not row:
                    continue
                if len(row) != len(names):
                    yield Row(
                        line_no, {"__error__": f"{len(row)} cells, the header has {len(names)}"}
                    )
                    continue
                yield Row(line_no, {n: _cell(c) for n, c in zip(names, row, strict=True)})
    elif kind in ("parquet", "pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ReplayError(
                "Parquet needs pyarrow: pip install 'model-exporter[parquet]'"
            ) from None
        table = pq.read_table(path)
        for row_no, values in enumerate(table.to_pylist(), start=1):
            clean = {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in values.items()
            }
            yield Row(row_no, clean)
    else:
        raise ReplayError(f"unknown file format {kind!r}: use --format csv, parquet or jsonl")


def to_event(row: Row, args: argparse.Namespace, features: list[str] | None) -> dict[str, Any]:
    """The API event of a row; raises ValueError naming what is wrong."""
    values = row.values
    if "__error__" in values:
        raise ValueError(values["__error__"])
    ident = values.get(args.id_column)
    if ident is None or ident == "":
        raise ValueError(f"no id in column {args.id_column!r}")
    prediction = values.get(args.prediction_column)
    if prediction is None:
        raise ValueError(f"no prediction in column {args.prediction_column!r}")
    event: dict[str, Any] = {"id": str(ident), "prediction": prediction}
    ts_column = args.timestamp_column or ("timestamp" if "timestamp" in values else None)
    label_column = args.label_column or ("label" if "label" in values else None)
    if ts_column is not None and values.get(ts_column) is not None:
        event["timestamp"] = values[ts_column]
    if label_column is not None and values.get(label_column) is not None:
        event["label"] = values[label_column]
    reserved = {args.id_column, args.prediction_column, ts_column, label_column}
    names = features if features is not None else [k for k in values if k not in reserved]
    feats = {}
    for name in names:
        value = values.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"feature {name!r} is {value}")
        if value is not None and not isinstance(value, int | float | str | bool):
            raise ValueError(f"feature {name!r} holds a {type(value).__name__}")
        feats[name] = value
    event["features"] = feats
    return event


class Progress:
    def __init__(self, total: int | None, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, summary: Summary, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < 0.2):
            return
        self._last = now
        rate = summary.rows / max(now - self.started, 1e-9)
        if self.total:
            share = summary.rows / self.total
            width = 30
            bar = "#" * int(share * width) + "-" * (width - int(share * width))
            eta = (self.total - summary.rows) / rate if rate else 0
            text = f"[{bar}] {summary.rows:,}/{self.total:,} rows {rate:,.0f}/s ETA {eta:.0f}s"
        else:
            text = f"{summary.rows:,} rows {rate:,.0f}/s"
        text += f", {len(summary.bad)} bad"
        print("\r" + text, end="", file=sys.stderr, flush=True)


def _count_rows(path: Path, fmt: str | None) -> int | None:
    kind = fmt or path.suffix.lower().lstrip(".")
    try:
        if kind in ("jsonl", "ndjson"):
            with path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        if kind == "csv":
            with path.open("rb") as handle:
                return max(0, sum(1 for line in handle if line.strip()) - 1)
        if kind in ("parquet", "pq"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ImportError):
        return None
    return None


def send_batch(
    transport: Transport,
    model: str,
    version: str | None,
    batch: list[tuple[Row, dict[str, Any]]],
    summary: Summary,
) -> None:
    """Send; rows the exporter refuses are reported by line and the rest sent again."""
    while batch:
        payload: dict[str, Any] = {"model": model, "events": [event for _, event in batch]}
        if version:
            payload["model_version"] = version
        for attempt in range(6):
            try:
                response = transport.request("POST", "/v1/predictions", _dumps(payload))
            except TransportError as exc:
                if attempt == 5:
                    raise ReplayError(f"cannot reach the exporter: {exc}") from None
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status >= 500 or response.status == 429:
                if attempt == 5:
                    raise ReplayError(f"the exporter keeps answering {response.status}")
                time.sleep(response.retry_after or 0.2 * 2**attempt)
                continue
            break
        if response.status == 200:
            result = json.loads(response.body)
            summary.sent += int(result.get("accepted", 0))
            summary.duplicates += int(result.get("duplicates", 0))
            return
        rejection = response.rejection()
        index = rejection.event()  # the rejection's field names the event, if one is at fault
        if index is None or index >= len(batch):
            for row, _ in batch:  # the whole batch is refused (e.g. an unknown model)
                summary.bad.append(
                    (row.line, f"refused by the exporter ({response.status}): {rejection.detail}")
                )
            return
        row, _ = batch.pop(index)
        summary.bad.append((row.line, f"refused by the exporter: {rejection.detail}"))


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"model-exporter replay: {path}: no such file", file=sys.stderr)
        return 2
    features = (
        [f.strip() for f in args.feature_columns.split(",") if f.strip()]
        if args.feature_columns
        else None
    )
    transport = Transport(args.url.rstrip("/"), timeout=30.0)
    summary = Summary()
    progress = Progress(_count_rows(path, args.format), args.quiet)
    batch: list[tuple[Row, dict[str, Any]]] = []
    started = time.monotonic()
    try:
        for row in read_rows(path, args.format):
            summary.rows += 1
            try:
                batch.append((row, to_event(row, args, features)))
            except ValueError as exc:
                summary.bad.append((row.line, str(exc)))
            if len(batch) >= args.batch_size:
                send_batch(transport, args.model, args.model_version, batch, summary)
                batch = []
            if args.rate > 0:
                ahead = summary.rows / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            progress.update(summary)
        if batch:
            send_batch(transport, args.model, args.model_version, batch, summary)
    except ReplayError as exc:
        print(f"\nmodel-exporter replay: {exc}", file=sys.stderr)
        return 1
    finally:
        transport.close()
    progress.update(summary, force=True)
    if not args.quiet:
        print(file=sys.stderr)
    for line, reason in summary.bad:
        print(f"{path}:{line}: skipped: {reason}", file=sys.stderr)
    print(
        f"replayed {summary.rows:,} rows: {summary.sent:,} sent, {summary.duplicates:,} "
        f"duplicates (already known), {len(summary.bad):,} skipped"
    )
    return 0 if not summary.bad else 3
