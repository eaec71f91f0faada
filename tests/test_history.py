"""The history of summary values (exporter.history), directly: slots, rings, bounds, removals.

A resolution of 60 s and 4 points a series in the direct tests (3 in the state machine), so
that every ring wraps within a few steps. The state machine at the end compares every read
with a naive model that keeps plain ``{slot: value}`` dicts, trimmed to the last ``points``
slots of each model's latest slot, and refuses what a ticket drawn before a removal records by
a log of removals that is never pruned. Its ``overtaken`` rule (a recording in flight while a
version is removed and later recordings go round the ring) found the one bug so far: a slot
opened by such a recording showed the removed version's value of a lap before."""

from __future__ import annotations

import math
from collections.abc import Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exporter.history import History, Labels, Refused, Row, Series, labels_of

RES, POINTS = 60.0, 4
T = 1_800_000_000.0  # a slot boundary: slot 30,000,000


def make(max_models: int = 3, max_series: int = 20) -> History:
    return History(resolution=RES, points=POINTS, max_models=max_models, max_series=max_series)


def at(slot: int, offset: float = 0.0) -> float:
    """A time in the slot ``slot`` slots after T's."""
    return T + slot * RES + offset


def lab(
    version: str | None = "v1", window: str | None = "1h", average: str | None = None
) -> Labels:
    given = {"model_version": version, "window": window, "average": average}
    return labels_of(**{k: v for k, v in given.items() if v is not None})


def points(series: Series) -> list[tuple[float, float]]:
    return list(zip(series.times.tolist(), series.values.tolist(), strict=True))


def view(found: list[Series]) -> list[tuple[str, dict[str, str], list[tuple[float, float]]]]:
    return [(s.name, dict(s.labels), points(s)) for s in found]


ACC = ("accuracy", lab())


def one(h: History, model: str = "m", **filters: Any) -> list[tuple[float, float]]:
    """The points of the only series the read finds."""
    found = h.read(model, **filters)
    assert len(found) == 1, view(found)
    return points(found[0])


# -- slots -------------------------------------------------------------------------------


def test_a_slot_holds_the_last_value_recorded_in_it() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5)])
    h.record("m", at(0, 59.9), [(*ACC, 0.75)])
    assert one(h) == [(at(0), 0.75)]
    h.record("m", at(1), [(*ACC, 0.25)])
    assert one(h) == [(at(0), 0.75), (at(1), 0.25)]
    assert h.slot(at(1, 59.999)) == h.slot(at(1)) == 30_000_001


def test_no_value_is_never_read_as_a_point() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5)])
    h.record("m", at(1), [(*ACC, None)])
    h.record("m", at(2), [(*ACC, math.nan)])
    h.record("m", at(3), [(*ACC, math.inf)])
    assert one(h) == [(at(0), 0.5)]
    h.record("m", at(3, 1.0), [(*ACC, -math.inf)])  # replaces a value with none, too
    h.record("m", at(0, 1.0), [(*ACC, None)])
    assert h.read("m") == []
    assert h.series_count("m") == 1  # the ring stays: only its points are gone


def test_a_series_the_recording_leaves_out_has_no_value_then() -> None:
    h = make()
    f1 = ("f1_score", lab(average="macro"))
    h.record("m", at(0), [(*ACC, 0.5), (*f1, 0.4)])
    h.record("m", at(1), [(*ACC, 0.6)])
    h.record("m", at(1, 30.0), [(*ACC, 0.7)])
    assert view(h.read("m")) == [
        ("accuracy", {"model_version": "v1", "window": "1h"}, [(at(0), 0.5), (at(1), 0.7)]),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "macro"}, [(at(0), 0.4)]),
    ]
    h.record("m", at(0, 5.0), [(*f1, 0.45)])  # the earlier slot again: accuracy none then
    assert view(h.read("m")) == [
        ("accuracy", {"model_version": "v1", "window": "1h"}, [(at(1), 0.7)]),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "macro"}, [(at(0), 0.45)]),
    ]


