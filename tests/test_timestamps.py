"""Timestamps far from now: refused before 2000 (a mix-up of units or fields), accepted when
merely old (a replay) and counted when no window holds them, and label delays that are not a
time a label took (negative, or beyond join.prediction_ttl) kept out of the delay histogram.

Directly on the parts (``to_epoch``, ``VersionCounters``, the store with a fake clock), then once
over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from exporter.counters import LABEL_DELAY_BUCKETS, VersionCounters
from exporter.encoding import EARLIEST_TIME, to_epoch
from exporter.errors import Reason, RejectedInput
from tests.conftest import T0, sample
from tests.test_store import Event, Label, make_store, snap, version, window

SKEW = 300.0
HOUR = 3600.0


def refused(value: Any) -> RejectedInput:
    with pytest.raises(RejectedInput) as info:
        to_epoch(value, T0, SKEW, "labels[3].timestamp")
    return info.value


# -- the earliest time accepted -----------------------------------------------------------------


def test_the_earliest_accepted_time_is_2000_01_01() -> None:
    assert datetime(2000, 1, 1, tzinfo=UTC).timestamp() == EARLIEST_TIME
    assert to_epoch(EARLIEST_TIME, T0, SKEW, "t") == EARLIEST_TIME
    assert to_epoch(datetime(2000, 1, 1, tzinfo=UTC), T0, SKEW, "t") == EARLIEST_TIME
    exc = refused(EARLIEST_TIME - 0.5)
    assert (exc.reason, exc.field, exc.value) == (
        Reason.INVALID_TIMESTAMP,
        "labels[3].timestamp",
        EARLIEST_TIME - 0.5,
    )
    assert "before 2000-01-01T00:00:00Z (946684800 in epoch seconds)" in exc.message
    assert "the earliest time accepted" in exc.message


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (5.0, "is it a duration, or a time since the start of a run?"),
        (-5.0, "is it a duration"),
        (0.0, "is it a duration"),
        (T0 / 60, "this looks like minutes since the epoch"),
        (T0 / 3600, "this looks like hours since the epoch"),
        (T0 / 86400, "this looks like days since the epoch"),
        (EARLIEST_TIME - 1, "is it a duration"),  # seconds, just too old: no unit fits
    ],
)
def test_a_number_before_2000_gets_a_hint_at_the_mix_up(value: float, hint: str) -> None:
    exc = refused(value)
    assert exc.reason == Reason.INVALID_TIMESTAMP and exc.value == value
    assert hint in exc.message, exc.message
    assert "2000-01-01T00:00:00Z" in exc.message


@pytest.mark.parametrize(
    "when",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_an_rfc3339_time_before_2000_is_refused_as_sent(when: datetime) -> None:
    exc = refused(when)
    assert (exc.reason, exc.value) == (Reason.INVALID_TIMESTAMP, when.isoformat())
    assert f"'{when.isoformat()}' is before 2000-01-01T00:00:00Z" in exc.message
    assert "placeholder date" in exc.message


def test_the_far_future_check_is_unchanged() -> None:
    assert to_epoch(T0 + SKEW, T0, SKEW, "t") == T0 + SKEW
    exc = refused(T0 * 1000)  # milliseconds: the other direction
    assert "epoch seconds are expected, not milliseconds" in exc.message
    assert "earliest" not in exc.message


# -- events older than every window -------------------------------------------------------------


def test_an_event_older_than_every_window_is_accepted_counted_and_in_no_window() -> None:
    # Windows 5m and 1h, 60 buckets: at T0 (a bucket edge) the 1h window's oldest bucket
    # starts at T0 - 3540 s, the 5m window's at T0 - 295 s.
    store, clock = make_store(windows=["5m", "1h"], window_buckets=60)
    times = [T0, T0 - 290.0, T0 - 3000.0, T0 - 3540.0, T0 - 3540.5, T0 - 7200.0, T0 + 100.0]
    batch = [Event(f"e{i}", {"x": 1.0}, 1, timestamp=t) for i, t in enumerate(times)]
    assert store.add_predictions("m", None, batch).accepted == 7
    v = version(snap(store))
    assert v.counters.predictions == 7
    assert v.counters.outside_windows == {"prediction": 2, "label": 0}
    in_1h = window(v, "1h").predictions
    assert (window(v, "5m").predictions, in_1h) == (3, 5)  # the future one counts as now
    assert v.counters.predictions - in_1h == v.counters.outside_windows["prediction"]
    # Time passing moves events out of the windows, which is not what the counter counts.
    clock.advance(2 * HOUR)
    v = version(snap(store))
    assert window(v, "1h").predictions == 0 and v.counters.outside_windows["prediction"] == 2


def test_a_label_older_than_every_window_is_joined_counted_and_in_no_window() -> None:
    store, _ = make_store(windows=["5m", "1h"], quality={"min_samples": 1})
    store.add_predictions("m", None, [Event("a", {"x": 1.0}, 1), Event("b", {"x": 1.0}, 1)])
    old = Label("a", 1, timestamp=T0 - 2 * HOUR)
    assert store.add_labels("m", [old, Label("b", 1)]).joined == 2
    v = version(snap(store))
    assert v.counters.labels == 2
    assert v.counters.outside_windows == {"prediction": 0, "label": 1}
    assert (window(v, "5m").labeled, window(v, "1h").labeled) == (1, 1)


def test_an_old_event_with_an_inline_label_is_outside_by_both_times() -> None:
    store, _ = make_store()
    store.add_predictions("m", None, [Event("a", {"x": 1.0}, 1, timestamp=T0 - 5 * HOUR, label=1)])
    assert version(snap(store)).counters.outside_windows == {"prediction": 1, "label": 1}


# -- label delays kept out of the histogram -----------------------------------------------------


def test_count_delays_keeps_out_negative_and_beyond_ttl() -> None:
    c = VersionCounters()
    c.count_delays(np.array([-1.0, 0.0, 5.0, HOUR, HOUR + 0.5, -0.001, 40.0]), HOUR)
    assert c.delays_excluded == {"negative": 2, "beyond_ttl": 1}
    assert int(c.delay_counts.sum()) == 4
    assert c.delay_sum == 0.0 + 5.0 + HOUR + 40.0
    expected = np.bincount(
        np.searchsorted(LABEL_DELAY_BUCKETS, [0.0, 5.0, HOUR, 40.0]),
        minlength=len(LABEL_DELAY_BUCKETS) + 1,
    )
    np.testing.assert_array_equal(c.delay_counts, expected)
    copy = c.copy()
    c.count_delays(np.array([-2.0]), HOUR)
    assert copy.delays_excluded["negative"] == 2  # a reader's copy does not move


def test_a_replayed_prediction_labelled_now_is_beyond_ttl() -> None:
    store, clock = make_store(join={"prediction_ttl": "1h"})
    replay = [
        Event("edge", {"x": 1.0}, 1, timestamp=T0 - HOUR),  # a delay of exactly the TTL: kept
        Event("old", {"x": 1.0}, 1, timestamp=T0 - HOUR - 1.0),
        Event("new", {"x": 1.0}, 1),
    ]
    store.add_predictions("m", None, replay)
    store.add_labels("m", [Label("edge", 1), Label("old", 1), Label("new", 1)])
    clock.advance(HOUR - 1.0)  # the longest a prediction can wait, by arrival
    store.add_predictions("m", None, [Event("late", {"x": 1.0}, 1)])
    clock.advance(HOUR - 1.0)
    store.add_labels("m", [Label("late", 1)])
    c = version(snap(store)).counters
    assert c.labels == 4
    assert c.delays_excluded == {"negative": 0, "beyond_ttl": 1}
    assert int(c.delay_counts.sum()) == 3 and c.delay_sum == HOUR + 0.0 + (HOUR - 1.0)


def test_a_label_timed_before_its_prediction_is_negative() -> None:
    store, clock = make_store()
    store.add_predictions("m", None, [Event("a", {"x": 1.0}, 1)])
    store.add_labels("m", [Label("a", 1, timestamp=T0 - 10.0)])
    store.add_labels("m", [Label("b", 0)])  # early: waits for its prediction
    clock.advance(30.0)
    store.add_predictions("m", None, [Event("b", {"x": 1.0}, 0)])
    c = version(snap(store)).counters
    assert c.labels == 2
    assert c.delays_excluded == {"negative": 2, "beyond_ttl": 0}
    assert int(c.delay_counts.sum()) == 0 and c.delay_sum == 0.0


# -- over HTTP ----------------------------------------------------------------------------------


def test_old_and_ancient_timestamps_over_http(make_exporter) -> None:
    exp = make_exporter(join={"prediction_ttl": "1h"})
    key = {"model": "m", "model_version": "default"}
    r = exp.client.post(
        "/v1/predictions",
        json={
            "model": "m",
            "events": [
                {"id": "a", "features": {}, "prediction": 1},
                {"id": "b", "features": {}, "prediction": 1, "timestamp": 5},
            ],
        },
    )
    assert r.status_code == 422
    body = r.json()
    assert (body["reason"], body["field"], body["value"]) == (
        "invalid_timestamp",
        "events[1].timestamp",
        5.0,
    )
    assert "before 2000-01-01T00:00:00Z" in body["detail"] and "duration" in body["detail"]
    assert sample(exp.metrics(), "model_predictions_total", **key) is None  # nothing changed

    replayed = T0 - 3 * HOUR
    exp.predictions(
        "m",
        [
            {"id": "a", "features": {}, "prediction": 1, "timestamp": replayed},
            {"id": "b", "features": {}, "prediction": 1},
        ],
    )
    exp.clock.advance(60.0)
    exp.labels("m", [{"id": "a", "label": 1}, {"id": "b", "label": 1, "timestamp": T0 - 1}])
    m = exp.metrics()
    assert sample(m, "model_predictions_total", **key) == 2
    assert sample(m, "model_events_outside_windows_total", **key, kind="prediction") == 1
    assert sample(m, "model_events_outside_windows_total", **key, kind="label") == 0
    assert sample(m, "model_label_delays_excluded_total", **key, reason="beyond_ttl") == 1
    assert sample(m, "model_label_delays_excluded_total", **key, reason="negative") == 1
    assert sample(m, "model_label_delay_seconds_count", **key) == 0
    assert sample(m, "model_labels_total", **key) == 2
