"""Bad input: a 4xx naming the field and value, counted by reason, and no state change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Exporter, parse_metrics

LIMITS = {
    "max_models": 2,
    "max_versions_per_model": 2,
    "max_features": 4,
    "max_classes": 3,
    "max_batch_events": 5,
    "max_body_bytes": 4096,
    "max_reference_bytes": 4096,
    "max_name_length": 16,
    "max_value_length": 24,
}


def ev(i: int | str, **kw: Any) -> dict[str, Any]:
    return {"id": f"x{i}", "features": {"a": 1.0}, "prediction": 0, **kw}


def body(model: str = "m", events: list[dict[str, Any]] | None = None, **kw: Any) -> bytes:
    kw.setdefault("model_version", "v1")
    return json.dumps({"model": model, "events": events or [ev(1)], **kw}).encode()


J = {"Content-Type": "application/json"}

# (id, method, path, raw body, headers, status, reason, fragments the message must contain,
#  events counted: 1 when the rejection names one event, else every event of the request)
CASES: list[tuple[str, str, str, bytes, dict[str, str], int, str, list[str], int]] = [
    (
        "malformed",
        "POST",
        "/v1/predictions",
        b'{"model": "m", "events": [',
        J,
        400,
        "malformed_json",
        ["not valid JSON", "truncated"],
        1,
    ),
    (
        "bad_token",
        "POST",
        "/v1/predictions",
        b'{"model": "m", "events": [}',
        J,
        400,
        "malformed_json",
        ["not valid JSON", "line 1, column 27"],
        1,
    ),
    ("empty_body", "POST", "/v1/predictions", b"", J, 400, "malformed_json", ["empty"], 1),
    (
        "not_utf8",
        "POST",
        "/v1/predictions",
        b'{"model": "\xff"}',
        J,
        400,
        "malformed_json",
        ["UTF-8"],
        1,
    ),
    (
        "nan_literal",
        "POST",
        "/v1/predictions",
        b'{"model":"m","events":[{"id":"a","features":{"a":NaN},"prediction":0}]}',
        J,
        422,
        "non_finite",
        ["NaN"],
        1,
    ),
    (
        "infinity_literal",
        "POST",
        "/v1/predictions",
        b'{"model":"m","events":[{"id":"a","features":{"a":-Infinity},"prediction":0}]}',
        J,
        422,
        "non_finite",
        ["Infinity"],
        1,
    ),
    (
        "overflow_number",
        "POST",
        "/v1/predictions",
        b'{"model":"m","events":[{"id":"a","features":{"a":1e400},"prediction":0}]}',
        J,
        422,
        "non_finite",
        ["events[0].features.a", "inf"],
        1,
    ),
    (
        "top_level_array",
        "POST",
        "/v1/predictions",
        b"[1, 2]",
        J,
        422,
        "invalid_field",
        ["body", "object"],
        1,
    ),
    (
        "features_not_object",
        "POST",
        "/v1/predictions",
        body(events=[{"id": "a", "features": [1, 2], "prediction": 0}]),
        J,
        422,
        "invalid_field",
        ["events[0].features", "[1, 2]"],
        1,
    ),
    (
        "nested_feature_value",
        "POST",
        "/v1/predictions",
        body(events=[{"id": "a", "features": {"a": 1.0, "b": {"c": 1}}, "prediction": 0}]),
        J,
        422,
        "invalid_field",
        ["events[0].features.b", "{'c': 1}"],
        1,
    ),
    (
        "missing_prediction",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), {"id": "a", "features": {}}]),
        J,
        422,
        "invalid_field",
        ["events[1]", "prediction"],
        1,
    ),
    (
        "missing_model",
        "POST",
        "/v1/predictions",
        b'{"events": []}',
        J,
        422,
        "invalid_field",
        ["model"],
        1,
    ),
    (
        "unknown_field",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, lable=1)]),
        J,
        422,
        "invalid_field",
        ["events[0]", "lable"],
        1,
    ),
    (
        "prediction_is_list",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, prediction=[1])]),
        J,
        422,
        "invalid_field",
        ["events[0].prediction", "[1]"],
        1,
    ),
    (
        "id_too_long",
        "POST",
        "/v1/predictions",
        body(events=[{**ev(1), "id": "i" * 30}]),
        J,
        422,
        "string_too_long",
        ["events[0].id", "24"],
        1,
    ),
    (
        "float_id",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), {**ev(2), "id": 2.0}]),
        J,
        422,
        "invalid_field",
        ["a string or an integer", "got 2.0", "write 2"],
        1,
    ),
    (
        "bool_id",
        "POST",
        "/v1/predictions",
        body(events=[{**ev(1), "id": True}]),
        J,
        422,
        "invalid_field",
        ["a string or an integer", "True"],
        1,
    ),
    (
        "integer_id_too_long",
        "POST",
        "/v1/predictions",
        body(events=[{**ev(1), "id": 10**24}]),
        J,
        422,
        "string_too_long",
        ["25 characters", "max_value_length (24)"],
        1,
    ),
    (
        "model_name_too_long",
        "POST",
        "/v1/predictions",
        body(model="m" * 17),
        J,
        422,
        "string_too_long",
        ["model", "16"],
        1,
    ),
    (
        "empty_model_name",
        "POST",
        "/v1/predictions",
        body(model=""),
        J,
        422,
        "invalid_field",
        ["model", "length >= 1"],
        1,
    ),
    (
        "feature_name_too_long",
        "POST",
        "/v1/predictions",
        body(events=[{"id": "a", "features": {"f" * 20: 1.0}, "prediction": 0}]),
        J,
        422,
        "string_too_long",
        ["events[0].features." + "f" * 20],
        1,
    ),
    (
        "category_too_long",
        "POST",
        "/v1/predictions",
        body(events=[{"id": "a", "features": {"c": "v" * 30}, "prediction": 0}]),
        J,
        422,
        "string_too_long",
        ["events[0].features.c"],
        1,
    ),
    (
        "body_too_large",
        "POST",
        "/v1/predictions",
        body(
            events=[{"id": "a", "features": {"a": 1.0, "pad": None}, "prediction": 0}],
        )
        + b" " * 5000,
        J,
        413,
        "body_too_large",
        ["4096"],
        1,
    ),
    (
        "batch_too_large",
        "POST",
        "/v1/predictions",
        body(events=[ev(i) for i in range(6)]),
        J,
        413,
        "batch_too_large",
        ["6", "max_batch_events"],
        6,
    ),
    (
        "empty_batch",
        "POST",
        "/v1/predictions",
        b'{"model":"m","events":[]}',
        J,
        422,
        "invalid_field",
        ["no events"],
        1,
    ),
    (
        "duplicate_id_in_batch",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), ev(2), ev(1)]),
        J,
        422,
        "duplicate_id",
        ["events[2].id", "'x1'"],
        1,
    ),
    (
        "integer_and_string_id_duplicate",
        "POST",
        "/v1/predictions",
        body(events=[{**ev(1), "id": 42}, {**ev(2), "id": "42"}]),
        J,
        422,
        "duplicate_id",
        ["'42' appears more than once", "42 and '42' are the same id"],
        1,
    ),
    (
        "too_many_models",
        "POST",
        "/v1/predictions",
        body(model="third"),
        J,
        422,
        "too_many_models",
        ["'third'", "max_models"],
        1,
    ),
    (
        "too_many_versions",
        "POST",
        "/v1/predictions",
        body(model_version="v3"),
        J,
        422,
        "too_many_versions",
        ["max_versions_per_model", "v1", "v2"],
        1,
    ),
    (
        "too_many_features",
        "POST",
        "/v1/predictions",
        body(
            events=[
                {"id": "a", "features": {"a": 1.0, "b": 2, "c": 3, "d": 4, "e": 5}, "prediction": 0}
            ]
        ),
        J,
        422,
        "too_many_features",
        ["feature 'e' would be number 5", "max_features"],
        1,
    ),
    (
        "too_many_classes",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, prediction=5), ev(2, prediction=6)]),
        J,
        422,
        "too_many_classes",
        ["4 classes", "max_classes"],
        1,
    ),
    (
        "prediction_type_mismatch",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), ev(2, prediction="cat")]),
        J,
        422,
        "task_mismatch",
        ["events[1].prediction", "'cat'", "int classes"],
        1,
    ),
    (
        "non_integer_class",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, prediction=0.5)]),
        J,
        422,
        "task_mismatch",
        ["events[0].prediction", "0.5"],
        1,
    ),
    (
        "inline_label_mismatch",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), ev(2, label=1), ev(3, label="yes")]),
        J,
        422,
        "task_mismatch",
        ["events[2].label", "'yes'"],
        1,
    ),
    (
        "regression_gets_string",
        "POST",
        "/v1/predictions",
        body(model="reg", events=[ev(1, prediction="high")]),
        J,
        422,
        "task_mismatch",
        ["regression", "'high'"],
        1,
    ),
    (
        "naive_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, timestamp="2027-01-01T00:00:00")]),
        J,
        422,
        "invalid_timestamp",
        ["events[0].timestamp", "UTC offset"],
        1,
    ),
    (
        "future_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, timestamp="2030-01-01T00:00:00Z")]),
        J,
        422,
        "invalid_timestamp",
        ["events[0].timestamp", "future"],
        1,
    ),
    (
        "millisecond_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, timestamp=1_800_000_000_000)]),
        J,
        422,
        "invalid_timestamp",
        ["milliseconds"],
        1,
    ),
    (
        "negative_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, timestamp=-5)]),
        J,
        422,
        "invalid_timestamp",
        ["events[0].timestamp", "-5"],
        1,
    ),
    (
        "garbage_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1, timestamp="yesterday")]),
        J,
        422,
        "invalid_timestamp",
        ["events[0].timestamp", "'yesterday'", "RFC 3339"],
        1,
    ),
    (
        "ancient_timestamp",
        "POST",
        "/v1/predictions",
        body(events=[ev(1), ev(2, timestamp=5)]),
        J,
        422,
        "invalid_timestamp",
        ["events[1].timestamp", "before 2000-01-01T00:00:00Z", "duration"],
        1,
    ),
    (
        "labels_ancient_timestamp",
        "POST",
        "/v1/labels",
        b'{"model":"m","labels":[{"id":"p1","label":1,"timestamp":"1970-01-01T00:00:00Z"}]}',
        J,
        422,
        "invalid_timestamp",
        ["labels[0].timestamp", "before 2000-01-01T00:00:00Z", "placeholder"],
        1,
    ),
    (
        "wrong_content_type",
        "POST",
        "/v1/predictions",
        body(),
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        ["text/plain", "application/json"],
        1,
    ),
    (
        "form_content_type",
        "POST",
        "/v1/predictions",
        body(),
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
        ["application/json"],
        1,
    ),
    # labels
    (
        "labels_unknown_model",
        "POST",
        "/v1/labels",
        b'{"model":"nope","labels":[{"id":"x1","label":1}]}',
        J,
        404,
        "unknown_model",
        ["'nope'"],
        1,
    ),
    (
        "labels_type_mismatch",
        "POST",
        "/v1/labels",
        b'{"model":"m","labels":[{"id":"p1","label":1},{"id":"p2","label":"cat"}]}',
        J,
        422,
        "task_mismatch",
        ["labels[1].label", "'cat'"],
        1,
    ),
    (
        "labels_duplicate_id",
        "POST",
        "/v1/labels",
        b'{"model":"m","labels":[{"id":"p1","label":1},{"id":"p1","label":0}]}',
        J,
        422,
        "duplicate_id",
        ["labels[1].id", "'p1'"],
        1,
    ),
    (
        "labels_too_many_classes",
        "POST",
        "/v1/labels",
        b'{"model":"m","labels":[{"id":"p1","label":7},{"id":"p2","label":8}]}',
        J,
        422,
        "too_many_classes",
        ["max_classes"],
        1,
    ),
    (
        "labels_missing_label",
        "POST",
        "/v1/labels",
        b'{"model":"m","labels":[{"id":"p1"}]}',
        J,
        422,
        "invalid_field",
        ["labels[0]", "label"],
        1,
    ),
    (
        "labels_too_many",
        "POST",
        "/v1/labels",
        json.dumps(
            {"model": "m", "labels": [{"id": f"p{i}", "label": 0} for i in range(6)]}
        ).encode(),
        J,
        413,
        "batch_too_large",
        ["max_batch_events"],
        6,
    ),
    # reference
    (
        "reference_empty",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {}}',
        J,
        422,
        "invalid_reference",
        ["no features"],
        1,
    ),
    (
        "reference_all_null",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [null]}}',
        J,
        422,
        "invalid_reference",
        ["'a'", "no values"],
        1,
    ),
    (
        "reference_mixed_column",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0, "x"]}}',
        J,
        422,
        "invalid_reference",
        ["'a'", "mixes"],
        1,
    ),
    (
        "reference_kind_conflict",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": ["x", "y"]}}',
        J,
        422,
        "invalid_reference",
        ["'a'", "categorical in the reference", "numeric"],
        1,
    ),
    (
        "reference_nan_literal",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [NaN]}}',
        J,
        422,
        "non_finite",
        ["NaN"],
        1,
    ),
    (
        "reference_csv_ragged",
        "PUT",
        "/v1/models/m/reference",
        b"a,b\n1,2\n3\n",
        {"Content-Type": "text/csv"},
        400,
        "malformed_csv",
        ["line 3", "1 cells"],
        1,
    ),
    (
        "reference_csv_inf",
        "PUT",
        "/v1/models/m/reference",
        b"a\n1\ninf\n",
        {"Content-Type": "text/csv"},
        400,
        "malformed_csv",
        ["line 3", "non-finite"],
        1,
    ),
    (
        "reference_csv_empty",
        "PUT",
        "/v1/models/m/reference",
        b"",
        {"Content-Type": "text/csv"},
        400,
        "malformed_csv",
        ["empty"],
        1,
    ),
    (
        "reference_csv_duplicate_header",
        "PUT",
        "/v1/models/m/reference",
        b"a,a\n1,2\n",
        {"Content-Type": "text/csv"},
        400,
        "malformed_csv",
        ["'a' twice"],
        1,
    ),
    (
        "reference_bad_media",
        "PUT",
        "/v1/models/m/reference",
        b"a",
        {"Content-Type": "image/png"},
        415,
        "unsupported_media_type",
        ["image/png"],
        1,
    ),
    (
        "reference_too_large",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [' + b"1.0," * 2000 + b"1.0]}}",
        J,
        413,
        "body_too_large",
        ["4096"],
        1,
    ),
    (
        "reference_model_name_too_long",
        "PUT",
        "/v1/models/" + "m" * 17 + "/reference",
        b'{"features": {"a": [1.0]}}',
        J,
        422,
        "string_too_long",
        ["model", "16"],
        1,
    ),
    (
        # Found by an attacker: the same column named twice was popped twice (KeyError, a 500).
        "reference_same_column_twice",
        "PUT",
        "/v1/models/0/reference?model_version=0&prediction_column=0&label_column=0",
        b"0",
        {"Content-Type": "text/csv"},
        422,
        "invalid_reference",
        ["prediction_column and label_column both name '0'"],
        1,
    ),
    (
        "reference_holds_nothing",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {}, "predictions": null, "labels": null}',
        J,
        422,
        "invalid_reference",
        ["no features, no predictions and no labels"],
        1,
    ),
    (
        "reference_csv_only_prediction_and_label_columns_empty",
        "PUT",
        "/v1/models/m/reference?prediction_column=p&label_column=y",
        b"p,y\n",
        {"Content-Type": "text/csv"},
        422,
        "invalid_reference",
        ["predictions has no values"],
        1,
    ),
    (
        "reference_column_not_in_csv",
        "PUT",
        "/v1/models/m/reference?label_column=truth",
        b"a,p\n1,0\n",
        {"Content-Type": "text/csv"},
        422,
        "invalid_reference",
        ["'truth' is not a column", "a, p"],
        1,
    ),
    (
        "reference_values_near_float_max",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1e308, -1e308, 5.0]}}',
        J,
        422,
        "invalid_reference",
        ["'a'", "1e+308", "overflow"],
        1,
    ),
    (
        "reference_predictions_near_float_max",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0, 2.0]}, "predictions": [1.7e308, 0.5]}',
        J,
        422,
        "invalid_reference",
        ["predictions", "1.7e+308"],
        1,
    ),
    (
        "reference_version_too_many",
        "PUT",
        "/v1/models/m/reference?model_version=v9",
        b'{"features": {"a": [1.0]}}',
        J,
        422,
        "too_many_versions",
        ["max_versions_per_model"],
        1,
    ),
]

# A regression's values whose error (or its square) would overflow: refused before the join,
# which once answered 500 when the error reached the concept-drift detector as infinity.
CASES += [
    (
        "regression_prediction_out_of_range",
        "POST",
        "/v1/predictions",
        b'{"model":"reg","events":[{"id":"big","features":{"a":1.0},"prediction":1.7e308,'
        b'"label":-1.7e308}]}',
        J,
        422,
        "out_of_range",
        ["events[0].prediction", "beyond +-1e+150"],
        1,
    ),
    (
        "regression_label_out_of_range",
        "POST",
        "/v1/labels",
        b'{"model":"reg","labels":[{"id":"x0","label":-2e150}]}',
        J,
        422,
        "out_of_range",
        ["labels[0].label", "beyond +-1e+150"],
        1,
    ),
]


def scored(model: str = "m", **kw: Any) -> bytes:
    """A one-event prediction batch whose event carries ``kw`` (a score, probabilities)."""
    return body(model, [ev(1, **kw)])


# Scores and probabilities (exporter/probabilities.py): each refusal names its field.
CASES += [
    (
        "score_above_one",
        "POST",
        "/v1/predictions",
        scored(score=1.5),
        J,
        422,
        "invalid_score",
        ["events[0].score", "within 0..1"],
        1,
    ),
    (
        "score_negative",
        "POST",
        "/v1/predictions",
        scored(score=-0.25),
        J,
        422,
        "invalid_score",
        ["within 0..1"],
        1,
    ),
    (
        "score_not_a_number",
        "POST",
        "/v1/predictions",
        scored(score="high"),
        J,
        422,
        "invalid_field",
        ["events[0].score"],
        1,
    ),
    (
        "score_on_regression",
        "POST",
        "/v1/predictions",
        scored("reg", prediction=1.5, score=0.5),
        J,
        422,
        "invalid_score",
        ["regression"],
        1,
    ),
    (
        "score_and_probabilities",
        "POST",
        "/v1/predictions",
        scored(score=0.5, probabilities={"0": 0.5, "1": 0.5}),
        J,
        422,
        "invalid_score",
        ["not both"],
        1,
    ),
    (
        "probabilities_off_one",
        "POST",
        "/v1/predictions",
        scored(probabilities={"0": 0.5, "1": 0.3}),
        J,
        422,
        "invalid_score",
        ["sum to 0.8", "quality.probability_tolerance"],
        1,
    ),
    (
        "probability_above_one",
        "POST",
        "/v1/predictions",
        scored(probabilities={"0": -0.5, "1": 1.5}),
        J,
        422,
        "invalid_score",
        ["within 0..1"],
        1,
    ),
    (
        "probabilities_unknown_class",
        "POST",
        "/v1/predictions",
        scored(probabilities={"0": 0.5, "cat": 0.5}),
        J,
        422,
        "invalid_score",
        ["cannot be a class of this model", "ints"],
        1,
    ),
    (
        "probabilities_non_canonical_class",
        "POST",
        "/v1/predictions",
        scored(probabilities={"01": 1.0}),
        J,
        422,
        "invalid_score",
        ["cannot be a class"],
        1,
    ),
    (
        "probabilities_empty",
        "POST",
        "/v1/predictions",
        scored(probabilities={}),
        J,
        422,
        "invalid_score",
        ["names no class"],
        1,
    ),
    (
        "probabilities_too_many_classes",
        "POST",
        "/v1/predictions",
        scored(probabilities={"0": 0.25, "1": 0.25, "2": 0.25, "3": 0.25}),
        J,
        422,
        "too_many_classes",
        ["limits.max_classes is 3"],
        1,
    ),
    (
        "probability_not_a_number",
        "POST",
        "/v1/predictions",
        scored(probabilities={"0": "half", "1": 0.5}),
        J,
        422,
        "invalid_field",
        ["events[0].probabilities"],
        1,
    ),
]

# A reference's scores (exporter/scored_reference.py): refused naming the row or the option.
CASES += [
    (
        "reference_score_above_one",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0, 2.0]}, "labels": [0, 1], "scores": [0.5, 1.5]}',
        J,
        422,
        "invalid_reference",
        ["a reference score is a probability within 0..1"],
        1,
    ),
    (
        "reference_probability_out_of_range",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0]}, "labels": [0], "probabilities": [{"0": -0.5, "1": 1.5}]}',
        J,
        422,
        "invalid_reference",
        ["within 0..1"],
        1,
    ),
    (
        "reference_scores_without_labels",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0, 2.0]}, "scores": [0.5, 0.4]}',
        J,
        422,
        "invalid_reference",
        ["need the reference's labels"],
        1,
    ),
    (
        "reference_scores_not_one_per_row",
        "PUT",
        "/v1/models/m/reference",
        b'{"features": {"a": [1.0, 2.0]}, "labels": [0, 1], "scores": [0.5]}',
        J,
        422,
        "invalid_reference",
        ["must have one value per row"],
        1,
    ),
    (
        "reference_score_column_not_in_csv",
        "PUT",
        "/v1/models/m/reference?label_column=y&score_column=p",
        b"a,y\n1.0,0\n2.0,1\n",
        {"Content-Type": "text/csv"},
        422,
        "invalid_reference",
        ["'p' is not a column of the reference"],
        1,
    ),
    (
        "reference_probability_columns_malformed",
        "PUT",
        "/v1/models/m/reference?label_column=y&probability_columns=p",
        b"a,y,p\n1.0,0,0.3\n",
        {"Content-Type": "text/csv"},
        422,
        "invalid_reference",
        ["CLASS=COLUMN pairs or PREFIX*"],
        1,
    ),
]

DEEP = 1_500  # levels of nesting: past Python's recursion limit, inside max_body_bytes

# Nested too deeply, on every endpoint that takes JSON (the comparison's body is decoded
# untyped, which recursed into a 500 once): each answers 400 malformed_json.
CASES += [
    (
        f"nested_too_deeply_{name}",
        method,
        path,
        prefix + b"[" * DEEP + b"]" * DEEP + suffix,
        J,
        400,
        "malformed_json",
        ["nested too deeply"],
        1,
    )
    for name, method, path, prefix, suffix in [
        ("comparison", "PUT", "/v1/models/m/comparison", b"", b""),
        (
            "predictions",
            "POST",
            "/v1/predictions",
            b'{"model": "m", "events": [{"id": "a", "features": {"a": ',
            b'}, "prediction": 0}]}',
        ),
        (
            "labels",
            "POST",
            "/v1/labels",
            b'{"model": "m", "labels": [{"id": "a", "label": ',
            b"}]}",
        ),
        ("reference", "PUT", "/v1/models/m/reference", b'{"features": {"a": ', b"}}"),
    ]
]


#: The machine-readable ``field`` of each case's rejection (None: the request as a whole).
FIELDS: dict[str, str | None] = {
    "malformed": None,
    "nested_too_deeply_comparison": None,
    "nested_too_deeply_predictions": None,
    "nested_too_deeply_labels": None,
    "nested_too_deeply_reference": None,
    "bad_token": None,
    "empty_body": None,
    "not_utf8": None,
    "nan_literal": "events[0].features.a",
    "infinity_literal": "events[0].features.a",
    "overflow_number": "events[0].features.a",
    "top_level_array": None,
    "features_not_object": "events[0].features",
    "nested_feature_value": "events[0].features.b",
    "missing_prediction": "events[1].prediction",
    "missing_model": "model",
    "unknown_field": "events[0].lable",
    "prediction_is_list": "events[0].prediction",
    "id_too_long": "events[0].id",
    "float_id": "events[1].id",
    "bool_id": "events[0].id",
    "integer_id_too_long": "events[0].id",
    "model_name_too_long": "model",
    "empty_model_name": "model",
    "feature_name_too_long": "events[0].features." + "f" * 20,
    "category_too_long": "events[0].features.c",
    "body_too_large": None,
    "batch_too_large": "events",
    "empty_batch": "events",
    "duplicate_id_in_batch": "events[2].id",
    "integer_and_string_id_duplicate": "events[1].id",
    "too_many_models": "model",
    "too_many_versions": "model_version",
    "too_many_features": "events[0].features",
    "too_many_classes": "events[1].prediction",
    "prediction_type_mismatch": "events[1].prediction",
    "non_integer_class": "events[0].prediction",
    "inline_label_mismatch": "events[2].label",
    "regression_gets_string": "events[0].prediction",
    "naive_timestamp": "events[0].timestamp",
    "future_timestamp": "events[0].timestamp",
    "millisecond_timestamp": "events[0].timestamp",
    "negative_timestamp": "events[0].timestamp",
    "garbage_timestamp": "events[0].timestamp",
    "ancient_timestamp": "events[1].timestamp",
    "labels_ancient_timestamp": "labels[0].timestamp",
    "wrong_content_type": None,
    "form_content_type": None,
    "labels_unknown_model": "model",
    "labels_type_mismatch": "labels[1].label",
    "labels_duplicate_id": "labels[1].id",
    "labels_too_many_classes": "labels[1].label",
    "labels_missing_label": "labels[0].label",
    "labels_too_many": "labels",
    "reference_empty": "features",
    "reference_all_null": "features.a",
    "reference_mixed_column": "features.a",
    "reference_kind_conflict": "features.a",
    "reference_nan_literal": "features.a[0]",
    "reference_csv_ragged": None,
    "reference_csv_inf": None,
    "reference_csv_empty": None,
    "reference_csv_duplicate_header": None,
    "reference_bad_media": None,
    "reference_too_large": None,
    "reference_model_name_too_long": "model",
    "reference_same_column_twice": "label_column",
    "reference_holds_nothing": "features",
    "reference_csv_only_prediction_and_label_columns_empty": "predictions",
    "reference_column_not_in_csv": "label_column",
    "reference_values_near_float_max": "features.a",
    "reference_predictions_near_float_max": "predictions",
    "reference_version_too_many": "model_version",
    "regression_prediction_out_of_range": "events[0].prediction",
    "regression_label_out_of_range": "labels[0].label",
    "score_above_one": "events[0].score",
    "score_negative": "events[0].score",
    "score_not_a_number": "events[0].score",
    "score_on_regression": "events[0].score",
    "score_and_probabilities": "events[0].score",
    "probabilities_off_one": "events[0].probabilities",
    "probability_above_one": "events[0].probabilities.0",
    "probabilities_unknown_class": "events[0].probabilities.cat",
    "probabilities_non_canonical_class": "events[0].probabilities.01",
    "probabilities_empty": "events[0].probabilities",
    "probabilities_too_many_classes": "events[0].probabilities.3",
    "probability_not_a_number": "events[0].probabilities.0",
    "reference_score_above_one": "scores[1]",
    "reference_probability_out_of_range": "probabilities[0].0",
    "reference_scores_without_labels": "scores",
    "reference_scores_not_one_per_row": "scores",
    "reference_score_column_not_in_csv": "score_column",
    "reference_probability_columns_malformed": "probability_columns",
}

#: The offending ``value`` sent back, where the rejection has one.
VALUES: dict[str, object] = {
    "nan_literal": "nan",
    "infinity_literal": "-inf",
    "overflow_number": "inf",
    "features_not_object": "[1, 2]",
    "id_too_long": "i" * 30,
    "float_id": 2.0,
    "bool_id": True,
    "integer_id_too_long": str(10**24),  # beyond 64 bits: sent back as text
    "empty_model_name": "",
    "duplicate_id_in_batch": "x1",
    "integer_and_string_id_duplicate": "42",
    "too_many_models": "third",
    "too_many_versions": "v3",
    "prediction_type_mismatch": "cat",
    "non_integer_class": 0.5,
    "inline_label_mismatch": "yes",
    "naive_timestamp": "2027-01-01T00:00:00",
    "negative_timestamp": -5.0,
    "garbage_timestamp": "yesterday",
    "ancient_timestamp": 5.0,
    "labels_ancient_timestamp": "1970-01-01T00:00:00+00:00",
    "wrong_content_type": "text/plain",
    "labels_unknown_model": "nope",
    "labels_duplicate_id": "p1",
    "reference_mixed_column": "x",
    "reference_same_column_twice": "0",
    "reference_column_not_in_csv": "truth",
    "reference_values_near_float_max": 1e308,
    "reference_predictions_near_float_max": 1.7e308,
    "score_above_one": 1.5,
    "score_negative": -0.25,
    "score_on_regression": 0.5,
    "probabilities_off_one": 0.8,
    "probability_above_one": -0.5,
    "probabilities_unknown_class": "cat",
    "probabilities_non_canonical_class": "01",
    "probabilities_too_many_classes": 3,
}


def test_every_case_states_its_field() -> None:
    assert set(FIELDS) == {c[0] for c in CASES}
    assert set(VALUES) <= set(FIELDS)


def baseline(make_exporter) -> Exporter:
    exp = make_exporter(limits=LIMITS, quality={"min_samples": 1}, drift={"min_samples": 2})
    exp.predictions(
        "m", [ev(i) | {"id": f"p{i}", "prediction": i % 2} for i in range(4)], model_version="v1"
    )
    exp.predictions("m", [ev(i) | {"id": f"q{i}"} for i in range(3)], model_version="v2")
    exp.predictions("reg", [ev(i) | {"prediction": 1.5} for i in range(3)])
    exp.labels("m", [{"id": "p0", "label": 0}, {"id": "q1", "label": 1}])
    exp.refresh_drift()
    return exp


def state_of(exp: Exporter) -> Any:
    """Everything a client can observe, minus the exporter's own counters and timings."""
    models = exp.client.get("/v1/models").json()
    statuses = {m["model"]: exp.status(m["model"]) for m in models["models"]}
    metrics = {
        k: v
        for k, v in parse_metrics(exp.metrics_text()).items()
        if k[0].startswith("model_") and not k[0].startswith("model_exporter_")
    }
    return models, statuses, metrics