def test_a_row_listed_twice_keeps_its_value_over_none() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5), (*ACC, None)])
    h.record("m", at(1), [(*ACC, None), (*ACC, 0.25)])
    h.record("m", at(2), [(*ACC, 0.5), (*ACC, 0.75)])
    assert one(h) == [(at(0), 0.5), (at(1), 0.25), (at(2), 0.75)]


def test_slots_skipped_are_emptied_so_an_old_lap_never_shows() -> None:
    h = make()
    for slot in range(4):
        h.record("m", at(slot), [(*ACC, float(slot))])
    # Slots 4 and 5 share the ring's positions with 0 and 1: they must read as empty.
    h.record("m", at(6), [(*ACC, 6.0)])
    assert one(h) == [(at(3), 3.0), (at(6), 6.0)]
    h.record("m", at(9), [(*ACC, 9.0)])  # 7 and 8 skipped, wrapping around the ring's end
    assert one(h) == [(at(6), 6.0), (at(9), 9.0)]


def test_the_ring_wraps_around_keeping_the_last_points_slots() -> None:
    h = make()
    for slot in range(11):
        h.record("m", at(slot, 7.0), [(*ACC, float(slot))])
        assert one(h) == [(at(s), float(s)) for s in range(max(0, slot - 3), slot + 1)]


def test_a_jump_of_the_whole_retention_or_more_keeps_only_the_new_point() -> None:
    h = make()
    for slot in range(4):
        h.record("m", at(slot), [(*ACC, float(slot))])
    h.record("m", at(7), [(*ACC, 7.0)])  # 3 is the oldest slot kept at 6, not at 7
    assert one(h) == [(at(7), 7.0)]
    h.record("m", at(100), [(*ACC, 100.0)])
    assert one(h) == [(at(100), 100.0)]


def test_a_clock_stepped_back_within_the_retention_writes_the_earlier_slot() -> None:
    h = make()
    other = ("pending_labels", lab(None, None))
    for slot in (10, 11):
        h.record("m", at(slot), [(*ACC, float(slot)), (*other, 1.0)])
    h.record("m", at(8), [(*ACC, 8.0)])  # 11 - 3: still within the four slots kept
    assert view(h.read("m")) == [
        ("accuracy", dict(lab()), [(at(8), 8.0), (at(10), 10.0), (at(11), 11.0)]),
        ("pending_labels", {}, [(at(10), 1.0), (at(11), 1.0)]),
    ]
    h.record("m", at(12), [(*ACC, 12.0)])  # the latest slot is still 11: 12 follows it
    assert one(h, names=["accuracy"]) == [(at(10), 10.0), (at(11), 11.0), (at(12), 12.0)]


def test_a_clock_stepped_back_beyond_the_retention_restarts_the_rings() -> None:
    h = make()
    other = ("pending_labels", lab(None, None))
    for slot in (10, 11):
        h.record("m", at(slot), [(*ACC, float(slot)), (*other, 1.0)])
    h.record("m", at(7), [(*ACC, 7.0)])  # 11 - 4: out of the four slots kept
    assert view(h.read("m")) == [("accuracy", dict(lab()), [(at(7), 7.0)])]
    h.record("m", at(8), [(*ACC, 8.0), (*other, 2.0)])
    assert view(h.read("m")) == [
        ("accuracy", dict(lab()), [(at(7), 7.0), (at(8), 8.0)]),
        ("pending_labels", {}, [(at(8), 2.0)]),
    ]
    assert h.series_count("m") == 2


# -- reads -------------------------------------------------------------------------------


def filled() -> History:
    h = make()
    rows: list[Row] = [
        ("accuracy", lab("v1", "1h"), 0.5),
        ("accuracy", lab("v1", "5m"), 0.6),
        ("accuracy", lab("v2", "1h"), 0.7),
        ("f1_score", lab("v1", "1h", "macro"), 0.1),
        ("f1_score", lab("v1", "1h", "binary"), 0.2),
        ("labels_total", lab("v2", None), 3.0),
        ("pending_labels", lab(None, None), 4.0),
    ]
    h.record("m", at(0), rows)
    h.record("m", at(1), [(n, k, v + 1) for n, k, v in rows if v is not None])
    h.record("other", at(1), [("accuracy", lab("v1", "1h"), 0.9)])
    return h


