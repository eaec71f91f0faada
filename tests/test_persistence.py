"""State snapshots: each owner's to_state/from_state, and whole restarts of an app.

Apps here are driven through the store (no HTTP: who may write is another test's concern),
with a fake clock; the exposition before and after a restart is compared sample by sample.
"""

from __future__ import annotations

import gc
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from exporter.app import create_app
from exporter.comparison import Declaration
from exporter.config import load_settings
from exporter.join import Join, PendingBuffer
from exporter.model import ModelState
from exporter.pairs import PairBook
from exporter.persist import fileformat, plain
from exporter.persist.plain import Rows, rows, settle
from exporter.persistence import FILE_NAME, StateKeeper, collector_paused
from exporter.reference import Reference, build_reference
from exporter.schema import ModelSchema
from exporter.store import Store
from exporter.window import QualityWindow, SampleWindow
from tests.conftest import T0, FakeClock, parse_metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float | None = None
    label: Any = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


@dataclass
class Label:
    id: str
    label: Any
    timestamp: float | None = None


# -- owners, one by one ------------------------------------------------------------------------


def test_quality_window_round_trip() -> None:
    w = QualityWindow(3600, 60, regression=False)
    w.add_outcomes(np.array([T0, T0 + 90]), np.array([0, 2]), np.array([1, 2]), T0 + 90)
    back = QualityWindow.from_state(w.to_state(), 3600, 60)
    assert np.array_equal(back.confusion(T0 + 100), w.confusion(T0 + 100))
    assert back.confusion(T0 + 100).sum() == 2
    # Placed by wall time: both age out of the window as the original's do.
    assert back.confusion(T0 + 3650).sum() == w.confusion(T0 + 3650).sum() == 1
    with pytest.raises(ValueError, match="configured"):
        QualityWindow.from_state(w.to_state(), 3600, 30)


def test_sample_window_round_trip_samples_on_identically() -> None:
    w = SampleWindow(3600, 6, capacity=5, seed=3)
    rng = np.random.default_rng(0)
    w.add(np.full(40, T0), rng.normal(size=(40, 2)), T0)
    w.add(np.full(40, T0 + 600), rng.normal(size=(40, 2)), T0 + 600)
    w.add(np.full(40, T0 + 1200), rng.normal(size=(40, 2)), T0 + 1200)
    w.add(np.full(40, T0 + 1800), rng.normal(size=(40, 2)), T0 + 1800)  # thins the older ones
    w.add(np.full(40, T0), rng.normal(size=(40, 2)), T0 + 1800)  # late: a second stratum
    back = SampleWindow.from_state(w.to_state(), 3600, 6, 5)
    more = rng.normal(size=(40, 3))
    for window in (w, back):
        window.add(np.full(40, T0 + 1801), more, T0 + 1801)
        window.add(np.full(40, T0 + 1), more, T0 + 1801)
    a, b = w.snapshot(T0 + 1801), back.snapshot(T0 + 1801)
    assert np.array_equal(a.seen, b.seen) and a.events == 280
    assert len(a.seen) > 4  # the first bucket holds several strata
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a.rows, b.rows, strict=True))


def test_schema_round_trip_keeps_bools_and_ints_apart() -> None:
    schema = ModelSchema("binary", True, ["c"])
    schema.codec.kind = "bool"
    schema.codec.add(False)
    schema.codec.add(True)
    schema.adopt_features(["x"], ["c"])
    back = ModelSchema.from_state(schema.to_state())
    assert back.to_state() == schema.to_state()
    assert back.codec.values == [False, True] and back.codec.index[True] == 1
    assert back.positive_index == 1 and back.features.index == {"c": 0, "x": 1}


def test_pending_buffer_round_trip_keeps_order_and_tuple_keys() -> None:
    buffer: PendingBuffer[Any, Any] = PendingBuffer(60, 3)
    buffer.add(("a", 1), T0, (1, 0.0, T0))
    buffer.add(("b", 2), T0 + 1, (2, 1.0, T0 + 1))
    saved = decoded(buffer.to_state())  # tuples come back as lists
    back = PendingBuffer.from_state(saved, tuple, tuple)
    assert list(back) == [("a", 1), ("b", 2)]
    assert back.get(("b", 2)) == (2, 1.0, T0 + 1)
    assert back.expire(T0 + 60) == [(1, 0.0, T0)]  # arrival times kept


