"""Champion/challenger pairs of a shadow comparison: one owner, :class:`PairBook`.

In a shadow comparison every version scores the same requests, and one label joins every
version's prediction of its id (:class:`~exporter.join.Join` ``per_version``). When both the
champion's and a challenger's predictions of an id are joined to its label, the id is one
*pair*: (champion right?, challenger right?). McNemar's test needs only three counts per
challenger: ``b`` (champion right, challenger wrong), ``c`` (the reverse) and ``n`` (all pairs).

:class:`PairBook` (owned by :class:`~exporter.model.ModelState`, under its lock, created when a
shadow comparison is declared and dropped when it ends or is replaced) holds, per id, whether
each version's joined prediction was right, until every challenger is paired with the champion
or the id is gone:

* bounded in age: an id leaves ``join.prediction_ttl`` seconds after its first joined
  prediction (the join forgets the id then too, so no later prediction of it would join);
* bounded in size: at most ``join.max_pending_predictions`` ids; when full, the oldest is
  evicted. Both departures are counted (:attr:`PairBook.dropped`) when the id left with a
  challenger still unpaired, since the pair it would have made is lost.

Each completed pair is counted at its label time (the label is the same for every version of
the id) in time buckets per challenger, one :class:`PairWindow` per window, the same buckets as
the versions' quality windows, and cumulatively since the book was created, i.e. since the
comparison started (the sequential test's counts). Memory: ``O(max_pending_predictions)`` small
dicts, plus ``3 x buckets`` integers per challenger and window.

Pure Python and numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exporter.join import PendingBuffer
from exporter.snapshot import PairCounts, PairsSnapshot, PairWindowCounts
from exporter.window import TimeBuckets


class PairWindow:
    """Pair counts ``(b, c, n)`` per time bucket of one sliding window: exact over the window."""

    def __init__(self, duration: float, buckets: int) -> None:
        self.time = TimeBuckets(duration, buckets)
        self._counts = np.zeros((buckets, 3), dtype=np.int64)

    def add(self, at: float, champion_right: bool, challenger_right: bool, now: float) -> None:
        """Count one pair at its label time ``at``."""
        for bucket, _ in self.time.split(np.array([at], dtype=np.float64), now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._counts[slot] = 0
            row = self._counts[slot]
            row[0] += champion_right and not challenger_right
            row[1] += challenger_right and not champion_right
            row[2] += 1

    def counts(self, now: float) -> PairCounts:
        b, c, n = (int(x) for x in self._counts[self.time.live(now)].sum(axis=0))
        return PairCounts(b, c, n)


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
        # id -> {version: right?} for the versions joined so far.
        self._open: PendingBuffer[str, dict[str, bool]] = PendingBuffer(ttl, capacity)
        self._windows = {
            name: [(label, PairWindow(seconds, buckets)) for label, seconds in windows]
            for name in self.challengers
        }
        self._totals = {name: [0, 0, 0] for name in self.challengers}
        #: Ids that left with a challenger unpaired: by ``"capacity"`` and by ``"ttl"``.
        self.dropped = {"capacity": 0, "ttl": 0}

    def __len__(self) -> int:
        """Ids waiting for a pair."""
        return len(self._open)

    def record(
        self,
        version: str,
        ids: Sequence[str],
        right: Sequence[bool],
        label_times: Sequence[float],
        now: float,
    ) -> None:
        """Note that ``version``'s predictions of ``ids`` were joined to labels (given at
        ``label_times``) and whether each was right; count the pairs this completes."""
        if version != self.champion and version not in self._totals:
            return
        self.expire(now)
        for ident, ok, at in zip(ids, right, label_times, strict=True):
            seen = self._open.get(ident)
            if seen is None:
                seen = {}
                for gone in self._open.add(ident, now, seen):
                    self._count_drop(gone, "capacity")
            if version in seen:
                continue  # the join lets a version's prediction of an id join once
            if version == self.champion:
                for other, other_ok in seen.items():
                    self._count(other, ok, other_ok, at, now)
            elif self.champion in seen:
                self._count(version, seen[self.champion], ok, at, now)
            seen[version] = bool(ok)
            if len(seen) == len(self.challengers) + 1:
                self._open.pop(ident)

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
                    total=PairCounts(*self._totals[name]),
                )
                for name in self.challengers
            ),
            waiting=len(self._open),
            dropped=tuple(sorted(self.dropped.items())),
        )

    def _count(
        self, challenger: str, champion_right: bool, challenger_right: bool, at: float, now: float
    ) -> None:
        total = self._totals[challenger]
        total[0] += champion_right and not challenger_right
        total[1] += challenger_right and not champion_right
        total[2] += 1
        for _, window in self._windows[challenger]:
            window.add(at, champion_right, challenger_right, now)

    def _count_drop(self, seen: dict[str, bool], reason: str) -> None:
        if len(seen) < len(self.challengers) + 1:
            self.dropped[reason] += 1
