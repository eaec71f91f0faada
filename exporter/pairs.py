"""Champion/challenger pairs of a shadow comparison: one owner, :class:`PairBook`.

In a shadow comparison every version scores the same requests, and one label joins every
version's prediction of its id (:class:`~exporter.join.Join` ``per_version``). When both the
champion's and a challenger's predictions of an id are joined to its label, the id is one
*pair*: (champion's loss, challenger's loss), the loss being 1 for a wrong answer and 0 for a
right one (classification) or the absolute error (regression). Per challenger, five numbers
serve both tasks' paired tests: ``b`` (the champion better: right while the challenger is wrong,
or a smaller absolute error), ``c`` (the reverse) and ``n`` (all pairs) for McNemar's test, and
the sums of ``d`` and ``d^2``, ``d`` the challenger's loss minus the champion's, for the paired
t-test on absolute errors.

:class:`PairBook` (owned by :class:`~exporter.comparison_state.ComparisonState`, under the
model's lock, created when a shadow comparison is declared and dropped when it ends or is
replaced) holds, per id, each version's loss on its joined prediction, until every challenger
is paired with the champion or the id is gone:

* bounded in age: an id leaves ``join.prediction_ttl`` seconds after its first joined
  prediction (the join forgets the id then too, so no later prediction of it would join);
* bounded in size: at most ``join.max_pending_predictions`` ids; when full, the oldest is
  evicted. Both departures are counted (:attr:`PairBook.dropped`) when the id left with a
  challenger still unpaired, since the pair it would have made is lost.

Each completed pair is counted at its label time (the label is the same for every version of
the id) in time buckets per challenger, one :class:`PairWindow` per window, the same buckets as
the versions' quality windows, and cumulatively since the book was created, i.e. since the
comparison started (the sequential test's counts). Memory: ``O(max_pending_predictions)`` small
dicts, plus ``5 x buckets`` numbers per challenger and window.

Pure Python and numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exporter.join import PendingBuffer
from exporter.persist.plain import State, pack, str_ints, unpack
from exporter.snapshot import PairCounts, PairsSnapshot, PairWindowCounts
from exporter.typedefs import FloatArray
from exporter.window import TimeBuckets


class PairWindow:
    """Pair counts ``(b, c, n, sum d, sum d^2)`` per time bucket of one sliding window: exact
    over the window (``b``, ``c`` and ``n`` are whole numbers, exact in float64 below 2^53)."""

    def __init__(self, duration: float, buckets: int) -> None:
        self.time = TimeBuckets(duration, buckets)
        self._counts = np.zeros((buckets, 5), dtype=np.float64)

    def add(self, at: FloatArray, rows: FloatArray, now: float) -> None:
        """Count pairs: ``rows[i]`` (:func:`pair_row`) at its label time ``at[i]``."""
        for bucket, index in self.time.split(at, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._counts[slot] = 0.0
            self._counts[slot] += rows[index].sum(axis=0)

    def counts(self, now: float) -> PairCounts:
        return _pair_counts(self._counts[self.time.live(now)].sum(axis=0))

    def to_state(self) -> State:
        return {"time": self.time.to_state(), "counts": pack(self._counts)}

    def load_state(self, state: State) -> None:
        counts = unpack(state["counts"])
        if counts.shape != self._counts.shape:
            raise ValueError("saved pair buckets do not fit the configured window")
        self.time.load_state(state["time"])
        self._counts = counts


def pair_row(champion_loss: float, challenger_loss: float) -> tuple[float, ...]:
    """What one pair adds: ``(b, c, n, d, d^2)``, ``d`` the challenger's loss minus the
    champion's."""
    d = challenger_loss - champion_loss
    return (float(d > 0), float(d < 0), 1.0, d, d * d)


def _pair_counts(row: Sequence[float] | FloatArray) -> PairCounts:
    b, c, n, total, squares = (float(x) for x in row)
    return PairCounts(int(b), int(c), int(n), total, squares)


