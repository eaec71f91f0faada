"""``model-exporter backtest FILE``: a historical log through the exporter's windows and
statistics on a virtual clock, written out as time series.

The log is read as ``replay`` reads it (CSV, Parquet or JSONL; the same column options). Its
rows go, in file order, to a store whose clock is the events' own time: each row's timestamp
(required) moves the clock forward, never back. At every ``--step`` boundary the drift worker
runs, as it would every ``drift.refresh_interval`` in ``serve``, and every model family is
sampled at that time into ``--out``: OpenMetrics text for ``promtool tsdb
create-blocks-from openmetrics``. ``--summary`` (default: ``--out`` with ``.csv``) gets the
alert-relevant series of each step, one row per (step, series).

Labels come inline (the label column) at their prediction's time, or, with
``--label-timestamp-column``, at their own time: they wait in a heap (bounded by the join's
limits: a label later than ``join.prediction_ttl`` finds no prediction, as in ``serve``) and are
sent when the clock reaches them. Memory is bounded: the store's limits hold, samples are
spooled to disk per family (exporter.openmetrics_writer), rows are read one at a time.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from exporter import replay
from exporter.collectors.base import Timings
from exporter.collectors.models import PARTS, ModelCollector
from exporter.config import load_settings, parse_duration
from exporter.drift_worker import DriftWorker
from exporter.errors import ExporterError, RejectedInput
from exporter.openmetrics_writer import OpenMetricsWriter
from exporter.reference import build_reference
from exporter.reference_io import read_reference_file
from exporter.scored_reference import probability_columns
from exporter.store import Store

#: The families a shipped alert reads: the summary's columns.
SUMMARY_FAMILIES = (
    "model_accuracy",
    "model_f1_score",
    "model_estimated_accuracy",
    "model_drift_features_drifted",
    "model_prediction_drift_detected",
    "model_concept_drift_detections",
    "model_window_labeled_predictions",
    "model_window_predictions",
)
BATCH = 1000
#: Windows kept sorted and ranked between steps (exporter.ranked_windows); ``bench/backtest.py``
#: turns it off for its baseline, the full computation at every step.
KEEP_RANKED = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, help="a .csv, .parquet or .jsonl (.ndjson) log of predictions"
    )
    parser.add_argument("--model", required=True, help="model name (required)")
    parser.add_argument("--model-version", help="model version (default: default_model_version)")
    parser.add_argument("--out", type=Path, required=True, help="the OpenMetrics file to write")
    parser.add_argument(
        "--summary", type=Path, help="CSV of the alert-relevant series (default: --out as .csv)"
    )
    parser.add_argument(
        "--step", default="1m", help="time between two samples of every series (default: 1m)"
    )
    parser.add_argument("--config", help="the serve configuration (YAML)")
    parser.add_argument(
        "--reference", type=Path, help="a reference file (CSV or Parquet) for the model"
    )
    parser.add_argument(
        "--label-timestamp-column",
        help="column of each label's own time (default: labels at their prediction's time)",
    )
    replay.add_column_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress line")


@dataclass(slots=True)
class Event:
    """A prediction event (exporter.batch.PredictionEventLike), at ``timestamp``."""

    id: str
    features: dict[str, float | str | bool | None]
    prediction: int | float | str | bool
    timestamp: float | datetime | None
    label: int | float | str | bool | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None

    @property
    def at(self) -> float:
        assert isinstance(self.timestamp, float)  # events() gives every one its time
        return self.timestamp


@dataclass(slots=True)
class Label:
    """A label at its own time (exporter.batch.LabelLike)."""

    id: str
    label: int | float | str | bool
    timestamp: float | datetime | None


class VirtualClock:
    """The store's clock: the log's time, moved by :meth:`advance` only, never back."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, to: float) -> None:
        self.now = max(self.now, to)


