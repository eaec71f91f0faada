"""Sliding time windows with bounded memory.

A window of duration ``W`` is a ring of ``B`` time buckets of width ``W / B``. At time ``now`` it
covers the current (partial) bucket and the ``B - 1`` before it, so its oldest edge moves in steps
of ``W / B``: with the default 60 buckets, a 1 h window covers between 59 and 60 minutes. Within
that span, counts are exact at any event rate because each bucket keeps aggregates, not events.

* :class:`QualityWindow` keeps per-bucket confusion counts (classification) or error sums
  (regression): exact quality over the window in O(B x K^2) memory.
* :class:`SampleWindow` keeps, per bucket, the exact event count and a uniform reservoir of
  feature rows; :func:`draw_sample` draws a uniform sample of the whole window from them.

Pure numpy: this module knows nothing of HTTP or Prometheus.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np

from exporter.persist.plain import State, pack, unpack
from exporter.typedefs import BoolArray, FloatArray, IndexArray, IntArray

_NO_BUCKET = np.iinfo(np.int64).min
#: Versions of strata's rows: unique in the process, a new one whenever a stratum's rows change.
_VERSIONS = itertools.count(1)


class TimeBuckets:
    """Which ring slot holds which time bucket; the bookkeeping shared by both windows.

    The ring holds ``history`` windows' worth of buckets (2 for a rolling reference: the current
    window and the one before it); :meth:`live` selects one window of them.
    """

    def __init__(self, duration: float, buckets: int, history: int = 1) -> None:
        if not duration > 0:
            raise ValueError(f"window duration must be > 0 seconds, got {duration!r}")
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history!r}")
        self.duration = float(duration)
        self.count = int(buckets)  # buckets per window
        self.ring = self.count * int(history)  # slots kept
        self.width = self.duration / self.count
        self.ids = np.full(self.ring, _NO_BUCKET, dtype=np.int64)

    def to_state(self) -> State:
        """Which bucket each slot holds (buckets are wall-clock times over the width: restored,
        they age out of the window as they would have)."""
        return {"ids": pack(self.ids)}

    def load_state(self, state: State) -> None:
        ids = unpack(state["ids"])
        if ids.shape != self.ids.shape:
            raise ValueError(f"{ids.shape[0]} bucket slots saved, {self.ring} configured")
        self.ids = ids.astype(np.int64)

    def bucket_of(self, times: FloatArray) -> IntArray:
        return np.floor_divide(times, self.width).astype(np.int64)

    def current(self, now: float) -> int:
        return math.floor(now / self.width)

    def live(self, now: float, windows_back: int = 0) -> BoolArray:
        """Mask of slots whose bucket lies in the window ending at ``now`` (or, with
        ``windows_back=1``, in the window before it)."""
        cur = self.current(now) - windows_back * self.count
        return (self.ids > cur - self.count) & (self.ids <= cur)

    def kept(self, now: float) -> BoolArray:
        """Mask of slots still within the kept history."""
        cur = self.current(now)
        return (self.ids > cur - self.ring) & (self.ids <= cur)

    def claim(self, bucket: int) -> tuple[int, bool]:
        """Slot for ``bucket`` and whether it must be reset (it held an older bucket)."""
        slot = bucket % self.ring
        fresh = bool(self.ids[slot] != bucket)
        if fresh:
            self.ids[slot] = bucket
        return slot, fresh

    def split(self, times: FloatArray, now: float) -> list[tuple[int, IndexArray]]:
        """Group event indices by bucket, dropping events older than the window.

        Times after ``now`` count as ``now``: a future bucket would share a slot with a live one.
        """
        cur = self.current(now)
        buckets = np.minimum(self.bucket_of(times), cur)
        keep = buckets > cur - self.ring
        if not keep.all():
            buckets = np.where(keep, buckets, _NO_BUCKET)
        first = int(buckets[0])
        if (buckets == first).all():  # the common case: a batch lands in one bucket
            if first == _NO_BUCKET:
                return []
            return [(first, np.arange(buckets.shape[0]))]
        groups: list[tuple[int, IndexArray]] = []
        for b in np.unique(buckets):
            if b != _NO_BUCKET:
                groups.append((int(b), np.flatnonzero(buckets == b)))
        return groups


class QualityWindow:
    """Exact classification or regression aggregates over a sliding window.

    Classification keeps a ``(B, K, K)`` confusion count per bucket (``K`` grows as classes
    appear); regression keeps ``(count, sum |error|, sum error^2)`` per bucket.
    """

    def __init__(self, duration: float, buckets: int, *, regression: bool) -> None:
        self.time = TimeBuckets(duration, buckets)
        self.regression = regression
        self._k = 0
        self._confusion = np.zeros((buckets, 0, 0), dtype=np.int64)
        self._errors = np.zeros((buckets, 3), dtype=np.float64)

    def _grow(self, k: int) -> None:
        if k <= self._k:
            return
        grown = np.zeros((self.time.count, k, k), dtype=np.int64)
        grown[:, : self._k, : self._k] = self._confusion
        self._confusion = grown
        self._k = k

    def add_outcomes(
        self, times: FloatArray, actual: IntArray, predicted: IntArray, now: float
    ) -> None:
        """Count classification outcomes (class indices) at their label times."""
        if times.shape[0] == 0:
            return
        self._grow(int(max(actual.max(), predicted.max())) + 1)
        k = self._k
        for bucket, idx in self.time.split(times, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._confusion[slot] = 0
            flat = actual[idx] * k + predicted[idx]
            self._confusion[slot] += np.bincount(flat, minlength=k * k).reshape(k, k)

    def add_errors(self, times: FloatArray, errors: FloatArray, now: float) -> None:
        """Accumulate regression errors (prediction - truth) at their label times."""
        if times.shape[0] == 0:
            return
        for bucket, idx in self.time.split(times, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._errors[slot] = 0.0
            e = errors[idx]
            self._errors[slot, 0] += e.shape[0]
            self._errors[slot, 1] += np.sum(np.abs(e))
            self._errors[slot, 2] += np.sum(e * e)

    def to_state(self) -> State:
        """A copy of the buckets and their aggregates."""
        return {
            "time": self.time.to_state(),
            "regression": self.regression,
            "confusion": pack(self._confusion),
            "errors": pack(self._errors),
        }

    @classmethod
    def from_state(cls, state: State, duration: float, buckets: int) -> QualityWindow:
        window = cls(duration, buckets, regression=bool(state["regression"]))
        window.time.load_state(state["time"])
        confusion, errors = unpack(state["confusion"]), unpack(state["errors"])
        if confusion.ndim != 3 or confusion.shape[0] != buckets or errors.shape != (buckets, 3):
            raise ValueError("saved quality buckets do not fit the configured window")
        window._confusion, window._errors, window._k = confusion, errors, confusion.shape[1]
        return window

    def confusion(self, now: float) -> IntArray:
        """Confusion counts summed over the live buckets (a fresh array)."""
        out: IntArray = self._confusion[self.time.live(now)].sum(axis=0, dtype=np.int64)
        if out.ndim != 2:  # no class seen yet
            return np.zeros((0, 0), dtype=np.int64)
        return out

    def error_sums(self, now: float) -> tuple[int, float, float]:
        live = self._errors[self.time.live(now)]
        return int(live[:, 0].sum()), float(live[:, 1].sum()), float(live[:, 2].sum())

    def live_buckets(self, now: float) -> int:
        """Live buckets holding data: without new data, the window's content changes exactly
        when this drops (a bucket with data leaves it)."""
        live = self.time.live(now)
        if self.regression:
            return int(np.count_nonzero(self._errors[live, 0]))
        confusion = self._confusion[live]
        if confusion.size == 0:
            return 0
        return int(np.count_nonzero(confusion.any(axis=(1, 2))))


@dataclass(frozen=True, slots=True)
class WindowSample:
    """A uniform sample of the rows of a window.

    ``rows`` is (n, F) with NaN for missing values; ``events`` is the exact number of events
    in the window, of which ``rows`` is a uniform sample without replacement.
    """

    rows: FloatArray
    events: int


class _Stratum:
    """A uniform reservoir of the ``seen`` rows that reached it, holding at most ``cap``.

    A stratum is *open* (takes new rows) while ``cap`` is the window's capacity; thinning lowers
    ``cap`` and closes it, because a fixed-size sample of a growing stream grows sparser: new
    rows of its bucket then go to a fresh stratum instead.
    """

    __slots__ = ("_rows", "cap", "seen", "version")

    def __init__(self, rows: FloatArray, seen: int, cap: int) -> None:
        self.rows = rows
        self.seen = seen
        self.cap = cap

    @property
    def rows(self) -> FloatArray:
        return self._rows

    @rows.setter
    def rows(self, rows: FloatArray) -> None:
        # Every change of the rows goes through here, so equal versions mean equal rows (what
        # exporter.ranked_windows relies on): an in-place write must be followed by assigning
        # the array written to, as the reservoir does.
        self._rows = rows
        self.version = next(_VERSIONS)


class SampleWindow:
    """Exact event counts and a bounded uniform sample of feature rows over a sliding window.

    Each bucket keeps its exact event count and one or more *strata*: reservoirs (Vitter's
    algorithm R) of consecutive runs of its rows. The newest bucket may hold up to ``capacity``
    rows. When the buckets together hold more than ``3 * capacity`` rows, every stratum of the
    older buckets is thinned to ``1.5 * capacity * n_s / N`` rows (``n_s`` the events it saw, ``N``
    the window's): a uniform subsample of a uniform sample is uniform. A thinned stratum takes
    no more rows: rows that still arrive for its bucket (late events, clients whose clocks lag)
    open a new stratum with the full capacity, so every stratum holds at least its proportional
    share of a ``capacity``-row sample of the window. (Carrying on with the lowered capacity
    would keep the stratum uniform but ever sparser, and :func:`draw_sample` takes from every
    stratum in proportion: one sparse stratum would shrink the whole sample.) A bucket keeps at
    most :attr:`MAX_STRATA`; beyond that its two oldest are merged into one proportional sample
    of both. Memory stays below ``3 * capacity`` rows plus one batch.

    :func:`draw_sample` then draws from each stratum in proportion to its count: a uniform
    (proportionally stratified) sample of the whole window. If the window shrinks a lot after
    thinning (old busy buckets expire), a stratum may be short of its share and the sample is
    smaller; its size is exported.
    """

    #: Thin older buckets when the window holds more than this many times ``capacity`` rows.
    BUDGET = 3.0
    #: ...down to this many times their proportional share of ``capacity``.
    KEEP = 1.5
    #: Strata a bucket may hold before its two oldest are merged.
    MAX_STRATA = 4

    def __init__(
        self, duration: float, buckets: int, capacity: int, *, seed: int = 0, history: int = 1
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.time = TimeBuckets(duration, buckets, history)
        self.capacity = int(capacity)
        self.history = int(history)
        self.features = 0
        ring = self.time.ring
        self._rng = np.random.default_rng(seed)
        self._strata: list[list[_Stratum]] = [[self._empty()] for _ in range(ring)]
        self._seen = np.zeros(ring, dtype=np.int64)  # events per slot: the strata's sum

    def _empty(self) -> _Stratum:
        return _Stratum(np.empty((0, self.features), dtype=np.float64), 0, self.capacity)

    def _reset(self, slot: int) -> None:
        self._seen[slot] = 0
        self._strata[slot] = [self._empty()]

    def grow_features(self, features: int) -> None:
        """Widen every reservoir to ``features`` columns; old rows get NaN (not observed)."""
        if features <= self.features:
            return
        for strata in self._strata:
            for stratum in strata:
                grown = np.full((stratum.rows.shape[0], features), np.nan)
                grown[:, : stratum.rows.shape[1]] = stratum.rows
                stratum.rows = grown
        self.features = features

    def add(self, times: FloatArray, rows: FloatArray, now: float) -> None:
        """Add feature rows (n, F) observed at ``times``."""
        if rows.shape[0] == 0:
            return
        self.grow_features(rows.shape[1])
        if rows.shape[1] < self.features:
            padded = np.full((rows.shape[0], self.features), np.nan)
            padded[:, : rows.shape[1]] = rows
            rows = padded
        for bucket, idx in self.time.split(times, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._reset(slot)
            self._reservoir_add(self._open_stratum(slot), rows[idx])
            self._seen[slot] += idx.shape[0]
        self._rebalance(now)

    def _open_stratum(self, slot: int) -> _Stratum:
        strata = self._strata[slot]
        if strata[-1].cap >= self.capacity:
            return strata[-1]
        if len(strata) >= self.MAX_STRATA:
            first, second = strata[0], strata[1]
            merged = draw_sample(
                [first.rows, second.rows],
                np.array([first.seen, second.seen], dtype=np.int64),
                first.rows.shape[0] + second.rows.shape[0],
                seed=int(self._rng.integers(2**63)),
            )
            size = merged.rows.shape[0]
            strata[:2] = [_Stratum(merged.rows, first.seen + second.seen, size)]
        stratum = self._empty()
        strata.append(stratum)
        return stratum

    def to_state(self) -> State:
        """A copy of the buckets, their strata, and the sampler's state (so that a restored
        window samples on exactly as it would have)."""
        return {
            "time": self.time.to_state(),
            "features": self.features,
            "strata": [
                [{"rows": pack(s.rows), "seen": s.seen, "cap": s.cap} for s in strata]
                for strata in self._strata
            ],
            # PCG64's state holds 128-bit integers, beyond msgpack: as JSON text.
            "rng": json.dumps(self._rng.bit_generator.state),
        }

    @classmethod
    def from_state(
        cls, state: State, duration: float, buckets: int, capacity: int, *, history: int = 1
    ) -> SampleWindow:
        window = cls(duration, buckets, capacity, history=history)
        window.time.load_state(state["time"])
        features = int(state["features"])
        slots = [
            [_Stratum(unpack(s["rows"]), int(s["seen"]), int(s["cap"])) for s in strata]
            for strata in state["strata"]
        ]
        if len(slots) != window.time.ring or not all(
            0 < len(strata) <= cls.MAX_STRATA
            and all(
                s.rows.ndim == 2
                and s.rows.shape[1] == features
                and s.rows.shape[0] <= min(s.cap, s.seen)
                and 0 < s.cap <= capacity
                for s in strata
            )
            for strata in slots
        ):
            raise ValueError("saved reservoirs do not fit the configured window")
        window.features = features
        window._strata = slots
        window._seen = np.array([sum(s.seen for s in strata) for strata in slots], np.int64)
        window._rng.bit_generator.state = json.loads(state["rng"])
        return window

    def held(self) -> int:
        """Rows held in memory, over every slot."""
        return sum(s.rows.shape[0] for strata in self._strata for s in strata)

    def _reservoir_add(self, stratum: _Stratum, batch: FloatArray) -> None:
        cap = stratum.cap
        seen = stratum.seen
        held = stratum.rows
        n = batch.shape[0]
        positions = seen + np.arange(n)
        direct = positions < cap
        if direct.any():
            take = int(direct.sum())
            held = np.concatenate([held, batch[:take]]) if held.shape[0] else batch[:take].copy()
        if not direct.all():
            rest = batch[~direct]
            # Algorithm R: the j-th item (0-based) replaces a uniform slot in [0, j] if < cap.
            draws = self._rng.integers(0, positions[~direct] + 1)
            accept = draws < cap
            targets = draws[accept]
            chosen = rest[accept]
            if targets.shape[0]:
                # Later items overwrite earlier ones at the same slot, as in the sequential
                # algorithm; numpy does not promise an order for repeated fancy indices.
                rev_unique, rev_first = np.unique(targets[::-1], return_index=True)
                last = targets.shape[0] - 1 - rev_first
                held[rev_unique] = chosen[last]
        stratum.rows = held
        stratum.seen = seen + n

    def _rebalance(self, now: float) -> None:
        live = self.time.kept(now)
        for dead in np.flatnonzero(~live).tolist():
            if self._seen[dead]:
                self._reset(dead)  # expired: free its memory now
        if self.held() <= self.BUDGET * self.capacity * self.history:
            return
        live_slots = np.flatnonzero(live)
        total = int(self._seen[live_slots].sum())
        newest = int(live_slots[np.argmax(self.time.ids[live_slots])])
        for slot in live_slots.tolist():
            if slot == newest:
                continue
            for stratum in self._strata[slot]:
                share = self.KEEP * self.capacity * self.history * stratum.seen / total
                keep = math.ceil(share)
                rows = stratum.rows
                if rows.shape[0] > keep:
                    pick = self._rng.choice(rows.shape[0], keep, replace=False)
                    stratum.rows = rows[np.sort(pick)]
                    stratum.cap = keep

    def events(self, now: float, windows_back: int = 0) -> int:
        """Exact events in the window (``windows_back=1``: in the window before it)."""
        return int(self._seen[self.time.live(now, windows_back)].sum())

    def live_buckets(self, now: float) -> int:
        """Live buckets holding events (see :meth:`QualityWindow.live_buckets`)."""
        return int(np.count_nonzero(self._seen[self.time.live(now)]))

    def snapshot(self, now: float, windows_back: int = 0) -> Reservoirs:
        """Copies of the live strata and their exact counts (``windows_back=1``: those of the
        previous window, kept when ``history`` is 2)."""
        live = np.flatnonzero(self.time.live(now, windows_back)).tolist()
        strata = [s for slot in live for s in self._strata[slot]]
        return Reservoirs(
            tuple(s.rows.copy() for s in strata),
            np.array([s.seen for s in strata], dtype=np.int64),
            self.features,
            tuple(s.version for s in strata),
        )


@dataclass(frozen=True, slots=True)
class Reservoirs:
    """A copy of a window's reservoirs (strata): ``rows[i]`` is a uniform sample of the
    ``seen[i]`` events of stratum i; every row has at most ``width`` columns."""

    rows: tuple[FloatArray, ...]
    seen: IntArray
    width: int
    #: ``versions[i]`` identifies the content of ``rows[i]``: strata of one version hold the
    #: same rows (what lets the drift worker reuse what it derived from them).
    versions: tuple[int, ...] = field(default=())

    @property
    def events(self) -> int:
        return int(self.seen.sum())

    @property
    def complete(self) -> bool:
        """Every stratum holds all of its events: the window's rows, not a sample of them."""
        return all(r.shape[0] == s for r, s in zip(self.rows, self.seen.tolist(), strict=True))

    def draw(self, capacity: int, width: int, *, seed: int = 0) -> WindowSample:
        """A uniform sample of at most ``capacity`` rows of the window, ``width`` columns
        wide (columns added after a row was stored are missing: NaN)."""
        if not self.rows:
            return WindowSample(rows=np.empty((0, width)), events=0)
        drawn = draw_sample(list(self.rows), self.seen, capacity, seed=seed)
        if drawn.rows.shape[1] >= width:
            return drawn
        grown = np.full((drawn.rows.shape[0], width), np.nan)
        grown[:, : drawn.rows.shape[1]] = drawn.rows
        return WindowSample(rows=grown, events=drawn.events)


