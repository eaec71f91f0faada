"""The store against a naive model of it, driven by random sequences (hypothesis).

Rules post predictions (some with inline labels, some with past timestamps, some retried),
labels (late, early, duplicate, for ids never predicted), switch between three versions where
only two fit (so idle versions are replaced), delete the model or a version, pin and unpin
versions, expire idle ones (and the model), and jump the clock. After every step every
count the store exports is compared with a naive recomputation from the event log: window
counts by prediction and label time, outcome counts, label delays, waiting predictions and
labels, expiry and eviction counters, duplicates, what was removed and dropped, and each
ingest and removal result.

The naive model keeps plain lists in arrival order and applies the documented rules literally;
it shares no code with the store.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from exporter.config import load_settings
from exporter.errors import Reason, RejectedInput
from exporter.store import Store
from tests.conftest import T0, FakeClock
from tests.test_store import Event, Label

WINDOWS = {"1m": 60.0, "5m": 300.0}
BUCKETS = 6
PREDICTION_TTL, MAX_PENDING = 120.0, 6
LABEL_TTL, MAX_LABELS = 30.0, 3
MAX_VERSIONS = 2
IDLE_TTL = 600.0
IDS = [f"id{i}" for i in range(12)]


@dataclass
class NaiveVersion:
    name: str
    last_activity: float
    predictions: int = 0
    labels: int = 0
    expired: dict[str, int] = field(default_factory=lambda: {"ttl": 0, "capacity": 0})
    outcomes: Counter[tuple[int, int]] = field(default_factory=Counter)
    prediction_times: list[tuple[float, float]] = field(default_factory=list)  # (event, insert)
    label_times: list[tuple[float, float]] = field(default_factory=list)
    delay_sum: float = 0.0
    delays: int = 0  # in the histogram: from 0 to PREDICTION_TTL
    delays_excluded: dict[str, int] = field(
        default_factory=lambda: {"negative": 0, "beyond_ttl": 0}
    )


@dataclass
class Waiting:
    key: str
    arrival: float
    version: str = ""
    value: int = 0  # the prediction, or the label
    at: float = 0.0  # its event time


class Naive:
    """The store's rules, applied literally to lists."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.versions: dict[str, NaiveVersion] = {}
        self.pending: list[Waiting] = []
        self.joined: list[Waiting] = []
        self.early: list[Waiting] = []
        self.labels_received = 0
        self.labels_expired = {"ttl": 0, "capacity": 0}
        self.duplicates = {"prediction": 0, "label": 0}
        self.exists = False
        self.last_activity = now
        self.pinned: set[str] = set()
        self.removed = {
            "models": {"deleted": 0, "idle": 0},
            "versions": {"deleted": 0, "idle": 0, "replaced": 0},
            "dropped": {"prediction": 0, "label": 0},
        }

    def successor(self) -> Naive:
        """After the model's removal: a model never seen, that remembers what was removed."""
        fresh = Naive(self.now)
        fresh.removed = self.removed
        return fresh

    def expire(self) -> None:
        for entry in [e for e in self.pending if e.arrival <= self.now - PREDICTION_TTL]:
            self.pending.remove(entry)
            self.versions[entry.version].expired["ttl"] += 1
        self.joined = [e for e in self.joined if e.arrival > self.now - PREDICTION_TTL]
        gone = [e for e in self.early if e.arrival <= self.now - LABEL_TTL]
        self.labels_expired["ttl"] += len(gone)
        self.early = [e for e in self.early if e not in gone]

    def _remember_joined(self, key: str) -> None:
        self.joined.append(Waiting(key, self.now))
        del self.joined[: max(0, len(self.joined) - MAX_PENDING)]  # oldest forgotten, silently

    def _record(self, version: NaiveVersion, truth: int, pred: int, p_at: float, l_at: float):
        version.labels += 1
        version.last_activity = self.now  # a joined label is activity of its version
        version.outcomes[(truth, pred)] += 1
        version.label_times.append((l_at, self.now))
        delay = l_at - p_at
        if delay < 0 or delay > PREDICTION_TTL:
            version.delays_excluded["negative" if delay < 0 else "beyond_ttl"] += 1
        else:
            version.delays += 1
            version.delay_sum += delay

    def predict(self, name: str, batch: list[tuple[str, int, int | None, float]]) -> dict[str, int]:
        self.expire()
        if name not in self.versions and len(self.versions) >= MAX_VERSIONS:
            candidates = [v for v in self.versions.values() if v.name not in self.pinned]
            if not candidates:
                raise RejectedInput(Reason.TOO_MANY_VERSIONS, "")
            oldest = min(candidates, key=lambda v: v.last_activity)
            waiting = any(e.version == oldest.name for e in self.pending)
            if oldest.last_activity > self.now - max(WINDOWS.values()) or waiting:
                raise RejectedInput(Reason.TOO_MANY_VERSIONS, "")
            del self.versions[oldest.name]
            self.removed["versions"]["replaced"] += 1
        self.exists = True
        self.last_activity = self.now
        version = self.versions.setdefault(name, NaiveVersion(name, self.now))
        version.last_activity = self.now
        known = {e.key for e in self.pending} | {e.key for e in self.joined}
        kept = [event for event in batch if event[0] not in known]
        self.duplicates["prediction"] += len(batch) - len(kept)
        joined = []
        for ident, pred, inline, at in kept:
            early = next((e for e in self.early if e.key == ident), None)
            if inline is not None:
                self._record(version, inline, pred, at, at)
                joined.append(ident)
            elif early is not None:
                self.early.remove(early)
                self._record(version, early.value, pred, at, early.at)
                joined.append(ident)
            else:
                self.pending.append(Waiting(ident, self.now, name, pred, at))
            version.prediction_times.append((at, self.now))
        waiting = len(kept) - len(joined)
        for entry in self.pending[: max(0, len(self.pending) - MAX_PENDING)]:
            self.versions[entry.version].expired["capacity"] += 1
        del self.pending[: max(0, len(self.pending) - MAX_PENDING)]
        for ident in joined:
            self._remember_joined(ident)
        version.predictions += len(kept)
        return {
            "accepted": len(kept),
            "duplicates": len(batch) - len(kept),
            "joined": len(joined) if kept else 0,
            "pending": waiting if kept else 0,
        }

    def label(self, batch: list[tuple[str, int]]) -> dict[str, int]:
        self.expire()
        self.labels_received += len(batch)
        self.last_activity = self.now
        joined = duplicates = waiting = 0
        for ident, value in batch:
            entry = next((e for e in self.pending if e.key == ident), None)
            if entry is not None:
                self.pending.remove(entry)
                self._record(self.versions[entry.version], value, entry.value, entry.at, self.now)
                self._remember_joined(ident)
                joined += 1
            elif any(e.key == ident for e in self.joined + self.early):
                duplicates += 1
            else:
                self.early.append(Waiting(ident, self.now, value=value, at=self.now))
                if len(self.early) > MAX_LABELS:
                    del self.early[0]
                    self.labels_expired["capacity"] += 1
                waiting += 1
        self.duplicates["label"] += duplicates
        return {
            "accepted": len(batch) - duplicates,
            "duplicates": duplicates,
            "joined": joined,
            "pending": waiting,
        }

    def delete_model(self) -> tuple[list[str], int, int]:
        self.expire()
        if not self.exists:
            raise RejectedInput(Reason.UNKNOWN_MODEL, "")
        if self.pinned:
            raise RejectedInput(Reason.PINNED_VERSION, "")
        removal = (list(self.versions), len(self.pending), len(self.early))
        self.removed["models"]["deleted"] += 1
        self.removed["dropped"]["prediction"] += len(self.pending)
        self.removed["dropped"]["label"] += len(self.early)
        return removal  # the caller moves on to the successor

    def delete_version(self, name: str) -> int:
        self.expire()
        if not self.exists:
            raise RejectedInput(Reason.UNKNOWN_MODEL, "")
        if name not in self.versions:
            raise RejectedInput(Reason.UNKNOWN_VERSION, "")
        if name in self.pinned:
            raise RejectedInput(Reason.PINNED_VERSION, "")
        dropped = [e for e in self.pending if e.version == name]
        self.pending = [e for e in self.pending if e.version != name]
        del self.versions[name]
        self.removed["versions"]["deleted"] += 1
        self.removed["dropped"]["prediction"] += len(dropped)
        return len(dropped)

    def expire_idle(self) -> bool:
        """Idle: nothing accepted for IDLE_TTL, nothing waiting, nothing pinned; the whole model
        if it is idle (returns True: the caller moves on to the successor), else each idle
        version."""
        self.expire()
        if not self.exists:
            return False
        idle_since = self.now - IDLE_TTL
        if self.last_activity <= idle_since and not (self.pending or self.early or self.pinned):
            self.removed["models"]["idle"] += 1
            return True
        waiting = {e.version for e in self.pending}
        for v in list(self.versions.values()):
            if v.last_activity <= idle_since and v.name not in waiting | self.pinned:
                del self.versions[v.name]
                self.removed["versions"]["idle"] += 1
        return False

    def in_window(self, times: list[tuple[float, float]], duration: float) -> int:
        """Events of a window: bucketed by event time (a time after insertion counts as the
        insertion's), kept if their bucket was in the ring when inserted, live now."""
        width = duration / BUCKETS
        current = math.floor(self.now / width)
        count = 0
        for at, inserted in times:
            at_insert = math.floor(inserted / width)
            bucket = min(math.floor(at / width), at_insert)
            if bucket > at_insert - BUCKETS and current - BUCKETS < bucket <= current:
                count += 1
        return count

    def outside_windows(self, times: list[tuple[float, float]]) -> int:
        """Events that no window held when inserted: older than each one's oldest bucket."""
        widths = [duration / BUCKETS for duration in WINDOWS.values()]
        return sum(
            all(math.floor(at / w) <= math.floor(inserted / w) - BUCKETS for w in widths)
            for at, inserted in times
        )


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.store = Store(
            load_settings(
                windows=list(WINDOWS),
                window_buckets=BUCKETS,
                limits={"max_versions_per_model": MAX_VERSIONS, "idle_model_ttl": IDLE_TTL},
                join={
                    "prediction_ttl": PREDICTION_TTL,
                    "max_pending_predictions": MAX_PENDING,
                    "label_ttl": LABEL_TTL,
                    "max_pending_labels": MAX_LABELS,
                },
            ),
            clock=self.clock,
        )
        self.naive = Naive(T0)

    @rule(
        version=st.sampled_from(["v1", "v2", "v3"]),
        ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True),
        data=st.data(),
    )
    def predict(self, version: str, ids: list[str], data: st.DataObject) -> None:
        batch = []
        for ident in ids:
            pred = data.draw(st.integers(0, 1))
            inline = data.draw(st.one_of(st.none(), st.integers(0, 1)))
            ago = data.draw(st.sampled_from([0.0, 0.0, 7.0, 10.0, 45.0, 60.0, 250.0, 300.0, 400.0]))
            batch.append((ident, pred, inline, self.clock.now - ago))
        try:
            expected: dict[str, int] | None = self.naive.predict(version, batch)
        except RejectedInput:
            expected = None
        events = [Event(i, {"x": 1.0}, p, timestamp=at, label=inline) for i, p, inline, at in batch]
        try:
            got = self.store.add_predictions("m", version, events).as_dict()
        except RejectedInput as exc:
            assert expected is None and exc.reason is Reason.TOO_MANY_VERSIONS
            return
        assert got == expected

    @rule(
        ids=st.lists(st.sampled_from(IDS), min_size=1, max_size=4, unique=True),
        values=st.lists(st.integers(0, 1), min_size=4, max_size=4),
    )
    def label(self, ids: list[str], values: list[int]) -> None:
        batch = list(zip(ids, values, strict=False))
        if not self.naive.exists:  # nothing predicted yet, or removed: an unknown model
            try:
                self.store.add_labels("m", [Label(i, v) for i, v in batch])
            except RejectedInput as exc:
                assert exc.reason is Reason.UNKNOWN_MODEL
                return
            raise AssertionError("labels of an unknown model were accepted")
        expected = self.naive.label(batch)
        got = self.store.add_labels("m", [Label(i, v) for i, v in batch]).as_dict()
        assert got == expected

    @rule()
    def delete_model(self) -> None:
        try:
            expected: tuple[list[str], int, int] | Reason = self.naive.delete_model()
        except RejectedInput as exc:
            expected = exc.reason
        try:
            removal = self.store.delete("m")
        except RejectedInput as exc:
            assert exc.reason == expected
            return
        got = (list(removal.versions), removal.pending_predictions, removal.pending_labels)
        assert got == expected
        self.naive = self.naive.successor()

    @rule(version=st.sampled_from(["v1", "v2", "v3"]))
    def delete_version(self, version: str) -> None:
        try:
            expected: int | Reason = self.naive.delete_version(version)
        except RejectedInput as exc:
            expected = exc.reason
        try:
            got: int | Reason = self.store.delete_version("m", version)
        except RejectedInput as exc:
            got = exc.reason
        assert got == expected

    @rule(version=st.sampled_from(["v1", "v2", "v3"]), pin=st.booleans())
    def pin(self, version: str, pin: bool) -> None:
        if not self.naive.exists:
            return
        state = self.store.get("m")
        if pin:
            state.pin(version)
            self.naive.pinned.add(version)
        else:
            state.unpin(version)
            self.naive.pinned.discard(version)

    @rule()
    def expire_idle(self) -> None:
        self.store.expire_all()
        if self.naive.expire_idle():
            self.naive = self.naive.successor()

    # Jumps that land exactly on every boundary (bucket widths 10 s and 50 s, the label TTL
    # 30 s, the prediction TTL 120 s, the idle time of a replaceable version 300 s, the idle
    # time of an expired one 600 s) and past.
    @rule(seconds=st.sampled_from([1.0, 9.0, 10.0, 30.0, 50.0, 90.0, 120.0, 300.0, 600.0, 1000.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.naive.now = self.clock.now

    @invariant()
    def everything_counted_matches_the_naive_model(self) -> None:
        naive = self.naive
        assert [s.name for s in self.store.models()] == (["m"] if naive.exists else [])
        removals = self.store.removals()
        assert {
            "models": removals.models,
            "versions": removals.versions,
            "dropped": removals.dropped,
        } == naive.removed
        if not naive.exists:
            return
        naive.expire()
        s = self.store.get("m").snapshot(self.clock.now)
        assert [v.name for v in s.versions] == list(naive.versions)
        assert s.counters.labels_received == naive.labels_received
        assert s.counters.labels_expired == naive.labels_expired
        assert s.counters.duplicate_predictions == naive.duplicates["prediction"]
        assert s.counters.duplicate_labels == naive.duplicates["label"]
        assert s.pending_labels == len(naive.early)
        for v in s.versions:
            n = naive.versions[v.name]
            c = v.counters
            assert (c.predictions, c.labels, c.expired) == (n.predictions, n.labels, n.expired)
            assert v.pending == sum(1 for e in naive.pending if e.version == v.name)
            outcomes = Counter(
                {
                    (int(s.classes[a]), int(s.classes[p])): int(c.outcomes[a, p])
                    for a in range(c.outcomes.shape[0])
                    for p in range(c.outcomes.shape[0])
                    if c.outcomes[a, p]
                }
            )
            assert outcomes == n.outcomes
            assert int(c.delay_counts.sum()) == n.delays
            assert c.delays_excluded == n.delays_excluded
            assert c.outside_windows == {
                "prediction": naive.outside_windows(n.prediction_times),
                "label": naive.outside_windows(n.label_times),
            }
            assert math.isclose(c.delay_sum, n.delay_sum, rel_tol=1e-9, abs_tol=1e-6)
            for w in v.windows:
                duration = WINDOWS[w.window]
                assert w.predictions == naive.in_window(n.prediction_times, duration), w.window
                assert w.labeled == naive.in_window(n.label_times, duration), w.window


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, derandomize=True
)


def test_the_naive_model_is_not_vacuous() -> None:
    """A fixed sequence goes through both implementations and they agree on it."""
    machine = StoreMachine()
    naive, store, clock = machine.naive, machine.store, machine.clock
    batch = [("id0", 1, None, clock.now), ("id1", 0, 1, clock.now)]
    events = [Event(i, {"x": 1.0}, p, timestamp=at, label=lab) for i, p, lab, at in batch]
    assert store.add_predictions("m", "v1", events).as_dict() == naive.predict("v1", batch)
    clock.advance(10.0)
    naive.now = clock.now
    assert store.add_labels("m", [Label("id0", 1), Label("id9", 0)]).as_dict() == naive.label(
        [("id0", 1), ("id9", 0)]
    )
    machine.everything_counted_matches_the_naive_model()
    assert naive.versions["v1"].labels == 2 and len(naive.early) == 1


def test_the_removal_rules_are_not_vacuous() -> None:
    """Deletion, pinning and idle expiry go through both implementations and they agree."""
    machine = StoreMachine()
    naive, store, clock = machine.naive, machine.store, machine.clock
    for name, ident in (("v1", "id0"), ("v2", "id1"), ("v2", "id2")):
        batch = [(ident, 1, None, clock.now)]
        events = [Event(ident, {"x": 1.0}, 1, timestamp=clock.now)]
        assert store.add_predictions("m", name, events).as_dict() == naive.predict(name, batch)
    assert store.delete_version("m", "v2") == naive.delete_version("v2") == 2
    machine.pin("v1", True)
    clock.advance(IDLE_TTL)
    naive.now = clock.now
    machine.expire_idle()  # everything is idle, but v1 is pinned: nothing goes
    machine.everything_counted_matches_the_naive_model()
    assert store.get("m").versions.names() == ["v1"]
    machine.pin("v1", False)
    machine.expire_idle()
    machine.everything_counted_matches_the_naive_model()
    assert store.models() == [] and machine.naive.removed["models"]["idle"] == 1
    assert machine.naive.removed["dropped"]["prediction"] == 2
