"""The store and the model state, directly: no HTTP, a fake clock, snapshots as the oracle's view.

Each rule of the join, the windows, the versions and the references is checked here on the
owner that implements it; the HTTP tests check the same behaviour end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from exporter.config import load_settings
from exporter.counters import LABEL_DELAY_BUCKETS
from exporter.errors import Reason, RejectedInput
from exporter.model import ModelRemoved, ModelState
from exporter.reference import build_reference
from exporter.snapshot import ModelSnapshot, VersionSnapshot
from exporter.store import Store
from tests.conftest import T0, FakeClock


@dataclass
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | datetime | None = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass
class Label:
    id: str
    label: Any
    timestamp: float | datetime | None = None


def events(ids: list[str], prediction: Any = 1, **kw: Any) -> list[Event]:
    return [Event(i, {"x": float(n)}, prediction, **kw) for n, i in enumerate(ids)]


def labels(ids: list[str], label: Any = 1) -> list[Label]:
    return [Label(i, label) for i in ids]


def make_store(**overrides: Any) -> tuple[Store, FakeClock]:
    clock = FakeClock()
    return Store(load_settings(**overrides), clock=clock), clock


def snap(store: Store, model: str = "m") -> ModelSnapshot:
    return store.get(model).snapshot(store.clock())


def version(s: ModelSnapshot, name: str = "default") -> VersionSnapshot:
    return next(v for v in s.versions if v.name == name)


def window(v: VersionSnapshot, label: str = "1h") -> Any:
    return next(w for w in v.windows if w.window == label)


def test_a_label_joins_its_prediction_and_is_counted_once() -> None:
    store, clock = make_store()
    store.add_predictions("m", None, events(["a", "b"], prediction=1))
    clock.advance(40)
    result = store.add_labels("m", [Label("a", 0), Label("b", 1)])
    assert result.as_dict() == {"accepted": 2, "duplicates": 0, "joined": 2, "pending": 0}
    assert store.add_labels("m", [Label("a", 1)]).duplicates == 1
    s = snap(store)
    v = version(s)
    assert (v.counters.predictions, v.counters.labels, v.pending) == (2, 2, 0)
    assert s.counters.labels_received == 3 and s.counters.duplicate_labels == 1
    # Classes in order of first appearance: 1 (predictions), then 0 (a label).
    assert s.classes == ("1", "0")
    assert v.counters.outcomes.tolist() == [[1, 0], [1, 0]]  # truth 1 -> 1; truth 0 -> 1
    # Both waited 40 s: the histogram bucket whose bound is the first >= 40.
    bucket = int(np.searchsorted(LABEL_DELAY_BUCKETS, 40.0))
    assert v.counters.delay_counts[bucket] == 2 and v.counters.delay_sum == 80.0
    w = window(v)
    assert (w.predictions, w.labeled) == (2, 2)
    assert w.confusion is not None and int(w.confusion.sum()) == 2


def test_windows_count_predictions_by_prediction_time_and_labels_by_label_time() -> None:
    store, clock = make_store(windows=["5m", "1h"], window_buckets=60)
    store.add_predictions("m", None, events(["old"], timestamp=T0 - 600.0))  # 10 min ago
    store.add_predictions("m", None, events(["new"]))
    store.add_labels("m", labels(["old"]))
    v = version(snap(store))
    assert (window(v, "5m").predictions, window(v, "1h").predictions) == (1, 2)
    assert (window(v, "5m").labeled, window(v, "1h").labeled) == (1, 1)  # labelled now
    clock.advance(3600.0)  # everything leaves both windows; the counters stay
    v = version(snap(store))
    assert [w.predictions for w in v.windows] == [0, 0] and v.counters.predictions == 2


def test_waiting_predictions_expire_after_their_ttl_and_are_counted_per_version() -> None:
    store, clock = make_store(join={"prediction_ttl": "1m"})
    store.add_predictions("m", "v1", events(["a", "b"]))
    clock.advance(30)
    store.add_predictions("m", "v2", events(["c"]))
    before = snap(store).revision
    clock.advance(30)  # a and b waited 60 s
    s = snap(store)
    assert s.revision > before  # the expiry is a change readers must see
    assert version(s, "v1").counters.expired == {"ttl": 2, "capacity": 0}
    assert (version(s, "v1").pending, version(s, "v2").pending) == (0, 1)
    assert store.add_labels("m", labels(["a"])).pending == 1  # a's label now waits, unjoined


def test_a_full_join_buffer_evicts_the_oldest_and_counts_it() -> None:
    store, _ = make_store(join={"max_pending_predictions": 3, "max_pending_labels": 2})
    store.add_predictions("m", "v1", events(["a", "b"]))
    store.add_predictions("m", "v2", events(["c", "d"]))
    s = snap(store)
    assert version(s, "v1").counters.expired["capacity"] == 1
    assert (version(s, "v1").pending, version(s, "v2").pending) == (1, 2)
    store.add_labels("m", labels(["x1", "x2", "x3"]))  # three early labels, room for two
    s = snap(store)
    assert s.counters.labels_expired == {"ttl": 0, "capacity": 1} and s.pending_labels == 2


def test_a_new_version_replaces_only_one_idle_for_longer_than_the_longest_window() -> None:
    store, clock = make_store(limits={"max_versions_per_model": 2}, windows=["5m", "1h"])
    store.add_predictions("m", "v1", events(["a"]))
    store.add_predictions("m", "v2", events(["b"]))
    before = snap(store)
    with pytest.raises(RejectedInput) as refused:
        store.add_predictions("m", "v3", events(["c"]))
    assert refused.value.reason is Reason.TOO_MANY_VERSIONS
    assert refused.value.field == "model_version" and refused.value.value == "v3"
    assert snap(store).key == before.key
    clock.advance(3601.0)
    store.add_labels("m", labels(["b"]))  # v2 active again and nothing of v1 waits? a does
    with pytest.raises(RejectedInput):  # v1 is idle, but its prediction a still waits
        store.add_predictions("m", "v3", events(["c"]))
    store.add_labels("m", labels(["a"]))
    clock.advance(3601.0)
    store.add_predictions("m", "v2", events(["d"]))  # v2 active; v1 idle with nothing waiting
    store.add_predictions("m", "v3", events(["e"]))
    assert [v.name for v in snap(store).versions] == ["v2", "v3"]


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        ([Event("a", {"x": 1.0}, 7), Event("b", {"x": 1.0}, 8)], Reason.TOO_MANY_CLASSES),
        ([Event("a", {"x": 1.0}, "cat")], Reason.TASK_MISMATCH),
        ([Event("a", {"x": 1.0}, 1), Event("a", {"x": 1.0}, 1)], Reason.DUPLICATE_ID),
        ([Event("a", {f"f{i}": 1.0 for i in range(5)}, 1)], Reason.TOO_MANY_FEATURES),
        ([Event("a", {"x": 1.0}, 1, timestamp=T0 + 3600.0)], Reason.INVALID_TIMESTAMP),
        ([Event("z", {"x": 1.0}, 1), Event("y", {"x": 1.0}, 0, label=0.5)], Reason.TASK_MISMATCH),
    ],
)
def test_a_rejected_batch_changes_nothing(batch: list[Event], reason: Reason) -> None:
    store, _ = make_store(limits={"max_classes": 3, "max_features": 4})
    store.add_predictions("m", None, [Event("p", {"x": 1.0}, 1), Event("q", {"x": 2.0}, 0)])
    store.add_labels("m", labels(["p"]))
    before = snap(store)
    with pytest.raises(RejectedInput) as refused:
        store.add_predictions("m", None, batch)
    assert refused.value.reason is reason
    after = snap(store)
    assert after.key == before.key
    assert (after.classes, after.features, after.counters) == (
        before.classes,
        before.features,
        before.counters,
    )


def test_a_rejected_first_batch_registers_no_model_and_limits_count_models() -> None:
    store, _ = make_store(limits={"max_models": 1})
    with pytest.raises(RejectedInput):
        store.add_predictions("m", None, [Event("a", {"x": 1.0}, "cat"), Event("b", {}, 1)])
    assert store.models() == []
    store.add_predictions("m", None, events(["a"]))
    with pytest.raises(RejectedInput) as refused:
        store.add_predictions("n", None, events(["a"]))
    assert refused.value.reason is Reason.TOO_MANY_MODELS and refused.value.field == "model"
    with pytest.raises(RejectedInput) as unknown:
        store.add_labels("n", labels(["a"]))
    assert unknown.value.reason is Reason.UNKNOWN_MODEL


def test_the_first_events_become_the_reference_unless_one_was_uploaded() -> None:
    store, _ = make_store(drift={"reference_size": 5})
    store.add_predictions("m", "v1", events(["a", "b", "c"]))
    info = version(snap(store), "v1").reference
    assert (info.source, info.rows, info.target_rows, info.reference) == ("collecting", 3, 5, None)
    store.add_predictions("m", "v1", events(["d", "e", "f"]))
    info = version(snap(store), "v1").reference
    assert info.source == "first_events" and info.reference is not None
    assert info.reference.rows == 5 and info.reference.numeric["x"].size == 5
    settings = store.settings.drift
    ref = build_reference({"x": [1.0, 2.0]}, settings=settings, source="upload", created=T0)
    store.set_reference("m", None, ref)
    info = version(snap(store), "v1").reference
    assert (info.source, info.scope, info.reference) == ("upload", "model", ref)
    mine = build_reference({"x": [3.0, 4.0]}, settings=settings, source="upload", created=T0)
    store.set_reference("m", "v1", mine)
    assert version(snap(store), "v1").reference.reference is mine
    assert version(snap(store), "v1").reference.scope == "version"


def test_a_refused_reference_changes_nothing_even_when_the_version_does_not_fit() -> None:
    store, _ = make_store(limits={"max_versions_per_model": 1})
    store.add_predictions("m", "v1", events(["a"]))
    before = snap(store)
    ref = build_reference(
        {"x": [1.0], "new": [2.0]}, settings=store.settings.drift, source="upload", created=T0
    )
    with pytest.raises(RejectedInput) as refused:
        store.set_reference("m", "v2", ref)
    assert refused.value.reason is Reason.TOO_MANY_VERSIONS
    after = snap(store)
    assert after.features == before.features == (("x", "numeric"),)  # "new" not adopted
    assert after.key == before.key


def test_a_reference_uploaded_first_declares_the_features_and_refuses_conflicts() -> None:
    store, _ = make_store()
    ref = build_reference(
        {"x": [1.0, 2.0], "colour": ["red", "blue"]},
        settings=store.settings.drift,
        source="upload",
        created=T0,
    )
    assert store.set_reference("m", None, ref) == []
    s = snap(store)
    assert dict(s.features) == {"x": "numeric", "colour": "categorical"} and s.task is None
    conflict = build_reference(
        {"x": ["a", "b"]}, settings=store.settings.drift, source="upload", created=T0
    )
    with pytest.raises(RejectedInput) as refused:
        store.set_reference("m", None, conflict)
    assert refused.value.field == "features.x"


def test_the_snapshot_key_changes_exactly_when_what_it_shows_changes() -> None:
    store, clock = make_store(windows=["1h"], window_buckets=60)  # 1-minute buckets
    store.add_predictions("m", None, events(["a"]))
    first = snap(store).key
    clock.advance(30.0)
    assert snap(store).key == first  # time passed, nothing left the window
    clock.advance(3600.0)
    assert snap(store).key != first  # the bucket holding "a" left the window
    moved = snap(store).key
    clock.advance(120.0)
    assert snap(store).key == moved  # empty buckets leaving change nothing
    store.add_predictions("m", None, events(["b"]))
    assert snap(store).key != moved


def test_drift_snapshots_skip_windows_whose_key_is_known() -> None:
    store, clock = make_store(windows=["5m", "1h"])
    store.add_predictions("m", "v1", events(["a"]))
    state = store.get("m")
    first = state.drift_snapshot(clock(), {})
    assert [(w.version, w.window) for w in first.windows] == [("v1", "5m"), ("v1", "1h")]
    known = {(w.version, w.window): w.key for w in first.windows}
    assert state.drift_snapshot(clock(), known).windows == ()
    store.add_labels("m", labels(["a"]))
    assert len(state.drift_snapshot(clock(), known).windows) == 2
    assert first.windows[0].rows.events == 1 and first.layout.names == ("x",)


def test_shadow_mode_joins_one_label_to_every_version_of_the_id() -> None:
    settings = load_settings()
    state = ModelState("m", None, settings, T0, per_version_join=True)
    state.add_predictions("v1", events(["r1", "r2"], prediction=1), T0)
    state.add_predictions("v2", events(["r1", "r2"], prediction=0), T0)
    assert state.add_predictions("v2", events(["r1"]), T0).duplicates == 1
    result = state.add_labels(labels(["r1"], label=1), T0 + 5)
    assert result.joined == 1
    s = state.snapshot(T0 + 5)
    v1, v2 = version(s, "v1"), version(s, "v2")
    assert (v1.counters.labels, v2.counters.labels) == (1, 1)
    assert (v1.pending, v2.pending) == (1, 1)
    ones = s.classes.index("1")
    zeros = s.classes.index("0")
    assert v1.counters.outcomes[ones, ones] == 1 and v2.counters.outcomes[ones, zeros] == 1


def test_a_version_idle_for_exactly_the_longest_window_can_be_replaced() -> None:
    store, clock = make_store(
        limits={"max_versions_per_model": 1}, windows=["5m"], join={"prediction_ttl": "1m"}
    )
    store.add_predictions("m", "v1", events(["a"]))
    clock.advance(299.0)  # a expired long ago; v1 idle for 299 s
    with pytest.raises(RejectedInput):
        store.add_predictions("m", "v2", events(["b"]))
    clock.advance(1.0)
    store.add_predictions("m", "v2", events(["b"]))
    assert [v.name for v in snap(store).versions] == ["v2"]


def test_an_unchanged_model_gives_no_new_snapshot_and_copies_nothing() -> None:
    store, clock = make_store(windows=["1h"], window_buckets=60)
    store.add_predictions("m", None, events(["a"]))
    state = store.get("m")
    first = state.snapshot(clock())
    clock.advance(30.0)
    assert state.snapshot_if_changed(clock(), first.key) is None
    store.add_labels("m", labels(["a"]))
    changed = state.snapshot_if_changed(clock(), first.key)
    assert changed is not None and version(changed).counters.labels == 1
    clock.advance(3600.0)  # the data leaves the window: a change with no new event
    assert state.snapshot_if_changed(clock(), changed.key) is not None


def test_a_closed_model_refuses_every_writer_so_the_store_can_retry() -> None:
    settings = load_settings()
    state = ModelState("m", None, settings, T0, uid=7)
    state.add_predictions("v1", events(["a"]), T0)
    removal = state.close(T0 + 1)
    assert removal is not None and (removal.versions, removal.pending_predictions) == (("v1",), 1)
    ref = build_reference({"x": [1.0]}, settings=settings.drift, source="upload", created=T0)
    for write in (
        lambda: state.add_predictions("v1", events(["b"]), T0 + 2),
        lambda: state.add_labels(labels(["a"]), T0 + 2),
        lambda: state.set_reference(ref, None, T0 + 2),
        lambda: state.delete_version("v1", T0 + 2),
    ):
        with pytest.raises(ModelRemoved):
            write()


def test_removing_a_version_is_a_change_every_reader_sees() -> None:
    removed: list[tuple[str, str]] = []
    state = ModelState(
        "m", None, load_settings(), T0, on_version_removed=lambda v, why: removed.append((v, why))
    )
    state.add_predictions("v1", events(["a"]), T0)
    state.add_predictions("v2", events(["b"]), T0)
    before = state.snapshot(T0)
    assert state.delete_version("v1", T0) == 1
    assert removed == [("v1", "deleted")]
    assert state.snapshot_if_changed(T0, before.key) is not None
    assert [w.version for w in state.drift_snapshot(T0, {}).windows] == ["v2"]
    assert state.close(T0, idle_ttl=3600.0) is None  # active (and b waits): not idle
