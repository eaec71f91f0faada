"""A window's numeric columns kept sorted, each value with its rank in its reference.

What :func:`exporter.stats.ks.ranked_statistics` needs: per column, the window's values in
order and, for each, how many reference values are ``<=`` and ``<`` it. A window that slides
by a bucket at a time changes by a few rows per look; :class:`RankedColumns` takes those rows
in and out (:meth:`~RankedColumns.add`, :meth:`~RankedColumns.remove`) at the cost of a few
small searches per column and one pass over the kept arrays: about 1.4 ms for 20 columns of
3,600 values with 60 rows in and 60 out, and the tests on them 3 ms, where sorting the window
and merging it with a 10,000-value reference took 12 ms (``bench/backtest.py`` measures the
whole step).

Every column holds the same number of values: rows with a missing value (NaN) are refused, and
the caller falls back to the full computation for such windows. Pure numpy, no locking: one
owner (the drift worker's :class:`~exporter.ranked_windows.RankedWindows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exporter.typedefs import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Ranked:
    """What :class:`RankedColumns` holds at one moment: its arrays are never written again
    (every update makes new ones), so a reader may use them while the columns change."""

    references: tuple[FloatArray, ...]
    values: FloatArray  # (columns, size), each row sorted
    right: IntArray  # reference values <= each value
    left: IntArray  # reference values < each value

    @property
    def size(self) -> int:
        """Values per column."""
        return int(self.values.shape[1])


class RankedColumns:
    """Sorted values of ``len(references)`` columns, with their ranks in ``references``
    (each sorted, NaN-free).

    >>> ranked = RankedColumns([np.array([1.0, 2.0, 3.0])])
    >>> ranked.add(np.array([[2.0], [0.5], [2.5]]))
    >>> ranked.values.tolist(), ranked.right.tolist(), ranked.left.tolist()
    ([[0.5, 2.0, 2.5]], [[0, 2, 2]], [[0, 1, 2]])
    >>> ranked.remove(np.array([[2.0]]))
    >>> ranked.values.tolist(), ranked.right.tolist()
    ([[0.5, 2.5]], [[0, 2]])
    """

    def __init__(self, references: Sequence[FloatArray]) -> None:
        self.references = tuple(references)
        columns = len(self.references)
        if columns == 0:
            raise ValueError("ranked columns need at least one column (they count the rows)")
        self.values: FloatArray = np.empty((columns, 0))
        self.right: IntArray = np.empty((columns, 0), dtype=np.int64)
        self.left: IntArray = np.empty((columns, 0), dtype=np.int64)

    @property
    def size(self) -> int:
        """Values per column."""
        return int(self.values.shape[1])

    def view(self) -> Ranked:
        for array in (self.values, self.right, self.left):
            array.setflags(write=False)  # replaced, never written, by later updates
        return Ranked(self.references, self.values, self.right, self.left)

    def add(self, rows: FloatArray) -> None:
        """Take in ``rows`` (n, columns), NaN-free."""
        block = self._columns(rows)
        n = block.shape[1]
        if n == 0:
            return
        block.sort(axis=1)
        columns, m = self.values.shape
        right = np.empty((columns, n), dtype=np.int64)
        left = np.empty((columns, n), dtype=np.int64)
        # Where each new value lands among the kept ones and the new ones before it.
        slots = np.empty((columns, n), dtype=np.int64)
        for c, reference in enumerate(self.references):
            right[c] = np.searchsorted(reference, block[c], side="right")
            left[c] = np.searchsorted(reference, block[c], side="left")
            slots[c] = np.searchsorted(self.values[c], block[c], side="right")
        slots += np.arange(n)
        slots += (np.arange(columns) * (m + n))[:, None]
        new_at = slots.ravel()
        kept = np.ones(columns * (m + n), dtype=bool)
        kept[new_at] = False
        kept_at = np.flatnonzero(kept)  # integer scatters: several times faster than masks
        shape = (columns, m + n)
        self.values = _merged(self.values, block, kept_at, new_at, shape)
        self.right = _merged(self.right, right, kept_at, new_at, shape)
        self.left = _merged(self.left, left, kept_at, new_at, shape)

    def remove(self, rows: FloatArray) -> None:
        """Take out ``rows`` (n, columns), each row once: rows that were added."""
        block = self._columns(rows)
        n = block.shape[1]
        if n == 0:
            return
        columns, m = self.values.shape
        if n > m:
            raise ValueError(f"cannot remove {n} values from columns of {m}")
        block.sort(axis=1)
        # The i-th copy of a value to remove is the i-th kept copy of it: runs of equal values
        # are contiguous, so the first kept copy plus the copy's number within its run.
        runs = np.ones((columns, n), dtype=bool)
        np.not_equal(block[:, 1:], block[:, :-1], out=runs[:, 1:])
        index = np.arange(n)
        start = np.maximum.accumulate(np.where(runs, index, 0), axis=1)
        slots = index - start
        for c in range(columns):
            slots[c] += np.searchsorted(self.values[c], block[c], side="left")
        if slots.max() >= m or not np.array_equal(
            np.take_along_axis(self.values, slots, axis=1), block
        ):
            raise ValueError("removing values that the columns do not hold")
        slots += (np.arange(columns) * m)[:, None]
        keep = np.ones(columns * m, dtype=bool)
        keep[slots.ravel()] = False
        kept_at = np.flatnonzero(keep)
        shape = (columns, m - n)
        self.values = self.values.ravel().take(kept_at).reshape(shape)
        self.right = self.right.ravel().take(kept_at).reshape(shape)
        self.left = self.left.ravel().take(kept_at).reshape(shape)

    def _columns(self, rows: FloatArray) -> FloatArray:
        if rows.ndim != 2 or rows.shape[1] != len(self.references):
            raise ValueError(f"rows have shape {rows.shape}, expected (n, {len(self.references)})")
        if np.isnan(rows).any():
            raise ValueError("ranked columns hold no missing values")
        return np.array(rows.T, order="C")  # a copy, always: it is sorted in place


def _merged(
    kept: np.ndarray,
    new: np.ndarray,
    kept_at: np.ndarray,
    new_at: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """``kept`` and ``new`` interleaved into ``shape``: their values at the flat positions
    ``kept_at`` and ``new_at``."""
    out = np.empty(shape[0] * shape[1], dtype=kept.dtype)
    out[new_at] = new.ravel()
    out[kept_at] = kept.ravel()
    return out.reshape(shape)
