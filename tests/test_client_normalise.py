"""Call-time normalisation (exporter.client._normalise), directly and through the client."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections import UserDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from exporter.client import MonitorClient
from exporter.client import _normalise as normalise
from exporter.client._normalise import Refused
from exporter.errors import Reason


def refusal(call: Any, *args: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)
    return caught.value


class Colour(enum.IntEnum):
    RED = 3


def test_plain_features_are_kept_as_they_are_without_a_copy() -> None:
    values = {"amount": 12.5, "country": "DE", "new": True, "age": None, "n": 3}
    assert normalise.features(values) is values


@pytest.mark.parametrize("missing", [float("nan"), math.inf, -math.inf, np.float64("nan")])
def test_nan_and_infinities_in_features_become_missing(missing: Any) -> None:
    assert normalise.features({"a": 1.0, "b": missing}) == {"a": 1.0, "b": None}


def test_numpy_scalars_become_plain_python_values() -> None:
    out = normalise.features(
        {
            "f": np.float32(0.5),
            "i": np.int64(7),
            "b": np.bool_(True),
            "s": np.str_("DE"),
            np.str_("named"): 1.0,
            "zero_d": np.array(2.5),
        }
    )
    assert out == {"f": 0.5, "i": 7, "b": True, "s": "DE", "named": 1.0, "zero_d": 2.5}
    assert [type(v) for v in out.values()] == [float, int, bool, str, float, float]
    assert all(type(k) is str for k in out)


def test_int_feature_names_become_strings_and_other_names_are_refused() -> None:
    assert normalise.features({3: 1.0, np.int64(4): 2.0}) == {"3": 1.0, "4": 2.0}
    for name in (True, None, (1, 2), 1.5):
        refused = refusal(normalise.features, {name: 1.0})
        assert (refused.reason, refused.field, refused.value) == (
            Reason.INVALID_FIELD,
            "features",
            name,
        )


@pytest.mark.parametrize("value", [[1, 2], {"x": 1}, object(), np.array([1.0, 2.0]), b"x"])
def test_feature_values_that_are_not_scalars_are_refused(value: Any) -> None:
    refused = refusal(normalise.features, {"ok": 1.0, "bad": value})
    assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "features.bad")
    assert refused.value is value


def test_features_may_be_any_mapping_but_must_be_one() -> None:
    assert normalise.features(UserDict({"a": np.int64(1)})) == {"a": 1}
    assert type(normalise.features(UserDict({"a": 1}))) is dict
    for bad in ([("a", 1.0)], None, "a=1"):
        refused = refusal(normalise.features, bad)
        assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "features")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("req-1", "req-1"), (42, "42"), (np.int64(42), "42"), (np.uint8(7), "7"), (-3, "-3")],
)
def test_ids_are_strings_and_ints_become_their_decimal_string(value: Any, expected: str) -> None:
    out = normalise.identifier(value)
    assert out == expected and type(out) is str


@pytest.mark.parametrize(
    "value", [True, False, np.bool_(True), "", [1], {"a": 1}, {1}, 1.0, np.float64(2.0), None]
)
def test_ids_that_can_never_be_sent_are_refused(value: Any) -> None:
    refused = refusal(normalise.identifier, value)
    assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "id")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("cat", "cat"),
        (True, True),
        (0.25, 0.25),
        (np.int64(2), 2),
        (np.float32(0.5), 0.5),
        (np.str_("dog"), "dog"),
        (np.bool_(False), False),
        (Colour.RED, 3),
    ],
)
def test_predictions_are_classes_or_numbers(value: Any, expected: Any) -> None:
    out = normalise.outcome(value, "prediction")
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value", [float("nan"), math.inf, np.float64("-inf")])
def test_a_non_finite_prediction_is_refused_as_non_finite(value: Any) -> None:
    refused = refusal(normalise.outcome, value, "prediction")
    assert (refused.reason, refused.field) == (Reason.NON_FINITE, "prediction")


@pytest.mark.parametrize("value", [None, [1, 0], {"p": 1}, np.array([0.1, 0.9]), object()])
def test_a_prediction_that_is_not_a_class_or_a_number_is_refused(value: Any) -> None:
    refused = refusal(normalise.outcome, value, "label")
    assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "label")


def test_an_inline_nan_label_means_no_label() -> None:
    assert normalise.inline_label(float("nan")) is None
    assert normalise.inline_label(np.float64("nan")) is None
    assert normalise.inline_label(None) is None
    assert normalise.inline_label(np.int64(1)) == 1
    assert refusal(normalise.inline_label, math.inf).reason == Reason.NON_FINITE


def test_timestamps() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert normalise.moment(when) == "2026-01-02T03:04:05+00:00"
    assert normalise.moment(1.8e9) == 1.8e9
    assert normalise.moment(np.int64(1_800_000_000)) == 1_800_000_000
    assert normalise.moment("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    for bad in (float("nan"), math.inf, True, [1], None):
        refused = refusal(normalise.moment, bad)
        assert (refused.reason, refused.field) == (Reason.INVALID_TIMESTAMP, "timestamp")


def test_model_names() -> None:
    assert normalise.name("fraud", "model") == "fraud"
    assert normalise.name(np.str_("v2"), "model_version") == "v2"
    for bad in ("", None, 3):
        refused = refusal(normalise.name, bad, "model")
        assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "model")
        assert "pass model=" in refused.message
    # The exporter's own rule for names (exporter.names), applied before anything is queued.
    assert normalise.name("betrug prüfung", "model") == "betrug prüfung"
    for bad in ("team/fraud", "fraud\u200b", " fraud", ".."):
        refused = refusal(normalise.name, bad, "model_version")
        assert (refused.reason, refused.field) == (Reason.INVALID_NAME, "model_version")
        assert "not a valid name" in refused.message


def test_a_reference_is_normalised_as_features_are() -> None:
    out = normalise.reference(
        {"x": np.array([1.0, np.nan, 3.0]), np.str_("c"): ["a", None]},
        predictions=np.array([0, 1]),
        labels=None,
    )
    assert out == {"features": {"x": [1.0, None, 3.0], "c": ["a", None]}, "predictions": [0, 1]}
    refused = refusal(normalise.reference, {"x": [1.0, [2.0]]}, None, None)
    assert (refused.reason, refused.field) == (Reason.INVALID_FIELD, "features.x")


# -- through the client: refused at call time, counted by reason, never queued ---------------


@pytest.fixture
def client() -> Any:
    # Nothing listens on port 9, and nothing is sent before close(): the queue can be read.
    client = MonitorClient(
        "http://127.0.0.1:9", model="m", flush_interval=60, flush_on_exit=False, max_retries=0
    )
    yield client
    client.close(timeout=0.5)


def test_refusals_at_call_time_return_false_and_are_counted_by_reason(client: Any) -> None:
    assert client.log_prediction(True, {"x": 1.0}, 1) is False
    assert client.log_prediction(["unhashable"], {"x": 1.0}, 1) is False
    assert client.log_prediction("a", {"x": 1.0}, None) is False
    assert client.log_prediction("b", {"x": 1.0}, float("nan")) is False
    assert client.log_prediction("c", {"x": 1.0}, 1, timestamp=math.inf) is False
    assert client.log_prediction("d", {"x": 1.0}, 1, model_version=3) is False  # type: ignore[arg-type]
    assert client.log_label(None, 1) is False  # type: ignore[arg-type]
    assert client.log_labels([("e", 1), "not a pair"]) == 1  # type: ignore[list-item]
    stats = client.stats()
    assert stats.rejected_by_reason == {"invalid_field": 6, "non_finite": 1, "invalid_timestamp": 1}
    assert stats.dropped_rejected == 8 and stats.queued == 1  # ("e", 1)
    assert "could not be read: ValueError" in (stats.last_error or "")  # not a pair


def test_whatever_a_caller_passes_log_calls_do_not_raise(client: Any) -> None:
    class Exploding(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("boom")

        def __len__(self) -> int:
            return 1

    class Weird:
        def isoformat(self) -> str:
            raise RuntimeError("boom")

    assert client.log_prediction("a", Exploding(), 1) is False
    assert client.log_prediction("b", {"x": 1.0}, 1, timestamp=Weird()) is False  # type: ignore[arg-type]
    assert client.log_predictions([{"id": "c"}, 42, {"features": {}}]) == 0  # type: ignore[list-item]
    stats = client.stats()
    assert stats.dropped_rejected == 5 == sum(stats.rejected_by_reason.values())
    assert stats.rejected_by_reason["invalid_field"] == 5


def test_normalised_values_are_queued_as_the_api_defines_them(client: Any) -> None:
    assert client.log_prediction(
        np.int64(42), {"x": np.float64("nan"), "y": np.int32(2)}, np.int64(1), label=np.nan
    )
    assert client.stats().dropped_rejected == 0
    (item,) = client._queue
    assert item.body == {"id": "42", "features": {"x": None, "y": 2}, "prediction": 1}
    assert type(item.body["prediction"]) is int and type(item.body["features"]["y"]) is int


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (1, 1.0), (np.float32(0.25), 0.25), (0.5, 0.5)]
)
def test_a_score_is_a_probability(value: Any, expected: float) -> None:
    out = normalise.score(value)
    assert out == expected and type(out) is float


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan, math.inf, True, "0.5", None, [0.5]])
def test_a_score_outside_0_1_or_not_a_number_is_refused(value: Any) -> None:
    caught = refusal(normalise.score, value)
    assert caught.reason is Reason.INVALID_SCORE and caught.field == "score"


def test_probabilities_are_keyed_by_the_class_as_the_exporter_labels_it() -> None:
    assert normalise.probabilities({1: 0.25, np.int64(2): 0.75}) == {"1": 0.25, "2": 0.75}
    assert normalise.probabilities({True: 0.9, False: 0.1}) == {"true": 0.9, "false": 0.1}
    assert normalise.probabilities({"cat": np.float64(1.0), 0.0: 0}) == {"cat": 1.0, "0": 0.0}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([0.5, 0.5], "probabilities"),
        ({"a": 1.5}, "probabilities.a"),
        ({"a": math.nan}, "probabilities.a"),
        ({2.5: 1.0}, "probabilities"),
        ({None: 1.0}, "probabilities"),
    ],
)
def test_probabilities_that_can_never_be_sent_are_refused(value: Any, field: str) -> None:
    caught = refusal(normalise.probabilities, value)
    assert caught.reason is Reason.INVALID_SCORE and caught.field == field


def test_scores_are_queued_as_the_api_defines_them_and_refusals_counted(client: Any) -> None:
    assert client.log_prediction("a", {}, 1, score=np.float64(0.75))
    assert client.log_prediction("b", {}, "cat", probabilities={"cat": 0.5, "dog": np.float32(0.5)})
    assert client.log_predictions([{"id": "c", "features": {}, "prediction": 1, "score": 0.1}]) == 1
    assert client.log_prediction("d", {}, 1, score=2.0) is False
    assert client.log_prediction("e", {}, 1, probabilities=[0.2, 0.8]) is False  # type: ignore[arg-type]
    assert [item.body.get("score") for item in client._queue] == [0.75, None, 0.1]
    assert client._queue[1].body["probabilities"] == {"cat": 0.5, "dog": 0.5}
    assert client.stats().rejected_by_reason == {"invalid_score": 2}