def test_pending_buffer_to_state_copies_payloads_that_change_in_place() -> None:
    buffer: PendingBuffer[str, dict[str, float]] = PendingBuffer(60, 3)
    buffer.add("a", T0, {"v1": 0.5})
    saved = buffer.to_state(copy=dict)
    seen = buffer.get("a")
    assert seen is not None
    seen["v2"] = 1.0  # as the pair book records a second version's loss
    assert rows(saved["entries"], 1) == [(T0, {"v1": 0.5})]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "add_many", "pop", "expire"]), st.integers(0, 12)),
        max_size=80,
    )
)
def test_pending_buffer_copy_is_in_the_buffers_order(ops: list[tuple[str, int]]) -> None:
    """The copy reads the OrderedDict's base dict: same entries, same order, after any mix of
    evictions, joins (pops), expiry and re-insertions of keys that left."""
    buffer: PendingBuffer[str, int] = PendingBuffer(30, 6)
    now = T0
    for serial, (op, n) in enumerate(ops):
        now += n % 3
        if op == "add":
            buffer.add(f"k{n}", now, serial)
        elif op == "add_many":
            keys = [f"k{n + i}" for i in range(n % 4 + 1) if f"k{n + i}" not in buffer]
            buffer.add_many(keys, now, [serial] * len(keys))
        elif op == "pop":
            buffer.pop(f"k{n}")
        else:
            buffer.expire(now)
    taken = buffer.copy()
    assert taken.keys == list(buffer)
    assert taken.entries == [(a, p) for a, p in buffer._entries.values()]


def decoded(state: Any) -> Any:
    """``state`` through a snapshot body and back, as a restore reads it."""
    return fileformat.msgspec.msgpack.decode(
        zlib.decompress(fileformat.encode_body({"part": state}))
    )["part"]


def busy_join(*, per_version: bool) -> Join:
    """A join with entries in each of its buffers, ids of every kind (NUL, non-ASCII, astral,
    empty-looking), early labels as sent (bool, int, string) and, per version, two versions."""
    join = Join(600, 100, 60, 10, per_version=per_version, max_versions=3)
    ids = ["a", "b\x00c", "é", "😀", " ", "x" * 256]
    join.add_predictions(1, ids, [1.0, 0.0, 2.0, 1.0, 0.0, 3.5], [T0 - 9] * 6, None, T0)
    if per_version:
        join.add_predictions(2, ids[:3], [0.0, 1.0, 2.0], [T0 - 8] * 3, None, T0 + 1)
    join.add_labels(["a", "é"], [1.0, 0.0], [T0 + 2] * 2, T0 + 2)
    join.add_labels(["early1", "early2", "early3"], [True, 7, "cat"], [T0 + 3] * 3, T0 + 3)
    return join


@pytest.mark.parametrize("per_version", [False, True], ids=["by-id", "per-version"])
def test_join_round_trip_joins_as_the_original(per_version: bool) -> None:
    join = busy_join(per_version=per_version)
    saved = decoded(join.to_state())
    back = Join(600, 100, 60, 10, max_versions=3)
    back.load_state(saved)
    assert decoded(back.to_state()) == saved
    for j in (join, back):  # both join and refuse alike from here
        out = j.add_labels(["😀", "b\x00c", "a", "early1"], [1.0] * 4, [T0 + 5] * 4, T0 + 5)
        assert (out.joined, out.duplicates) == (2, 2)  # "a" joined, "early1" waits already
        assert out.pairs[1].predicted == [1.0, 0.0]
        assert out.pairs[1].prediction_times == [T0 - 9] * 2
    assert back.to_state().keys() == join.to_state().keys()
    assert decoded(back.to_state()) == decoded(join.to_state())
    assert back.pending(1) == join.pending(1) == 2 and back.early_labels == 3
    assert back.add_predictions(1, ["early3"], [1.0], [T0], None, T0 + 6).pairs.actual == ["cat"]
    expired = back.expire(T0 + 600)
    assert expired.predictions[1] == 2  # arrival times kept: they leave when they would have


