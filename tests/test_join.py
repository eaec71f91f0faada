from __future__ import annotations

import pytest

from exporter.join import Join, PendingBuffer, PredictionsJoined


def test_ttl_expiry_returns_only_old_entries_in_order() -> None:
    buf: PendingBuffer[str, str] = PendingBuffer(ttl=10.0, capacity=100)
    for i in range(5):
        buf.add(f"id{i}", float(i), f"p{i}")
    assert buf.expire(12.0) == ["p0", "p1", "p2"]  # arrived at 0, 1, 2: 10 s or more ago
    assert len(buf) == 2
    assert "id3" in buf and "id0" not in buf


def test_capacity_evicts_oldest_first() -> None:
    buf: PendingBuffer[str, int] = PendingBuffer(ttl=100.0, capacity=3)
    evicted = [buf.add(f"k{i}", float(i), i) for i in range(5)]
    assert evicted == [[], [], [], [0], [1]]
    assert list(buf) == ["k2", "k3", "k4"]


def test_pop_joins_once() -> None:
    buf: PendingBuffer[str, int] = PendingBuffer(ttl=100.0, capacity=3)
    buf.add("a", 0.0, 1)
    assert buf.pop("a") == 1
    assert buf.pop("a") is None
    assert len(buf) == 0


def test_replace_keeps_keys_order_and_arrival_and_drops_none() -> None:
    buf: PendingBuffer[str, int] = PendingBuffer(ttl=10.0, capacity=10)
    for i in range(4):
        buf.add(f"k{i}", float(i), i)
    assert buf.replace(lambda values: [None if v == 1 else v * 10 for v in values]) == 1
    assert list(buf) == ["k0", "k2", "k3"] and buf.get("k2") == 20
    assert buf.expire(12.0) == [0, 20]  # arrival times kept: k0 at 0 and k2 at 2 expired


