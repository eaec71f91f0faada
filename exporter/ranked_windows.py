"""What the drift worker keeps of a window between two looks: its numeric columns, sorted and
ranked against the reference (:class:`~exporter.stats.ranked.RankedColumns`).

A window's drift tests sort its values and merge them with the reference's at every look,
although from one look to the next only a bucket or two changed. When the sample the tests
use is the whole window (every stratum holds all of its events, and they number no more than
``drift.sample_size``), the worker instead moves only the strata that changed in or out of the
window's ranked columns: strata are told apart by their version
(:attr:`~exporter.window.Reservoirs.versions`, new whenever a stratum's rows change), so one
that is still there is not touched. The results are those of the full computation, bit for
bit (``tests/test_ranked_windows.py``); a window that is sampled, holds a missing value in a
numeric column, or has a rolling reference is computed in full, as before.

One entry per (model, version, window), dropped when the window stops qualifying (sampled, a
missing value, a rolling reference: :meth:`RankedWindows.drop`), when an update fails half way,
or when its model or version goes (:meth:`RankedWindows.keep`). Memory: a copy of the window's
numeric columns and three arrays of their size (values and two ranks), so at most
``4 x 8 x drift.sample_size x features`` bytes a window between looks; an update makes the new
arrays before it lets the old ones go.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np

from exporter.stats.ranked import Ranked, RankedColumns
from exporter.typedefs import FloatArray
from exporter.window import Reservoirs

WindowId = tuple[str, str, str]  # (model, version, window)


@dataclass
class _Entry:
    columns: tuple[int, ...]
    ranked: RankedColumns
    #: The numeric columns of every stratum the ranked columns hold, by the stratum's version.
    held: dict[int, FloatArray] = field(default_factory=dict)


class RankedWindows:
    """The ranked numeric columns of every window sampled whole, kept from look to look."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[WindowId, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def ranked(
        self,
        window: WindowId,
        rows: Reservoirs,
        columns: Sequence[int],
        references: Sequence[FloatArray],
        capacity: int,
    ) -> Ranked | None:
        """The window's ``columns`` of ``rows``, ranked against ``references`` (one sorted
        array per column), brought up to date with the strata in ``rows``; ``None`` when the
        sample the tests draw from ``rows`` (at most ``capacity`` rows) would not be all of
        them, or a column holds a missing value."""
        with self._lock:
            try:
                entry = self._update(window, rows, tuple(columns), references, capacity)
            except BaseException:
                self._entries.pop(window, None)  # half updated: rebuilt at the next look
                raise
            if entry is None:
                self._entries.pop(window, None)
                return None
            self._entries[window] = entry
            return entry.ranked.view()

    def drop(self, window: WindowId) -> None:
        """Forget a window (it is computed in full from now on, or it went)."""
        with self._lock:
            self._entries.pop(window, None)

    def _update(
        self,
        window: WindowId,
        rows: Reservoirs,
        columns: tuple[int, ...],
        references: Sequence[FloatArray],
        capacity: int,
    ) -> _Entry | None:
        if (
            not columns
            or len(rows.versions) != len(rows.rows)
            or rows.events > capacity
            or not rows.complete
            or any(r.shape[1] <= max(columns) for r in rows.rows)
        ):
            return None
        entry = self._entries.get(window)
        if (
            entry is None
            or entry.columns != columns
            or len(entry.ranked.references) != len(references)
            or any(a is not b for a, b in zip(entry.ranked.references, references, strict=True))
        ):
            entry = _Entry(columns, RankedColumns(references))
        now = dict(zip(rows.versions, rows.rows, strict=True))
        gone = [v for v in entry.held if v not in now]
        new = [v for v in now if v not in entry.held]
        blocks = [now[v][:, columns] for v in new]
        if any(np.isnan(b).any() for b in blocks):
            return None
        try:
            if gone:
                entry.ranked.remove(np.concatenate([entry.held[v] for v in gone]))
            if blocks:
                entry.ranked.add(np.concatenate(blocks))
        except ValueError:  # cannot happen while held mirrors ranked; start afresh next look
            return None
        for v in gone:
            del entry.held[v]
        entry.held.update(zip(new, blocks, strict=True))
        return entry

    def keep(self, versions: Collection[tuple[str, str]]) -> None:
        """Drop the entries of windows whose (model, version) is not in ``versions``."""
        with self._lock:
            for window in [w for w in self._entries if (w[0], w[1]) not in versions]:
                del self._entries[window]