def names_and_labels(found: list[Series]) -> list[tuple[str, dict[str, str]]]:
    return [(s.name, dict(s.labels)) for s in found]


def test_a_read_is_sorted_by_name_then_labels() -> None:
    assert names_and_labels(filled().read("m")) == [
        ("accuracy", {"model_version": "v1", "window": "1h"}),
        ("accuracy", {"model_version": "v1", "window": "5m"}),
        ("accuracy", {"model_version": "v2", "window": "1h"}),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "binary"}),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "macro"}),
        ("labels_total", {"model_version": "v2"}),
        ("pending_labels", {}),
    ]


def test_the_version_filter_leaves_out_series_without_a_version() -> None:
    assert names_and_labels(filled().read("m", version="v2")) == [
        ("accuracy", {"model_version": "v2", "window": "1h"}),
        ("labels_total", {"model_version": "v2"}),
    ]
    assert filled().read("m", version="v3") == []


def test_the_window_filter_leaves_out_series_without_a_window() -> None:
    assert names_and_labels(filled().read("m", window="5m")) == [
        ("accuracy", {"model_version": "v1", "window": "5m"}),
    ]
    assert names_and_labels(filled().read("m", window="1h", version="v1")) == [
        ("accuracy", {"model_version": "v1", "window": "1h"}),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "binary"}),
        ("f1_score", {"model_version": "v1", "window": "1h", "average": "macro"}),
    ]


def test_the_names_filter() -> None:
    h = filled()
    assert names_and_labels(h.read("m", names=["pending_labels", "labels_total"])) == [
        ("labels_total", {"model_version": "v2"}),
        ("pending_labels", {}),
    ]
    assert h.read("m", names=[]) == []
    assert names_and_labels(h.read("m", names={"f1_score"}, version="v2")) == []


def test_since_keeps_the_points_at_or_after_it_and_the_series_that_have_some() -> None:
    h = filled()
    h.record("m", at(2), [("accuracy", lab("v1", "1h"), 0.25)])
    assert view(h.read("m", since=at(1))) == [
        ("accuracy", dict(lab("v1", "1h")), [(at(1), 1.5), (at(2), 0.25)]),
        ("accuracy", dict(lab("v1", "5m")), [(at(1), 1.6)]),
        ("accuracy", dict(lab("v2", "1h")), [(at(1), 1.7)]),
        ("f1_score", dict(lab("v1", "1h", "binary")), [(at(1), 1.2)]),
        ("f1_score", dict(lab("v1", "1h", "macro")), [(at(1), 1.1)]),
        ("labels_total", dict(lab("v2", None)), [(at(1), 4.0)]),
        ("pending_labels", {}, [(at(1), 5.0)]),
    ]
    # A point's time is its slot's start: a since inside slot 1 leaves slot 1 out.
    assert view(h.read("m", since=at(1, 0.5))) == [
        ("accuracy", dict(lab("v1", "1h")), [(at(2), 0.25)])
    ]
    assert h.read("m", since=at(3)) == []
    assert len(h.read("m", since=-math.inf)) == 7


def test_an_unknown_model_reads_nothing() -> None:
    assert filled().read("nobody") == []


def test_a_read_returns_read_only_copies() -> None:
    h = filled()
    first = h.read("m", names=["accuracy"], version="v1", window="1h")
    (s,) = first
    assert s.times.flags.writeable is False and s.values.flags.writeable is False
    with pytest.raises(ValueError, match="read-only"):
        s.values[0] = 0.0
    with pytest.raises(TypeError):
        s.labels["window"] = "5m"  # type: ignore[index]  # a read-only mapping: the point
    before = points(s)
    h.record("m", at(1, 1.0), [("accuracy", lab("v1", "1h"), 0.125)])  # the same slot
    h.record("m", at(2), [("accuracy", lab("v1", "1h"), 0.25)])
    h.forget("m", None)
    assert points(s) == before == [(at(0), 0.5), (at(1), 1.5)]
    assert dict(s.labels) == {"model_version": "v1", "window": "1h"}