def draw_sample(
    reservoirs: list[FloatArray], seen: IntArray, capacity: int, *, seed: int = 0
) -> WindowSample:
    """Uniform sample of at most ``capacity`` rows of a window from its bucket reservoirs.

    Bucket ``i`` saw ``seen[i]`` events and kept ``reservoirs[i]``, a uniform sample of them.
    Drawing from each bucket in proportion to ``seen`` gives a uniform sample of the window.

    Examples
    --------
    >>> r = [np.array([[1.0], [2.0]]), np.array([[3.0]])]
    >>> s = draw_sample(r, np.array([2, 1]), capacity=10)
    >>> sorted(s.rows[:, 0].tolist()), s.events
    ([1.0, 2.0, 3.0], 3)
    """
    total = int(seen.sum())
    width = reservoirs[0].shape[1] if reservoirs else 0
    if total == 0:
        return WindowSample(rows=np.empty((0, width)), events=0)
    held = np.array([r.shape[0] for r in reservoirs], dtype=np.int64)
    m = min(capacity, total)
    nonzero = seen > 0
    # The largest m for which every bucket's proportional share fits in its reservoir.
    m = min(m, int(np.floor(np.min(held[nonzero] * total / seen[nonzero]))))
    share = m * seen / total
    alloc = np.floor(share).astype(np.int64)
    remainder = m - int(alloc.sum())
    if remainder > 0:
        order = np.argsort(-(share - alloc), kind="stable")
        alloc[order[:remainder]] += 1
    alloc = np.minimum(alloc, held)
    rng = np.random.default_rng(seed)
    parts: list[FloatArray] = []
    for rows, k in zip(reservoirs, alloc, strict=True):
        if k == 0:
            continue
        if k >= rows.shape[0]:
            parts.append(rows)
        else:
            parts.append(rows[rng.choice(rows.shape[0], int(k), replace=False)])
    if not parts:
        return WindowSample(rows=np.empty((0, width)), events=total)
    return WindowSample(rows=np.concatenate(parts), events=total)
