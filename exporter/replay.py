"""``model-exporter replay FILE``: send a log of predictions to a running exporter.

Reads CSV, Parquet or JSONL (by the file's suffix, or ``--format``). Each row is one prediction:
an id, an optional timestamp (epoch seconds or RFC 3339: honoured, so a historical log lands in
the windows of its time), the features, the prediction and an optional inline label; columns
are mapped by flags. Before anything is sent, the file's columns (the CSV header, the Parquet
schema, the keys of the first JSON object) must hold the id and prediction columns, and in CSV
and Parquet every column named by a flag; otherwise the replay stops at once, listing the
columns the file has.

Rows that cannot be sent are reported with their line number and skipped, never silently: rows
malformed in the file, rows whose id an earlier line already used (both lines are named; replay
remembers the first :data:`MAX_REMEMBERED_IDS` ids, some 100 bytes each), and rows the exporter
refuses (the rejection's ``field`` names the event, which maps back to the line). The report
comes in file order, after each batch: the exporter's refusals are only known when a batch is
sent, after later lines were read, and it names a batch's faults in the order it checks them,
not by position.

A progress line shows rows/s and the ETA: redrawn in place on a terminal, one line per update
(every few seconds) in a pipe or a log. ``--rate`` caps the rows per second.

``--token`` (default ``$MODEL_EXPORTER_TOKEN``) is sent as ``Authorization: Bearer``: an exporter
with write tokens, or one reached from another address than loopback, needs it. A 401 or 403
stops the replay at once (every later batch would be refused the same way).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from exporter import scored_reference
from exporter.client._transport import Transport, TransportError, dumps

Format = Literal["csv", "jsonl", "parquet"]

#: Ids remembered to report one repeated within the file (about 100 bytes each). Beyond, a
#: repeat is still harmless: the exporter counts it as a duplicate.
MAX_REMEMBERED_IDS = 1_000_000
_SUFFIXES: dict[str, Format] = {
    "csv": "csv",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="a .csv, .parquet or .jsonl (.ndjson) log of predictions"
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:17090", help="the exporter (default: %(default)s)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MODEL_EXPORTER_TOKEN"),
        help="a write token of the exporter, sent as 'Authorization: Bearer' "
        "(default: $MODEL_EXPORTER_TOKEN)",
    )
    parser.add_argument("--model", required=True, help="model name (required)")
    parser.add_argument(
        "--model-version", help="model version (default: the exporter's default_model_version)"
    )
    add_column_arguments(parser)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="max rows per second, 0: no cap (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="rows per request (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def add_column_arguments(parser: argparse.ArgumentParser) -> None:
    """The file's format and columns: replay's and backtest's."""
    parser.add_argument(
        "--format",
        choices=sorted(set(_SUFFIXES.values())),
        help="file format (default: by the file's suffix)",
    )
    parser.add_argument(
        "--id-column", default="id", help="column of the prediction ids (default: %(default)s)"
    )
    parser.add_argument(
        "--timestamp-column",
        help="column of epoch seconds or RFC 3339 times (default: 'timestamp' if the file has "
        "it, else the exporter stamps the time of arrival)",
    )
    parser.add_argument(
        "--prediction-column",
        default="prediction",
        help="column of the predictions (default: %(default)s)",
    )
    parser.add_argument(
        "--label-column", help="inline ground truth (default: 'label' if the file has it)"
    )
    parser.add_argument(
        "--score-column",
        help="column of a binary model's positive-class probability (default: none; never "
        "guessed, as 'score' is often a feature)",
    )
    parser.add_argument(
        "--probability-columns",
        help="a probability per class: 'CLASS=COLUMN,...', or 'PREFIX*' for every column "
        "named PREFIX<class> (default: a JSON line's 'probabilities' object, if it has one)",
    )
    parser.add_argument(
        "--feature-columns", help="comma-separated (default: every column not named above)"
    )


@dataclass
class Row:
    line: int
    values: dict[str, Any]


@dataclass
class Summary:
    rows: int = 0
    sent: int = 0
    duplicates: int = 0  # ids the exporter already knew
    repeated: int = 0  # ids an earlier line of the file already used
    skipped: int = 0
    #: Skipped rows not reported yet: (line, why). Reported after each batch, in file order.
    unreported: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, why: str) -> None:
        self.skipped += 1
        self.unreported.append((line, why))


class ReplayError(Exception):
    """The replay cannot go on (unreadable file, exporter unreachable)."""


def file_format(path: Path, fmt: str | None) -> Format:
    """The format named by ``--format``, else by the file's suffix."""
    kind = _SUFFIXES.get(fmt or path.suffix.lower().lstrip("."))
    if kind is None:
        raise ReplayError(
            f"{path}: cannot tell the format by the suffix {path.suffix or '(none)'!r}: "
            "use --format csv, parquet or jsonl"
        )
    return kind


_MISSING = frozenset(("", "nan", "null", "none", "na"))