# -- bounds ------------------------------------------------------------------------------


def test_a_model_beyond_max_models_is_refused_and_counted() -> None:
    h = make(max_models=2)
    h.record("a", at(0), [(*ACC, 0.5)])
    h.record("b", at(0), [(*ACC, 0.5)])
    h.record("c", at(0), [(*ACC, 0.5)])
    h.record("c", at(1), [(*ACC, 0.5)])
    h.record("d", at(1), [(*ACC, None)])  # no value: nothing to hold, nothing refused
    assert (h.models(), h.refused) == (["a", "b"], Refused(models=2))
    assert h.read("c") == []
    h.keep_models(["a"])
    h.record("c", at(1), [(*ACC, 0.5)])
    assert (h.models(), h.refused, h.series_count()) == (["a", "c"], Refused(models=2), 2)


def test_a_series_beyond_max_series_is_refused_and_counted() -> None:
    h = make(max_series=2)
    rows: list[Row] = [("accuracy", lab(w), 0.5) for w in ("v1", "v2", "v3")]
    h.record("m", at(0), rows)
    h.record("m", at(1), [*rows, ("accuracy", lab("v4"), None)])  # none: not a new series
    assert (h.series_count("m"), h.refused) == (2, Refused(series=2))
    assert [dict(s.labels)["model_version"] for s in h.read("m")] == ["v1", "v2"]
    h.forget("m", "v1")
    h.record("m", at(2), rows[1:])  # v1's room is v3's now
    assert [dict(s.labels)["model_version"] for s in h.read("m")] == ["v2", "v3"]
    assert h.refused == Refused(series=2)
    # Another model has its own max_series.
    h.record("n", at(2), rows)
    assert (h.series_count("n"), h.series_count(), h.refused) == (2, 4, Refused(series=3))


def test_the_parameters_are_checked() -> None:
    for kwargs, message in (
        ({"resolution": 0.0}, "resolution must be a positive number of seconds, got 0.0"),
        ({"resolution": math.nan}, "resolution must be a positive number of seconds, got nan"),
        ({"points": 0}, "points must be at least 1, got 0"),
        ({"max_models": 0}, "max_models must be at least 1, got 0"),
        ({"max_series": -1}, "max_series must be at least 1, got -1"),
    ):
        arguments: dict[str, Any] = {
            "resolution": 60.0,
            "points": 4,
            "max_models": 1,
            "max_series": 1,
            **kwargs,
        }
        with pytest.raises(ValueError) as raised:
            History(**arguments)
        assert str(raised.value) == message
    assert make().bytes_per_series == 32
    assert History(resolution=60, points=1440, max_models=1, max_series=1).bytes_per_series == (
        11_520
    )


# -- removals ----------------------------------------------------------------------------


def test_forget_a_version_drops_its_series_only() -> None:
    h = filled()
    h.forget("m", "v1")
    assert names_and_labels(h.read("m")) == [
        ("accuracy", {"model_version": "v2", "window": "1h"}),
        ("labels_total", {"model_version": "v2"}),
        ("pending_labels", {}),
    ]
    assert (h.series_count("m"), h.series_count("other")) == (3, 1)
    h.forget("m", "v9")  # nothing of it: nothing changes
    h.forget("nobody", "v1")
    assert (h.series_count(), h.refused) == (4, Refused())


def test_forget_a_model_drops_all_of_it() -> None:
    h = filled()
    h.forget("m", None)
    assert (h.read("m"), h.models(), h.series_count("m"), h.series_count()) == ([], ["other"], 0, 1)
    h.record("m", at(0), [(*ACC, 0.5)])  # recorded anew: a fresh start, no old point
    assert one(h) == [(at(0), 0.5)]


