"""Reference data, directly (no HTTP): building a reference from columns, from stored rows, and
reading columns from CSV text, CSV files and Parquet files. Oracles: numpy's quantiles and
bincount, ``collections.Counter`` and SciPy's KS test for the uniformity of a subsample."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import exporter.reference
from exporter.config import DriftSettings
from exporter.errors import NO_VALUE, InvalidReference, Reason
from exporter.reference import (
    MAX_MAGNITUDE,
    SUMMARY_QUANTILES,
    CategoricalReference,
    Reference,
    ReferenceBuilder,
    RowLayout,
    build_reference,
    reference_from_rows,
    target_from_column,
)
from exporter.reference_io import parse_csv_columns, read_reference_file
from exporter.schema import category_label
from exporter.stats.drift import NumericReference

SETTINGS = DriftSettings()


def build(columns: dict[str, list[Any]], **kwargs: Any) -> Reference:
    kwargs.setdefault("settings", SETTINGS)
    kwargs.setdefault("source", "upload")
    kwargs.setdefault("created", 123.0)
    return build_reference(columns, **kwargs)


def refused(columns: dict[str, list[Any]], **kwargs: Any) -> InvalidReference:
    with pytest.raises(InvalidReference) as info:
        build(columns, **kwargs)
    return info.value


def expected_edges(values: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def expected_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Bins (-inf, e0), [e0, e1), ..., [e_last, inf): np.digitize's right=False convention.
    counts = np.bincount(np.digitize(values, edges), minlength=edges.shape[0] + 1)
    return counts / values.shape[0]


def check_numeric(ref: NumericReference, values: list[Any], bins: int = 10) -> None:
    """``ref`` holds exactly ``values`` (None dropped), sorted, binned at their quantiles."""
    clean = np.sort(np.array([v for v in values if v is not None], dtype=np.float64))
    np.testing.assert_array_equal(ref.values, clean)
    np.testing.assert_array_equal(ref.edges, expected_edges(clean, bins))
    np.testing.assert_allclose(ref.shares, expected_shares(clean, ref.edges), rtol=0, atol=1e-15)
    assert ref.size == clean.shape[0]


# -- kinds of columns ---------------------------------------------------------------------------


def test_numbers_make_numeric_features_and_strings_or_bools_categorical_ones() -> None:
    rng = np.random.default_rng(0)
    nums = [*rng.normal(0, 1, 300).tolist(), None, 3, None]
    words = [*rng.choice(["a", "b", "c"], 200).tolist(), None]
    flags = [True, False, True, None, True]
    ref = build({"x": nums, "w": words, "f": flags})
    assert set(ref.numeric) == {"x"}
    assert set(ref.categorical) == {"w", "f"}
    assert ref.features == {"x", "w", "f"}
    assert (ref.kind("x"), ref.kind("w"), ref.kind("nope")) == ("numeric", "categorical", None)
    check_numeric(ref.numeric["x"], nums)
    counts = Counter(w for w in words if w is not None)
    w = ref.categorical["w"]
    assert dict(zip(w.categories, w.counts.tolist(), strict=True)) == counts
    assert w.pooled == 0 and w.size == sum(counts.values())
    f = ref.categorical["f"]
    assert dict(zip(f.categories, f.counts.tolist(), strict=True)) == {"true": 3, "false": 1}
    assert ref.rows == len(nums)
    assert (ref.source, ref.created, ref.subsampled) == ("upload", 123.0, False)
    assert ref.predictions is None and ref.labels is None


def test_numeric_reference_values_are_the_input_sorted() -> None:
    values = [5.0, -1.0, None, 2.5, 2.5, 7, None, 0.0]
    ref = build({"x": values})
    check_numeric(ref.numeric["x"], values)
    assert not ref.numeric["x"].values.flags.writeable


@pytest.mark.parametrize("bins", [2, 4, 10, 37])
def test_bin_edges_are_quantiles_of_the_values_and_shares_follow(bins: int) -> None:
    rng = np.random.default_rng(bins)
    values = rng.gamma(2.0, 3.0, 1001).tolist()
    ref = build({"x": values}, settings=DriftSettings(bins=bins))
    check_numeric(ref.numeric["x"], values, bins)
    assert ref.numeric["x"].edges.shape == (bins - 1,)
    assert ref.numeric["x"].shares.sum() == pytest.approx(1.0)


def test_duplicate_quantiles_collapse_into_fewer_bins() -> None:
    values = [0.0] * 80 + [1.0] * 15 + [2.0] * 5
    ref = build({"x": values})
    check_numeric(ref.numeric["x"], values)
    assert ref.numeric["x"].edges.shape[0] < 9  # deduplicated
    assert len(set(ref.numeric["x"].edges.tolist())) == ref.numeric["x"].edges.shape[0]


def test_names_declared_categorical_make_numbers_categories() -> None:
    zips = [10115, 10115.0, 80331, None, 20095, 10115]
    ref = build({"zip": zips, "x": [1, 2, 3]}, categorical=["zip"])
    assert set(ref.categorical) == {"zip"} and set(ref.numeric) == {"x"}
    cat = ref.categorical["zip"]
    assert dict(zip(cat.categories, cat.counts.tolist(), strict=True)) == {
        "10115": 3,
        "80331": 1,
        "20095": 1,
    }


def test_from_counts_keeps_the_most_frequent_ties_by_name_and_pools_the_rest() -> None:
    counts = {"b": 3, "a": 3, "e": 5, "c": 1, "d": 1, "z": 3}
    cat = CategoricalReference.from_counts(counts, 3)
    assert cat.categories == ("e", "a", "b")
    assert cat.counts.tolist() == [5, 3, 3]
    assert cat.pooled == 3 + 1 + 1
    assert cat.size == sum(counts.values())
    assert cat.index() == {"e": 0, "a": 1, "b": 2}
    everything = CategoricalReference.from_counts(counts, 100)
    assert everything.pooled == 0 and len(everything.categories) == len(counts)
    assert CategoricalReference.from_counts({}, 5).size == 0
    already = CategoricalReference.from_counts(counts, 3, pooled=4)  # values pooled before
    assert already.categories == cat.categories and already.pooled == cat.pooled + 4
    assert already.size == sum(counts.values()) + 4


def test_build_pools_categories_beyond_max_categories() -> None:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in rng.zipf(1.5, 4000) % 50]
    ref = build({"w": words}, settings=DriftSettings(max_categories=5))
    cat = ref.categorical["w"]
    counts = Counter(words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert list(zip(cat.categories, cat.counts.tolist(), strict=True)) == top
    assert cat.pooled == len(words) - sum(n for _, n in top)


# -- subsampling --------------------------------------------------------------------------------


def test_long_columns_are_subsampled_uniformly_and_reproducibly() -> None:
    n, limit = 20_000, 2000
    values = np.arange(n, dtype=np.float64).tolist()
    words = [f"c{i % 7}" for i in range(n)]
    settings = DriftSettings(reference_max_values=limit)
    ref = build({"x": values, "w": words}, settings=settings)
    assert ref.subsampled is True
    assert ref.rows == n
    kept = ref.numeric["x"].values
    assert kept.shape == (limit,)
    assert np.unique(kept).shape == (limit,)  # drawn without replacement
    assert set(kept.tolist()) <= set(values)
    # Uniform over the column: the kept positions follow U(0, n).
    assert stats.kstest(kept / n, "uniform").pvalue > 0.01
    check_numeric(ref.numeric["x"], kept.tolist())
    assert ref.categorical["w"].size == limit
    again = build({"x": values, "w": words}, settings=settings)  # seeded: the same sample
    np.testing.assert_array_equal(again.numeric["x"].values, kept)
    np.testing.assert_array_equal(again.categorical["w"].counts, ref.categorical["w"].counts)


def test_columns_at_the_limit_are_not_subsampled() -> None:
    values = list(range(50))
    ref = build({"x": values}, settings=DriftSettings(reference_max_values=50))
    assert ref.subsampled is False
    check_numeric(ref.numeric["x"], values)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e301, 1e301])
def test_bad_values_are_refused_even_in_subsampled_columns(bad: float) -> None:
    values = [*range(100), bad]
    assert refused({"x": values}).field == "features.x"  # refused without subsampling
    refused({"x": values}, settings=DriftSettings(reference_max_values=10))


def test_subsampled_predictions_set_the_subsampled_flag() -> None:
    ref = build({}, predictions=list(range(100)), settings=DriftSettings(reference_max_values=10))
    assert ref.predictions is not None and ref.predictions.size == 10  # it was subsampled
    assert ref.subsampled is True


# -- predictions and labels ---------------------------------------------------------------------


def test_predictions_and_labels_from_columns_equal_the_direct_form() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 400).tolist()
    preds = rng.normal(10, 2, 400).tolist()
    labels = rng.choice(["cat", "dog", "eel"], 400).tolist()
    from_columns = build({"x": x, "p": preds, "y": labels}, prediction_column="p", label_column="y")
    direct = build({"x": x}, predictions=preds, labels=labels)
    assert from_columns.features == direct.features == {"x"}
    for ref in (from_columns, direct):
        assert ref.predictions is not None and ref.labels is not None
        assert ref.predictions.numeric is not None
        check_numeric(ref.predictions.numeric, preds)
        assert ref.predictions.size == 400
        counts = Counter(category_label(v) for v in preds)
        cats = ref.predictions.categories
        assert dict(zip(cats.categories, cats.counts.tolist(), strict=True)) == dict(
            sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:100]
        )
        assert ref.labels.numeric is None
        lab = ref.labels.categories
        assert dict(zip(lab.categories, lab.counts.tolist(), strict=True)) == Counter(labels)
        assert ref.labels.size == 400


def test_class_predictions_keep_numbers_and_categories() -> None:
    preds = [0, 1, 1, None, 1, 0, 2]
    ref = build({}, predictions=preds, labels=[True, False, None, True])
    assert ref.features == set()
    assert ref.rows == 7
    assert ref.predictions is not None and ref.predictions.numeric is not None
    check_numeric(ref.predictions.numeric, preds)
    cats = ref.predictions.categories
    assert dict(zip(cats.categories, cats.counts.tolist(), strict=True)) == {"1": 3, "0": 2, "2": 1}
    assert ref.labels is not None and ref.labels.numeric is None  # bools are classes only
    assert ref.labels.categories.categories == ("true", "false")
    assert ref.labels.size == 3


def test_a_reference_of_only_labels_is_valid() -> None:
    ref = build({}, labels=["a", "b", "a"])
    assert ref.features == set() and ref.predictions is None
    assert ref.labels is not None and ref.labels.size == 3
    assert ref.rows == 3


def test_rows_is_the_longest_column() -> None:
    ref = build({"a": [1, 2], "b": ["x", None, "y", None, None]}, predictions=[1, 2, 3])
    assert ref.rows == 5


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "kwargs", "field", "value"),
    [
        ({"a": [1]}, {"prediction_column": "p"}, "prediction_column", "p"),
        ({"a": [1]}, {"label_column": "y"}, "label_column", "y"),
        (
            {"a": [1], "p": [1]},
            {"prediction_column": "p", "label_column": "p"},
            "label_column",
            "p",
        ),
        ({"a": [None, None]}, {}, "features.a", NO_VALUE),
        ({"a": []}, {}, "features.a", NO_VALUE),
        ({"a": [1, 2.5, "x", 3]}, {}, "features.a", "x"),
        ({"a": [1, True]}, {}, "features.a", True),
        ({"a": [1.0, math.inf]}, {}, "features.a", math.inf),
        ({"a": [1.0, -math.inf]}, {}, "features.a", -math.inf),
        ({"a": [2e300, 1.0]}, {}, "features.a", 2e300),
        ({"a": [1.0, -1e301]}, {}, "features.a", -1e301),
        ({}, {}, "features", NO_VALUE),
        ({"a": [1]}, {"predictions": [None]}, "predictions", NO_VALUE),
        ({"a": [1]}, {"labels": []}, "labels", NO_VALUE),
        ({"a": [1]}, {"predictions": [1.0, math.inf]}, "predictions", math.inf),
        ({"a": [1]}, {"labels": [1.0, 1e301]}, "labels", 1e301),
        ({"a": [1], "p": [None]}, {"prediction_column": "p"}, "predictions", NO_VALUE),
    ],
)
def test_refusals_name_the_field_and_the_value(
    columns: dict[str, list[Any]], kwargs: dict[str, Any], field: str, value: Any
) -> None:
    exc = refused(columns, **kwargs)
    assert exc.reason == Reason.INVALID_REFERENCE
    assert exc.field == field
    assert exc.value == value
    assert exc.status_code == 422
    assert str(exc).startswith(f"{field}: ")


def test_a_nan_number_is_refused_as_non_finite() -> None:
    exc = refused({"a": [1.0, math.nan]})
    assert exc.field == "features.a"
    assert math.isnan(exc.value)
    assert "non-finite" in exc.message


def test_magnitudes_up_to_the_limit_are_accepted() -> None:
    values = [-MAX_MAGNITUDE, 0.0, MAX_MAGNITUDE]
    check_numeric(build({"a": values}).numeric["a"], values)
    exc = refused({"a": [*values, np.nextafter(MAX_MAGNITUDE, math.inf)]})
    assert exc.field == "features.a"


def test_a_missing_named_column_lists_the_columns() -> None:
    exc = refused({"b": [1], "a": [2]}, label_column="y")
    assert "a, b" in exc.message


def test_an_unexpected_failure_becomes_an_invalid_reference(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> NumericReference:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(exporter.reference.NumericReference, "from_values", boom)
    with caplog.at_level(logging.ERROR, logger="exporter.reference"):
        exc = refused({"a": [1.0, 2.0]})
    assert exc.reason == Reason.INVALID_REFERENCE
    assert exc.field is None
    assert "RuntimeError: kaboom" in exc.message
    [record] = [r for r in caplog.records if r.name == "exporter.reference"]
    assert record.levelno == logging.ERROR and record.exc_info is not None


@pytest.mark.parametrize(
    ("columns", "kwargs", "field"),
    [
        ({"a": [1, 10**400]}, {}, "features.a"),
        ({"a": [1, -(10**400)]}, {}, "features.a"),
        ({}, {"predictions": [1, 10**400]}, "predictions"),
        ({"a": [1.0]}, {"labels": [10**400, 2]}, "labels"),
    ],
)
def test_ints_beyond_float_range_are_refused_as_too_large(
    columns: dict[str, list[Any]], kwargs: dict[str, Any], field: str
) -> None:
    exc = refused(columns, **kwargs)
    assert exc.field == field


# -- summary ------------------------------------------------------------------------------------


def test_summary_quantiles_and_shares() -> None:
    rng = np.random.default_rng(9)
    x = rng.lognormal(0, 1, 777).tolist()
    words = rng.choice(list("abcdefghijkl"), 500).tolist()
    preds = rng.normal(3, 1, 200).tolist()
    ref = build({"x": x, "w": words}, predictions=preds, labels=["u", "v", "v"])
    summary = ref.summary(top=5)
    assert (summary["source"], summary["rows"], summary["subsampled"]) == ("upload", 777, False)
    sx = summary["features"]["x"]
    assert sx["kind"] == "numeric" and sx["values"] == 777
    expected = np.quantile(np.array(x), SUMMARY_QUANTILES)
    assert list(sx["quantiles"]) == [f"{p:g}" for p in SUMMARY_QUANTILES]
    np.testing.assert_allclose(list(sx["quantiles"].values()), expected, rtol=1e-15)
    assert sx["quantiles"]["0"] == min(x) and sx["quantiles"]["1"] == max(x)
    sw = summary["features"]["w"]
    assert sw["kind"] == "categorical" and sw["values"] == 500 and sw["categories"] == 12
    assert len(sw["shares"]) == 5
    counts = Counter(words)
    for c, share in sw["shares"].items():
        assert share == counts[c] / 500
    assert sorted(sw["shares"].values(), reverse=True) == list(sw["shares"].values())
    full = ref.summary(top=100)["features"]["w"]
    assert sum(full["shares"].values()) + full["pooled_share"] == pytest.approx(1.0)
    assert summary["predictions"]["mean"] == pytest.approx(np.mean(preds), rel=1e-12)
    assert summary["labels"]["shares"] == {"v": 2 / 3, "u": 1 / 3}
    assert "mean" not in summary["labels"]


def test_summary_pooled_share_adds_up() -> None:
    ref = build({"w": list("aaabbbccddef")}, settings=DriftSettings(max_categories=2))
    s = ref.summary()["features"]["w"]
    assert s["categories"] == 2
    assert sum(s["shares"].values()) + s["pooled_share"] == pytest.approx(1.0)
    assert s["pooled_share"] == pytest.approx(6 / 12)


# -- from stored rows ---------------------------------------------------------------------------


def test_reference_builder_keeps_the_first_rows_across_chunks() -> None:
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 3)), rng.normal(size=(4, 3)), rng.normal(size=(2, 3))
    builder = ReferenceBuilder(5)
    assert not builder.complete and builder.matrix(3).shape == (0, 3)
    builder.add(a)
    builder.add(np.empty((0, 3)))
    assert builder.rows == 3 and not builder.complete
    builder.add(b)
    assert builder.rows == 5 and builder.complete
    builder.add(c)  # full: ignored
    expected = np.vstack([a, b])[:5]
    a[0, 0] = 99.0  # the builder copied its rows
    np.testing.assert_array_equal(builder.matrix(3), expected)


def test_reference_builder_matrix_pads_missing_columns_with_nan() -> None:
    builder = ReferenceBuilder(10)
    builder.add(np.array([[1.0, 2.0], [3.0, 4.0]]))
    builder.add(np.array([[5.0, 6.0, 7.0, 8.0]]))  # a feature appeared later
    m = builder.matrix(5)
    expected = np.array(
        [
            [1.0, 2.0, np.nan, np.nan, np.nan],
            [3.0, 4.0, np.nan, np.nan, np.nan],
            [5.0, 6.0, 7.0, 8.0, np.nan],
        ]
    )
    np.testing.assert_array_equal(m, expected)


def stored_rows(rng: np.random.Generator, n: int) -> tuple[np.ndarray, RowLayout]:
    classes = ("no", "yes", "maybe")
    colours = ("red", "green", "blue", "teal")
    rows = np.full((n, 4), np.nan)
    rows[:, 0] = rng.integers(0, 3, n)
    rows[:, 1] = rng.normal(0, 1, n)
    rows[rng.random(n) < 0.1, 1] = np.nan
    rows[:, 2] = rng.integers(-1, 4, n)  # -1: pooled beyond max_categories
    rows[rng.random(n) < 0.1, 2] = np.nan
    rows[:, 3] = rng.normal(0, 1, n)  # a feature of unknown kind: skipped
    layout = RowLayout(
        names=("x", "colour", "unknown"),
        kinds=("numeric", "categorical", None),
        categories=((), colours, ()),
        classes=classes,
    )
    return rows, layout


def as_values(column: np.ndarray, labels: tuple[str, ...] | None = None) -> list[Any]:
    out: list[Any] = []
    for v in column.tolist():
        if math.isnan(v):
            out.append(None)
        elif labels is None:
            out.append(v)
        else:
            out.append(None if v < 0 else labels[int(v)])  # -1: pooled, counted apart
    return out


def test_reference_from_rows_equals_build_reference_of_the_same_columns() -> None:
    rows, layout = stored_rows(np.random.default_rng(11), 900)
    ref = reference_from_rows(
        rows, layout, source="first_events", created=5.0, bins=10, max_categories=100
    )
    oracle = build(
        {"x": as_values(rows[:, 1]), "colour": as_values(rows[:, 2], layout.categories[1])},
        predictions=as_values(rows[:, 0], layout.classes),
    )
    assert (ref.source, ref.created, ref.rows) == ("first_events", 5.0, 900)
    assert ref.features == {"x", "colour"}
    for name in ("values", "edges", "shares"):
        np.testing.assert_array_equal(
            getattr(ref.numeric["x"], name), getattr(oracle.numeric["x"], name)
        )
    got, want = ref.categorical["colour"], oracle.categorical["colour"]
    assert got.categories == want.categories
    np.testing.assert_array_equal(got.counts, want.counts)
    pooled = int(np.count_nonzero(rows[:, 2] < 0))
    assert pooled > 0 and got.pooled == want.pooled + pooled
    assert got.size == int(np.count_nonzero(~np.isnan(rows[:, 2])))
    assert ref.predictions is not None and oracle.predictions is not None
    assert ref.predictions.numeric is None
    assert ref.predictions.categories.categories == oracle.predictions.categories.categories
    np.testing.assert_array_equal(
        ref.predictions.categories.counts, oracle.predictions.categories.counts
    )


def test_reference_from_rows_of_a_regression_model_keeps_prediction_values() -> None:
    rng = np.random.default_rng(12)
    rows = np.column_stack([rng.normal(5, 2, 300), rng.normal(0, 1, 300)])
    rows[:7, 0] = np.nan
    layout = RowLayout(names=("x",), kinds=("numeric",), categories=((),), classes=None)
    ref = reference_from_rows(
        rows, layout, source="previous_window", created=0.0, bins=10, max_categories=100
    )
    assert ref.predictions is not None and ref.predictions.numeric is not None
    check_numeric(ref.predictions.numeric, as_values(rows[:, 0]))
    assert ref.predictions.categories.size == 0
    assert ref.predictions.size == 293


def test_reference_from_rows_skips_empty_and_absent_columns() -> None:
    rows = np.array([[np.nan, np.nan], [np.nan, np.nan]])
    layout = RowLayout(
        names=("empty", "absent"),
        kinds=("numeric", "categorical"),
        categories=((), ("a",)),
        classes=("0", "1"),
    )
    ref = reference_from_rows(
        rows, layout, source="first_events", created=0, bins=10, max_categories=5
    )
    assert ref.features == set() and ref.predictions is None and ref.rows == 2
    empty = reference_from_rows(
        np.empty((0, 0)), layout, source="first_events", created=0, bins=10, max_categories=5
    )
    assert empty.rows == 0 and empty.features == set() and empty.predictions is None


def test_reference_from_rows_pools_beyond_max_categories() -> None:
    labels = tuple(f"c{i}" for i in range(10))
    codes = np.repeat(np.arange(10.0), np.arange(1, 11))  # c9 most frequent
    rows = np.column_stack([np.zeros_like(codes), codes])
    layout = RowLayout(("c",), ("categorical",), (labels,), ("0",))
    ref = reference_from_rows(
        rows, layout, source="first_events", created=0, bins=10, max_categories=3
    )
    cat = ref.categorical["c"]
    assert cat.categories == ("c9", "c8", "c7")
    assert cat.counts.tolist() == [10, 9, 8]
    assert cat.pooled == codes.shape[0] - 27


def test_target_from_column() -> None:
    column = np.array([0.0, 2.0, 2.0, 1.0, 2.0, -1.0])
    classes = ("a", "b", "c")
    t = target_from_column(column, classes, bins=10, max_categories=100)
    assert t.numeric is None
    got = dict(zip(t.categories.categories, t.categories.counts.tolist(), strict=True))
    assert got == {"c": 3, "a": 1, "b": 1}
    assert t.categories.pooled == 1  # code -1: beyond the model's categories
    assert t.size == column.shape[0]
    values = np.random.default_rng(4).normal(0, 1, 250)
    r = target_from_column(values, None, bins=5, max_categories=100)
    assert r.numeric is not None
    check_numeric(r.numeric, values.tolist(), bins=5)
    assert r.categories.size == 0 and r.size == 250


# -- CSV text -----------------------------------------------------------------------------------


def parse(text: str, max_name_length: int = 32) -> dict[str, list[Any]]:
    return parse_csv_columns(text, max_name_length=max_name_length)


def csv_refused(text: str, max_name_length: int = 32) -> InvalidReference:
    with pytest.raises(InvalidReference) as info:
        parse(text, max_name_length)
    assert info.value.reason == Reason.MALFORMED_CSV
    assert info.value.status_code == 400
    return info.value


def test_csv_cells_parse_as_numbers_bools_missing_and_strings() -> None:
    text = (
        "x, flag ,colour,y\n"
        "1,true,red,-2.5e3\n"
        " 2.5 ,FALSE, blue ,\n"
        "NaN,True,null,none\n"
        "nA,,NULL,1e-300\n"
        "\n"
        "-0,false,None,7\n"
    )
    assert parse(text) == {
        "x": [1.0, 2.5, None, None, -0.0],
        "flag": [True, False, True, None, False],
        "colour": ["red", "blue", None, None, None],
        "y": [-2500.0, None, None, 1e-300, 7.0],
    }


def test_csv_quoted_cells_and_header_only() -> None:
    assert parse('name,n\n"a, b",3\n"say ""hi""",4\n') == {
        "name": ["a, b", 'say "hi"'],
        "n": [3.0, 4.0],
    }
    assert parse("a,b\n") == {"a": [], "b": []}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("a,,b\n1,2,3\n", "column 2 has no feature name"),
        ("a, \n1,2\n", "column 2 has no feature name"),
        ("a,b,a\n", "'a' twice"),
        ("ok," + "n" * 33 + "\n", "column 2: feature name is 33 characters, over the limit of 32"),
        ("a,b\n1,2\n3\n", "CSV line 3 has 1 cells, the header has 2"),
        ("a,b\n1,2\n\n3,4,5\n", "CSV line 4 has 3 cells, the header has 2"),
        ("a,b\n1,inf\n", "CSV line 2, feature 'b': non-finite value 'inf'"),
        ("a\n1\n2\n-Infinity\n", "CSV line 4, feature 'a': non-finite value '-Infinity'"),
        ("a\n1e400\n", "CSV line 2, feature 'a': non-finite value '1e400'"),
        ("x" * 200_000 + "\n", "CSV line 1: field larger than field limit"),
        ("a\n" + "x" * 200_000 + "\n", "field larger than field limit"),
    ],
)
def test_csv_refusals(text: str, needle: str) -> None:
    exc = csv_refused(text)
    assert needle in exc.message