def test_join_to_state_copies_now_and_is_encoded_later() -> None:
    """What a snapshot copies under the model's lock is the join at that moment, even though
    it is encoded afterwards, while ingest goes on."""
    join = busy_join(per_version=False)
    taken = join.to_state()
    assert isinstance(taken["pending"]["entries"], Rows)
    expected = settle(join.to_state())
    join.add_predictions(1, ["n1", "n2"], [0.0, 1.0], [T0 + 7] * 2, None, T0 + 7)
    join.add_labels(["b\x00c", "😀", "early9"], [0.0, 1.0, 2.0], [T0 + 7] * 3, T0 + 7)
    join.expire(T0 + 605)
    assert settle(join.to_state()) != expected
    assert settle(taken) == expected
    assert decoded(taken) == decoded(expected)


def test_the_joins_buffers_are_saved_as_rows_of_entries() -> None:
    saved = decoded(busy_join(per_version=True).to_state())
    pending = saved["pending"]
    # "a" and "é" joined both versions' predictions: the rest waits.
    assert pending["size"] == 5
    assert rows(pending["keys"], 5) == [
        ["b\x00c", 1],
        ["😀", 1],
        [" ", 1],
        ["x" * 256, 1],
        ["b\x00c", 2],
    ]
    # Payloads: [version uid, predicted, prediction time, score (None: the event had none)].
    assert rows(pending["entries"], 5) == [
        [T0, [1, p, T0 - 9, None]] for p in (0.0, 1.0, 0.0, 3.5)
    ] + [[T0 + 1, [2, 1.0, T0 - 8, None]]]
    assert rows(saved["joined"]["keys"], 4) == [["a", 1], ["a", 2], ["é", 1], ["é", 2]]
    early = rows(saved["early"]["entries"], 3)
    assert [label for _, (label, _) in early] == [True, 7, "cat"]  # as sent: types kept


def test_rows_are_encoded_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plain, "SLICE", 2)
    join = busy_join(per_version=False)
    saved = decoded(join.to_state())
    assert [len(part) for part in saved["pending"]["keys"]] == [2, 2]
    assert [len(part) for part in saved["early"]["entries"]] == [2, 1]
    back = Join(600, 100, 60, 10)
    back.load_state(saved)
    assert decoded(back.to_state()) == saved


def _spoil(state: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    spoilt = dict(state)
    if len(path) == 1:
        spoilt[path[0]] = value
    else:
        spoilt[path[0]] = _spoil(state[path[0]], path[1:], value)
    return spoilt


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("pending", "size"), 6, id="size"),
        pytest.param(("pending", "size"), -1, id="negative-size"),
        pytest.param(("pending", "size"), 5.0, id="size-type"),
        pytest.param(("per_version",), "yes", id="keying-flag"),
        pytest.param(("per_version",), False, id="keying"),
        pytest.param(("pending", "keys"), [[["a", 1]] * 4], id="key-count"),
        pytest.param(
            ("pending", "keys"),
            [[["a", "1"], ["b", 1], ["c", 1], ["d", 1], ["e", 1]]],
            id="key-uid",
        ),
        pytest.param(("pending", "keys"), "a,b,c,d,e", id="keys-not-rows"),
        pytest.param(("joined", "entries"), [[[T0, "1"]] * 4], id="uid-type"),
        pytest.param(("joined", "entries"), [[[T0]] * 4], id="entry-shape"),
        pytest.param(("pending", "entries"), [[[T0, [1, 0.0]]] * 5], id="payload-shape"),
        pytest.param(("pending", "entries"), [[["now", [1, 0.0, T0]]] * 5], id="arrival-type"),
        pytest.param(("early", "entries"), [[[T0, [[1], T0]]] * 3], id="label-type"),
        pytest.param(("early", "keys"), [[1, 2, 3]], id="id-type"),
        pytest.param(("early", "keys"), [["e"] * 3], id="key-twice"),
        pytest.param(("early", "ttl"), "soon", id="ttl"),
    ],
)
def test_a_malformed_join_is_refused_and_changes_nothing(path: tuple[str, ...], value: Any) -> None:
    saved = decoded(busy_join(per_version=True).to_state())
    join = busy_join(per_version=False)
    before = settle(join.to_state())
    with pytest.raises(ValueError):  # StateError, mostly
        join.load_state(_spoil(saved, path, value))
    assert settle(join.to_state()) == before