def test_keep_drops_the_versions_not_kept_and_not_the_model_series() -> None:
    h = filled()
    h.keep("m", ["v2", "v9"])
    assert names_and_labels(h.read("m")) == [
        ("accuracy", {"model_version": "v2", "window": "1h"}),
        ("labels_total", {"model_version": "v2"}),
        ("pending_labels", {}),
    ]
    h.keep("m", [])
    assert names_and_labels(h.read("m")) == [("pending_labels", {})]
    h.keep("nobody", [])
    assert h.series_count("other") == 1


def test_keep_models_drops_the_models_not_kept() -> None:
    h = filled()
    h.keep_models({"other", "nobody"})
    assert (h.models(), h.series_count()) == (["other"], 1)
    h.keep_models([])
    assert (h.models(), h.series_count()) == ([], 0)


def test_a_recording_from_before_a_model_removal_does_not_bring_it_back() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5)])
    with h.recording() as ticket:
        h.forget("m", None)
        h.record("m", at(0), [(*ACC, 0.75)], ticket)
        h.record("n", at(0), [(*ACC, 0.75)], ticket)  # another model: recorded
        assert (h.models(), h.refused) == (["n"], Refused(removed=1))
        with h.recording() as later:  # drawn after the removal: recorded
            h.record("m", at(1), [(*ACC, 0.25)], later)
        h.record("m", at(1), [(*ACC, 0.125)], ticket)
    assert one(h) == [(at(1), 0.25)]
    assert h.refused == Refused(removed=2)
    with h.recording() as ticket:  # every recording closed: the removal is not held against it
        h.record("m", at(2), [(*ACC, 0.5)], ticket)
    assert one(h) == [(at(1), 0.25), (at(2), 0.5)]
    assert h.refused == Refused(removed=2)


def test_a_recording_from_before_a_version_removal_records_the_other_versions() -> None:
    h = make()
    v1, v2 = ("accuracy", lab("v1")), ("accuracy", lab("v2"))
    h.record("m", at(0), [(*v1, 0.5), (*v2, 0.5)])
    with h.recording() as ticket:
        h.forget("m", "v1")
        with h.recording() as later:  # a new v1 recorded by a later recording
            h.record("m", at(1), [(*v1, 0.25), (*v2, 0.25)], later)
        h.record("m", at(1, 10.0), [(*v1, 0.75), (*v2, 0.75)], ticket)
    assert view(h.read("m")) == [
        ("accuracy", dict(lab("v1")), [(at(1), 0.25)]),  # left as it was: not clobbered
        ("accuracy", dict(lab("v2")), [(at(0), 0.5), (at(1), 0.75)]),
    ]
    assert h.refused == Refused(removed=1)


def test_a_stale_recording_that_opens_a_slot_leaves_no_old_lap_in_a_removed_version() -> None:
    """A recording refused a removed version's rows, moving to a new slot: that version's
    (new) series has no value in the new slot, not the one its ring held a lap before."""
    h = make()
    v1, v2 = ("accuracy", lab("v1")), ("accuracy", lab("v2"))
    with h.recording() as ticket:
        h.forget("m", "v1")
        with h.recording() as later:
            for slot in range(4):
                h.record("m", at(slot), [(*v1, float(slot)), (*v2, float(slot))], later)
        h.record("m", at(4), [(*v1, 4.5), (*v2, 4.5)], ticket)
    assert view(h.read("m")) == [
        ("accuracy", dict(lab("v1")), [(at(1), 1.0), (at(2), 2.0), (at(3), 3.0)]),
        ("accuracy", dict(lab("v2")), [(at(1), 1.0), (at(2), 2.0), (at(3), 3.0), (at(4), 4.5)]),
    ]


def test_a_removal_is_held_while_an_earlier_recording_is_open() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5)])
    first = h.recording()
    ticket = first.__enter__()
    with h.recording():
        h.forget("m", None)
    with h.recording():  # closing the later ones keeps the removal for the first
        pass
    h.record("m", at(1), [(*ACC, 0.75)], ticket)
    first.__exit__(None, None, None)
    assert (h.models(), h.refused) == ([], Refused(removed=1))


