"""exporter.stats.distribution against numpy's own histogram of the same (clipped) values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.stats.distribution import HISTOGRAM_BINS, shared_histogram

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=200),
    st.lists(st.one_of(finite, st.just(float("nan"))), min_size=1, max_size=200),
    st.integers(1, 40),
)
def test_counts_equal_numpy_histogram_of_clipped_values(
    reference: list[float], window: list[float], bins: int
) -> None:
    ref = np.sort(np.array(reference))
    win = np.array(window)
    if np.isnan(win).all():
        with pytest.raises(ValueError, match="both sides"):
            shared_histogram(ref, win, bins)
        return
    h = shared_histogram(ref, win, bins)
    assert h.edges.shape == (bins + 1,)
    assert np.all(np.diff(h.edges) > 0)
    lo, hi = h.edges[0], h.edges[-1]
    for side, values in ((h.reference, ref), (h.window, win[~np.isnan(win)])):
        expected, _ = np.histogram(np.clip(values, lo, hi), bins=h.edges)
        np.testing.assert_array_equal(side, expected)
        assert side.sum() == values.shape[0]  # nothing dropped


def test_span_covers_both_sides_central_mass() -> None:
    rng = np.random.default_rng(0)
    ref = np.sort(rng.normal(0, 1, 10_000))
    win = rng.normal(5, 1, 3_600)  # shifted far beyond the reference
    h = shared_histogram(ref, win)
    assert h.edges.shape == (HISTOGRAM_BINS + 1,)
    assert h.edges[0] < np.quantile(ref, 0.01) and h.edges[-1] > np.quantile(win, 0.99)
    # The two sides sit in different bins: little overlap of the counts.
    overlap = np.minimum(h.window / win.size, h.reference / ref.size).sum()
    assert overlap < 0.05


def test_one_value_on_both_sides_gets_a_unit_span() -> None:
    h = shared_histogram(np.array([2.0, 2.0]), np.array([2.0]), bins=4)
    assert h.edges[0] == 1.5 and h.edges[-1] == 2.5
    assert h.reference.sum() == 2 and h.window.sum() == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-6, 6).map(float), min_size=1, max_size=200),
    st.lists(st.integers(-9, 9).map(float), min_size=1, max_size=200),
    st.integers(1, 40),
)
def test_ties_on_the_edges_fall_in_the_bins_numpy_gives_them(
    reference: list[float], window: list[float], bins: int
) -> None:
    """Whole numbers land on bin edges: the arithmetic bin of a value is corrected there."""
    h = shared_histogram(np.sort(np.array(reference)), np.array(window), bins)
    win = np.array(window)
    expected, _ = np.histogram(np.clip(win, h.edges[0], h.edges[-1]), bins=h.edges)
    np.testing.assert_array_equal(h.window, expected)


def test_the_span_is_the_order_statistics_of_both_sides() -> None:
    rng = np.random.default_rng(1)
    ref, win = np.sort(rng.normal(0, 1, 1_001)), rng.normal(0.3, 2, 2_001)
    h = shared_histogram(ref, win)
    ordered = np.sort(win)
    assert h.edges[0] == min(ref[5], ordered[10])  # ranks floor(0.005 (n - 1))
    assert h.edges[-1] == max(ref[995], ordered[1990])  # and ceil(0.995 (n - 1))


@pytest.mark.parametrize(
    ("reference", "window"),
    [
        ([2.22507386e-311], [0.0]),  # a subnormal span: bins / span overflows
        ([-1.5e308, 1.7e308], [1e308, -1e308, 0.0]),  # a span beyond float range
    ],
)
def test_extreme_spans_still_count_every_value(reference: list[float], window: list[float]) -> None:
    h = shared_histogram(np.sort(np.array(reference)), np.array(window), bins=4)
    assert np.all(np.isfinite(h.edges)) and np.all(np.diff(h.edges) > 0)
    win = np.array(window)
    expected, _ = np.histogram(np.clip(win, h.edges[0], h.edges[-1]), bins=h.edges)
    np.testing.assert_array_equal(h.window, expected)
    assert h.reference.sum() == len(reference) and h.window.sum() == len(window)
