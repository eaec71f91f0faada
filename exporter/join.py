"""Joining predictions and ground-truth labels that arrive at different times.

:class:`Join` owns, for one model, everything that waits or is remembered for the join:

* predictions waiting for their label, for ``prediction_ttl`` seconds;
* ids already joined, remembered for the same time, so that a retried batch or a second label
  is recognised as a duplicate rather than counted twice;
* labels that arrived before their prediction (a race between two senders), for ``label_ttl``.

Each lives in a bounded, insertion-ordered :class:`PendingBuffer`. Entries leave by being
joined, by expiring, or, when a buffer is full, by eviction of the oldest; every departure
other than a join is reported to the caller, which counts it. One join step takes a batch and
returns the pairs it matched and how many entries now wait (:class:`PredictionsJoined`,
:class:`LabelsJoined`).

Two ways to key predictions:

* by id (the default): an id has one prediction, whichever version made it; a second one is a
  duplicate, and a label joins the one prediction;
* by (id, version) (``per_version=True``, for shadow deployments where every version scores the
  same requests): each version may predict an id once, and one label joins every version's
  prediction of it, including predictions that arrive after the label. A label inline with a
  prediction is such a label too, sent with it: it also joins the other versions' waiting
  predictions of the id (:attr:`PredictionsJoined.others`) and is remembered for later ones.

The keying changes in place (:meth:`Join.key_per_version`), losing nothing:

* by id to by (id, version), at once: each waiting prediction and remembered joined id carries
  its version, so its key gains it. Labels that joined before the change are not remembered
  (keyed by id they need not be), so a version that predicts such an id later waits for its
  label to be sent again;
* by (id, version) back to by id, in two steps: at once, every new prediction follows the rule
  of one prediction per id again (a second version's prediction of an id that is waiting or
  joined is a duplicate), while the entries from before keep their keys and still join; after
  ``prediction_ttl`` those entries are gone, no two keys share an id, and the buffers are keyed
  by id (one pass, at the first :meth:`Join.expire` after that).

Pure Python: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from exporter.persist.plain import Rows, State, StateError, rows
from exporter.probabilities import Score
from exporter.typedefs import WireValue

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

#: A prediction waiting for its label: (version uid, class index or predicted value, prediction
#: time, score). Plain tuples of atoms, deliberately: they are the cheapest to create, and
#: CPython's garbage collector stops tracking tuples of atomic values, so a full buffer (100k+
#: entries) adds nothing to the cost of a GC pass. Holding a version object instead would keep
#: every entry tracked: one full collection then took ~70 ms, stalling ingest and scrapes. The
#: score is an atom too (exporter.probabilities.Score: None, a float, or bytes holding a
#: multiclass model's probabilities), never a list or an array.
Pending = tuple[int, float, float, Score]
#: A label waiting for (or remembered after) its prediction: (value, label time). The value is
#: a class index or true value, or the label as sent while the model's task is not yet known.
LabelEntry = tuple[WireValue, float]


class PendingBuffer(Generic[K, T]):
    """Insertion-ordered map ``key -> payload``, bounded in size and in age.

    Arrival times must not decrease (the caller passes a monotonic clock), so the oldest entry is
    always first and expiry costs O(expired). An ``OrderedDict``, not a ``dict``: finding the
    first entry of a plain dict after many deletions from its front scans the deleted slots
    (O(n) per eviction, which halved ingest throughput once the buffer was full).
    """

    def __init__(self, ttl: float, capacity: int) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.ttl = float(ttl)
        self.capacity = int(capacity)
        self._entries: OrderedDict[K, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def copy(self) -> BufferCopy[K, T]:
        """The entries as they are now, in order: lists of references to the keys and to the
        (arrival, payload) pairs, made at C speed (~1 ms per 100,000 entries).

        They are read from the views of the ``OrderedDict``'s base dict, not from the
        ``OrderedDict`` itself: iterating that walks a linked list of separately allocated
        nodes, ~20x slower (22 ms for 100,000 entries: most of what a snapshot of a full join
        held its model's lock for). The base dict holds the same entries in the same order:
        the two orders part only through ``move_to_end``, which this class never calls (a test
        compares them after evictions, joins, expiry and re-insertions)."""
        entries = self._entries
        return BufferCopy(list(dict.keys(entries)), list(dict.values(entries)))

    def to_state(self, copy: Callable[[T], Any] | None = None) -> State:
        """The limits, and the keys and (arrival, payload) entries in order, as
        :class:`~exporter.persist.plain.Rows` (arrival times are wall clock: restored entries
        expire when they would have). Cheap enough for the owner's lock when payloads never
        change (tuples, numbers): the encoder reads the rows later. Payloads that change in
        place need ``copy``, which copies each one now."""
        taken = self.copy()
        entries: list[tuple[float, Any]] = taken.entries
        if copy is not None:
            entries = [(arrival, copy(payload)) for arrival, payload in entries]
        return {
            "ttl": self.ttl,
            "capacity": self.capacity,
            "size": len(taken.keys),
            "keys": Rows(taken.keys),
            "entries": Rows(entries),
        }

    @classmethod
    def from_state(
        cls, state: State, key: Callable[[Any], K], payload: Callable[[Any], T]
    ) -> PendingBuffer[K, T]:
        """The buffer saved; ``key`` and ``payload`` turn saved values back (lists into
        tuples), raising on a value that is not one. Raises
        :class:`~exporter.persist.plain.StateError` if anything is malformed, or a key
        repeats. (The entries may be more than ``capacity``: the join's joined ids are, for a
        while after it is keyed by id again; the oldest leave at the next insertion.)"""
        size = state["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StateError(f"bad buffer size {size!r}")
        buffer: PendingBuffer[K, T] = cls(float(state["ttl"]), int(state["capacity"]))
        saved = rows(state["entries"], size)
        try:
            keys = [key(k) for k in rows(state["keys"], size)]
            entries = [(_time(arrival), payload(p)) for arrival, p in saved]
        except (TypeError, ValueError) as exc:
            raise StateError(f"a buffer's entry is malformed ({exc})") from None
        buffer._entries = OrderedDict(zip(keys, entries, strict=True))
        if len(buffer._entries) != size:
            raise StateError("a key is saved twice in one buffer")
        return buffer

    def add(self, key: K, arrival: float, payload: T) -> list[T]:
        """Insert or replace an entry; returns the payloads evicted to make room, oldest first."""
        evicted: list[T] = []
        entries = self._entries
        if key not in entries:
            while len(entries) >= self.capacity:
                evicted.append(entries.popitem(last=False)[1][1])
        entries[key] = (arrival, payload)
        return evicted

    def add_many(self, keys: Sequence[K], arrival: float, payloads: Sequence[T]) -> list[T]:
        """Insert new keys (not already present) in bulk; returns the evicted payloads."""
        entries = self._entries
        evicted = [
            entries.popitem(last=False)[1][1]
            for _ in range(min(len(entries), len(entries) + len(keys) - self.capacity))
        ]
        entries.update(zip(keys, ((arrival, p) for p in payloads), strict=True))
        while len(entries) > self.capacity:  # a batch larger than the whole buffer
            evicted.append(entries.popitem(last=False)[1][1])
        return evicted

    def known(self, keys: Iterable[K]) -> set[K]:
        """The keys among ``keys`` that are in the buffer."""
        return self._entries.keys() & keys

    def get(self, key: K) -> T | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def pop(self, key: K) -> T | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def expire(self, now: float) -> list[T]:
        """Drop entries that arrived ``ttl`` or more seconds before ``now``; returns them."""
        expired: list[T] = []
        limit = now - self.ttl
        entries = self._entries
        while entries:
            arrival, payload = entries[next(iter(entries))]
            if arrival > limit:
                break
            entries.popitem(last=False)
            expired.append(payload)
        return expired

    def rekey(self, key: Callable[[K, T], K], *, merge: bool = False) -> None:
        """Give every entry the key ``key(old key, payload)``, keeping order, arrival times and
        payloads. Entries whose new keys are equal are merged (the latest kept) only when
        ``merge``; otherwise the new keys must be distinct (the caller's invariant, checked)."""
        old = self._entries
        new: OrderedDict[K, tuple[float, T]] = OrderedDict()
        for k, (arrival, payload) in old.items():
            new_key = key(k, payload)
            if new_key in new:
                if not merge:
                    raise ValueError(f"rekey would merge entries under {new_key!r}")
                del new[new_key]  # keep arrival order: the latest goes last
            new[new_key] = (arrival, payload)
        self._entries = new

    def replace(self, payloads: Callable[[list[T]], list[T | None]]) -> int:
        """Give every entry a new payload (``None``: drop it), keeping keys, order and arrival
        times; returns how many were dropped."""
        old = self._entries
        new = payloads([payload for _, payload in old.values()])
        self._entries = OrderedDict(
            (key, (arrival, p))
            for (key, (arrival, _)), p in zip(old.items(), new, strict=True)
            if p is not None
        )
        return len(old) - len(self._entries)


@dataclass(frozen=True, slots=True)
class BufferCopy(Generic[K, T]):
    """A :class:`PendingBuffer`'s entries at one moment (:meth:`PendingBuffer.copy`)."""

    keys: list[K]
    entries: list[tuple[float, T]]  # (arrival, payload), aligned with ``keys``


# -- saved values back (PendingBuffer.from_state): checked, lists into tuples ---------------------


def _time(value: Any) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"a time must be a number, not {type(value).__name__}")
    return float(value)


def _uid(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"a version uid must be an integer, not {type(value).__name__}")
    return int(value)


def _saved_id(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"an id must be a string, not {type(value).__name__}")
    return str(value)


def _saved_version_key(value: Any) -> tuple[str, int]:
    ident, uid = value
    return _saved_id(ident), _uid(uid)


def _saved_pending(value: Any) -> Pending:
    if len(value) == 3:  # saved before predictions carried scores (state format 1)
        uid, predicted, at = value
        return _uid(uid), _time(predicted), _time(at), None
    uid, predicted, at, score = value
    return _uid(uid), _time(predicted), _time(at), _saved_score(score)


def _saved_score(value: Any) -> Score:
    if value is None or type(value) is bytes:
        return value
    return _time(value)


def _saved_label(value: Any) -> LabelEntry:
    label, at = value
    if label is not None and type(label) not in (int, float, str, bool):
        raise TypeError(f"a label must be a number, a string or a boolean, not {label!r}")
    return label, _time(at)


def _id_of(key: Hashable, _: object) -> Hashable:
    """The id of an (id, version uid) key."""
    assert isinstance(key, tuple)
    return key[0]  # type: ignore[no-any-return]


@dataclass(slots=True)
class Pairs:
    """Predictions of one version joined with their labels in one step.

    ``rows`` are positions in the batch that was added (events of a prediction batch, or labels
    of a label batch); the other lists are aligned with them.
    """

    uid: int
    rows: list[int] = field(default_factory=list)
    predicted: list[float] = field(default_factory=list)
    prediction_times: list[float] = field(default_factory=list)
    actual: list[WireValue] = field(default_factory=list)
    label_times: list[float] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)

    def add(
        self,
        row: int,
        predicted: float,
        prediction_time: float,
        actual: WireValue,
        at: float,
        score: Score = None,
    ) -> None:
        self.rows.append(row)
        self.predicted.append(predicted)
        self.prediction_times.append(prediction_time)
        self.actual.append(actual)
        self.label_times.append(at)
        self.scores.append(score)