def test_the_collector_is_paused_while_any_pause_lasts_and_restored_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # the snapshot thread's inside the restore's, or the reverse
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # whoever turned it off keeps it off
    finally:
        gc.enable()


def test_a_snapshot_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path, clock)
    fill(app, clock)
    assert app.state.state_keeper.save(clean=False) and gc.isenabled()
    app.state.state_keeper.path = tmp_path / "missing" / "state"
    assert not app.state.state_keeper.save(clean=False) and gc.isenabled()  # failed, still on


def test_reference_round_trip_with_holdout() -> None:
    settings = load_settings(None)
    ref = build_reference(
        {"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "a"]},
        settings=settings.drift,
        source="upload",
        created=T0,
        predictions=[1, 0, 1, 1],
        labels=[1, 0, 0, 1],
    )
    back = Reference.from_state(ref.to_state())
    assert back.to_state() == ref.to_state()
    assert back.holdout is not None and back.holdout.rows == 4
    assert back.summary() == ref.summary()
    assert not back.numeric["x"].values.flags.writeable


def test_pair_book_round_trip() -> None:
    book = PairBook("a", ["b"], [("1h", 3600.0)], 60, 600, 100)
    book.record("a", ["1", "2"], [0.0, 1.0], [T0, T0], T0)
    book.record("b", ["1"], [1.0], [T0], T0)
    back = PairBook("a", ["b"], [("1h", 3600.0)], 60, 600, 100)
    back.load_state(book.to_state())
    assert back.snapshot(T0 + 1) == book.snapshot(T0 + 1)
    assert back.snapshot(T0 + 1).challengers[0].total.n == 1 and len(back) == 1


def test_model_state_round_trip_and_counters_from_zero() -> None:
    settings = load_settings(None)
    model = ModelState("m", None, settings, T0, uid=4)
    model.add_predictions("v1", [Event(str(i), {"x": float(i)}, i % 2) for i in range(50)], T0)
    model.add_labels([Label(str(i), 1) for i in range(30)], T0 + 1)
    model.set_comparison(Declaration("v1", ("v2",), "split"), T0 + 2)
    saved = settle(model.to_state())
    assert saved is not None
    back = ModelState.from_state(saved, None, settings)
    assert settle(back.to_state()) == saved
    assert repr(back.snapshot(T0 + 3)) == repr(model.snapshot(T0 + 3))  # arrays: by repr
    fresh = ModelState.from_state(saved, None, settings, counters=False)
    snap = fresh.snapshot(T0 + 3)
    assert snap.versions[0].counters.predictions == 0
    assert repr(snap.versions[0].windows) == repr(model.snapshot(T0 + 3).versions[0].windows)
    assert snap.comparison is not None and snap.comparison.start_of("v1").labeled == 0


# -- whole restarts ----------------------------------------------------------------------------


def make_app(path: Path, clock: FakeClock, **overrides: Any) -> Any:
    settings = load_settings(None, state={"path": str(path), "interval": 3600}, **overrides)
    return create_app(settings, clock=clock, drift_worker=False)


def fill(app: Any, clock: FakeClock) -> None:
    """Classification with late and early labels, a shadow comparison, regression with an
    uploaded reference, a deleted version: every kind of state."""
    store = app.state.store
    store.set_comparison("fraud", Declaration("v1", ("v2",), "shadow"))
    for version in ("v1", "v2"):
        store.add_predictions(
            "fraud",
            version,
            [
                Event(f"f{i}", {"x": float(i), "c": "ab"[i % 2]}, i % 3 == 0, score=(i % 10) / 9)
                for i in range(120)
            ],
        )
    store.add_labels("fraud", [Label(f"f{i}", i % 2 == 0) for i in range(80)])
    store.add_labels("fraud", [Label("later", True)])  # waits for its prediction
    clock.advance(90)
    reference = build_reference(
        {"x": [0.5, 1.5, 2.5]}, settings=store.settings.drift, source="upload", created=clock()
    )
    store.set_reference("price", None, reference)
    store.add_predictions("price", None, [Event(f"p{i}", {"x": i / 7}, i / 3) for i in range(60)])
    store.add_labels("price", [Label(f"p{i}", i / 4) for i in range(40)])
    store.add_predictions("price", "old", [Event("o1", {"x": 1.0}, 2.0)])
    store.delete_version("price", "old")
    # The zoo's reference has probabilities and labels: its estimate windows are state too.
    rng = np.random.default_rng(9)
    p = rng.dirichlet([1, 1, 1], 200)
    scored = build_reference(
        {"x": [1.0] * 200},
        settings=store.settings.drift,
        source="upload",
        created=clock(),
        labels=[["cat", "dog", "owl"][int(np.argmax(row))] for row in p],
        probabilities=[dict(zip(["cat", "dog", "owl"], row.tolist(), strict=True)) for row in p],
    )
    store.set_reference("zoo", None, scored)
    zoo(store, range(0, 150), labels=range(0, 100))
    app.state.drift_worker.run_once()


def zoo(store: Any, events: range, labels: range) -> None:
    """A multiclass model with probabilities: predictions of ``events``, labels of ``labels``."""
    rng = np.random.default_rng(events.start)
    classes = ["cat", "dog", "owl"]
    if len(events):
        p = rng.dirichlet([1, 1, 1], len(events))
        store.add_predictions(
            "zoo",
            None,
            [
                Event(
                    f"z{i}",
                    {"x": 1.0},
                    classes[int(np.argmax(p[j]))],
                    probabilities=dict(zip(classes, p[j].tolist(), strict=True)),
                )
                for j, i in enumerate(events)
            ],
        )
    if len(labels):
        store.add_labels("zoo", [Label(f"z{i}", classes[i % 3]) for i in labels])


def exposition(app: Any) -> Samples:
    app.state.drift_worker.run_once()
    return parse_metrics(generate_latest(app.state.registry).decode())


def model_samples(samples: Samples) -> Samples:
    """Every model_* sample but the exporter's own and the drift computation times."""
    return {
        key: value
        for key, value in samples.items()
        if key[0].startswith("model_")
        and not key[0].startswith("model_exporter_")
        and "computed" not in key[0]
    }


def counters_of(samples: Samples) -> dict[str, float]:
    return {k[0]: v for k, v in model_samples(samples).items() if k[0].endswith("_total") and v > 0}


def test_clean_restart_keeps_every_model_sample(tmp_path: Path) -> None:
    clock = FakeClock()
    with_lifespan = make_app(tmp_path, clock)
    with_lifespan.router.lifespan_context  # noqa: B018  # the lifespan is what SIGTERM ends
    fill(with_lifespan, clock)
    before = exposition(with_lifespan)
    with_lifespan.state.state_keeper.stop()  # the lifespan's end: the shutdown snapshot
    clock.advance(5)
    again = make_app(tmp_path, clock)
    after = exposition(again)
    assert len(model_samples(before)) > 150
    assert model_samples(after) == model_samples(before)
    assert counters_of(after) and counters_of(after) == counters_of(before)
    assert after[("model_exporter_state_restores_total", frozenset({("outcome", "restored")}))]
    assert (
        after[("model_exporter_events_received_total", frozenset({("kind", "label")}))]
        == (before[("model_exporter_events_received_total", frozenset({("kind", "label")}))])
    )


def test_scores_waiting_for_their_label_join_after_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path / "a", clock, quality={"min_samples": 1})
    fill(app, clock)
    app.state.state_keeper.stop()
    restarted = make_app(tmp_path / "a", clock, quality={"min_samples": 1})
    # The same, without a restart.
    other = make_app(tmp_path / "b", FakeClock(clock.now - 90), quality={"min_samples": 1})
    fill(other, other.state.store.clock)
    for a in (restarted, other):
        zoo(a.state.store, range(0), labels=range(100, 150))
    key = (
        "model_roc_auc",
        frozenset({("model", "zoo"), ("model_version", "default"), ("window", "1h")}),
    )
    assert exposition(restarted)[key] == exposition(other)[key]
    scored = ("model_window_scored_predictions", key[1])
    assert exposition(restarted)[scored] == 150
    estimated = ("model_estimated_accuracy", key[1])
    assert exposition(restarted)[estimated] == exposition(other)[estimated]
    checked = ("model_window_estimate_checked_predictions", key[1])
    assert exposition(restarted)[checked] == 150