def _cell(text: str) -> Any:
    """A CSV cell as a value: missing (empty, nan, null, none, na: None), a bool (true, false), an
    int (digits only), a finite float, or the text. Numbers are tried first: most cells are."""
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        low = value.lower()
        if low in _MISSING:
            return None
        return low == "true" if low in ("true", "false") else value
    if not math.isfinite(number):
        return None if value.lower() == "nan" else value
    if number.is_integer() and _is_integer(value):
        return int(value)
    return number


def _is_integer(value: str) -> bool:
    """Digits only, with an optional sign (as ``re.fullmatch(r"[+-]?\\d+", value)``)."""
    digits = value[1:] if value[:1] in ("+", "-") else value
    return digits.isdecimal()


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReplayError("Parquet needs pyarrow: pip install 'model-exporter[parquet]'") from None
    return pq


def _json_objects(path: Path) -> Iterator[Row]:
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


def read_columns(path: Path, kind: Format) -> list[str] | None:
    """The file's columns: the CSV header, the Parquet schema, or (JSON lines have no header)
    the keys of the first JSON object; None when the file holds no row to tell."""
    if kind == "csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
        return None if header is None else [h.strip() for h in header]
    if kind == "parquet":
        return list(_parquet().read_schema(path).names)
    rows = (row for row in _json_objects(path) if "__error__" not in row.values)
    first = next(rows, None)
    return None if first is None else list(first.values)


def read_rows(path: Path, kind: Format) -> Iterator[Row]:
    if kind == "jsonl":
        yield from _json_objects(path)
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
    else:
        table = _parquet().read_table(path)
        for row_no, values in enumerate(table.to_pylist(), start=1):
            clean = {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in values.items()
            }
            yield Row(row_no, clean)


def check_columns(
    path: Path, kind: Format, args: argparse.Namespace, features: list[str] | None
) -> None:
    """Raise :class:`ReplayError` listing the file's columns if a column replay needs is absent.

    Every row needs the id and prediction columns. In CSV and Parquet, whose columns are fixed
    by the header, the columns named by flags must exist too; a JSON line may leave out a
    missing value, so only the keys every row needs are checked there.
    """
    columns = read_columns(path, kind)
    if columns is None:
        return  # no row: nothing will be sent
    needed = {"--id-column": [args.id_column], "--prediction-column": [args.prediction_column]}
    probabilities = probability_columns(args.probability_columns, columns)
    args.probability_map = probabilities
    if kind != "jsonl":
        needed["--timestamp-column"] = [args.timestamp_column] if args.timestamp_column else []
        needed["--label-column"] = [args.label_column] if args.label_column else []
        needed["--score-column"] = [args.score_column] if args.score_column else []
        needed["--probability-columns"] = list((probabilities or {}).values())
        needed["--feature-columns"] = features or []
    missing = [
        f"{name!r} ({flag})"
        for flag, names in needed.items()
        for name in names
        if name not in columns
    ]
    if missing:
        shown = ", ".join(repr(c) for c in columns)
        raise ReplayError(f"{path} has no column {', '.join(missing)}; its columns: {shown}")


