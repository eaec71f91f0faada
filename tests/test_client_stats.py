"""The client's counters and drop log (exporter.client._stats)."""

from __future__ import annotations

import logging

import pytest

from exporter.client._delivery import Batch
from exporter.client._normalise import Refused
from exporter.client._stats import LOGGED_PER_REASON, Tally
from exporter.errors import Reason


def batch(n: int) -> Batch:
    return Batch("prediction", "fraud", None, [b"{}"] * n)


def test_drops_are_counted_by_reason_and_sum_to_dropped_rejected() -> None:
    tally = Tally()
    tally.refused(batch(3), "string_too_long", "events[2].prediction: too long")
    tally.refused(batch(1), "string_too_long", "events[0].prediction: too long")
    tally.refused_at_call("label", Refused(Reason.NON_FINITE, "label", float("nan"), "NaN"))
    tally.failed(batch(7), "HTTP 503 (after 5 retries)")
    stats = tally.snapshot(queued=2)
    assert stats.rejected_by_reason == {"string_too_long": 4, "non_finite": 1}
    assert stats.dropped_rejected == 5 and stats.dropped_failed == 7 and stats.queued == 2
    assert stats.last_error == "7 predictions of model 'fraud': HTTP 503 (after 5 retries)"


def test_a_snapshot_is_a_copy() -> None:
    tally = Tally()
    tally.refused(batch(1), "unknown_model", "model: unknown")
    stats = tally.snapshot(0)
    stats.rejected_by_reason["unknown_model"] = 99
    tally.refused(batch(1), "unknown_model", "model: unknown")
    assert tally.snapshot(0).rejected_by_reason == {"unknown_model": 2}


def test_the_first_drops_of_each_reason_are_logged_with_the_exporters_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = Tally()
    with caplog.at_level(logging.WARNING, "exporter.client"):
        for i in range(LOGGED_PER_REASON + 3):
            tally.refused(batch(1), "string_too_long", f"events[{i}].prediction: too long")
        tally.refused(batch(2), "task_mismatch", "events[0].prediction: 'a' is a string")
        for _ in range(LOGGED_PER_REASON + 1):
            tally.queue_full()
    lines = [r.getMessage() for r in caplog.records]
    too_long = [line for line in lines if "string_too_long" in line]
    assert len(too_long) == LOGGED_PER_REASON == 5
    assert "events[4].prediction: too long" in too_long[-1]
    assert too_long[-1].endswith("(further such drops are only counted)")
    assert not too_long[0].endswith("only counted)")
    assert [line for line in lines if "task_mismatch" in line] == [
        "model-exporter client dropped 2 predictions of model 'fraud' refused by the exporter "
        "(task_mismatch): events[0].prediction: 'a' is a string"
    ]
    assert len([line for line in lines if "queue is full" in line]) == LOGGED_PER_REASON
    assert tally.snapshot(0).dropped_queue_full == LOGGED_PER_REASON + 1