def test_unclean_restart_restores_windows_and_counters_start_from_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path, clock)
    fill(app, clock)
    assert app.state.state_keeper.save(clean=False)  # a periodic snapshot, then kill -9
    before = exposition(app)
    again = make_app(tmp_path, clock)
    after = exposition(again)
    outcome = frozenset({("outcome", "restored_without_counters")})
    assert after[("model_exporter_state_restores_total", outcome)] == 1
    assert counters_of(after) == {}  # every counter from zero
    gauges = {k: v for k, v in model_samples(before).items() if not k[0].endswith("_total")}
    for name in (
        "model_window_predictions",
        "model_window_labeled_predictions",
        "model_pending_predictions",
        "model_pending_labels",
        "model_comparison_pairs",
        "model_reference_rows",
    ):
        kept = {k: v for k, v in gauges.items() if k[0] == name}
        assert kept, name
        assert {k: after[k] for k in kept} == kept


def test_a_restored_clean_snapshot_is_not_restored_twice(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path, clock)
    fill(app, clock)
    app.state.state_keeper.stop()
    make_app(tmp_path, clock)  # restores it, then writes a periodic one at once: then kill -9
    header, _ = fileformat.decode_header((tmp_path / FILE_NAME).read_bytes())
    assert not header.clean
    third = exposition(make_app(tmp_path, clock))
    assert counters_of(third) == {}


