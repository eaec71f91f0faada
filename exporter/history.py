"""A bounded in-memory history of summary values: one ring of points per series. Pure.

A series is a (model, name, labels) triple, ``labels`` the pairs ``/metrics`` shows besides
``model`` (``model_version``, ``window``, ``average``). Time is cut into slots of
``resolution`` seconds, and every series of a model keeps the last ``points`` slots
(``retention / resolution``): one ``float64`` per slot in a ring, allocated when the series gets
its first value. A point's time is its slot's start, implied by the slot, so it costs nothing:
**8 x points bytes a series** (11,520 at the defaults, 1 minute for 24 hours), plus about
330 bytes of bookkeeping (the array header, its key and labels; bench/history_memory.py).
A slot holds the last value recorded in it; NaN marks a slot with no value (none recorded,
or none defined then, such as accuracy before ``quality.min_samples`` labels) and is never
read back as a point.

:meth:`History.record` takes a model's whole picture at one time: a series of the model that it
does not list has no value at that time. The store bounds what it holds: at most ``max_models``
models and ``max_series`` series a model (:func:`exporter.history_recorder.series_bound`
derives it from the limits); what would go beyond is refused and counted
(:attr:`History.refused`), never grown into. A model or version removed from the store is
forgotten (:meth:`History.forget`, a listener of the store like the drift cache's). A recording
draws a ticket (:meth:`History.recording`) before it takes its snapshots, and what it records
of a model or version removed after that is refused: a recording in flight cannot bring back
what was removed.

One lock: :meth:`record` takes it once per model, :meth:`read` once to copy the rings it
selects; nothing else is done under it.

>>> h = History(resolution=60, points=3, max_models=1, max_series=4)
>>> h1 = (("model_version", "v1"), ("window", "1h"))
>>> h.record("fraud", 120.0, [("accuracy", h1, 0.5)])
>>> h.record("fraud", 150.0, [("accuracy", h1, 0.75)])  # the same slot: replaced
>>> h.record("fraud", 180.0, [("accuracy", h1, None)])  # no value in this slot
>>> h.record("fraud", 300.0, [("accuracy", h1, 0.9)])  # 240 s: never recorded
>>> [(s.name, dict(s.labels), s.times.tolist(), s.values.tolist()) for s in h.read("fraud")]
[('accuracy', {'model_version': 'v1', 'window': '1h'}, [300.0], [0.9])]
>>> h.record("fraud", 360.0, [("accuracy", h1, 0.8)])
>>> [(s.times.tolist(), s.values.tolist()) for s in h.read("fraud", since=300)]
[([300.0, 360.0], [0.9, 0.8])]

The slot of 120 s fell out of the three kept (240, 300 and 360 s).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from exporter.typedefs import FloatArray

#: A series' labels besides ``model``: (name, value) pairs in a fixed order.
Labels = tuple[tuple[str, str], ...]
#: One value of a recording: (series name, labels, value); None or a non-finite value is none.
Row = tuple[str, Labels, float | None]
SeriesKey = tuple[str, Labels]


@dataclass(frozen=True, slots=True)
class Series:
    """A copy of one series' points, oldest first; ``times`` are slot starts (epoch seconds).
    Both arrays are read-only and the same length."""

    name: str
    labels: Mapping[str, str]
    times: FloatArray
    values: FloatArray


@dataclass(frozen=True, slots=True)
class Refused:
    """What :meth:`History.record` refused, cumulative: new models beyond ``max_models``, new
    series beyond ``max_series``, and recordings of a model or version removed since their
    ticket."""

    models: int = 0
    series: int = 0
    removed: int = 0


class _Model:
    """One model's rings: the latest slot recorded, and per series its ring (slot s at
    position s % points)."""

    __slots__ = ("last", "rings")

    def __init__(self) -> None:
        self.last: int | None = None
        self.rings: dict[SeriesKey, FloatArray] = {}


class History:
    """The rings of every model's series, within ``max_models`` x ``max_series`` of them.

    Parameters
    ----------
    resolution : float
        Seconds a slot spans (``history.resolution``).
    points : int
        Slots kept per series (``history.retention / history.resolution``).
    max_models, max_series : int
        At most so many models, and so many series a model.
    """

    def __init__(self, *, resolution: float, points: int, max_models: int, max_series: int) -> None:
        if not (resolution > 0 and math.isfinite(resolution)):
            raise ValueError(f"resolution must be a positive number of seconds, got {resolution}")
        for name, value in (
            ("points", points),
            ("max_models", max_models),
            ("max_series", max_series),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.resolution = float(resolution)
        self.points = points
        self.max_models = max_models
        self.max_series = max_series
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._tickets = 0
        self._inflight: set[int] = set()  # tickets of the recordings under way
        #: (model, version or None) -> the first ticket drawn after its removal; kept while a
        #: recording with an earlier ticket is open (only those must refuse it).
        self._removed: dict[tuple[str, str | None], int] = {}
        self._refused = Refused()

    @property
    def bytes_per_series(self) -> int:
        """The ring's bytes: 8 per point."""
        return 8 * self.points

    def slot(self, t: float) -> int:
        """The slot holding time ``t``.

        >>> History(resolution=60, points=2, max_models=1, max_series=1).slot(119.9)
        1
        """
        return math.floor(t / self.resolution)

    # -- writers -------------------------------------------------------------------------

    @contextmanager
    def recording(self) -> Iterator[int]:
        """A ticket for a recording: draw it before taking the snapshots it records, pass it
        to :meth:`record`. While it is open, removals are remembered to refuse its rows."""
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
            self._inflight.add(ticket)
        try:
            yield ticket
        finally:
            with self._lock:
                self._inflight.discard(ticket)
                oldest = min(self._inflight, default=None)
                # A removal matters to the open tickets drawn before it only.
                for removal in [
                    r for r, at in self._removed.items() if oldest is None or at <= oldest
                ]:
                    del self._removed[removal]

    def record(self, model: str, t: float, rows: Iterable[Row], ticket: int | None = None) -> None:
        """The values of ``model``'s series at ``t``: each listed series gets its value in
        ``t``'s slot (replacing what the slot held), every other series of the model none.

        ``ticket`` (from :meth:`recording`): rows of a model or version removed after it was
        drawn are dropped, and the series of such a version (a new one of the same name)
        left as they are. A time more than the retention before the latest slot recorded (a
        clock stepped back that far) starts the model's rings afresh.
        """
        slot = self.slot(t)
        values: dict[SeriesKey, float] = {}
        for name, labels, value in rows:
            if value is not None and math.isfinite(value):
                values[(name, labels)] = float(value)
            else:
                values.setdefault((name, labels), math.nan)
        with self._lock:
            untouched: set[str] = set()
            if ticket is not None:
                if self._removed.get((model, None), 0) > ticket:
                    self._count(removed=1)
                    return
                untouched = {
                    v
                    for (m, v), at in self._removed.items()
                    if m == model and v is not None and at > ticket
                }
                if untouched:
                    self._count(removed=1)
                    values = {k: x for k, x in values.items() if _version(k[1]) not in untouched}
            entry = self._models.get(model)
            if entry is None:
                if all(math.isnan(v) for v in values.values()):
                    return  # nothing to keep: no ring is allocated for no value
                if len(self._models) >= self.max_models:
                    self._count(models=1)
                    return
                entry = self._models[model] = _Model()
            self._advance(entry, slot)
            position = slot % self.points
            for key, ring in entry.rings.items():
                if key in values:
                    ring[position] = values.pop(key)
                elif not untouched or _version(key[1]) not in untouched:
                    ring[position] = math.nan
            for key, value in values.items():
                if math.isnan(value):
                    continue
                if len(entry.rings) >= self.max_series:
                    self._count(series=1)
                    continue
                ring = np.full(self.points, math.nan)
                ring[position] = value
                entry.rings[key] = ring

    def _advance(self, entry: _Model, slot: int) -> None:
        """Move the model's latest slot to ``slot``, emptying the slots it moves over."""
        last = entry.last
        if last is not None and last - self.points < slot <= last:
            return
        if last is None or slot <= last - self.points or slot - last >= self.points:
            for ring in entry.rings.values():
                ring.fill(math.nan)
        else:
            # Slots last+1 .. slot are new: empty them, ``slot`` too. Its position holds the
            # value of a lap before, and a recording may not write every ring there (the
            # series of a version removed after its ticket are left as they are).
            start, stop = (last + 1) % self.points, (slot + 1) % self.points
            for ring in entry.rings.values():
                if start <= stop:
                    ring[start:stop] = math.nan
                else:
                    ring[start:] = math.nan
                    ring[:stop] = math.nan
        entry.last = slot

    def _count(self, *, models: int = 0, series: int = 0, removed: int = 0) -> None:
        r = self._refused
        self._refused = Refused(r.models + models, r.series + series, r.removed + removed)

    def forget(self, model: str, version: str | None) -> None:
        """A model (``version`` None) or one of its versions left the store: drop its series,
        and refuse rows of it from recordings whose ticket is older than now."""
        with self._lock:
            if self._inflight:
                self._removed[(model, version)] = self._tickets + 1
            if version is None:
                self._models.pop(model, None)
                return
            entry = self._models.get(model)
            if entry is not None:
                for key in [k for k in entry.rings if _version(k[1]) == version]:
                    del entry.rings[key]

    def keep(self, model: str, versions: Collection[str]) -> None:
        """Forget the series of the model's versions that are not in ``versions``."""
        with self._lock:
            entry = self._models.get(model)
            if entry is not None:
                for key in [
                    k
                    for k in entry.rings
                    if (v := _version(k[1])) is not None and v not in versions
                ]:
                    del entry.rings[key]

    def keep_models(self, models: Collection[str]) -> None:
        """Forget the models that are not in ``models``."""
        with self._lock:
            for model in [m for m in self._models if m not in models]:
                del self._models[model]

    # -- readers -------------------------------------------------------------------------

    @property
    def refused(self) -> Refused:
        with self._lock:
            return self._refused

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def series_count(self, model: str | None = None) -> int:
        """Series held (allocated rings), of one model or of all."""
        with self._lock:
            entries = (
                self._models.values()
                if model is None
                else [e for m, e in self._models.items() if m == model]
            )
            return sum(len(e.rings) for e in entries)

    def read(
        self,
        model: str,
        *,
        version: str | None = None,
        window: str | None = None,
        names: Collection[str] | None = None,
        since: float | None = None,
    ) -> list[Series]:
        """Copies of the model's series that have a point at or after ``since``, with those
        points only; each filter keeps the series whose label (``model_version``,
        ``window``) or name (``names``) matches, so a series without the label does not.
        Sorted by name, then labels."""
        with self._lock:
            entry = self._models.get(model)
            if entry is None or entry.last is None:
                return []
            last = entry.last
            selected = [
                (key, ring.copy())
                for key, ring in entry.rings.items()
                if _selected(key, version, window, names)
            ]
        found = (self._series(key, ring, last, since) for key, ring in sorted(selected))
        return [series for series in found if series.times.size]

    def excerpt(self, models: Iterable[str], since: float | None = None) -> Excerpt:
        """Every series of ``models`` as of one instant (one lock), its points at or after
        ``since``, to be read like :meth:`read` without this store: what a status page renders
        from, in this process or another (an :class:`Excerpt` pickles)."""
        with self._lock:
            taken = []
            for model in dict.fromkeys(models):
                entry = self._models.get(model)
                if entry is not None and entry.last is not None:
                    rings = [(key, ring.copy()) for key, ring in entry.rings.items()]
                    taken.append((model, entry.last, rings))
        out: dict[str, tuple[Series, ...]] = {}
        for model, last, rings in taken:
            found = (self._series(key, ring, last, since) for key, ring in sorted(rings))
            out[model] = tuple(
                Series(s.name, dict(s.labels), s.times, s.values) for s in found if s.times.size
            )
        return Excerpt(out)

    def _series(self, key: SeriesKey, ring: FloatArray, last: int, since: float | None) -> Series:
        slots = np.arange(last - self.points + 1, last + 1, dtype=np.int64)
        values = ring[slots % self.points]
        times = slots.astype(np.float64) * self.resolution
        keep = ~np.isnan(values)
        if since is not None:
            keep &= times >= since
        times, values = times[keep], values[keep]
        times.flags.writeable = False
        values.flags.writeable = False
        name, labels = key
        return Series(name, MappingProxyType(dict(labels)), times, values)