def epoch(value: Any) -> float:
    """A row's time as Unix seconds: a number, or RFC 3339 text."""
    if isinstance(value, bool):
        raise ValueError(f"a time is a number or RFC 3339 text, not {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"a time is finite, not {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError(f"{value!r} has no UTC offset") from None
            return moment.timestamp()
    raise ValueError(f"a time is a number or RFC 3339 text, not {value!r}")


class Backtest:
    """One run: a store on a virtual clock, its drift worker and model collector, the
    writers; :meth:`feed` takes events in log order and samples every step they cross."""

    def __init__(self, args: argparse.Namespace, start: float) -> None:
        settings = load_settings(args.config)
        self.model = args.model
        self.version = args.model_version
        self.step = parse_duration(args.step)
        if not self.step > 0:
            raise ExporterError(f"--step must be > 0, got {args.step!r}")
        self.clock = VirtualClock(start)
        self.store = Store(settings, clock=self.clock)
        # No status page here; drift at every step, so windows are kept sorted between steps.
        self.worker = DriftWorker(self.store, distributions=False, keep_ranked=KEEP_RANKED)
        self.collector = ModelCollector(
            self.store, self.worker.cache, Timings([*PARTS, "exporter"]), self.worker.sequential
        )
        self.writer = OpenMetricsWriter(args.out)
        summary_path = args.summary or args.out.with_suffix(".csv")
        self._summary_file: TextIO = summary_path.open("w", newline="", encoding="utf-8")
        self.summary = csv.writer(self._summary_file)
        self.summary.writerow(["timestamp", "metric", "labels", "value"])
        self.next_step = math.floor(start / self.step) * self.step + self.step
        self.batch: list[Event] = []
        self.labels: list[tuple[float, int, Label]] = []  # a heap by label time
        self._order = 0
        self.steps = 0
        self.refused = 0
        self.late_labels = 0
        self.ttl = settings.join.prediction_ttl
        if args.reference is not None:
            columns = read_reference_file(
                args.reference, max_name_length=settings.limits.max_name_length
            )
            spec = settings.models.get(self.model)
            reference = build_reference(
                columns,
                settings=settings.drift,
                source="file",
                created=start,
                categorical=spec.categorical if spec else (),
                prediction_column=spec.reference_prediction_column if spec else None,
                label_column=spec.reference_label_column if spec else None,
                score_column=spec.reference_score_column if spec else None,
                probability_columns=probability_columns(
                    spec.reference_probability_columns if spec else None, list(columns)
                ),
                max_classes=settings.limits.max_classes,
            )
            self.store.set_reference(self.model, None, reference)

    def feed(self, event: Event, label: Label | None) -> None:
        """One event (and its label, when it has a time of its own), in log order."""
        while event.at >= self.next_step:
            self._flush()
            self._sample()
        self.batch.append(event)
        if label is not None:
            heapq.heappush(self.labels, (epoch(label.timestamp), self._order, label))
            self._order += 1
        if len(self.batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        """Send the batch at its latest time, then the labels due by then."""
        if self.batch:
            self.clock.advance(max(e.at for e in self.batch))
            self._send_predictions(self.batch)
            self.batch = []
        self._send_labels(self.clock.now)

    def _send_predictions(self, events: list[Event]) -> None:
        try:
            self.store.add_predictions(self.model, self.version, events)
        except RejectedInput:
            # One bad row refuses its batch: send the rows one by one, counting the refused.
            for event in events:
                try:
                    self.store.add_predictions(self.model, self.version, [event])
                except RejectedInput:
                    self.refused += 1

    def _send_labels(self, until: float) -> None:
        due: list[Label] = []
        while self.labels and self.labels[0][0] <= until:
            due.append(heapq.heappop(self.labels)[2])
        for start in range(0, len(due), BATCH):
            part = due[start : start + BATCH]
            try:
                self.store.add_labels(self.model, part)
            except RejectedInput:
                for label in part:
                    try:
                        self.store.add_labels(self.model, [label])
                    except RejectedInput:
                        self.refused += 1

    def _sample(self) -> None:
        """The step boundary: drift recomputed, every family sampled at that time."""
        at = self.next_step
        self.clock.advance(at)
        self._send_labels(at)
        self.worker.run_once()
        families = list(self.collector.collect())
        self.writer.add(families, at)
        for family in families:
            if family.name in SUMMARY_FAMILIES:
                for sample in family.samples:
                    labels = json.dumps(sample.labels, sort_keys=True, separators=(",", ":"))
                    self.summary.writerow([f"{at:.3f}", sample.name, labels, repr(sample.value)])
        self.steps += 1
        self.next_step += self.step

    def finish(self) -> None:
        """The last batch and labels, one last step, and the files written."""
        self._flush()
        # Labels still to come: those a prediction can still wait for (join.prediction_ttl
        # after the last one); later ones would find none, and are counted instead.
        until = self.clock.now + self.ttl
        while self.labels and self.labels[0][0] <= until:
            self._sample()
            self._flush()
        self.late_labels = len(self.labels)
        self.labels = []
        self._sample()
        self.writer.finish()
        self._summary_file.close()

    def abort(self) -> None:
        self.writer.close()
        self._summary_file.close()


def events(
    path: Path, kind: replay.Format, args: argparse.Namespace, summary: replay.Summary
) -> Iterator[tuple[Event, Label | None]]:
    """The log's events, with their labels when those have a time of their own."""
    features = (
        [f.strip() for f in args.feature_columns.split(",") if f.strip()]
        if args.feature_columns
        else None
    )
    own_time = args.label_timestamp_column
    for row in replay.read_rows(path, kind):
        summary.rows += 1
        try:
            wire = replay.to_event(row, args, features)
            if "timestamp" not in wire:
                raise ValueError("no timestamp: a backtest runs on the events' own time")
            at = epoch(wire["timestamp"])
            label = None
            if own_time is not None and "label" in wire:
                when = row.values.get(own_time)
                if when is None:
                    raise ValueError(f"no label time in column {own_time!r}")
                label = Label(wire["id"], wire.pop("label"), epoch(when))
            wire.get("features", {}).pop(own_time, None)
        except ValueError as exc:
            summary.skip(row.line, str(exc))
            continue
        yield (
            Event(
                wire["id"],
                wire["features"],
                wire["prediction"],
                at,
                wire.get("label"),
                wire.get("score"),
                wire.get("probabilities"),
            ),
            label,
        )


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"model-exporter backtest: {path}: no such file", file=sys.stderr)
        return 2
    try:
        kind = replay.file_format(path, args.format)
        replay.check_columns(path, kind, args, None)
        columns = replay.read_columns(path, kind)
        own = args.label_timestamp_column
        if own and kind != "jsonl" and columns is not None and own not in columns:
            shown = ", ".join(repr(c) for c in columns)
            raise replay.ReplayError(
                f"{path} has no column {own!r} (--label-timestamp-column); its columns: {shown}"
            )
    except replay.ReplayError as exc:
        print(f"model-exporter backtest: {exc}", file=sys.stderr)
        return 2
    summary = replay.Summary()
    progress = replay.Progress(replay.count_rows(path, kind), stream=sys.stderr, quiet=args.quiet)
    stream = events(path, kind, args, summary)
    first = next(stream, None)
    if first is None:
        print(f"model-exporter backtest: {path}: no usable row", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        run_ = Backtest(args, first[0].at)
    except (ExporterError, OSError) as exc:
        print(f"model-exporter backtest: {exc}", file=sys.stderr)
        return 2
    try:
        run_.feed(*first)
        for event, label in stream:
            run_.feed(event, label)
            progress.update(summary)
        run_.finish()
    except BaseException:
        run_.abort()
        raise
    progress.update(summary, force=True)
    progress.end_line()
    seconds = time.monotonic() - started
    for line, why in summary.unreported[:20]:
        print(f"{path}:{line}: skipped: {why}", file=sys.stderr)
    rate = summary.rows / max(seconds, 1e-9)
    print(
        f"backtested {summary.rows:,} rows in {seconds:.1f} s ({rate:,.0f}/s): "
        f"{run_.steps:,} steps of {args.step}, {run_.writer.samples:,} samples in {args.out}; "
        f"{summary.skipped:,} rows skipped, {run_.refused:,} refused by the exporter, "
        f"{run_.late_labels:,} labels later than join.prediction_ttl after the last prediction"
    )
    return 0 if not (summary.skipped or run_.refused or run_.late_labels) else 3
