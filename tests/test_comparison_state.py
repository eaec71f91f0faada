"""The model's comparison part, directly: declaring, ending, and feeding the pair book."""

from __future__ import annotations

import numpy as np

from exporter.comparison import Declaration, parse_declaration
from exporter.comparison_state import ComparisonState
from exporter.config import load_settings
from exporter.join import Pairs
from exporter.snapshot import ArmCounts
from exporter.version import Versions, VersionState
from tests.conftest import T0


def declared(mode: str) -> Declaration:
    return parse_declaration({"champion": "v1", "challengers": ["v2"], "mode": mode})


def versions_with_v1_labeled() -> Versions:
    settings = load_settings()
    versions = Versions(5, 3600)
    v1 = VersionState(1, "v1", settings, task="binary", rolling=False, now=T0)
    v1.counters.count_outcomes(np.array([1, 0, 1]), np.array([1, 1, 1]), 2)
    versions.add(v1)
    return versions


def pairs(rows: list[int], actual: list[float], predicted: list[float]) -> Pairs:
    out = Pairs(1)
    for row, a, p in zip(rows, actual, predicted, strict=True):
        out.add(row, p, T0, a, T0 + 1)
    return out


def test_a_split_declaration_has_a_baseline_per_named_version_and_no_pair_book() -> None:
    state = ComparisonState(load_settings())
    info = state.declare(declared("split"), versions_with_v1_labeled(), T0)
    assert state.info is info and state.pairs is None
    assert info.start_of("v1") == ArmCounts(correct=2, labeled=3)
    assert info.start_of("v2") == ArmCounts()  # not there yet: zeros
    assert state.pairs_snapshot(T0) is None


def test_a_shadow_declaration_gets_a_fresh_pair_book_and_ending_drops_both() -> None:
    state = ComparisonState(load_settings())
    state.declare(declared("shadow"), Versions(5, 3600), T0)
    first = state.pairs
    assert first is not None
    state.declare(declared("shadow"), Versions(5, 3600), T0 + 1)
    assert state.pairs is not None and state.pairs is not first
    state.end()
    assert (state.info, state.pairs, state.pairs_snapshot(T0)) == (None, None, None)


def test_joined_pairs_reach_the_book_with_their_loss() -> None:
    state = ComparisonState(load_settings())
    state.declare(declared("shadow"), Versions(5, 3600), T0)
    ids = ["x", "a", "b"]
    joined = pairs([1, 2], [1.0, 0.0], [1.0, 1.0])  # "a" right, "b" wrong
    actual = np.array(joined.actual, dtype=np.float64)
    predicted = np.array(joined.predicted, dtype=np.float64)
    state.record("v1", joined, ids, actual, predicted, "binary", T0 + 1)
    state.record("v2", joined, ids, 1 - actual, predicted, "binary", T0 + 1)  # the reverse
    snapshot = state.pairs_snapshot(T0 + 1)
    assert snapshot is not None
    counts = snapshot.of("v2")
    assert counts is not None and (counts.total.b, counts.total.c, counts.total.n) == (1, 1, 2)


def test_a_regression_loss_is_the_absolute_error() -> None:
    state = ComparisonState(load_settings())
    state.declare(declared("shadow"), Versions(5, 3600), T0)
    joined = pairs([0], [3.0], [1.0])
    at = np.array([3.0])
    state.record("v1", joined, ["r"], at, np.array([1.0]), "regression", T0 + 1)  # |e| = 2
    state.record("v2", joined, ["r"], at, np.array([3.5]), "regression", T0 + 1)  # |e| = 0.5
    snapshot = state.pairs_snapshot(T0 + 1)
    assert snapshot is not None
    counts = snapshot.of("v2")
    assert counts is not None and counts.total.loss_sum == -1.5


def test_without_a_shadow_comparison_recording_changes_nothing() -> None:
    state = ComparisonState(load_settings())
    joined = pairs([0], [1.0], [0.0])
    one = np.array([1.0])
    state.record("v1", joined, ["r"], one, one, "binary", T0)
    assert state.pairs is None and state.info is None