def _snapshot_bytes(tmp_path: Path) -> bytes:
    clock = FakeClock()
    app = make_app(tmp_path, clock)
    fill(app, clock)
    app.state.state_keeper.stop()
    return (tmp_path / FILE_NAME).read_bytes()


def _older_format(data: bytes) -> bytes:
    header, offset = fileformat.decode_header(data)
    old = fileformat.Header(**{**_fields(header), "version": fileformat.VERSION - 1})
    return fileformat.encode(old, data[offset:])


def _fields(header: fileformat.Header) -> dict[str, Any]:
    return {name: getattr(header, name) for name in header.__struct_fields__}


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda data: b'{"format": "json"}', id="foreign"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:20], id="truncated-header"),
        pytest.param(lambda data: data[:-10] + bytes(10), id="corrupt"),
        pytest.param(_older_format, id="older-format"),
    ],
)
def test_a_bad_snapshot_is_moved_aside_and_the_exporter_starts_clean(
    tmp_path: Path, spoil: Any
) -> None:
    data = spoil(_snapshot_bytes(tmp_path))
    (tmp_path / FILE_NAME).write_bytes(data)
    app = make_app(tmp_path, FakeClock())
    assert app.state.store.models() == []
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes() == data
    samples = exposition(app)
    assert samples[("model_exporter_state_restores_total", frozenset({("outcome", "moved_aside")}))]


def test_a_well_formed_file_with_a_malformed_join_is_moved_aside(tmp_path: Path) -> None:
    """Checksums only catch damage: a file whose body decodes, with a join that does not fit
    (here a waiting prediction whose version is a string), is refused while restoring."""
    data = _snapshot_bytes(tmp_path)
    header, state = fileformat.decode(data, _digest_of(data))
    state = settle(state)  # the models, decoded when iterated, as plain values to change
    (fraud,) = [m for m in state["store"]["models"] if m["name"] == "fraud"]
    entries = fraud["join"]["pending"]["entries"]
    entries[0][0] = [entries[0][0][0], ["v1", 1.0, T0]]
    body = fileformat.encode_body(state)
    spoilt = fileformat.Header(
        **{**_fields(header), "body_bytes": len(body), "body_crc32": zlib.crc32(body)}
    )
    (tmp_path / FILE_NAME).write_bytes(fileformat.encode(spoilt, body))
    app = make_app(tmp_path, FakeClock())
    assert app.state.store.models() == []
    samples = exposition(app)
    assert samples[("model_exporter_state_restores_total", frozenset({("outcome", "moved_aside")}))]


def _digest_of(data: bytes) -> str:
    header, _ = fileformat.decode_header(data)
    return header.settings