def test_a_removal_while_nothing_records_is_not_held_against_later_recordings() -> None:
    h = make()
    h.record("m", at(0), [(*ACC, 0.5)])
    h.forget("m", None)
    h.forget("m", "v1")
    with h.recording() as ticket:
        h.record("m", at(1), [(*ACC, 0.75)], ticket)
    assert (one(h), h.refused) == ([(at(1), 0.75)], Refused())


# -- against a naive model ---------------------------------------------------------------

#: Three points: rings wrap within a few steps, and a stale recording reaches a slot a lap on.
MACHINE_POINTS = 3
MODELS = ["a", "b", "c"]
KEYS: list[tuple[str, Labels]] = [
    ("accuracy", lab("v1", "1h")),
    ("accuracy", lab("v1", "5m")),
    ("accuracy", lab("v2", "1h")),
    ("f1_score", lab("v2", "1h", "macro")),
    ("labels_total", lab("v1", None)),
    ("pending_labels", lab(None, None)),
]
VALUES = st.one_of(  # mostly a value; sometimes none, in each of its spellings
    st.sampled_from([0.0, 0.5, 1.0, -2.5]),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([None, math.nan, math.inf, -math.inf]),
)
ROWS = st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=6)


@dataclass
class NaiveModel:
    last: int
    values: dict[tuple[str, Labels], dict[int, float]] = field(default_factory=dict)


def version_of(labels: Labels) -> str | None:
    return dict(labels).get("model_version")


class Naive:
    """The documented rules applied literally: a dict of slots per series, trimmed on read."""

    def __init__(self, points: int, max_models: int, max_series: int) -> None:
        self.points, self.max_models, self.max_series = points, max_models, max_series
        self.models: dict[str, NaiveModel] = {}
        self.refused = Refused()
        self.clock = 0  # one counter for tickets and removals: their order is all that matters
        self.removals: list[tuple[int, str, str | None]] = []  # never pruned

    def count(self, **what: int) -> None:
        r = self.refused
        self.refused = Refused(
            r.models + what.get("models", 0),
            r.series + what.get("series", 0),
            r.removed + what.get("removed", 0),
        )

    def ticket(self) -> int:
        self.clock += 1
        return self.clock

    def record(self, model: str, slot: int, rows: list[Row], ticket: int | None) -> None:
        values: dict[tuple[str, Labels], float] = {}
        for name, labels, value in rows:
            if value is not None and math.isfinite(value):
                values[(name, labels)] = value
            else:
                values.setdefault((name, labels), math.nan)
        removed = set()
        if ticket is not None:
            later = [(m, v) for seq, m, v in self.removals if seq > ticket and m == model]
            if (model, None) in later:
                self.count(removed=1)
                return
            removed = {v for _, v in later}
            if removed:
                self.count(removed=1)
                values = {k: x for k, x in values.items() if version_of(k[1]) not in removed}
        entry = self.models.get(model)
        if entry is None:
            if all(math.isnan(x) for x in values.values()):
                return
            if len(self.models) >= self.max_models:
                self.count(models=1)
                return
            entry = self.models[model] = NaiveModel(slot)
        if slot <= entry.last - self.points:  # stepped back beyond the retention: afresh
            for slots in entry.values.values():
                slots.clear()
        if slot <= entry.last - self.points or slot > entry.last:
            entry.last = slot
        for key, slots in entry.values.items():
            if version_of(key[1]) in removed:
                continue
            value = values.pop(key, math.nan)
            if math.isnan(value):
                slots.pop(slot, None)
            else:
                slots[slot] = value
        for key, value in values.items():
            if math.isnan(value):
                continue
            if len(entry.values) >= self.max_series:
                self.count(series=1)
            else:
                entry.values[key] = {slot: value}

    def forget(self, model: str, version: str | None) -> None:
        self.clock += 1
        self.removals.append((self.clock, model, version))
        entry = self.models.get(model)
        if version is None:
            self.models.pop(model, None)
        elif entry is not None:
            entry.values = {k: s for k, s in entry.values.items() if version_of(k[1]) != version}

    def keep(self, model: str, versions: Collection[str]) -> None:
        entry = self.models.get(model)
        if entry is not None:
            entry.values = {
                k: s
                for k, s in entry.values.items()
                if version_of(k[1]) is None or version_of(k[1]) in versions
            }

    def keep_models(self, models: Collection[str]) -> None:
        self.models = {m: e for m, e in self.models.items() if m in models}

    def read(
        self,
        model: str,
        version: str | None,
        window: str | None,
        names: Collection[str] | None,
        since: float | None,
    ) -> list[tuple[str, dict[str, str], list[tuple[float, float]]]]:
        entry = self.models.get(model)
        if entry is None:
            return []
        out = []
        for key in sorted(entry.values):
            name, labels = key
            given = dict(labels)
            if names is not None and name not in names:
                continue
            if version is not None and given.get("model_version") != version:
                continue
            if window is not None and given.get("window") != window:
                continue
            kept = [
                (s * RES, v)
                for s, v in sorted(entry.values[key].items())
                if entry.last - self.points < s <= entry.last
                and (since is None or s * RES >= since)
            ]
            if kept:
                out.append((name, given, kept))
        return out


class HistoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.history = History(resolution=RES, points=MACHINE_POINTS, max_models=2, max_series=4)
        self.naive = Naive(MACHINE_POINTS, max_models=2, max_series=4)
        self.slot = 0
        self.open: list[tuple[AbstractContextManager[int], int, int]] = []  # (cm, ticket, naive)

    # Steps that land within the ring, just past it, on its edge, and back before it.
    @rule(slots=st.sampled_from([0, 0, 1, 1, 2, 3, 4, 5, 9, -1, -3, -4, -5]))
    def wait(self, slots: int) -> None:
        self.slot += slots

    @rule(
        model=st.sampled_from(MODELS),
        rows=ROWS,
        offset=st.sampled_from([0.0, 0.5, 59.5]),
        which=st.sampled_from(["none", "oldest", "newest"]),
    )
    def record(
        self,
        model: str,
        rows: list[tuple[tuple[str, Labels], float | None]],
        offset: float,
        which: str,
    ) -> None:
        """A recording in the current slot, without a ticket or with the oldest or newest one
        open."""
        batch: list[Row] = [(name, labels, value) for (name, labels), value in rows]
        real = naive = None
        if self.open and which != "none":
            _, real, naive = self.open[0 if which == "oldest" else -1]
        self.history.record(model, (self.slot + 30_000_000) * RES + offset, batch, real)
        self.naive.record(model, self.slot + 30_000_000, batch, naive)

    @rule(
        model=st.sampled_from(MODELS),
        rows=ROWS,
        which=st.sampled_from(["none", "oldest", "newest"]),
    )
    def record_in_the_next_slot(
        self, model: str, rows: list[tuple[tuple[str, Labels], float | None]], which: str
    ) -> None:
        """The drift worker's cadence: the next recording is in the next slot."""
        self.slot += 1
        self.record(model, rows, 0.0, which)

    @precondition(lambda self: len(self.open) < 2)
    @rule(
        model=st.sampled_from(MODELS),
        version=st.sampled_from(["v1", "v2"]),
        later=st.lists(ROWS, min_size=1, max_size=MACHINE_POINTS + 1),
        stale=ROWS,
    )
    def overtaken(
        self,
        model: str,
        version: str,
        later: list[list[tuple[tuple[str, Labels], float | None]]],
        stale: list[tuple[tuple[str, Labels], float | None]],
    ) -> None:
        """A recording in flight while the version is removed and later recordings go on,
        one a slot, for up to a lap of the ring; then it records, in the slot after theirs."""
        self.open_recording()
        self.remove("forget", model, version, set())
        self.open_recording()
        for rows in later:
            self.record_in_the_next_slot(model, rows, "newest")
        self.close_recording(-1)
        self.record_in_the_next_slot(model, stale, "oldest")

    @precondition(lambda self: len(self.open) < 3)
    @rule()
    def open_recording(self) -> None:
        cm = self.history.recording()
        self.open.append((cm, cm.__enter__(), self.naive.ticket()))

    @precondition(lambda self: bool(self.open))
    @rule(index=st.integers(0, 2))
    def close_recording(self, index: int) -> None:
        cm, _, _ = self.open.pop(index % len(self.open) if index >= 0 else index)
        cm.__exit__(None, None, None)

    @rule(
        how=st.sampled_from(["forget", "forget", "keep", "keep_models"]),
        model=st.sampled_from(MODELS),
        version=st.sampled_from(["v1", "v1", "v2", None]),
        kept=st.sets(st.sampled_from(["v1", "v2", "v3", *MODELS])),
    )
    def remove(self, how: str, model: str, version: str | None, kept: set[str]) -> None:
        """The store's removals: a model or version forgotten, or a reconciliation keeping
        the versions (``keep``) or models (``keep_models``) in ``kept``."""
        if how == "forget":
            self.history.forget(model, version)
            self.naive.forget(model, version)
        elif how == "keep":
            self.history.keep(model, kept)
            self.naive.keep(model, kept)
        else:
            self.history.keep_models(kept)
            self.naive.keep_models(kept)

    @rule(
        model=st.sampled_from(MODELS),
        version=st.sampled_from([None, "v1", "v2", "v3"]),
        window=st.sampled_from([None, "1h", "5m"]),
        names=st.one_of(st.none(), st.sets(st.sampled_from([k[0] for k in KEYS]))),
        since=st.one_of(st.none(), st.integers(-6, 6)),
    )
    def read(
        self,
        model: str,
        version: str | None,
        window: str | None,
        names: set[str] | None,
        since: int | None,
    ) -> None:
        start = None if since is None else (self.slot + 30_000_000 + since) * RES - 0.5
        got = view(
            self.history.read(model, version=version, window=window, names=names, since=start)
        )
        assert got == self.naive.read(model, version, window, names, start)

    @invariant()
    def everything_matches_the_naive_model(self) -> None:
        assert self.history.models() == sorted(self.naive.models)
        for model in MODELS:
            assert view(self.history.read(model)) == self.naive.read(model, None, None, None, None)
            held = self.naive.models.get(model)
            assert self.history.series_count(model) == (0 if held is None else len(held.values))
        assert self.history.refused == self.naive.refused

    def teardown(self) -> None:
        for cm, _, _ in self.open:
            cm.__exit__(None, None, None)


