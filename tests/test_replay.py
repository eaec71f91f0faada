"""exporter/replay.py directly: file formats and columns, the progress line (fake clock)."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import pytest

from exporter import replay
from exporter.replay import Progress, ReplayError, Summary
from tests.conftest import FakeClock

COLUMNS = ["request", "score", "amount", "plan"]
ROWS = [{"request": f"r{i}", "score": i % 2, "amount": i * 1.5, "plan": "gold"} for i in range(3)]


def write_log(tmp_path: Path, kind: str, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / f"log.{kind}"
    if kind == "csv":
        lines = [",".join(rows[0]), *(",".join(str(v) for v in row.values()) for row in rows)]
        path.write_text("\n".join(lines) + "\n")
    elif kind == "jsonl":
        path.write_text("not json\n" + "".join(json.dumps(row) + "\n" for row in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    return parser.parse_args(["log", "--model", "m", *argv])


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_the_columns_of_each_format(tmp_path: Path, kind: str) -> None:
    path = write_log(tmp_path, kind, ROWS)
    fmt = replay.file_format(path, None)
    assert fmt == kind
    assert replay.read_columns(path, fmt) == COLUMNS  # JSON lines: the first object's keys
    assert [row.values.get("request") for row in replay.read_rows(path, fmt)][-3:] == [
        row["request"] for row in ROWS
    ]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_a_missing_id_column_is_named_with_the_files_columns(tmp_path: Path, kind: str) -> None:
    path = write_log(tmp_path, kind, ROWS)
    with pytest.raises(ReplayError) as caught:
        replay.check_columns(path, replay.file_format(path, None), arguments(), None)
    message = str(caught.value)
    assert "'id' (--id-column)" in message and "'prediction' (--prediction-column)" in message
    assert message.endswith("its columns: " + ", ".join(repr(c) for c in COLUMNS))
    mapped = arguments("--id-column", "request", "--prediction-column", "score")
    replay.check_columns(path, replay.file_format(path, None), mapped, None)  # no error


@pytest.mark.parametrize(("kind", "refused"), [("csv", True), ("parquet", True), ("jsonl", False)])
def test_named_optional_columns_must_exist_where_a_header_fixes_them(
    tmp_path: Path, kind: str, refused: bool
) -> None:
    """A JSON line may leave out a missing value, so there only id and prediction are checked."""
    path = write_log(tmp_path, kind, ROWS)
    args = arguments(
        "--id-column", "request", "--prediction-column", "score", "--label-column", "churned"
    )
    fmt = replay.file_format(path, None)
    if refused:
        with pytest.raises(ReplayError, match=r"'churned' \(--label-column\)"):
            replay.check_columns(path, fmt, args, ["amount", "tier"])
        with pytest.raises(ReplayError, match=r"'tier' \(--feature-columns\)"):
            replay.check_columns(path, fmt, args, ["amount", "tier"])
    else:
        replay.check_columns(path, fmt, args, ["amount", "tier"])


def test_an_empty_file_has_no_columns_to_check(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    assert replay.read_columns(path, "jsonl") is None
    replay.check_columns(path, "jsonl", arguments(), None)


def test_the_format_comes_from_the_flag_else_the_suffix(tmp_path: Path) -> None:
    assert replay.file_format(tmp_path / "x.NDJSON", None) == "jsonl"
    assert replay.file_format(tmp_path / "x.pq", None) == "parquet"
    assert replay.file_format(tmp_path / "x.txt", "csv") == "csv"
    with pytest.raises(ReplayError, match=r"'\.txt'.*--format"):
        replay.file_format(tmp_path / "x.txt", None)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def updates(progress: Progress, clock: FakeClock, steps: list[tuple[float, int]]) -> None:
    summary = Summary()
    for seconds, rows in steps:
        clock.advance(seconds)
        summary.rows = rows
        progress.update(summary)
    progress.update(summary, force=True)
    progress.end_line()


def test_progress_in_a_pipe_is_one_whole_line_per_update() -> None:
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(100, stream=stream, quiet=False, interval=5.0, clock=clock)
    updates(progress, clock, [(1.0, 5), (4.0, 20), (1.0, 30), (5.0, 55)])  # at 5 s and 11 s
    assert "\r" not in stream.getvalue()
    lines = stream.getvalue().split("\n")
    assert lines[-1] == ""  # every update ends its line
    assert [line.split("]")[1].split()[0] for line in lines[:-1]] == ["20/100", "55/100", "55/100"]


def test_progress_on_a_terminal_is_redrawn_in_place() -> None:
    clock, stream = FakeClock(), Terminal()
    progress = Progress(None, stream=stream, quiet=False, clock=clock)
    updates(progress, clock, [(0.1, 1), (0.2, 2), (0.3, 3)])
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    drawn = text.split("\r")[1:]  # the update at 0.1 s came too soon after the start
    assert [line.split(" rows")[0] for line in drawn] == ["2", "3", "3"]


def test_quiet_progress_writes_nothing() -> None:
    clock, stream = FakeClock(), Terminal()
    updates(Progress(10, stream=stream, quiet=True, clock=clock), clock, [(1.0, 5)])
    assert stream.getvalue() == ""


def test_probability_columns_by_pairs_or_prefix_and_their_errors() -> None:
    columns = ["id", "p_cat", "p_dog", "prediction"]
    assert replay.probability_columns("p_*", columns) == {"cat": "p_cat", "dog": "p_dog"}
    assert replay.probability_columns(" cat=p_cat , dog=p_dog", columns) == {
        "cat": "p_cat",
        "dog": "p_dog",
    }
    assert replay.probability_columns(None, columns) is None
    with pytest.raises(ReplayError, match="no column starts with 'q_'"):
        replay.probability_columns("q_*", columns)
    with pytest.raises(ReplayError, match="CLASS=COLUMN pairs"):
        replay.probability_columns("cat", columns)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_named_score_columns_must_exist_where_a_header_fixes_them(
    tmp_path: Path, kind: str
) -> None:
    path = write_log(tmp_path, kind, ROWS)
    fmt = replay.file_format(path, None)
    for flags, named in (
        (["--score-column", "proba"], "'proba' (--score-column)"),
        (["--probability-columns", "1=p1"], "'p1' (--probability-columns)"),
    ):
        args = arguments("--id-column", "request", "--prediction-column", "score", *flags)
        with pytest.raises(ReplayError, match=re.escape(f"has no column {named}")):
            replay.check_columns(path, fmt, args, None)


def test_score_and_probability_columns_become_the_events_fields_not_features() -> None:
    args = arguments("--score-column", "s")
    args.probability_map = None
    event = replay.to_event(
        replay.Row(1, {"id": "a", "prediction": 1, "s": 0.25, "x": 2.0}), args, None
    )
    assert event == {"id": "a", "prediction": 1, "score": 0.25, "features": {"x": 2.0}}
    args = arguments()
    args.probability_map = {"cat": "p_cat", "dog": "p_dog"}
    row = {"id": "b", "prediction": "cat", "p_cat": 0.75, "p_dog": None, "x": 1.0}
    event = replay.to_event(replay.Row(2, row), args, None)
    assert event["probabilities"] == {"cat": 0.75} and event["features"] == {"x": 1.0}
    # With no flag, a 'score' column is a feature (never guessed), a JSON object is taken.
    args = arguments()
    event = replay.to_event(
        replay.Row(
            3, {"id": "c", "prediction": 1, "score": 700, "probabilities": {"1": 0.5, "0": 0.5}}
        ),
        args,
        None,
    )
    assert event["features"] == {"score": 700} and event["probabilities"] == {"1": 0.5, "0": 0.5}


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("", None),
        ("  ", None),
        ("nan", None),
        (" NaN ", None),
        ("null", None),
        ("None", None),
        ("NA", None),
        ("true", True),
        (" FALSE", False),
        ("12", 12),
        ("+12", 12),
        ("-0", 0),
        ("1.5", 1.5),
        ("2.0", 2.0),  # a float, as written
        ("1e3", 1000.0),
        ("inf", "inf"),  # not finite: kept as text, refused as a feature value
        ("-nan", "-nan"),
        ("1e400", "1e400"),
        ("0x10", "0x10"),
        ("cat", "cat"),
    ],
)
def test_csv_cells_become_the_values_they_spell(cell: str, value: object) -> None:
    parsed = replay._cell(cell)
    assert type(parsed) is type(value)
    assert parsed == value