def test_a_snapshot_of_other_windows_is_moved_aside(tmp_path: Path) -> None:
    _snapshot_bytes(tmp_path)
    app = make_app(tmp_path, FakeClock(), windows=["5m", "1h"])
    assert app.state.store.models() == []
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_a_failed_snapshot_is_counted_and_keeps_the_last_file(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(tmp_path / "state", clock)
    fill(app, clock)
    keeper: StateKeeper = app.state.state_keeper
    assert keeper.save(clean=False)
    good = keeper.path.read_bytes()
    keeper.path = tmp_path / "missing" / "state"
    assert not keeper.save(clean=False)
    samples = exposition(app)
    assert samples[("model_exporter_state_snapshot_failures_total", frozenset())] == 1
    assert (tmp_path / "state").read_bytes() == good
    assert zlib.crc32(good)  # still a whole file


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from([None, "v2"]),
            st.integers(0, 40),
            st.integers(0, 3),
            st.integers(0, 600),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_random_store_round_trips_to_an_equal_exposition(
    tmp_path_factory: pytest.TempPathFactory, batches: list[tuple[str, str | None, int, int, int]]
) -> None:
    path = tmp_path_factory.mktemp("state")
    clock = FakeClock()
    app = make_app(path, clock)
    store = app.state.store
    for n, (model, version, count, classes, wait) in enumerate(batches):
        ids = [f"{n}-{i}" for i in range(count)]
        if count:
            store.add_predictions(
                model,
                version,
                [Event(i, {"x": float(len(i))}, k % (classes + 1)) for k, i in enumerate(ids)],
            )
            if count // 2:
                store.add_labels(model, [Label(i, 0) for i in ids[: count // 2]])
        clock.advance(wait)
    before = exposition(app)
    app.state.state_keeper.stop()
    after = exposition(make_app(path, clock))
    assert model_samples(after) == model_samples(before)


def test_the_streamed_body_decompresses_to_the_whole_encoding() -> None:
    """Maps of every header size, deferred lists of models (one removed meanwhile: None),
    rows and arrays: the streamed, compressed body holds exactly encode_state's bytes."""
    made: list[int] = []

    def model(n: int) -> Any:
        made.append(n)
        return None if n == 3 else {"name": f"m{n}", "rows": Rows([(n, 1.5)] * 20_000)}

    wide = {f"k{i}": i for i in range(70_000)}  # a map header of 32 bits
    state = {
        "store": {"models": plain.Deferred([lambda n=n: model(n) for n in range(20)])},
        "sixteen": {f"k{i}": plain.pack(np.arange(3.0)) for i in range(16)},
        "wide": wide,
        "empty": {},
    }
    body = b"".join(fileformat.encode_compressed(state))
    assert made == list(range(20))  # each model made once, in order
    assert zlib.decompress(body) == fileformat.encode_state(state)
    decoded = msgspec.msgpack.decode(zlib.decompress(body))
    assert decoded["store"]["models"][3] is None
    assert decoded["store"]["models"][4]["rows"] == [[[4, 1.5]] * 16_384, [[4, 1.5]] * 3_616]
    assert decoded["wide"] == wide


def test_a_model_removed_while_the_snapshot_is_taken_is_left_out() -> None:
    store = Store(load_settings())
    for name in ("a", "b"):
        store.add_predictions(name, None, [Event("x", {"f": 1.0}, 1)])
    state = store.to_state(deferred=True)
    store.delete("a")
    settled = settle(state)
    assert settled["models"][0] is None and settled["models"][1]["name"] == "b"
    again = Store(load_settings())
    assert again.load_state(settled) == ["b"]


def test_restoring_decodes_each_model_when_the_store_reaches_it(tmp_path: Path) -> None:
    """The decoded body holds the models still encoded (views of the decompressed bytes,
    whose structure the top-level decoding already checked); iterating decodes them, as the
    store does while it rebuilds them one by one."""
    data = _snapshot_bytes(tmp_path)
    _, state = fileformat.decode(data, _digest_of(data))
    models = state["store"]["models"]
    assert isinstance(models, plain.Deferred)
    assert all(isinstance(make.args[0], msgspec.Raw) for make in models.makers)  # type: ignore[attr-defined]
    names = [m["name"] for m in models]
    assert "fraud" in names and len(names) == len(models)