@pytest.mark.parametrize(("ttl", "capacity"), [(0, 1), (-1, 1), (1, 0)])
def test_invalid_parameters(ttl: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        PendingBuffer(ttl=ttl, capacity=capacity)


# -- Join: the join step of one model ---------------------------------------------------------


def make_join(per_version: bool = False, **kw: float) -> Join:
    opts = {"prediction_ttl": 100.0, "max_pending": 1000, "label_ttl": 10.0, "max_labels": 100}
    opts.update(kw)
    return Join(
        opts["prediction_ttl"],
        int(opts["max_pending"]),
        opts["label_ttl"],
        int(opts["max_labels"]),
        per_version=per_version,
    )


def add(join: Join, uid: int, ids: list[str], now: float, inline=None) -> PredictionsJoined:
    targets = [float(i) for i in range(len(ids))]
    return join.add_predictions(uid, ids, targets, [now] * len(ids), inline, now)


def test_predictions_wait_and_labels_join_them_once() -> None:
    join = make_join()
    out = add(join, 1, ["a", "b", "c"], 0.0)
    assert (out.kept, out.duplicates, out.waiting, out.pairs.rows) == ([0, 1, 2], 0, 3, [])
    assert join.pending(1) == 3
    labels = join.add_labels(["b", "zz"], [1.0, 0.0], [5.0, 5.0], 5.0)
    assert labels.joined == 1 and labels.waiting == 1  # zz waits for its prediction
    pairs = labels.pairs[1]
    assert (pairs.rows, pairs.predicted, pairs.prediction_times, pairs.actual) == (
        [0],
        [1.0],
        [0.0],
        [1.0],
    )
    assert pairs.label_times == [5.0]
    assert join.pending(1) == 2 and join.early_labels == 1
    again = join.add_labels(["b"], [0.0], [6.0], 6.0)  # a second label: the first one counts
    assert again.duplicates == 1 and again.joined == 0 and not again.pairs


def test_a_retried_batch_is_all_duplicates_and_inline_labels_join_at_once() -> None:
    join = make_join()
    out = add(join, 1, ["a", "b"], 0.0, inline=[None, 1.0])
    assert out.waiting == 1 and out.pairs.rows == [1] and out.pairs.actual == [1.0]
    retry = add(join, 1, ["a", "b"], 1.0, inline=[None, 1.0])
    assert retry.duplicates == 2 and retry.kept == [] and retry.waiting == 0
    other_version = add(join, 2, ["a"], 2.0)  # by id: one prediction per id, whatever version
    assert other_version.duplicates == 1 and join.pending(2) == 0


def test_early_labels_join_when_their_prediction_comes_and_expire_otherwise() -> None:
    join = make_join(label_ttl=10.0)
    join.add_labels(["a", "b"], [1.0, 0.0], [0.0, 0.0], 0.0)
    out = add(join, 1, ["a"], 3.0)
    assert out.pairs.rows == [0] and out.pairs.actual == [1.0] and out.pairs.label_times == [0.0]
    gone = join.expire(10.0)  # b waited label_ttl
    assert gone.labels == 1 and join.early_labels == 0
    assert not gone.predictions


def test_expiry_and_eviction_are_reported_per_version() -> None:
    join = make_join(prediction_ttl=10.0, max_pending=3)
    add(join, 1, ["a", "b"], 0.0)
    out = add(join, 2, ["c", "d"], 5.0)  # one of version 1's must go to make room
    assert out.evicted == {1: 1}
    assert (join.pending(1), join.pending(2)) == (1, 2)
    gone = join.expire(10.0)
    assert gone.predictions == {1: 1}
    gone = join.expire(15.0)
    assert gone.predictions == {2: 2} and join.pending(2) == 0


def test_labels_cannot_wait_when_label_ttl_is_zero() -> None:
    join = make_join(label_ttl=0.0)
    assert not join.labels_can_wait
    add(join, 1, ["a"], 0.0)
    assert join.awaits("a") and not join.awaits("b")
    out = join.add_labels(["b"], [1.0], [0.0], 0.0)
    assert out.waiting == 0 and join.early_labels == 0


def test_labels_sent_before_the_task_was_known_are_encoded_later() -> None:
    join = make_join()
    join.add_labels(["a", "b", "c"], ["cat", 2.5, "dog"], [0.0, 1.0, 2.0], 2.0)
    dropped = join.encode_early_labels(
        lambda values: [
            {"cat": 0.0, "dog": 1.0}.get(v) if isinstance(v, str) else None for v in values
        ]
    )
    assert dropped == 1 and join.early_labels == 2
    out = add(join, 1, ["c", "a"], 3.0)
    assert out.pairs.actual == [1.0, 0.0] and out.pairs.label_times == [2.0, 0.0]


def test_per_version_each_version_predicts_an_id_once_and_one_label_joins_them_all() -> None:
    join = make_join(per_version=True)
    add(join, 1, ["a", "b"], 0.0)
    add(join, 2, ["a"], 1.0)
    assert add(join, 1, ["a"], 2.0).duplicates == 1  # (a, v1) already predicted
    out = join.add_labels(["a"], [1.0], [5.0], 5.0)
    assert out.joined == 1 and sorted(out.pairs) == [1, 2]
    assert join.pending(1) == 1 and join.pending(2) == 0
    # A version that predicts the id after its label came joins it at once ...
    late = add(join, 3, ["a"], 6.0)
    assert late.pairs.rows == [0] and late.pairs.actual == [1.0] and late.waiting == 0
    # ... and a second label for the id is a duplicate.
    assert join.add_labels(["a"], [0.0], [7.0], 7.0).duplicates == 1


def test_per_version_an_early_label_joins_every_version_that_comes() -> None:
    join = make_join(per_version=True)
    join.add_labels(["x"], [2.0], [0.0], 0.0)
    first = add(join, 1, ["x"], 1.0)
    second = add(join, 2, ["x"], 2.0)
    assert first.pairs.actual == second.pairs.actual == [2.0]
    assert join.early_labels == 0
    assert join.expire(5.0).labels == 0  # it joined: not counted as expired


def test_per_version_inline_labels_serve_later_versions_of_the_id() -> None:
    join = make_join(per_version=True)
    add(join, 1, ["r"], 0.0, inline=[1.0])
    later = add(join, 2, ["r"], 1.0)
    assert later.pairs.actual == [1.0] and later.pairs.label_times == [0.0]


def test_per_version_an_inline_label_joins_the_other_versions_waiting_predictions() -> None:
    join = make_join(per_version=True)
    add(join, 2, ["x", "y"], 0.0)  # the challenger's predictions wait
    add(join, 3, ["x"], 1.0)
    out = add(join, 1, ["y", "x"], 2.0, inline=[None, 1.0])  # the champion's, x labelled inline
    assert out.pairs.rows == [1] and out.pairs.actual == [1.0]
    assert sorted(out.others) == [2, 3]
    two = out.others[2]
    assert (two.rows, two.predicted, two.prediction_times, two.actual, two.label_times) == (
        [1],
        [0.0],
        [0.0],
        [1.0],
        [2.0],
    )
    assert out.others[3].rows == [1] and out.others[3].prediction_times == [1.0]
    assert (join.pending(1), join.pending(2), join.pending(3)) == (1, 1, 0)
    # As a label sent on /v1/labels: remembered for a later version, a second label a duplicate.
    late = add(join, 4, ["x"], 3.0)
    assert late.pairs.actual == [1.0] and late.pairs.label_times == [2.0] and not late.others
    assert join.add_labels(["x"], [0.0], [4.0], 4.0).duplicates == 1


def test_per_version_an_inline_label_for_an_id_already_labelled_joins_nothing_else() -> None:
    join = make_join(per_version=True)
    add(join, 1, ["x"], 0.0, inline=[1.0])
    add(join, 2, ["x"], 1.0)  # joins the remembered label at once
    out = add(join, 3, ["x"], 2.0, inline=[0.0])
    assert out.pairs.rows == [0] and not out.others
    assert join.pending(2) == 0


def test_by_id_an_inline_label_joins_only_its_own_prediction() -> None:
    join = make_join()
    out = add(join, 1, ["x"], 0.0, inline=[1.0])
    assert out.pairs.rows == [0] and not out.others
    assert add(join, 2, ["x"], 1.0, inline=[1.0]).duplicates == 1


# -- changing the keying in place -------------------------------------------------------------


def test_rekey_keeps_order_arrival_and_payloads_and_merges_only_when_asked() -> None:
    buf: PendingBuffer[object, int] = PendingBuffer(ttl=10.0, capacity=10)
    for i, key in enumerate([("a", 1), ("b", 1), ("a", 2)]):
        buf.add(key, float(i), i)
    with pytest.raises(ValueError, match="merge"):
        buf.rekey(lambda key, _: key[0])
    assert list(buf) == [("a", 1), ("b", 1), ("a", 2)]  # refused: unchanged
    buf.rekey(lambda key, _: key[0], merge=True)
    assert list(buf) == ["b", "a"] and buf.get("a") == 2  # the latest kept, in arrival order
    assert buf.expire(11.5) == [1]  # "b" arrived at 1; "a" keeps its arrival at 2
    buf.rekey(lambda key, payload: (key, payload))
    assert list(buf) == [("a", 2)]


def test_keying_per_version_in_place_keeps_every_waiting_prediction() -> None:
    join = make_join(max_pending=3)
    add(join, 1, ["a", "b", "c"], 0.0)
    join.add_labels(["c"], [1.0], [1.0], 1.0)  # joined before the change
    join.key_per_version(True, 2.0)
    assert join.per_version and join.pending(1) == 2
    assert add(join, 2, ["a"], 3.0).duplicates == 0  # another version: not a duplicate
    assert add(join, 1, ["a", "c"], 3.0).duplicates == 2  # the same version: still once
    out = join.add_labels(["a"], [1.0], [4.0], 4.0)
    assert sorted(out.pairs) == [1, 2]
    # The order and arrival times survived: "b" (arrived at 0) is the first to leave.
    assert join.expire(100.0).predictions == {1: 1}


def test_keying_by_id_again_restores_one_prediction_per_id_then_rekeys_after_the_ttl() -> None:
    join = make_join(per_version=True)
    add(join, 1, ["a", "b"], 0.0)
    add(join, 2, ["a"], 0.0)
    join.key_per_version(False, 10.0)
    assert join.per_version and join.by_id_from == 110.0
    assert add(join, 3, ["a", "b", "n"], 11.0).kept == [2]  # a and b are predicted already
    assert add(join, 2, ["n"], 12.0).duplicates == 1
    out = join.add_labels(["a"], [1.0], [20.0], 20.0)  # the old entries still join
    assert sorted(out.pairs) == [1, 2]
    assert join.add_labels(["a"], [1.0], [21.0], 21.0).duplicates == 1
    join.expire(109.0)
    assert join.per_version  # not yet: entries from before the change may remain
    join.expire(110.0)
    assert not join.per_version and join.by_id_from is None
    assert join.pending(3) == 1  # "n" waits, now under its id
    assert join.add_labels(["n"], [0.0], [111.0], 111.0).joined == 1
    assert add(join, 1, ["n"], 112.0).duplicates == 1


def test_an_empty_join_changes_its_keying_at_once() -> None:
    join = make_join(per_version=True)
    join.key_per_version(False, 0.0)
    assert not join.per_version and join.by_id_from is None
    join.key_per_version(True, 1.0)
    assert join.per_version


def test_declaring_shadow_again_while_draining_keeps_per_version() -> None:
    join = make_join(per_version=True)
    add(join, 1, ["a"], 0.0)
    join.key_per_version(False, 1.0)
    join.key_per_version(True, 2.0)
    assert join.per_version and join.by_id_from is None
    assert add(join, 2, ["a"], 3.0).duplicates == 0
    join.expire(500.0)
    assert join.per_version


def test_per_version_a_retried_prediction_is_a_duplicate_while_its_label_is_remembered() -> None:
    """Joined (id, version) pairs are remembered for max_versions versions per id: a version's
    retry is a duplicate, not a second join of the remembered label."""
    join = Join(100.0, 4, 10.0, 100, per_version=True, max_versions=2)
    add(join, 1, ["a"], 0.0)
    add(join, 2, ["a"], 0.0)
    assert join.add_labels(["a"], [1.0], [1.0], 1.0).joined == 1  # joins both
    add(join, 1, ["b", "c", "d"], 2.0, inline=[1.0, 1.0, 1.0])  # 5 joined pairs, 4 labels
    retry = add(join, 1, ["a"], 3.0)
    assert (retry.duplicates, retry.pairs.rows) == (1, [])


def test_waiting_predictions_with_scores_are_untracked_by_the_garbage_collector() -> None:
    """The waiting entries stay atoms' tuples with a score (a float, or a multiclass model's
    probabilities as bytes), so a full collection never traverses them (exporter.join)."""
    import gc

    import numpy as np

    join = Join(600.0, 100, 60.0, 10)
    vector = np.array([0.2, 0.8]).tobytes()
    join.add_predictions(
        1, ["a", "b", "c"], [0.0, 1.0, 1.0], [5.0] * 3, None, 5.0, [0.3, vector, None]
    )
    # A collection untracks a tuple of atoms; the (arrival, payload) pair around it, at the next.
    gc.collect()
    gc.collect()
    entries = join._pending.copy().entries  # (arrival, payload) pairs, as the buffer holds them
    assert [payload[3] for _, payload in entries] == [0.3, vector, None]
    assert not any(gc.is_tracked(entry) or gc.is_tracked(entry[1]) for entry in entries)