@dataclass(frozen=True, slots=True)
class Excerpt:
    """Copies of every series of some models (:meth:`History.excerpt`), read as
    :meth:`History.read` reads the store; plain data (labels as dicts), so it pickles.

    >>> h = History(resolution=60, points=3, max_models=2, max_series=4)
    >>> h.record("fraud", 120.0, [("accuracy", (("model_version", "v1"),), 0.5)])
    >>> h.record("fraud", 180.0, [("accuracy", (("model_version", "v1"),), 0.75)])
    >>> e = h.excerpt(["fraud", "unknown"])
    >>> [(s.name, s.times.tolist()) for s in e.read("fraud", version="v1", since=150)]
    [('accuracy', [180.0])]
    >>> e.read("fraud", version="v2"), e.read("unknown")
    ([], [])
    """

    series: Mapping[str, tuple[Series, ...]]

    def read(
        self,
        model: str,
        *,
        version: str | None = None,
        window: str | None = None,
        names: Collection[str] | None = None,
        since: float | None = None,
    ) -> list[Series]:
        out = []
        for s in self.series.get(model, ()):
            if not _selected((s.name, tuple(s.labels.items())), version, window, names):
                continue
            if since is not None:
                keep = s.times >= since
                if not keep.any():
                    continue
                s = Series(s.name, s.labels, s.times[keep], s.values[keep])
            out.append(s)
        return out


def _version(labels: Labels) -> str | None:
    for name, value in labels:
        if name == "model_version":
            return value
    return None


def _selected(
    key: SeriesKey, version: str | None, window: str | None, names: Collection[str] | None
) -> bool:
    name, labels = key
    if names is not None and name not in names:
        return False
    found = dict(labels)
    if version is not None and found.get("model_version") != version:
        return False
    return window is None or found.get("window") == window


def labels_of(**labels: str) -> Labels:
    """Labels as a series key holds them: in the order given.

    >>> labels_of(model_version="v1", window="1h")
    (('model_version', 'v1'), ('window', '1h'))
    """
    return tuple(labels.items())
