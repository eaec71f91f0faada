"""The join against a naive model of it, driven by random sequences (hypothesis).

Rules add predictions of three versions (some with inline labels), add labels (late, early,
duplicate), let time pass (every rule first expires, as the model's store does), switch the
keying between by id and by (id, version), and forget a version (its slot then gets a new
uid, as a version replaced in the store would). After every step the join's results (kept,
duplicates, pairs with their rows, waiting, evicted and expired counts) and its state (waiting
predictions per version, waiting labels, the keying) are compared with the naive model's.

The naive model keeps plain lists in arrival order, finds entries by linear scans and applies
the rules of :mod:`exporter.join`'s docstring literally; it shares no code with the join.
Small buffers (4 predictions, 3 labels), a 60 s TTL and five ids make eviction, expiry and
every collision between versions common. Two points the docstring leaves open follow the join:
one label joining several versions' predictions remembers them in the order the versions first
predicted, and while the keying changes back to by id, another version's prediction of an id is
a duplicate when a prediction of it waits, its label is remembered, or a version not forgotten
joined a prediction of it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from exporter.join import Join, LabelsJoined, Pairs, PredictionsJoined
from exporter.typedefs import WireValue
from tests.conftest import T0

TTL, MAX_PENDING = 60.0, 4
LABEL_TTL, MAX_LABELS = 30.0, 3
IDS = ["a", "b", "c", "d", "e"]
SLOTS = 3  # versions alive at once
LATER = st.sampled_from([0.0, 1.0, 5.0])  # how long after the previous step a batch comes
AGES = st.sampled_from([0.0, 0.0, 5.0, 90.0])  # how long before its arrival an event happened
VALUES = st.integers(0, 2).map(float)  # predictions and labels
SETTINGS = settings(
    max_examples=200, stateful_step_count=40, deadline=None, derandomize=True, database=None
)

#: One joined pair as the naive model states it: (row, predicted, prediction time, label,
#: label time).
Row = tuple[int, float, float, WireValue, float]
Label = tuple[float, float]  # (value, label time)

#: The interesting paths the naive model went through (the "not vacuous" test reads it).
REACHED: Counter[str] = Counter()


@dataclass
class Waiting:
    """A prediction waiting for its label."""

    ident: str
    uid: int
    arrival: float
    predicted: float
    at: float


@dataclass
class Remembered:
    """A joined prediction (``uid``), or a label (``label``), remembered after its join; or a
    label waiting for its prediction."""

    ident: str
    arrival: float
    uid: int = 0
    label: Label = (0.0, 0.0)


@dataclass
class Event:
    """A prediction event (``at``: its time; ``inline``: its label, if any)."""

    ident: str
    predicted: float
    at: float
    inline: float | None


@dataclass
class Predicted:
    kept: list[int] = field(default_factory=list)
    duplicates: int = 0
    pairs: list[Row] = field(default_factory=list)
    waiting: int = 0
    evicted: dict[int, int] = field(default_factory=dict)
    others: dict[int, list[Row]] = field(default_factory=dict)


@dataclass
class Labelled:
    pairs: dict[int, list[Row]] = field(default_factory=dict)
    joined: int = 0
    duplicates: int = 0
    waiting: int = 0
    evicted: int = 0


def rows_of(pairs: Pairs) -> list[Row]:
    columns = (pairs.predicted, pairs.prediction_times, pairs.actual, pairs.label_times)
    assert all(len(c) == len(pairs.rows) for c in columns)
    return [
        (row, predicted, p_at, actual, l_at)
        for row, predicted, p_at, actual, l_at in zip(pairs.rows, *columns, strict=True)
    ]


def by_uid(pairs: dict[int, Pairs]) -> dict[int, list[Row]]:
    assert all(uid == p.uid and p.rows for uid, p in pairs.items())
    return {uid: rows_of(p) for uid, p in pairs.items()}


def predicted_of(out: PredictionsJoined, uid: int) -> Predicted:
    assert out.pairs.uid == uid
    return Predicted(
        out.kept,
        out.duplicates,
        rows_of(out.pairs),
        out.waiting,
        dict(out.evicted),
        by_uid(out.others),
    )


def labelled_of(out: LabelsJoined) -> Labelled:
    return Labelled(by_uid(out.pairs), out.joined, out.duplicates, out.waiting, out.evicted)


class Naive:
    """The join's rules, applied literally to lists."""

    def __init__(self, per_version: bool, now: float) -> None:
        self.now = now
        self.per_version = per_version
        self.by_id_from: float | None = None  # set while changing back to by id
        self.pending: list[Waiting] = []
        self.joined: list[Remembered] = []  # ids (and the version) whose prediction joined
        self.labelled: list[Remembered] = []  # per version: labels that joined
        self.early: list[Remembered] = []  # labels waiting for their prediction
        self.versions: list[int] = []  # in the order of their first predictions
        self.forgotten: set[int] = set()

    def waiting(self, uid: int) -> int:
        return sum(1 for p in self.pending if p.uid == uid)

    @property
    def empty(self) -> bool:
        return not (self.pending or self.joined or self.labelled or self.early)

    # -- keeping -------------------------------------------------------------------------------

    def _wait(self, predictions: list[Waiting]) -> dict[int, int]:
        self.pending += predictions
        evicted = Counter(p.uid for p in self.pending[: max(0, len(self.pending) - MAX_PENDING)])
        del self.pending[: max(0, len(self.pending) - MAX_PENDING)]
        if evicted:
            REACHED["prediction evicted"] += 1
        return dict(evicted)

    def _remember_join(self, ident: str, uid: int) -> None:
        """Joined ids are remembered up to MAX_PENDING, per (id, version) up to MAX_PENDING x
        SLOTS (also while changing back to by id); the oldest are forgotten."""
        self.joined.append(Remembered(ident, self.now, uid=uid))
        by_version = self.per_version or self.by_id_from is not None
        while len(self.joined) > MAX_PENDING * (SLOTS if by_version else 1):
            del self.joined[0]  # forgotten, silently
            REACHED["joined id forgotten"] += 1

    def _remember_label(self, ident: str, label: Label) -> None:
        self.labelled.append(Remembered(ident, self.now, label=label))
        if len(self.labelled) > MAX_PENDING:
            del self.labelled[0]

    def _label_of(self, ident: str) -> Label | None:
        return next((r.label for r in self.labelled if r.ident == ident), None)

    def _pop_early(self, ident: str) -> Label | None:
        entry = next((r for r in self.early if r.ident == ident), None)
        if entry is None:
            return None
        self.early.remove(entry)
        REACHED["early label joined"] += 1
        return entry.label

    def _join_waiting(self, row: int, ident: str, label: Label, into: dict[int, list[Row]]) -> bool:
        """Join every version's waiting prediction of ``ident`` with ``label``: remembered as
        joined one after the other, versions in the order they first predicted (the join's
        order; its docstring leaves it open, and it shows when the joined ids overflow)."""
        waiting = {p.uid: p for p in self.pending if p.ident == ident}
        matched = [waiting[uid] for uid in self.versions if uid in waiting]
        for p in matched:
            self.pending.remove(p)
            into.setdefault(p.uid, []).append((row, p.predicted, p.at, *label))
            self._remember_join(ident, p.uid)
        return bool(matched)

    # -- keying --------------------------------------------------------------------------------

    def key_per_version(self, per_version: bool) -> None:
        if per_version:
            if not self.per_version and self.pending:
                REACHED["keyed per version with predictions waiting"] += 1
            if self.by_id_from is not None:
                REACHED["change back to by id undone"] += 1
            self.per_version, self.by_id_from = True, None
        elif self.per_version and self.by_id_from is None:
            self.by_id_from = self.now + TTL
            self._key_by_id_if_due()
            REACHED["keyed by id at once"] += not self.per_version

    def _key_by_id_if_due(self) -> None:
        if self.by_id_from is None or (self.now < self.by_id_from and not self.empty):
            return
        REACHED["keyed by id when empty" if self.empty else "keyed by id after the ttl"] += 1
        # One remembered join per id: the latest.
        self.joined = [
            r
            for k, r in enumerate(self.joined)
            if all(r.ident != s.ident for s in self.joined[k + 1 :])
        ]
        self.labelled = []
        self.per_version, self.by_id_from = False, None

    def came_since_the_change(self) -> bool:
        """Whether, changing back to by id, a prediction waits or a join is remembered that
        came after the change began (and so outlives the change)."""
        if self.by_id_from is None:
            return False
        began = self.by_id_from - TTL
        arrivals = [p.arrival for p in self.pending] + [
            r.arrival for r in self.joined + self.labelled
        ]
        return any(arrival > began for arrival in arrivals)

    # -- steps ---------------------------------------------------------------------------------

    def expire(self) -> tuple[dict[int, int], int]:
        gone = [p for p in self.pending if p.arrival + TTL <= self.now]
        self.pending = [p for p in self.pending if p not in gone]
        self.joined = [r for r in self.joined if r.arrival + TTL > self.now]
        self.labelled = [r for r in self.labelled if r.arrival + TTL > self.now]
        labels = [r for r in self.early if r.arrival + LABEL_TTL <= self.now]
        self.early = [r for r in self.early if r not in labels]
        REACHED["prediction expired"] += bool(gone)
        REACHED["label expired"] += bool(labels)
        self._key_by_id_if_due()
        return dict(Counter(p.uid for p in gone)), len(labels)

    def predict(self, uid: int, events: list[Event]) -> Predicted:
        if uid not in self.versions:
            self.versions.append(uid)
        if self.per_version:
            return self._predict_per_version(uid, events)
        out = Predicted()
        known = {p.ident for p in self.pending} | {r.ident for r in self.joined}
        waiting: list[Waiting] = []
        joined: list[str] = []
        for row, e in enumerate(events):
            if e.ident in known:
                out.duplicates += 1
                continue
            out.kept.append(row)
            label = (e.inline, e.at) if e.inline is not None else self._pop_early(e.ident)
            if label is None:
                waiting.append(Waiting(e.ident, uid, self.now, e.predicted, e.at))
                continue
            out.pairs.append((row, e.predicted, e.at, *label))
            joined.append(e.ident)
        out.waiting, out.evicted = len(waiting), self._wait(waiting)
        for ident in joined:
            self._remember_join(ident, uid)
        return out

    def _predict_per_version(self, uid: int, events: list[Event]) -> Predicted:
        out = Predicted()
        waiting: list[Waiting] = []
        for row, e in enumerate(events):
            mine = (e.ident, uid)
            if any((p.ident, p.uid) == mine for p in self.pending) or any(
                (r.ident, r.uid) == mine for r in self.joined
            ):
                out.duplicates += 1
                continue
            if self.by_id_from is not None and (
                any(p.ident == e.ident for p in self.pending)
                or self._label_of(e.ident) is not None
                or any(r.ident == e.ident and r.uid not in self.forgotten for r in self.joined)
            ):
                REACHED["another version's prediction refused while changing"] += 1
                out.duplicates += 1
                continue
            out.kept.append(row)
            label: Label | None
            if e.inline is not None:
                label = (e.inline, e.at)
                if self._label_of(e.ident) is None:  # a label sent now: it joins every version
                    if self._join_waiting(row, e.ident, label, out.others):
                        REACHED["inline label joined other versions"] += 1
                    self._remember_label(e.ident, label)
            else:
                label = self._label_of(e.ident)
                if label is not None:
                    REACHED["remembered label joined a later version"] += 1
                else:
                    label = self._pop_early(e.ident)
                    if label is not None:
                        self._remember_label(e.ident, label)
            if label is None:
                waiting.append(Waiting(e.ident, uid, self.now, e.predicted, e.at))
                continue
            out.pairs.append((row, e.predicted, e.at, *label))
            self._remember_join(e.ident, uid)
        out.waiting, out.evicted = len(waiting), self._wait(waiting)
        return out

    def label(self, labels: list[tuple[str, float, float]]) -> Labelled:
        out = Labelled()
        for row, (ident, value, at) in enumerate(labels):
            if self.per_version:
                matched = self._label_of(ident) is None and self._join_waiting(
                    row, ident, (value, at), out.pairs
                )
                if matched:
                    self._remember_label(ident, (value, at))
                duplicate = self._label_of(ident) is not None
            else:
                p = next((p for p in self.pending if p.ident == ident), None)
                matched = p is not None
                if p is not None:
                    self.pending.remove(p)
                    out.pairs.setdefault(p.uid, []).append((row, p.predicted, p.at, value, at))
                    self._remember_join(ident, p.uid)
                duplicate = any(r.ident == ident for r in self.joined)
            if matched:
                out.joined += 1
            elif duplicate or any(r.ident == ident for r in self.early):
                out.duplicates += 1
            else:
                self.early.append(Remembered(ident, self.now, label=(value, at)))
                out.waiting += 1
                if len(self.early) > MAX_LABELS:
                    del self.early[0]
                    out.evicted += 1
                    REACHED["label evicted"] += 1
        return out

    def forget(self, uid: int) -> int:
        dropped = self.waiting(uid)
        self.pending = [p for p in self.pending if p.uid != uid]
        self.forgotten.add(uid)
        REACHED["forgotten with predictions waiting"] += bool(dropped)
        return dropped


class JoinMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.uids = list(range(1, SLOTS + 1))  # the version in each slot
        self.retired: list[int] = []
        self.join = Join(TTL, MAX_PENDING, LABEL_TTL, MAX_LABELS)
        self.naive = Naive(False, self.now)

    @initialize(per_version=st.booleans(), ended=st.booleans())
    def start(self, per_version: bool, ended: bool) -> None:
        """Keyed either way; per version, maybe changed back to by id at once (the one change
        of keying on an empty join here: key_by_id, the rule, needs entries)."""
        self.join = Join(
            TTL, MAX_PENDING, LABEL_TTL, MAX_LABELS, per_version=per_version, max_versions=SLOTS
        )
        self.naive = Naive(per_version, self.now)
        if per_version and ended:
            self.join.key_per_version(False, self.now)
            self.naive.key_per_version(False)

    def expire(self) -> None:
        """What every step of the store does first."""
        self.naive.now = self.now
        gone = self.join.expire(self.now)
        assert (dict(gone.predictions), gone.labels) == self.naive.expire()

    @rule(
        slot=st.integers(0, SLOTS - 1),
        events=st.lists(
            st.tuples(st.sampled_from(IDS), VALUES, AGES, st.one_of(st.none(), VALUES)),
            min_size=1,
            max_size=4,
            unique_by=lambda event: event[0],
        ),
        with_inline=st.booleans(),
        later=LATER,
    )
    def add_predictions(
        self,
        slot: int,
        events: list[tuple[str, float, float, float | None]],
        with_inline: bool,
        later: float,
    ) -> None:
        """A batch of (id, prediction, age, inline label used only ``with_inline``)."""
        self.now += later
        self.expire()
        batch = [
            Event(ident, predicted, self.now - age, label if with_inline else None)
            for ident, predicted, age, label in events
        ]
        uid = self.uids[slot]
        out = self.join.add_predictions(
            uid,
            [e.ident for e in batch],
            [e.predicted for e in batch],
            [e.at for e in batch],
            [e.inline for e in batch] if with_inline else None,
            self.now,
        )
        assert predicted_of(out, uid) == self.naive.predict(uid, batch)

    @rule(
        labels=st.lists(
            st.tuples(st.sampled_from(IDS), VALUES, AGES),
            min_size=1,
            max_size=4,
            unique_by=lambda label: label[0],
        ),
        later=LATER,
    )
    def add_labels(self, labels: list[tuple[str, float, float]], later: float) -> None:
        """A batch of (id, label, age)."""
        self.now += later
        self.expire()
        batch = [(ident, value, self.now - age) for ident, value, age in labels]
        out = self.join.add_labels(
            [ident for ident, _, _ in batch],
            [value for _, value, _ in batch],
            [at for _, _, at in batch],
            self.now,
        )
        assert labelled_of(out) == self.naive.label(batch)

    # Jumps that land exactly on the label TTL (30 s) and the prediction TTL (60 s), and past.
    @rule(seconds=st.sampled_from([1.0, 10.0, 20.0, 30.0, 50.0, 60.0, 100.0]))
    def wait(self, seconds: float) -> None:
        self.now += seconds
        self.expire()

    @precondition(lambda self: self.naive.came_since_the_change())
    @rule()
    def wait_for_the_keying_by_id(self) -> None:
        """Land exactly on the end of a change back to by id, while what came since stays."""
        assert self.naive.by_id_from is not None
        self.now = self.naive.by_id_from
        self.expire()

    # Two rules, not one with a flag, each only where it matters, so that changes of keying
    # are frequent enough to meet every other step: key_per_version not when keyed per version
    # already, and undoing a change back to by id only until something came since (else it
    # would end most changes before their end); key_by_id not on an empty join (keyed by id at
    # once, most changes would be those), but also while changing back (it must not restart).
    @precondition(
        lambda self: (
            not self.naive.per_version
            or (self.naive.by_id_from is not None and not self.naive.came_since_the_change())
        )
    )
    @rule()
    def key_per_version(self) -> None:
        """A shadow comparison starts."""
        self.expire()
        self.join.key_per_version(True, self.now)
        self.naive.key_per_version(True)

    @precondition(lambda self: self.naive.per_version and not self.naive.empty)
    @rule()
    def key_by_id(self) -> None:
        """The comparison ends."""
        self.expire()
        self.join.key_per_version(False, self.now)
        self.naive.key_per_version(False)

    @rule(slot=st.integers(0, SLOTS - 1))
    def forget(self, slot: int) -> None:
        """Remove the slot's version; a new one (a new uid: uids are never reused) takes it."""
        self.expire()
        uid = self.uids[slot]
        assert self.join.forget(uid) == self.naive.forget(uid)
        self.retired.append(uid)
        self.uids[slot] = max(self.uids + self.retired) + 1

    @invariant()
    def everything_observable_matches_the_naive_model(self) -> None:
        naive, join = self.naive, self.join
        for uid in self.uids + self.retired:
            assert join.pending(uid) == naive.waiting(uid), uid
        assert join.early_labels == len(naive.early)
        assert (join.per_version, join.by_id_from) == (naive.per_version, naive.by_id_from)
        assert join.empty == naive.empty


