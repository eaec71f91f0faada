"""A model's schema and the encoding of a batch against it, directly (no HTTP): task inference,
class kinds and labels, the feature matrix (fast and general paths), targets, timestamps,
:class:`ModelSchema`, and :mod:`exporter.batch`, which must never change the schema."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from exporter.batch import prepare_labels, prepare_predictions
from exporter.config import LimitSettings
from exporter.encoding import encode_targets, feature_matrix, timestamps, to_epoch
from exporter.errors import Reason, RejectedInput
from exporter.schema import (
    MAX_INTEGRAL_FLOAT,
    ClassCodec,
    FeatureSchema,
    ModelSchema,
    category_label,
    class_kind_of,
    infer_task,
)

NOW = 1_800_000_000.0
SKEW = 300.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Event:
    id: str
    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = 0
    timestamp: Any = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass
class Label:
    id: str
    label: Any
    timestamp: Any = None


def state(schema: ModelSchema) -> Any:
    """Everything a ModelSchema holds, as a deep copy to compare before and after."""
    f = schema.features
    return copy.deepcopy(
        (
            schema.task,
            schema.task_declared,
            schema.positive_value,
            schema.codec.kind,
            schema.codec.values,
            schema.codec.index,
            f.names,
            f.index,
            f.kinds,
            f.codes,
            f.labels,
            f.declared_categorical,
        )
    )


def fstate(schema: FeatureSchema) -> Any:
    return copy.deepcopy((schema.names, schema.index, schema.kinds, schema.codes, schema.labels))


# -- tasks, class kinds, labels -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        ([True, False, True], "binary"),
        ([0, 1, 1], "binary"),
        ([1, None, 0], "binary"),
        ([1, 1], "binary"),
        ([0, 2], "multiclass"),
        ([-1, 1], "multiclass"),
        (["a", "b"], "multiclass"),
        (["0", "1"], "multiclass"),
        ([0.5, 1], "regression"),
        ([1.0, 2.0], "regression"),
        ([3.25], "regression"),
    ],
)
def test_infer_task(values: list[Any], task: str) -> None:
    assert infer_task(values) == task


@pytest.mark.parametrize("values", [[1, "a"], [True, 1], [1.5, "a"], [0.5, True], ["a", False]])
def test_infer_task_refuses_mixed_types(values: list[Any]) -> None:
    with pytest.raises(RejectedInput) as info:
        infer_task(values)
    assert info.value.reason == Reason.TASK_MISMATCH
    assert info.value.field is None


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, "bool"),
        (False, "bool"),
        (3, "int"),
        (-(2**70), "int"),
        ("x", "string"),
        ("", "string"),
        (3.0, "int"),
        (-0.0, "int"),
        (MAX_INTEGRAL_FLOAT, "int"),
        (-MAX_INTEGRAL_FLOAT, "int"),
        (MAX_INTEGRAL_FLOAT * 2, None),
        (np.nextafter(MAX_INTEGRAL_FLOAT, math.inf), None),
        (1e308, None),
        (2.5, None),
        (math.nan, None),
        (math.inf, None),
        (None, None),
    ],
)
def test_class_kind_of(value: Any, kind: str | None) -> None:
    assert class_kind_of(value) == kind


def test_floats_beyond_2_to_the_53_are_numbers_not_classes() -> None:
    assert MAX_INTEGRAL_FLOAT == 2.0**53  # the last float below which every integer is exact
    beyond = 2.0**53 + 2
    assert class_kind_of(beyond) is None
    assert category_label(beyond) == "9007199254740994.0"  # spelt as a float, not as an int
    with pytest.raises(RejectedInput) as info:
        encode([1, beyond], task="multiclass", kind="int")
    assert info.value.field == "events[1].prediction"


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (3.0, "3"),
        (-2.0, "-2"),
        (-0.0, "0"),
        (2.5, "2.5"),
        ("a", "a"),
        ("True", "True"),
        (2.0**53, str(2**53)),
        (2.0**54, repr(2.0**54)),
        (1e308, "1e+308"),
    ],
)
def test_category_label(value: Any, label: str) -> None:
    assert category_label(value) == label


def test_class_codec_indexes_in_order_of_first_appearance() -> None:
    codec = ClassCodec("string")
    assert [codec.add(v) for v in ["b", "a", "b", "c", "a"]] == [0, 1, 0, 2, 1]
    assert codec.values == ["b", "a", "c"] and codec.index == {"b": 0, "a": 1, "c": 2}
    assert len(codec) == 3 and codec.label(2) == "c"
    bools = ClassCodec("bool")
    bools.add(False)
    assert bools.label(0) == "false"


# -- feature matrix -----------------------------------------------------------------------------


def matrix(events: list[dict[str, Any]], schema: FeatureSchema | None = None, **kw: Any) -> Any:
    schema = schema if schema is not None else FeatureSchema()
    kw.setdefault("max_features", 100)
    before = fstate(schema)
    batch = feature_matrix(events, schema, model="m", **kw)
    assert fstate(schema) == before  # the schema itself is never modified
    return batch


def test_uniform_numeric_events_take_the_fast_path() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, (50, 3))
    events = [{"a": r[0], "b": r[1], "c": r[2]} for r in values.tolist()]
    batch = matrix(events)
    np.testing.assert_array_equal(batch.matrix, values)
    assert batch.new_names == ["a", "b", "c"]
    assert batch.learnt == {0: "numeric", 1: "numeric", 2: "numeric"}
    assert batch.mismatches == {} and batch.new_categories == {} and batch.pooled == {}


def test_fast_path_nulls_are_nan_and_an_all_null_column_learns_nothing() -> None:
    events = [{"a": 1.0, "b": None}, {"a": None, "b": None}, {"a": 3.0, "b": None}]
    batch = matrix(events)
    np.testing.assert_array_equal(batch.matrix, [[1.0, np.nan], [np.nan, np.nan], [3.0, np.nan]])
    assert batch.learnt == {0: "numeric"}


def test_fast_and_general_paths_agree() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (40, 3))
    values[rng.random(values.shape) < 0.2] = np.nan
    names = ("x", "y", "z")

    def as_dict(row: list[float], order: tuple[str, ...] = names) -> dict[str, Any]:
        d = {n: (None if math.isnan(v) else v) for n, v in zip(names, row, strict=True)}
        return {n: d[n] for n in order}

    uniform = [as_dict(r) for r in values.tolist()]
    reordered = [*uniform[:-1], as_dict(values[-1].tolist(), ("z", "x", "y"))]  # general path
    ints = [{k: (None if v is None else v) for k, v in e.items()} for e in uniform]
    ints[0] = {"x": 1, "y": None, "z": -2}  # ints: general path too
    fast, general = matrix(uniform), matrix(reordered)
    np.testing.assert_array_equal(fast.matrix, general.matrix)
    np.testing.assert_array_equal(fast.matrix, values)
    assert fast.learnt == general.learnt and fast.new_names == general.new_names
    with_ints = matrix(ints)
    np.testing.assert_array_equal(with_ints.matrix[0], [1.0, np.nan, -2.0])
    np.testing.assert_array_equal(with_ints.matrix[1:], values[1:])


def test_columns_follow_the_schema_order_and_missing_keys_are_nan() -> None:
    schema = FeatureSchema()
    schema.commit(matrix([{"b": 1.0, "a": 2.0}], schema))
    assert schema.names == ["b", "a"] and schema.kinds == ["numeric", "numeric"]
    batch = matrix([{"a": 5.0, "c": 6.0}, {"a": 7.0, "c": 8.0}], schema)  # uniform, fast
    assert batch.new_names == ["c"]
    np.testing.assert_array_equal(batch.matrix, [[np.nan, 5.0, 6.0], [np.nan, 7.0, 8.0]])
    ragged = matrix([{"c": 1.0}, {"b": "x", "d": 2}, {}], schema)
    assert ragged.new_names == ["c", "d"]
    np.testing.assert_array_equal(
        ragged.matrix,
        [[np.nan, np.nan, 1.0, np.nan], [np.nan, np.nan, np.nan, 2.0], [np.nan] * 4],
    )
    assert ragged.mismatches == {0: 1}  # "x" in the numeric column b


def test_kinds_are_learnt_by_majority_and_mismatches_stored_as_nan() -> None:
    events = [
        {"n": 1.0, "c": "a", "t": 1.0},
        {"n": "oops", "c": "b", "t": "x"},
        {"n": 3.0, "c": 7.0, "t": None},
        {"n": 4.0, "c": "a", "t": None},
    ]
    batch = matrix(events)
    assert batch.learnt == {0: "numeric", 1: "categorical", 2: "numeric"}  # a tie is numeric
    assert batch.mismatches == {0: 1, 1: 1, 2: 1}
    np.testing.assert_array_equal(
        batch.matrix,
        [[1.0, 0.0, 1.0], [np.nan, 1.0, np.nan], [3.0, np.nan, np.nan], [4.0, 0.0, np.nan]],
    )
    assert batch.new_categories == {1: {"a": 0, "b": 1}}


def test_a_known_kind_is_kept_and_contradicting_values_counted() -> None:
    schema = FeatureSchema()
    schema.commit(matrix([{"n": 1.0, "c": "a"}], schema))
    batch = matrix([{"n": "s", "c": 2.0}, {"n": "t", "c": True}], schema)
    assert batch.learnt == {}
    assert batch.mismatches == {0: 2, 1: 1}
    np.testing.assert_array_equal(batch.matrix, [[np.nan, np.nan], [np.nan, 1.0]])
    assert batch.new_categories == {1: {"true": 1}}


def test_categories_are_coded_in_order_of_appearance_and_pooled_beyond_the_limit() -> None:
    schema = FeatureSchema()
    first = matrix([{"c": v} for v in ["b", "a", "b", True]], schema, max_categories=4)
    np.testing.assert_array_equal(first.matrix[:, 0], [0.0, 1.0, 0.0, 2.0])
    assert first.new_categories == {0: {"b": 0, "a": 1, "true": 2}}
    schema.commit(first)
    assert schema.codes == [{"b": 0, "a": 1, "true": 2}]
    assert schema.labels == [["b", "a", "true"]]
    second = matrix([{"c": v} for v in ["x", "a", "y", "z", "x"]], schema, max_categories=4)
    np.testing.assert_array_equal(second.matrix[:, 0], [3.0, 1.0, -1.0, -1.0, 3.0])
    assert second.new_categories == {0: {"x": 3}}
    assert second.pooled == {0: 2}


def test_declared_categorical_numbers_are_categories() -> None:
    schema = FeatureSchema(declared_categorical=frozenset({"zip"}))
    events = [{"zip": 10115.0, "x": 1.0}, {"zip": 80331.0, "x": 2.0}, {"zip": 10115, "x": 3.0}]
    batch = matrix(events, schema)
    np.testing.assert_array_equal(batch.matrix, [[0.0, 1.0], [1.0, 2.0], [0.0, 3.0]])
    assert batch.new_categories == {0: {"10115": 0, "80331": 1}}
    assert batch.mismatches == {} and batch.learnt == {1: "numeric"}
    uniform = matrix(events[:2], schema)  # uniform floats, but a categorical column
    np.testing.assert_array_equal(uniform.matrix[:, 0], [0.0, 1.0])
    schema.commit(batch)
    assert schema.kinds == ["categorical", "numeric"]


def test_too_many_features_are_refused() -> None:
    schema = FeatureSchema()
    schema.commit(matrix([{"a": 1.0, "b": 2.0}], schema))
    assert matrix([{"c": 1.0}], schema, max_features=3).new_names == ["c"]
    with pytest.raises(RejectedInput) as info:
        matrix([{"c": 1.0}, {"d": 1.0, "a": 2.0}], schema, max_features=3)
    assert info.value.reason == Reason.TOO_MANY_FEATURES
    assert "'d' would be number 4" in info.value.message and "'c', 'd'" in info.value.message
    # The event that goes over the limit is named, so a client can drop it alone.
    assert (info.value.field, info.value.value) == ("events[1].features", "d")


def test_an_empty_batch_has_an_empty_matrix() -> None:
    batch = matrix([])
    assert batch.matrix.shape == (0, 0) and batch.new_names == []


# -- targets ------------------------------------------------------------------------------------


def encode(values: list[Any], codec: ClassCodec | None = None, **kw: Any) -> Any:
    codec = codec if codec is not None else ClassCodec()
    kw.setdefault("new_classes", {})
    kw.setdefault("field_of", "events[{}].prediction".format)
    before = (list(codec.values), dict(codec.index), codec.kind)
    out = encode_targets(values, codec=codec, model="m", **kw)
    assert (codec.values, codec.index, codec.kind) == before  # never modified
    return out


def test_regression_targets_are_floats() -> None:
    values = [1, 2.5, -3, 1e150, -1e150]
    out = encode(values, task="regression", kind=None)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.array(values, dtype=np.float64))


@pytest.mark.parametrize("big", [1.0000001e150, -1e300, 10**200])
def test_regression_refuses_values_whose_squared_error_would_overflow(big: Any) -> None:
    with pytest.raises(RejectedInput) as info:
        encode([1.0, big], task="regression", kind=None)
    assert info.value.reason == Reason.OUT_OF_RANGE
    assert info.value.field == "events[1].prediction"
    assert info.value.value == big


@pytest.mark.parametrize("bad", [True, "1.5", None])
def test_regression_refuses_non_numbers_at_their_field(bad: Any) -> None:
    with pytest.raises(RejectedInput) as info:
        encode([1.0, 2.0, bad], task="regression", kind=None)
    assert info.value.reason == Reason.TASK_MISMATCH
    assert info.value.field == "events[2].prediction"
    assert info.value.value == bad


def test_regression_refuses_ints_beyond_float_range() -> None:
    with pytest.raises(RejectedInput) as info:
        encode([1.5, 10**400], task="regression", kind=None)
    assert info.value.field == "events[1].prediction"


def test_class_targets_are_indices_and_new_classes_are_recorded() -> None:
    codec = ClassCodec("int")
    for v in (0, 1):
        codec.add(v)
    new: dict[Any, int] = {}
    out = encode([1, 0, 5, 2.0, 5, 1], codec, task="multiclass", kind="int", new_classes=new)
    assert out.tolist() == [1, 0, 2, 3, 2, 1]
    assert new == {5: 2, 2: 3}
    assert all(type(k) is int for k in new)  # 2.0 is class 2
    more = encode([2, 7], codec, task="multiclass", kind="int", new_classes=new)  # shared
    assert more.tolist() == [3, 4] and new == {5: 2, 2: 3, 7: 4}
    known = encode([1, 1, 0], codec, task="multiclass", kind="int")  # fast path: all known
    assert known.dtype == np.int64 and known.tolist() == [1, 1, 0]


@pytest.mark.parametrize(
    ("kind", "values", "index"),
    [
        ("int", [0, 1, "a"], 2),
        ("int", [0, True], 1),
        ("int", [1.5, 0], 0),
        ("int", [0, 2.0**60], 1),
        ("string", ["a", 1], 1),
        ("bool", [True, 1], 1),
        (None, [0, math.nan], 1),
    ],
)
def test_class_targets_of_the_wrong_kind_are_refused(
    kind: str | None, values: list[Any], index: int
) -> None:
    with pytest.raises(RejectedInput) as info:
        encode(values, task="binary", kind=kind, field_of=lambda i: f"labels[{i * 10}].label")
    assert info.value.reason == Reason.TASK_MISMATCH
    assert info.value.field == f"labels[{index * 10}].label"
    bad = values[index]
    assert info.value.value is bad or (math.isnan(bad) and math.isnan(info.value.value))


# -- timestamps ---------------------------------------------------------------------------------


def test_absent_timestamps_are_now() -> None:
    np.testing.assert_array_equal(timestamps([None] * 4, NOW, SKEW, "t[{}]".format), [NOW] * 4)
    assert timestamps([], NOW, SKEW, "t[{}]".format).shape == (0,)


def test_timestamps_of_numbers_and_rfc3339_datetimes() -> None:
    plus2 = timezone(timedelta(hours=2))
    when = datetime(2026, 1, 2, 3, 4, 5, 250_000, tzinfo=plus2)
    values = [None, 1_700_000_000.5, when, NOW + SKEW, 946_684_800.0]  # the last: 2000-01-01
    out = timestamps(values, NOW, SKEW, "t[{}]".format)
    expected = [NOW, 1_700_000_000.5, (when - EPOCH).total_seconds(), NOW + SKEW, 946_684_800.0]
    np.testing.assert_array_equal(out, expected)
    assert to_epoch(when, NOW, SKEW, "t") == pytest.approx(
        datetime(2026, 1, 2, 1, 4, 5, 250_000, tzinfo=UTC).timestamp(), abs=0
    )


@pytest.mark.parametrize(
    ("value", "sent", "needle"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05", "no UTC offset"),
        (-1.0, -1.0, "before 2000-01-01T00:00:00Z"),
        (datetime(1960, 1, 1, tzinfo=UTC), "1960-01-01T00:00:00+00:00", "before 2000-01-01"),
        (math.inf, math.inf, "not a valid time"),
        (NOW + SKEW + 1, NOW + SKEW + 1, "301 s in the future"),
    ],
)
def test_bad_timestamps_are_refused_at_their_field(value: Any, sent: Any, needle: str) -> None:
    with pytest.raises(RejectedInput) as info:
        timestamps([None, 1_700_000_000.0, value], NOW, SKEW, "labels[{}].timestamp".format)
    exc = info.value
    assert exc.reason == Reason.INVALID_TIMESTAMP
    assert exc.field == "labels[2].timestamp"
    assert exc.value == sent
    assert needle in exc.message
    assert "milliseconds" not in exc.message


def test_millisecond_timestamps_get_a_hint() -> None:
    with pytest.raises(RejectedInput) as info:
        to_epoch(NOW * 1000, NOW, SKEW, "events[0].timestamp")
    assert info.value.field == "events[0].timestamp"
    assert "epoch seconds are expected, not milliseconds" in info.value.message
    future = datetime.fromtimestamp(NOW + 3600, tz=UTC)
    with pytest.raises(RejectedInput) as info:
        to_epoch(future, NOW, SKEW, "t")
    assert "3600 s in the future" in info.value.message
    assert info.value.value == future.isoformat()


# -- ModelSchema --------------------------------------------------------------------------------


def test_positive_class_defaults_to_1_for_int_and_true_for_bool_classes() -> None:
    ints = ModelSchema(task="binary")
    assert ints.positive_label == "1" and ints.positive_index is None  # not seen yet
    ints.commit("binary", "int", {1: 0, 0: 1})
    assert ints.positive_index == 0 and ints.class_labels() == ["1", "0"]
    bools = ModelSchema()
    bools.commit("binary", "bool", {False: 0, True: 1})
    assert bools.positive_label == "true" and bools.positive_index == 1
    declared = ModelSchema(task="binary", positive_class="yes")
    assert declared.codec.kind == "string"
    declared.commit("binary", "string", {"no": 0, "yes": 1})
    assert declared.positive_label == "yes" and declared.positive_index == 1
    zero = ModelSchema(task="binary", positive_class=0)
    zero.commit("binary", "int", {1: 0, 0: 1})
    assert zero.positive_label == "0" and zero.positive_index == 1


def test_only_binary_models_have_a_positive_class() -> None:
    multi = ModelSchema(task="multiclass")
    multi.commit("multiclass", "int", {0: 0, 1: 1, 2: 2})
    assert multi.positive_index is None and multi.positive_label is None
    reg = ModelSchema(task="regression")
    assert reg.positive_label is None and reg.class_labels() is None


def test_check_classes() -> None:
    inferred = ModelSchema()
    inferred.commit("binary", "int", {0: 0, 1: 1})
    assert inferred.check_classes("binary", {}, 50, "m") == "binary"
    assert inferred.check_classes("binary", {2: 2}, 50, "m") == "multiclass"
    declared = ModelSchema(task="binary")
    declared.commit("binary", "int", {0: 0, 1: 1})
    with pytest.raises(RejectedInput) as info:
        declared.check_classes("binary", {2: 2}, 50, "m")
    assert info.value.reason == Reason.TOO_MANY_CLASSES and "declared binary" in info.value.message
    multi = ModelSchema(task="multiclass")
    multi.commit("multiclass", "string", {c: i for i, c in enumerate("abc")})
    assert multi.check_classes("multiclass", {"d": 3}, 4, "m") == "multiclass"
    with pytest.raises(RejectedInput) as info:
        multi.check_classes("multiclass", {"d": 3, "e": 4}, 4, "m")
    assert info.value.reason == Reason.TOO_MANY_CLASSES
    assert "5 classes" in info.value.message and "max_classes is 4" in info.value.message
    big = {i: i for i in range(100)}
    assert ModelSchema(task="regression").check_classes("regression", big, 2, "m") == "regression"


def test_commit_registers_task_kind_classes_and_features() -> None:
    schema = ModelSchema()
    feats = feature_matrix([{"a": 1.0, "b": "x"}], schema.features, 10, "m")
    schema.commit("multiclass", "string", {"z": 1, "y": 0}, feats)
    assert schema.task == "multiclass" and schema.codec.kind == "string"
    assert schema.codec.values == ["y", "z"]  # in index order
    assert schema.features.names == ["a", "b"]
    assert schema.features.kinds == ["numeric", "categorical"]
    schema.commit("multiclass", "int", {"w": 2})  # the kind, once set, stays
    assert schema.codec.kind == "string" and schema.class_labels() == ["y", "z", "w"]


def test_kind_conflicts_and_adopt_features() -> None:
    schema = ModelSchema(categorical=["zip"])
    schema.commit(
        "regression",
        None,
        {},
        feature_matrix([{"n": 1.0, "c": "a", "u": None}], schema.features, 10, "m"),
    )
    assert schema.features.kinds == ["numeric", "categorical", None]
    assert schema.kind_conflicts(numeric={"c"}, categorical=()) == "c"
    assert schema.kind_conflicts(numeric=(), categorical={"n"}) == "n"
    assert schema.kind_conflicts(numeric={"n", "u", "new"}, categorical={"c", "u2"}) is None
    schema.adopt_features(numeric={"u", "n", "zz", "aa"}, categorical={"zip", "m"})
    assert schema.features.names == ["n", "c", "u", "aa", "m", "zip", "zz"]
    kinds = dict(zip(schema.features.names, schema.features.kinds, strict=True))
    assert kinds == {
        "n": "numeric",
        "c": "categorical",
        "u": "numeric",  # unknown kind: the reference's
        "aa": "numeric",
        "m": "categorical",
        "zip": "categorical",
        "zz": "numeric",
    }
    assert schema.features.index == {n: i for i, n in enumerate(schema.features.names)}
    assert schema.features.codes[3:] == [{}] * 4


# -- batches ------------------------------------------------------------------------------------

LIMITS = LimitSettings()


def prepare(schema: ModelSchema, events: list[Event], **kw: Any) -> Any:
    before = state(schema)
    try:
        return prepare_predictions(
            schema,
            events,
            NOW,
            model="m",
            limits=kw.pop("limits", LIMITS),
            max_categories=kw.pop("max_categories", 100),
        )
    finally:
        assert state(schema) == before  # accepted or refused, the schema is unchanged


def prepare_refused(schema: ModelSchema, events: list[Event], **kw: Any) -> RejectedInput:
    with pytest.raises(RejectedInput) as info:
        prepare(schema, events, **kw)
    return info.value


def labels_of(schema: ModelSchema, labels: list[Label], **kw: Any) -> Any:
    before = state(schema)
    try:
        return prepare_labels(schema, labels, NOW, model="m", limits=kw.pop("limits", LIMITS))
    finally:
        assert state(schema) == before


def test_prepare_predictions_infers_and_encodes() -> None:
    schema = ModelSchema()
    events = [
        Event("a", {"x": 1.0, "c": "u"}, 1, timestamp=NOW - 5),
        Event("b", {"x": 2.0, "c": "v"}, 0),
        Event("c", {"x": None, "c": "u"}, 1),
    ]
    p = prepare(schema, events)
    assert (p.task, p.class_kind, p.new_classes) == ("binary", "int", {1: 0, 0: 1})
    assert p.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(p.times, [NOW - 5, NOW, NOW])
    assert p.targets.dtype == np.float64 and p.targets.tolist() == [0.0, 1.0, 0.0]
    assert p.inline is None
    np.testing.assert_array_equal(p.features.matrix, [[1.0, 0.0], [2.0, 1.0], [np.nan, 0.0]])
    schema.commit(p.task, p.class_kind, p.new_classes, p.features)
    again = prepare(schema, [Event("d", {"x": 3.0}, 1), Event("e", {"x": 4.0}, 2)])
    assert again.task == "multiclass" and again.new_classes == {2: 2}  # promoted
    assert again.targets.tolist() == [0.0, 2.0]


def test_prepare_predictions_of_a_regression_model() -> None:
    p = prepare(ModelSchema(), [Event("a", {}, 1.5), Event("b", {}, 2, label=3)])
    assert (p.task, p.class_kind, p.new_classes) == ("regression", None, {})
    assert p.targets.tolist() == [1.5, 2.0] and p.inline == [None, 3.0]


def test_duplicate_ids_are_refused_at_the_second() -> None:
    events = [Event("a"), Event("b"), Event("c"), Event("b"), Event("a")]
    exc = prepare_refused(ModelSchema(), events)
    assert (exc.reason, exc.field, exc.value) == (Reason.DUPLICATE_ID, "events[3].id", "b")
    lab = [Label("x", 1), Label("x", 0)]
    with pytest.raises(RejectedInput) as info:
        labels_of(ModelSchema(task="binary"), lab)
    assert (info.value.reason, info.value.field) == (Reason.DUPLICATE_ID, "labels[1].id")


def test_empty_batches_are_refused() -> None:
    exc = prepare_refused(ModelSchema(), [])
    assert (exc.reason, exc.field) == (Reason.INVALID_FIELD, "events")
    with pytest.raises(RejectedInput) as info:
        labels_of(ModelSchema(), [])
    assert (info.value.reason, info.value.field) == (Reason.INVALID_FIELD, "labels")


def test_inline_labels_are_encoded_at_their_events_index() -> None:
    schema = ModelSchema(task="binary")
    events = [Event(str(i), {}, i % 2) for i in range(7)]
    events[2].label = 1
    events[5].label = 0
    p = prepare(schema, events)
    assert p.inline == [None, None, 1.0, None, None, 0.0, None]
    assert p.new_classes == {0: 0, 1: 1}
    events[5].label = "zero"
    exc = prepare_refused(schema, events)
    assert (exc.reason, exc.field, exc.value) == (Reason.TASK_MISMATCH, "events[5].label", "zero")
    events[5].label = 0
    events[2].label = 2  # a third class for a declared binary model
    exc = prepare_refused(schema, events)
    assert exc.reason == Reason.TOO_MANY_CLASSES


def test_inline_labels_take_part_in_task_inference() -> None:
    events = [Event("a", {}, 0), Event("b", {}, 1, label=2)]
    p = prepare(ModelSchema(), events)
    assert p.task == "multiclass" and p.new_classes == {0: 0, 1: 1, 2: 2}


@pytest.mark.parametrize(
    ("schema_kw", "warm", "events", "reason", "field"),
    [
        ({}, False, [Event("a", {}, 1), Event("b", {}, "x")], Reason.TASK_MISMATCH, None),
        (
            {},
            True,
            [Event("a", {}, 1), Event("b", {}, "x")],
            Reason.TASK_MISMATCH,
            "events[1].prediction",
        ),
        (
            {"task": "regression"},
            True,
            [Event("a", {}, 1.0), Event("b", {}, 2.0, label=True)],
            Reason.TASK_MISMATCH,
            "events[1].label",
        ),
        (
            {},
            True,
            [Event("a", {}, 1), Event("b", {}, 0, timestamp=-5.0)],
            Reason.INVALID_TIMESTAMP,
            "events[1].timestamp",
        ),
        (
            {"task": "binary"},
            True,
            [Event("a", {}, 1), Event("b", {}, 0), Event("c", {}, 2)],
            Reason.TOO_MANY_CLASSES,
            "events[2].prediction",  # the event whose class is one too many
        ),
        (
            {},
            True,
            [Event("a", {f"f{i}": 1.0 for i in range(101)}, 1)],
            Reason.TOO_MANY_FEATURES,
            "events[0].features",
        ),
        (
            {"categorical": ["c"]},
            False,
            [Event("a", {"c": 1.0}, 1), Event("a", {"d": "x"}, 0)],
            Reason.DUPLICATE_ID,
            "events[1].id",
        ),
    ],
)
def test_refusals_leave_the_schema_unchanged(
    schema_kw: dict[str, Any],
    warm: bool,
    events: list[Event],
    reason: Reason,
    field: str | None,
) -> None:
    schema = ModelSchema(**schema_kw)
    if warm:  # a schema with a task, classes and features already
        first = Event("z", {"f0": 1.0, "c": "k"}, 1)
        ok = prepare(schema, [first])
        schema.commit(ok.task, ok.class_kind, ok.new_classes, ok.features)
        assert len(schema.features) == 2
    exc = prepare_refused(schema, events)  # `prepare` checks the state is unchanged
    assert (exc.reason, exc.field) == (reason, field)


def test_too_many_classes_over_the_limit() -> None:
    limits = LimitSettings(max_classes=3)
    events = [Event(str(i), {}, f"c{i}") for i in range(4)]
    exc = prepare_refused(ModelSchema(), events, limits=limits)
    assert (exc.reason, exc.field, exc.value) == (
        Reason.TOO_MANY_CLASSES,
        "events[3].prediction",
        "c3",
    )
    assert prepare(ModelSchema(), events[:3], limits=limits).task == "multiclass"


def test_labels_are_kept_as_sent_while_the_task_is_unknown() -> None:
    schema = ModelSchema()
    lab = [Label("a", "cat"), Label("b", 2.5, timestamp=NOW - 1), Label("c", True)]
    p = labels_of(schema, lab)
    assert (p.task, p.class_kind, p.new_classes) == (None, None, {})
    assert p.targets == ["cat", 2.5, True]
    assert p.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(p.times, [NOW, NOW - 1, NOW])


def test_labels_are_encoded_once_the_task_is_known() -> None:
    schema = ModelSchema()
    ok = prepare(schema, [Event("a", {}, "cat"), Event("b", {}, "dog")])
    schema.commit(ok.task, ok.class_kind, ok.new_classes, ok.features)
    p = labels_of(schema, [Label("a", "dog"), Label("b", "eel"), Label("c", "cat")])
    assert (p.task, p.class_kind) == ("multiclass", "string")
    assert p.targets == [1.0, 2.0, 0.0] and p.new_classes == {"eel": 2}
    with pytest.raises(RejectedInput) as info:
        labels_of(schema, [Label("a", "dog"), Label("b", 3)])
    assert (info.value.field, info.value.value) == ("labels[1].label", 3)
    declared = ModelSchema(task="binary")  # declared, no prediction yet: kind of the first
    p = labels_of(declared, [Label("a", True), Label("b", False)])
    assert (p.class_kind, p.targets) == ("bool", [0.0, 1.0])
    with pytest.raises(RejectedInput) as info:
        labels_of(declared, [Label("a", True), Label("b", 1, timestamp=NOW * 1000)])
    assert info.value.field == "labels[1].timestamp"
    reg = ModelSchema(task="regression")
    assert labels_of(reg, [Label("a", 1), Label("b", 2.5)]).targets == [1.0, 2.5]