class PairBook:
    """Open ids and completed pair counts of one shadow comparison.

    Parameters
    ----------
    champion, challengers : str, sequence of str
        The versions the comparison names.
    windows : sequence of (label, seconds)
        The exporter's windows, in order.
    buckets : int
        Buckets per window (``window_buckets``).
    ttl, capacity : float, int
        How long and how many ids wait for their pairs (``join.prediction_ttl``,
        ``join.max_pending_predictions``).
    """

    def __init__(
        self,
        champion: str,
        challengers: Sequence[str],
        windows: Sequence[tuple[str, float]],
        buckets: int,
        ttl: float,
        capacity: int,
    ) -> None:
        self.champion = champion
        self.challengers = tuple(challengers)
        # id -> {version: loss} for the versions joined so far.
        self._open: PendingBuffer[str, dict[str, float]] = PendingBuffer(ttl, capacity)
        self._windows = {
            name: [(label, PairWindow(seconds, buckets)) for label, seconds in windows]
            for name in self.challengers
        }
        self._totals = {name: np.zeros(5, dtype=np.float64) for name in self.challengers}
        #: Ids that left with a challenger unpaired: by ``"capacity"`` and by ``"ttl"``.
        self.dropped = {"capacity": 0, "ttl": 0}

    def __len__(self) -> int:
        """Ids waiting for a pair."""
        return len(self._open)

    def record(
        self,
        version: str,
        ids: Sequence[str],
        losses: Sequence[float],
        label_times: Sequence[float],
        now: float,
    ) -> None:
        """Note that ``version``'s predictions of ``ids`` were joined to labels (given at
        ``label_times``), with their ``losses`` (1 wrong, 0 right; regression: the absolute
        error); count the pairs this completes."""
        if version != self.champion and version not in self._totals:
            return
        self.expire(now)
        completed: dict[str, tuple[list[float], list[tuple[float, ...]]]] = {}

        def count(challenger: str, row: tuple[float, ...], at: float) -> None:
            times, rows = completed.setdefault(challenger, ([], []))
            times.append(at)
            rows.append(row)

        for ident, loss, at in zip(ids, losses, label_times, strict=True):
            seen = self._open.get(ident)
            if seen is None:
                seen = {}
                for gone in self._open.add(ident, now, seen):
                    self._count_drop(gone, "capacity")
            if version in seen:
                continue  # the join lets a version's prediction of an id join once
            if version == self.champion:
                for other, other_loss in seen.items():
                    count(other, pair_row(loss, other_loss), at)
            elif self.champion in seen:
                count(version, pair_row(seen[self.champion], loss), at)
            seen[version] = float(loss)
            if len(seen) == len(self.challengers) + 1:
                self._open.pop(ident)
        for challenger, (times, rows) in completed.items():
            self._count(challenger, np.array(times), np.array(rows), now)

    def to_state(self) -> State:
        """Copies of the open ids, the windows, the totals and the drop counts."""
        return {
            "open": self._open.to_state(copy=dict),  # each id's losses change in place
            "windows": {
                name: [window.to_state() for _, window in windows]
                for name, windows in self._windows.items()
            },
            "totals": {name: pack(total) for name, total in self._totals.items()},
            "dropped": dict(self.dropped),
        }

    def load_state(self, state: State) -> None:
        """Replace the pairs by those saved (of a book for the same versions and windows)."""
        if set(state["totals"]) != set(self._totals):
            raise ValueError("saved pairs are of other challengers")
        self._open = PendingBuffer.from_state(state["open"], str, dict)
        for name, windows in self._windows.items():
            saved = state["windows"][name]
            if len(saved) != len(windows):
                raise ValueError("saved pairs are of other windows")
            for (_, window), window_state in zip(windows, saved, strict=True):
                window.load_state(window_state)
            self._totals[name] = unpack(state["totals"][name])
        self.dropped = str_ints(state["dropped"])

    def restart_counts(self) -> None:
        """Totals and drop counts from zero (restored after an unclean stop)."""
        self._totals = {name: np.zeros(5, dtype=np.float64) for name in self._totals}
        self.dropped = dict.fromkeys(self.dropped, 0)

    def expire(self, now: float) -> None:
        """Drop the ids that waited ``ttl`` seconds (counted when a pair is lost)."""
        for gone in self._open.expire(now):
            self._count_drop(gone, "ttl")

    def snapshot(self, now: float) -> PairsSnapshot:
        """Per challenger, its pairs in every window and since the start."""
        self.expire(now)
        return PairsSnapshot(
            champion=self.champion,
            challengers=tuple(
                PairWindowCounts(
                    challenger=name,
                    windows=tuple((label, w.counts(now)) for label, w in self._windows[name]),
                    total=_pair_counts(self._totals[name]),
                )
                for name in self.challengers
            ),
            waiting=len(self._open),
            dropped=tuple(sorted(self.dropped.items())),
        )

    def _count(self, challenger: str, at: FloatArray, rows: FloatArray, now: float) -> None:
        """Count a batch's completed pairs of one challenger: since the start and per window."""
        self._totals[challenger] += rows.sum(axis=0)
        for _, window in self._windows[challenger]:
            window.add(at, rows, now)

    def _count_drop(self, seen: dict[str, float], reason: str) -> None:
        if len(seen) < len(self.challengers) + 1:
            self.dropped[reason] += 1