TestHistoryMachine = HistoryMachine.TestCase
TestHistoryMachine.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, derandomize=True
)


def test_the_naive_model_is_not_vacuous() -> None:
    """A fixed sequence through both: bounds, a wrap, a stale recording after a removal."""
    machine = HistoryMachine()
    for model in ("a", "b", "c"):  # c: beyond max_models
        machine.record(model, [(KEYS[0], 0.5), (KEYS[5], 1.0)], 0.0, "none")
    for _ in range(5):  # the fifth series is beyond max_series, each time
        machine.wait(1)
        rows = [(KEYS[0], 0.25), (KEYS[2], 0.75), (KEYS[3], 0.5), (KEYS[4], 2.0)]
        machine.record("a", rows, 0.0, "none")
    machine.open_recording()
    machine.remove("forget", "a", "v1", set())
    machine.wait(1)
    machine.record("a", [(KEYS[1], 0.5), (KEYS[2], 1.0)], 59.5, "oldest")  # v1's row refused
    machine.everything_matches_the_naive_model()
    machine.read("a", None, None, None, -2)
    machine.teardown()
    slots = [(30_000_000 + s) * RES for s in range(4, 7)]  # the last MACHINE_POINTS
    assert view(machine.history.read("a")) == [
        ("accuracy", dict(lab("v2", "1h")), [(slots[0], 0.75), (slots[1], 0.75), (slots[2], 1.0)]),
        ("f1_score", dict(lab("v2", "1h", "macro")), [(slots[0], 0.5), (slots[1], 0.5)]),
    ]
    assert machine.naive.refused == machine.history.refused == Refused(1, 5, 1)