@dataclass(slots=True)
class PredictionsJoined:
    """What one batch of predictions did to the join."""

    kept: list[int]  # positions of the events that are not duplicates, in order
    duplicates: int
    pairs: Pairs  # events joined at once: with an inline label or one that was waiting
    waiting: int  # events now waiting for their label
    evicted: Counter[int]  # version uid -> waiting predictions evicted to make room
    #: per_version only: other versions' waiting predictions joined by an inline label (version
    #: uid -> pairs; their rows are positions of the events whose label it was).
    others: dict[int, Pairs] = field(default_factory=dict)


@dataclass(slots=True)
class LabelsJoined:
    """What one batch of labels did to the join."""

    pairs: dict[int, Pairs]  # version uid -> predictions joined
    joined: int  # labels that joined at least one prediction
    duplicates: int
    waiting: int  # labels now waiting for their prediction
    evicted: int  # waiting labels evicted to make room


@dataclass(slots=True)
class Expired:
    """Entries that left by age."""

    predictions: Counter[int]  # version uid -> predictions that waited too long
    labels: int


class Join:
    """The join of one model: waiting predictions, joined ids and early labels.

    Parameters
    ----------
    prediction_ttl, max_pending : float, int
        How long and how many predictions wait for their label (also how long, and how many,
        joined ids are remembered).
    label_ttl, max_labels : float, int
        How long and how many labels wait for their prediction; ``label_ttl`` 0 refuses to keep
        them (:attr:`labels_can_wait` is then False).
    per_version : bool
        Key predictions by (id, version) instead of by id; see the module's docstring.
    max_versions : int
        Versions that may predict one id when keyed by (id, version): the joined (id, version)
        pairs are then remembered up to ``max_pending x max_versions``, so that a version's
        retried prediction is still known as joined as long as the id's label is remembered
        (``max_pending`` ids), and is a duplicate rather than joined twice.
    """

    def __init__(
        self,
        prediction_ttl: float,
        max_pending: int,
        label_ttl: float,
        max_labels: int,
        *,
        per_version: bool = False,
        max_versions: int = 1,
    ) -> None:
        self.per_version = per_version
        self.prediction_ttl = float(prediction_ttl)
        self.max_pending = int(max_pending)
        self.max_versions = max(1, int(max_versions))
        #: Keyed by (id, version), but one prediction per id for new events, until this time
        #: (monotonic seconds); then keyed by id (module docstring). None: not changing.
        self.by_id_from: float | None = None
        self._pending: PendingBuffer[Hashable, Pending] = PendingBuffer(prediction_ttl, max_pending)
        # By id (or by (id, uid) when per_version): the version uid of each joined prediction.
        self._joined: PendingBuffer[Hashable, int] = PendingBuffer(prediction_ttl, max_pending)
        # per_version only: labels that joined, kept to join later versions' predictions.
        self._labelled: PendingBuffer[str, LabelEntry] = PendingBuffer(prediction_ttl, max_pending)
        self._early: PendingBuffer[str, LabelEntry] | None = (
            PendingBuffer(label_ttl, max_labels) if label_ttl > 0 else None
        )
        self._waiting: Counter[int] = Counter()  # version uid -> waiting predictions
        self._size_joined()

    def _size_joined(self) -> None:
        """One joined entry per id when keyed by id, per (id, version) when keyed so."""
        per_version = self.per_version or self.by_id_from is not None
        self._joined.capacity = self.max_pending * (self.max_versions if per_version else 1)

    def to_state(self) -> State:
        """Copies of every buffer (:meth:`PendingBuffer.to_state`: lists of references to their
        immutable entries, ~1 ms per 100,000; encoded later, outside the model's lock), the
        keying and the waiting counts."""
        return {
            "per_version": self.per_version,
            "by_id_from": self.by_id_from,
            "pending": self._pending.to_state(),
            "joined": self._joined.to_state(),
            "labelled": self._labelled.to_state(),
            "early": None if self._early is None else self._early.to_state(),
            "waiting": [[uid, count] for uid, count in self._waiting.items()],
        }

    def load_state(self, state: State) -> None:
        """Replace the buffers by those saved (the join's limits stay the configured ones:
        the snapshot is refused when they differ); raises, changing nothing, if malformed."""
        per_version = state["per_version"]
        if not isinstance(per_version, bool):
            raise StateError(f"the join's keying is {per_version!r}, not a boolean")
        key: Callable[[Any], Hashable] = _saved_version_key if per_version else _saved_id
        by_id_from = state["by_id_from"]
        pending = PendingBuffer.from_state(state["pending"], key, _saved_pending)
        joined = PendingBuffer.from_state(state["joined"], key, _uid)
        labelled = PendingBuffer.from_state(state["labelled"], _saved_id, _saved_label)
        saved = state["early"]
        early = None if saved is None else PendingBuffer.from_state(saved, _saved_id, _saved_label)
        waiting = Counter({int(uid): int(count) for uid, count in state["waiting"]})
        self.per_version = per_version
        self.by_id_from = None if by_id_from is None else float(by_id_from)
        self._pending, self._joined, self._labelled, self._early = pending, joined, labelled, early
        self._waiting = waiting
        self._size_joined()

    # -- reading --------------------------------------------------------------------------------

    @property
    def labels_can_wait(self) -> bool:
        return self._early is not None

    def pending(self, uid: int) -> int:
        """Predictions of version ``uid`` waiting for their label."""
        return self._waiting.get(uid, 0)

    @property
    def early_labels(self) -> int:
        """Labels waiting for their prediction."""
        return len(self._early) if self._early is not None else 0

    @property
    def empty(self) -> bool:
        """Nothing waits and no joined id is remembered: a join keyed the other way
        (``per_version``) could take its place without losing or misreading an entry."""
        buffers = (self._pending, self._joined, self._labelled)
        return not any(len(b) for b in buffers) and not self.early_labels

    def key_per_version(self, per_version: bool, now: float) -> None:
        """Key predictions by (id, version) (``per_version``) or by id from now on, in place,
        keeping every entry (module docstring)."""
        if per_version:
            self.by_id_from = None
            if not self.per_version:
                self._pending.rekey(lambda ident, entry: (ident, entry[0]))
                self._joined.rekey(lambda ident, uid: (ident, uid))
                self.per_version = True
                self._size_joined()
        elif self.per_version and self.by_id_from is None:
            self.by_id_from = now + self.prediction_ttl
            self._key_by_id_if_due(now)

    def _key_by_id_if_due(self, now: float) -> None:
        if self.by_id_from is None or (now < self.by_id_from and not self.empty):
            return
        self._pending.rekey(_id_of)
        # Joined ids may repeat (every version's prediction of one id joined): one suffices.
        self._joined.rekey(_id_of, merge=True)
        self._labelled = PendingBuffer(self._labelled.ttl, self._labelled.capacity)
        self.per_version = False
        self.by_id_from = None
        self._size_joined()  # more entries than that leave, oldest first, at the next join

    def awaits(self, ident: str) -> bool:
        """Whether a label for ``ident`` would join a prediction, now or later (as a duplicate
        or by waiting) rather than be unknown."""
        if ident in self._joined or ident in self._labelled:
            return True
        if self.per_version:
            return any((ident, uid) in self._pending for uid in self._waiting)
        return ident in self._pending

    # -- predictions ----------------------------------------------------------------------------

    def add_predictions(
        self,
        uid: int,
        ids: Sequence[str],
        targets: Sequence[float],
        times: Sequence[float],
        inline: Sequence[WireValue | None] | None,
        now: float,
        scores: Sequence[Score] | None = None,
    ) -> PredictionsJoined:
        """Join a batch of predictions of version ``uid`` (``inline``: a label per event, or
        None; ``scores``: a score per event, or None) with the labels that wait for them; the
        rest waits."""
        if scores is None:
            scores = [None] * len(ids)
        if self.per_version:
            return self._add_predictions_per_version(uid, ids, targets, times, inline, now, scores)
        n = len(ids)
        seen = self._pending.known(ids) | self._joined.known(ids)
        kept = [i for i, ident in enumerate(ids) if ident not in seen] if seen else list(range(n))
        pairs = Pairs(uid)
        early = self._early if self._early is not None and len(self._early) else None
        if inline is None and early is None:
            wait = kept  # the common case: the whole batch waits, in bulk
        else:
            wait = []
            for i in kept:
                label = inline[i] if inline is not None else None
                if label is not None:
                    pairs.add(i, targets[i], times[i], label, times[i], scores[i])
                    continue
                waiting_label = early.pop(ids[i]) if early is not None else None
                if waiting_label is not None:
                    pairs.add(i, targets[i], times[i], *waiting_label, scores[i])
                    continue
                wait.append(i)
        if len(wait) == n:
            keys: Sequence[str] = ids
            payloads = [(uid, t, ts, sc) for t, ts, sc in zip(targets, times, scores, strict=True)]
        else:
            keys = [ids[i] for i in wait]
            payloads = [(uid, targets[i], times[i], scores[i]) for i in wait]
        evicted = self._wait(keys, payloads, uid, now)
        if pairs.rows:
            self._joined.add_many([ids[i] for i in pairs.rows], now, [uid] * len(pairs.rows))
        return PredictionsJoined(kept, n - len(kept), pairs, len(keys), evicted)

    def _add_predictions_per_version(
        self,
        uid: int,
        ids: Sequence[str],
        targets: Sequence[float],
        times: Sequence[float],
        inline: Sequence[WireValue | None] | None,
        now: float,
        scores: Sequence[Score],
    ) -> PredictionsJoined:
        kept: list[int] = []
        pairs = Pairs(uid)
        others: dict[int, Pairs] = {}
        keys: list[Hashable] = []
        payloads: list[Pending] = []
        one_per_id = self.by_id_from is not None
        for i, ident in enumerate(ids):
            key = (ident, uid)
            if key in self._pending or key in self._joined:
                continue
            if one_per_id and self._predicted(ident):
                continue
            kept.append(i)
            label: LabelEntry | None = None
            if inline is not None and inline[i] is not None:
                label = (inline[i], times[i])
                if ident not in self._labelled:  # as a label sent now: it joins every version
                    self._join_waiting(i, ident, label, now, others)
                    self._labelled.add(ident, now, label)
            else:
                label = self._labelled.get(ident)
                if label is None and self._early is not None:
                    label = self._early.pop(ident)
                    if label is not None:
                        self._labelled.add(ident, now, label)
            if label is None:
                keys.append(key)
                payloads.append((uid, targets[i], times[i], scores[i]))
                continue
            pairs.add(i, targets[i], times[i], *label, scores[i])
            self._joined.add(key, now, uid)
        evicted = self._wait(keys, payloads, uid, now)
        return PredictionsJoined(kept, len(ids) - len(kept), pairs, len(keys), evicted, others)

    def _predicted(self, ident: str) -> bool:
        """Whether some version's prediction of ``ident`` waits or was joined (keyed by
        (id, version): two lookups per version the join has seen). Joined ids come from the
        joined buffer, not only from the remembered labels: ids joined while keyed by id have
        no remembered label."""
        if ident in self._labelled:
            return True
        return any(
            (ident, u) in self._joined or (count > 0 and (ident, u) in self._pending)
            for u, count in self._waiting.items()
        )

    def _wait(
        self, keys: Sequence[Hashable], payloads: list[Pending], uid: int, now: float
    ) -> Counter[int]:
        evicted: Counter[int] = Counter(e[0] for e in self._pending.add_many(keys, now, payloads))
        self._waiting[uid] += len(keys)
        self._waiting.subtract(evicted)
        return evicted

    # -- labels ---------------------------------------------------------------------------------

    def add_labels(
        self, ids: Sequence[str], values: Sequence[WireValue], times: Sequence[float], now: float
    ) -> LabelsJoined:
        """Join a batch of labels with the predictions that wait for them; the rest waits
        (when labels may wait), except duplicates of a label already received."""
        out = LabelsJoined({}, 0, 0, 0, 0)
        pending, early = self._pending, self._early
        for i, ident in enumerate(ids):
            if self.per_version:
                matched = self._join_every_version(i, ident, values[i], times[i], now, out)
            else:
                entry = pending.pop(ident)
                matched = entry is not None
                if entry is not None:
                    uid, predicted, predicted_at, score = entry
                    self._waiting[uid] -= 1
                    out.pairs.setdefault(uid, Pairs(uid)).add(
                        i, predicted, predicted_at, values[i], times[i], score
                    )
                    self._joined.add(ident, now, uid)
            if matched:
                out.joined += 1
            elif (
                ident in self._joined
                or ident in self._labelled
                or (early is not None and ident in early)
            ):
                out.duplicates += 1
            elif early is not None:
                out.evicted += len(early.add(ident, now, (values[i], times[i])))
                out.waiting += 1
        return out

    def _join_every_version(
        self, row: int, ident: str, value: WireValue, at: float, now: float, out: LabelsJoined
    ) -> bool:
        if ident in self._labelled:
            return False  # a duplicate
        matched = self._join_waiting(row, ident, (value, at), now, out.pairs)
        if matched:
            self._labelled.add(ident, now, (value, at))
        return matched

    def _join_waiting(
        self, row: int, ident: str, label: LabelEntry, now: float, into: dict[int, Pairs]
    ) -> bool:
        """Join every version's waiting prediction of ``ident`` with ``label`` (``row``: the
        label's position in its batch), into ``into``; returns whether any joined."""
        matched = False
        for uid in [u for u, count in self._waiting.items() if count > 0]:
            entry = self._pending.pop((ident, uid))
            if entry is None:
                continue
            matched = True
            self._waiting[uid] -= 1
            into.setdefault(uid, Pairs(uid)).add(row, entry[1], entry[2], *label, entry[3])
            self._joined.add((ident, uid), now, uid)
        return matched

    # -- upkeep ---------------------------------------------------------------------------------

    def expire(self, now: float) -> Expired:
        """Drop what waited too long; returns what left without a join."""
        predictions: Counter[int] = Counter(e[0] for e in self._pending.expire(now))
        self._waiting.subtract(predictions)
        self._joined.expire(now)
        self._labelled.expire(now)
        labels = len(self._early.expire(now)) if self._early is not None else 0
        self._key_by_id_if_due(now)
        return Expired(predictions, labels)

    def forget(self, uid: int) -> int:
        """Forget a removed version: drop its predictions that wait for a label (O(waiting));
        returns how many there were."""
        if not self._waiting.pop(uid, 0):
            return 0
        return self._pending.replace(lambda entries: [None if e[0] == uid else e for e in entries])

    def encode_early_labels(
        self, encode: Callable[[list[WireValue]], list[WireValue | None]]
    ) -> int:
        """Re-encode the labels waiting for their prediction (sent before the model's task was
        known); ``encode`` returns None for a value that does not fit. Returns how many of them
        were dropped for that."""
        if self._early is None or not len(self._early):
            return 0

        def recode(entries: list[LabelEntry]) -> list[LabelEntry | None]:
            values = encode([value for value, _ in entries])
            return [
                None if value is None else (value, at)
                for value, (_, at) in zip(values, entries, strict=True)
            ]

        return self._early.replace(recode)