def test_csv_name_at_the_length_limit_is_accepted() -> None:
    assert parse("n" * 32 + "\n1\n") == {"n" * 32: [1.0]}


def test_csv_line_numbers_count_physical_lines() -> None:
    exc = csv_refused('a,b\n"two\nlines",1\n2\n')
    assert "CSV line 4 " in exc.message


# -- reference files ----------------------------------------------------------------------------


def test_read_csv_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "ref.CSV"
    path.write_bytes("\ufeffa,p\n1,yes\n2,no\n".encode())
    columns = read_reference_file(path, max_name_length=16)
    assert columns == {"a": [1.0, 2.0], "p": ["yes", "no"]}
    ref = build(columns, prediction_column="p", source="file")
    assert ref.features == {"a"} and ref.predictions is not None
    assert ref.predictions.categories.categories == ("no", "yes")


def test_read_csv_file_applies_the_name_limit(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    path.write_text("abcdefghijk\n1\n", encoding="utf-8")
    with pytest.raises(InvalidReference) as info:
        read_reference_file(path, max_name_length=10)
    assert info.value.reason == Reason.MALFORMED_CSV


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_read_parquet_file(tmp_path: Path, suffix: str) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "f": pa.array([1.5, float("nan"), None, -2.0], type=pa.float64()),
            "i": pa.array([1, 2, None, 4], type=pa.int64()),
            "s": pa.array(["a", None, "b", "a"]),
            "b": pa.array([True, False, None, True]),
        }
    )
    path = tmp_path / f"ref{suffix}"
    pq.write_table(table, path)
    columns = read_reference_file(path, max_name_length=16)
    assert columns == {
        "f": [1.5, None, None, -2.0],
        "i": [1, 2, None, 4],
        "s": ["a", None, "b", "a"],
        "b": [True, False, None, True],
    }
    ref = build(columns, source="file")
    assert set(ref.numeric) == {"f", "i"} and set(ref.categorical) == {"s", "b"}
    check_numeric(ref.numeric["f"], [1.5, -2.0])


def test_parquet_columns_of_other_types_are_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "ref.parquet"
    pq.write_table(pa.table({"ok": [1.0], "when": pa.array([0], type=pa.timestamp("s"))}), path)
    with pytest.raises(InvalidReference) as info:
        read_reference_file(path, max_name_length=16)
    assert info.value.reason == Reason.INVALID_REFERENCE
    assert info.value.field == "when"
    assert "datetime" in info.value.message


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("ref.json", b"{}", "unknown reference file type"),
        ("ref", b"a\n1\n", "unknown reference file type"),
        ("missing.csv", None, "cannot read"),
        ("missing.parquet", None, "cannot read"),
        ("latin1.csv", "a\ncaf\u00e9\n".encode("latin-1"), "cannot read"),
        ("garbage.parquet", b"not a parquet file at all", "as Parquet"),
    ],
)
def test_unknown_and_unreadable_files(
    tmp_path: Path, name: str, content: bytes | None, needle: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidReference) as info:
        read_reference_file(path, max_name_length=16)
    assert info.value.reason == Reason.INVALID_REFERENCE
    assert needle in info.value.message
    assert str(path) in info.value.message
