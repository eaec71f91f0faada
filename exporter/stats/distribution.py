"""What a feature's window looks like next to its reference: counts over shared bins, to draw.

The drift tests answer *whether* a feature moved; these summaries show *how*. They are taken
from the same window sample and reference as the tests (by the detector), so a chart never
disagrees with the verdict next to it. Small and immutable: a result, not a sample.

Numeric features: :func:`shared_histogram` cuts one set of equal-width bins spanning both
sides' central 99 % (values beyond fall into the end bins, so nothing is dropped), and counts
each side over them. Categorical features: :class:`CategoryCounts`, the counts per reference
category plus one bin for the rest. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from exporter.typedefs import FloatArray, IntArray

#: Bins of a numeric feature's histogram.
HISTOGRAM_BINS = 30
#: The histogram spans both sides' values between their order statistics at these shares of
#: the ranks, the same on both sides (the end bins take the rest).
TAIL = 0.005


@dataclass(frozen=True, slots=True, eq=False)
class Histogram:
    """Window and reference counts over the same bins.

    ``edges`` has one more entry than each count vector; bin ``i`` holds the values in
    ``[edges[i], edges[i + 1])`` (the last bin is closed), values below ``edges[0]`` are counted
    in the first bin and values above ``edges[-1]`` in the last.
    """

    edges: FloatArray
    window: IntArray
    reference: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class CategoryCounts:
    """A categorical feature's counts per reference category, then the rest: categories the
    reference pooled or never saw (``window_other``, ``reference_other``)."""

    categories: tuple[str, ...]
    window: IntArray
    reference: IntArray
    window_other: int
    reference_other: int


def shared_histogram(
    reference_sorted: FloatArray, window: FloatArray, bins: int = HISTOGRAM_BINS
) -> Histogram:
    """Counts of ``window`` and of the (sorted, NaN-free) reference over shared bins.

    >>> h = shared_histogram(np.arange(10.0), np.array([0.0, 9.0, 20.0]), bins=2)
    >>> h.edges.round(3).tolist(), h.reference.tolist(), h.window.tolist()
    ([0.0, 10.0, 20.0], [10, 0], [2, 1])
    """
    values = window[~np.isnan(window)]
    if reference_sorted.shape[0] == 0 or values.shape[0] == 0:
        raise ValueError("a histogram needs values on both sides")
    n = reference_sorted.shape[0]
    lo_ref = reference_sorted[int(np.floor(TAIL * (n - 1)))]
    hi_ref = reference_sorted[int(np.ceil((1 - TAIL) * (n - 1)))]
    # The window's order statistics at the same ranks, by partition (O(n), no sort).
    m = values.shape[0]
    ranks = [int(np.floor(TAIL * (m - 1))), int(np.ceil((1 - TAIL) * (m - 1)))]
    lo_win, hi_win = np.partition(values, ranks)[ranks]
    lo, hi = float(min(lo_ref, lo_win)), float(max(hi_ref, hi_win))
    # As a weighted mean of the ends: no overflow where hi - lo would be beyond float range.
    share = np.linspace(0.0, 1.0, bins + 1)
    edges = lo * (1.0 - share) + hi * share
    if not np.all(np.diff(edges) > 0):  # one value on both sides, or a span too fine to cut
        lo, hi = lo - 0.5, hi + 0.5
        edges = lo * (1.0 - share) + hi * share
    # Equal widths: a value's bin is arithmetic, O(n) with no sort (np.histogram sorts the
    # values for explicit edges); an edge's own value goes to the bin it opens, as there.
    # The arithmetic can land one bin off next to an edge: corrected against the edges.
    clipped = np.clip(values, lo, hi)
    scale = bins / (hi - lo)
    if math.isfinite(scale) and scale > 0:
        index = np.clip(np.floor((clipped - lo) * scale), 0, bins - 1).astype(np.intp)
        index -= (clipped < edges[index]) & (index > 0)
        index += (index < bins - 1) & (clipped >= edges[np.minimum(index + 1, bins)])
    else:  # a span too small (subnormal) or too large (overflow) for the arithmetic
        index = np.searchsorted(edges[1:-1], clipped, side="right")
    window_counts = np.bincount(index, minlength=bins)
    # The sorted reference: values below an interior edge, by binary search; the end bins
    # take everything beyond the span, as the window's clipping does.
    below = np.searchsorted(reference_sorted, edges[1:-1], side="left")
    reference_counts = np.diff(np.concatenate(([0], below, [n])))
    return Histogram(
        edges=edges,
        window=window_counts.astype(np.int64),
        reference=reference_counts.astype(np.int64),
    )