PATHS = [
    "prediction evicted",
    "prediction expired",
    "label evicted",
    "label expired",
    "joined id forgotten",
    "early label joined",
    "inline label joined other versions",
    "remembered label joined a later version",
    "keyed per version with predictions waiting",
    "change back to by id undone",
    "another version's prediction refused while changing",
    "keyed by id after the ttl",
    "keyed by id when empty",
    "keyed by id at once",
    "forgotten with predictions waiting",
]


def test_the_join_matches_the_naive_model_on_every_path() -> None:
    """The machine's runs, then proof that they are not vacuous: each path was taken."""
    REACHED.clear()
    run_state_machine_as_test(JoinMachine, settings=SETTINGS)
    assert {path: REACHED[path] for path in PATHS if REACHED[path] < 5} == {}


def test_a_change_of_keying_and_back_keeps_every_entry() -> None:
    """A fixed sequence through both models (each rule compares them): by id, per version, and
    back to by id after the ttl, with entries of every stage waiting or remembered."""
    machine = JoinMachine()
    join = machine.join
    machine.add_predictions(0, [("a", 1.0, 0.0, None), ("b", 0.0, 0.0, None)], False, 0.0)
    machine.key_per_version()  # version 1's "a" and "b" wait on, keyed by (id, 1)
    machine.add_predictions(1, [("a", 2.0, 0.0, None)], False, 10.0)
    assert (join.pending(1), join.pending(2)) == (2, 1)
    machine.key_by_id()  # at T0 + 10, until T0 + 70
    assert join.per_version and join.by_id_from == T0 + 70.0
    # Version 3's "a" is a duplicate now; its "c" joins its inline label.
    machine.add_predictions(2, [("a", 0.0, 0.0, None), ("c", 1.0, 0.0, 1.0)], True, 5.0)
    assert join.pending(3) == 0
    machine.add_labels([("a", 1.0, 0.0)], 0.0)  # joins versions 1's and 2's "a"
    assert (join.pending(1), join.pending(2)) == (1, 0)
    machine.add_predictions(2, [("d", 0.0, 0.0, None)], False, 5.0)  # waits from T0 + 20
    machine.wait_for_the_keying_by_id()  # "b" (from T0) expires, "d" waits on: keyed by id
    assert not join.per_version and join.by_id_from is None
    assert (join.pending(1), join.pending(3)) == (0, 1)
    # By id: "a" (joined at T0 + 15, twice: remembered once) and "d" (waiting) are duplicates.
    machine.add_predictions(0, [("a", 0.0, 0.0, None), ("d", 0.0, 0.0, None)], False, 0.0)
    machine.add_labels([("d", 0.0, 0.0), ("a", 0.0, 0.0)], 1.0)  # joins "d"; "a" a duplicate
    assert join.pending(3) == 0 and join.early_labels == 0
    machine.everything_observable_matches_the_naive_model()


def test_changing_back_to_by_id_a_joined_id_is_a_duplicate_for_another_version() -> None:
    join = Join(TTL, MAX_PENDING, LABEL_TTL, MAX_LABELS)
    join.add_predictions(1, ["a"], [1.0], [T0], None, T0)
    assert join.add_labels(["a"], [1.0], [T0], T0).joined == 1
    join.key_per_version(True, T0)
    join.key_per_version(False, T0)
    assert join.per_version  # changing back: "a" joined (version 1's) is still remembered
    out = join.add_predictions(2, ["a"], [0.0], [T0], None, T0)
    assert out.duplicates == 1 and join.pending(2) == 0