def rejected(exp: Exporter) -> dict[str, float]:
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in exp.metrics().items()
        if name == "model_exporter_events_rejected_total"
    }


@pytest.mark.parametrize(
    ("case", "method", "path", "raw", "headers", "status", "reason", "fragments", "events"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_refused_counted_and_harmless(
    make_exporter, case, method, path, raw, headers, status, reason, fragments, events
) -> None:
    exp = baseline(make_exporter)
    before = state_of(exp)
    counts = rejected(exp)
    r = exp.client.request(method, path, content=raw, headers=headers)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["reason"] == reason
    for fragment in fragments:
        assert fragment in payload["detail"], (fragment, payload["detail"])
    # Machine-readable: where (absent when the whole request is at fault) and what.
    assert payload.get("field") == FIELDS[case], payload
    if payload.get("field") is not None:
        assert payload["detail"].startswith(payload["field"] + ": ")
    if case in VALUES:
        assert payload["value"] == VALUES[case], payload
    after_counts = rejected(exp)
    assert after_counts[reason] == counts[reason] + events
    assert {k: v for k, v in after_counts.items() if k != reason} == {
        k: v for k, v in counts.items() if k != reason
    }
    exp.refresh_drift()
    assert state_of(exp) == before


def test_every_reason_is_exported_from_the_start(make_exporter) -> None:
    from exporter.errors import Reason

    exp = make_exporter()
    assert set(rejected(exp)) == {r.value for r in Reason}
    assert all(v == 0 for v in rejected(exp).values())


def test_unknown_id_is_rejected_when_labels_cannot_wait(make_exporter) -> None:
    exp = make_exporter(join={"label_ttl": 0})
    exp.predictions("m", [ev(1)])
    before = state_of(exp)
    r = exp.client.post(
        "/v1/labels",
        json={"model": "m", "labels": [{"id": "x1", "label": 1}, {"id": "never", "label": 0}]},
    )
    assert r.status_code == 422
    assert r.json()["reason"] == "unknown_id"
    assert "labels[1].id" in r.json()["detail"] and "'never'" in r.json()["detail"]
    assert state_of(exp) == before


def test_invalid_query_parameter_on_status_is_a_4xx_not_a_crash(make_exporter) -> None:
    exp = make_exporter()
    assert exp.client.get("/v1/models/unknown").status_code == 404
    assert exp.client.get("/v1/models/unknown").json()["reason"] == "unknown_model"
    assert exp.client.post("/metrics").status_code == 405