def probability_columns(spec: str | None, columns: list[str]) -> dict[str, str] | None:
    """``--probability-columns`` as class -> column (:func:`exporter.scored_reference.
    probability_columns`), refused as a :class:`ReplayError`."""
    try:
        return scored_reference.probability_columns(spec, columns)
    except ValueError as exc:
        raise ReplayError(f"--probability-columns: {exc}") from None


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
    score_column = getattr(args, "score_column", None)
    if score_column is not None and values.get(score_column) is not None:
        event["score"] = values[score_column]
    mapped: dict[str, str] | None = getattr(args, "probability_map", None)
    reserved = {args.id_column, args.prediction_column, ts_column, label_column, score_column}
    if mapped is not None:
        probabilities = {c: values[col] for c, col in mapped.items() if values.get(col) is not None}
        if probabilities:
            event["probabilities"] = probabilities
        reserved |= set(mapped.values())
    elif isinstance(values.get("probabilities"), dict):  # a JSON line's object
        event["probabilities"] = values["probabilities"]
        reserved.add("probabilities")
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
    """The progress line on ``stream``: redrawn in place (``\\r``) every 0.2 s on a terminal;
    elsewhere (a pipe, a log file) one whole line per update, every ``interval`` seconds."""

    def __init__(
        self,
        total: int | None,
        *,
        stream: TextIO,
        quiet: bool,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.quiet = quiet
        self.redraw = stream.isatty()
        self.interval = 0.2 if self.redraw else interval
        self.clock = clock
        self.started = clock()
        self._last = self.started
        self._open = False  # a redrawn line waits for its newline

    def update(self, summary: Summary, force: bool = False) -> None:
        now = self.clock()
        if self.quiet or (not force and now - self._last < self.interval):
            return
        self._last = now
        rate = summary.rows / max(now - self.started, 1e-9)
        if self.total:
            share = min(summary.rows / self.total, 1.0)
            width = 30
            bar = "#" * int(share * width) + "-" * (width - int(share * width))
            eta = max(self.total - summary.rows, 0) / rate if rate else 0
            text = f"[{bar}] {summary.rows:,}/{self.total:,} rows {rate:,.0f}/s ETA {eta:.0f}s"
        else:
            text = f"{summary.rows:,} rows {rate:,.0f}/s"
        text += f", {summary.skipped} bad"
        if self.redraw:
            self.stream.write("\r" + text)
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        """End a redrawn line, so that what follows starts on a line of its own."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def count_rows(path: Path, kind: Format) -> int | None:
    try:
        if kind == "jsonl":
            with path.open("rb") as handle:
                return sum(1 for line in handle if line.strip())
        if kind == "csv":
            with path.open("rb") as handle:
                return max(0, sum(1 for line in handle if line.strip()) - 1)
        return int(_parquet().ParquetFile(path).metadata.num_rows)
    except (OSError, ReplayError):
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
                response = transport.request("POST", "/v1/predictions", dumps(payload))
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
        if response.status in (401, 403):  # the credentials: every batch would be refused
            raise ReplayError(
                f"the exporter refuses these writes ({response.status} "
                f"{rejection.reason or 'no reason'}): {rejection.detail}; pass its write "
                "token with --token (or $MODEL_EXPORTER_TOKEN)"
            )
        index = rejection.event()  # the rejection's field names the event, if one is at fault
        if index is None or index >= len(batch):
            for row, _ in batch:  # the whole batch is refused (e.g. an unknown model)
                summary.skip(
                    row.line, f"refused by the exporter ({response.status}): {rejection.detail}"
                )
            return
        row, _ = batch.pop(index)
        summary.skip(row.line, f"refused by the exporter: {rejection.detail}")


def _admit(
    row: Row,
    args: argparse.Namespace,
    features: list[str] | None,
    first_lines: dict[str, int],
    summary: Summary,
) -> dict[str, Any] | None:
    """The row's event, or None (and the reason in ``summary``) if it cannot be sent."""
    try:
        event = to_event(row, args, features)
    except ValueError as exc:
        summary.skip(row.line, str(exc))
        return None
    first = first_lines.get(event["id"])
    if first is not None:
        summary.repeated += 1
        summary.skip(row.line, f"duplicate id {event['id']!r} (first on line {first})")
        return None
    if len(first_lines) < MAX_REMEMBERED_IDS:
        first_lines[event["id"]] = row.line
    return event


def report_skipped(path: Path, summary: Summary, progress: Progress) -> None:
    """Print the skipped rows not reported yet, in file order. Called after each batch: every
    row of the file up to there has been read and answered, so the report stays in file order
    and its memory stays within one batch."""
    if not summary.unreported:
        return
    progress.end_line()
    for line, why in sorted(summary.unreported, key=lambda item: item[0]):
        print(f"{path}:{line}: skipped: {why}", file=sys.stderr)
    summary.unreported.clear()


def _send_file(
    path: Path,
    kind: Format,
    args: argparse.Namespace,
    features: list[str] | None,
    summary: Summary,
    progress: Progress,
) -> None:
    transport = Transport(args.url.rstrip("/"), timeout=30.0, token=args.token)
    batch: list[tuple[Row, dict[str, Any]]] = []
    first_lines: dict[str, int] = {}
    started = time.monotonic()
    try:
        for row in read_rows(path, kind):
            summary.rows += 1
            event = _admit(row, args, features, first_lines, summary)
            if event is not None:
                batch.append((row, event))
            if len(batch) >= args.batch_size:
                send_batch(transport, args.model, args.model_version, batch, summary)
                batch = []
                report_skipped(path, summary, progress)
            if args.rate > 0:
                ahead = summary.rows / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            progress.update(summary)
        if batch:
            send_batch(transport, args.model, args.model_version, batch, summary)
    finally:
        transport.close()


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
    try:
        kind = file_format(path, args.format)
        check_columns(path, kind, args, features)
    except ReplayError as exc:
        print(f"model-exporter replay: {exc}", file=sys.stderr)
        return 2
    summary = Summary()
    progress = Progress(count_rows(path, kind), stream=sys.stderr, quiet=args.quiet)
    failure = None
    try:
        _send_file(path, kind, args, features, summary, progress)
    except ReplayError as exc:
        failure = exc
    else:
        progress.update(summary, force=True)
    report_skipped(path, summary, progress)
    progress.end_line()
    if failure is not None:
        print(f"model-exporter replay: {failure}", file=sys.stderr)
        return 1
    repeated = f" ({summary.repeated:,} repeating an earlier id)" if summary.repeated else ""
    print(
        f"replayed {summary.rows:,} rows: {summary.sent:,} sent, {summary.duplicates:,} "
        f"duplicates (already known), {summary.skipped:,} skipped{repeated}"
    )
    return 0 if not summary.skipped else 3
