"""Ranked columns (exporter.stats.ranked) against a naive model, and the drift tests on them
(``numeric_drift_ranked``, ``ks.ranked_statistics``) against the full computation and SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from scipy import stats

from exporter.stats.drift import NumericReference, numeric_drift, numeric_drift_ranked
from exporter.stats.ks import EXACT_TIES, ranked_statistics
from exporter.stats.ranked import RankedColumns

COLUMNS = 3
# Few distinct values, so that ties within the window, within the reference and across both
# are common; and the values of a reference, so that ranks land on them exactly.
VALUES = st.sampled_from([-2.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0])
REFERENCES = [np.sort(np.array(r)) for r in ([0.0, 0.5, 0.5, 1.0], [-1.0, 2.0], [0.25])]


def _naive(held: list[list[float]], column: int) -> tuple[list[float], list[int], list[int]]:
    values = sorted(row[column] for row in held)
    ref = REFERENCES[column].tolist()
    right = [sum(1 for r in ref if r <= v) for v in values]
    left = [sum(1 for r in ref if r < v) for v in values]
    return values, right, left


class RankedMachine(RuleBasedStateMachine):
    """Blocks of rows go in and (any block held, in any order) out; the columns always equal
    the naive sorted multiset with ranks counted one by one."""

    def __init__(self) -> None:
        super().__init__()
        self.ranked = RankedColumns(REFERENCES)
        self.blocks: list[list[list[float]]] = []

    @rule(block=st.lists(st.lists(VALUES, min_size=COLUMNS, max_size=COLUMNS), max_size=6))
    def add(self, block: list[list[float]]) -> None:
        self.ranked.add(np.array(block, dtype=np.float64).reshape(-1, COLUMNS))
        self.blocks.append(block)

    @precondition(lambda self: bool(self.blocks))
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        block = self.blocks.pop(data.draw(st.integers(0, len(self.blocks) - 1)))
        rows = np.array(block, dtype=np.float64).reshape(-1, COLUMNS)
        self.ranked.remove(rows[::-1])  # the order of the rows does not matter

    @rule(value=VALUES)
    def remove_what_is_not_held(self, value: float) -> None:
        held = [row for block in self.blocks for row in block]
        if any(row[0] == value for row in held):
            return
        before = self.ranked.view()
        with pytest.raises(ValueError, match=r"do not hold|cannot remove"):
            self.ranked.remove(np.array([[value] * COLUMNS]))
        after = self.ranked.view()
        assert after.values is before.values and after.right is before.right  # unchanged

    @invariant()
    def equals_the_naive_model(self) -> None:
        held = [row for block in self.blocks for row in block]
        view = self.ranked.view()
        assert view.size == len(held)
        for c in range(COLUMNS):
            values, right, left = _naive(held, c)
            assert view.values[c].tolist() == values
            assert view.right[c].tolist() == right
            assert view.left[c].tolist() == left


TestRankedMachine = RankedMachine.TestCase
TestRankedMachine.settings = settings(max_examples=150, stateful_step_count=25, deadline=None)


def test_missing_values_and_wrong_shapes_are_refused() -> None:
    ranked = RankedColumns(REFERENCES)
    with pytest.raises(ValueError, match="no missing values"):
        ranked.add(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="expected"):
        ranked.add(np.zeros((2, 2)))
    ranked.add(np.zeros((2, COLUMNS)))
    with pytest.raises(ValueError, match="cannot remove 3"):
        ranked.remove(np.zeros((3, COLUMNS)))
    assert ranked.size == 2
    with pytest.raises(ValueError, match="at least one column"):
        RankedColumns([])


def test_a_view_is_not_changed_by_later_updates() -> None:
    ranked = RankedColumns(REFERENCES)
    ranked.add(np.ones((2, COLUMNS)))
    view = ranked.view()
    ranked.add(np.zeros((1, COLUMNS)))
    ranked.remove(np.ones((1, COLUMNS)))
    assert view.values.tolist() == [[1.0, 1.0]] * COLUMNS
    assert ranked.view().values.tolist() == [[0.0, 1.0]] * COLUMNS


@st.composite
def windows(draw: st.DrawFn) -> tuple[list[NumericReference | None], list[np.ndarray]]:
    """References (some absent, some smaller than the window) and the blocks of a window."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    decimals = draw(st.integers(0, 3))  # 0: heavy ties
    refs: list[NumericReference | None] = []
    for column in range(4):
        size = draw(st.sampled_from([3, 40, 300] if column == 0 else [0, 3, 40, 300]))
        refs.append(
            NumericReference.from_values(rng.normal(size=size).round(decimals)) if size else None
        )
    shift = draw(st.floats(-1.0, 1.0))
    blocks = [
        (rng.normal(shift, 1.0, size=(draw(st.integers(0, 40)), 4))).round(decimals)
        for _ in range(draw(st.integers(1, 5)))
    ]
    return refs, blocks


@settings(max_examples=200, deadline=None)
@given(case=windows(), min_samples=st.sampled_from([2, 10]))
def test_ranked_drift_equals_the_full_computation_bit_for_bit(
    case: tuple[list[NumericReference | None], list[np.ndarray]], min_samples: int
) -> None:
    """Every statistic and p-value of ``numeric_drift_ranked`` equals ``numeric_drift``'s on
    the same window exactly (dataclass equality of floats), whatever blocks came and went."""
    refs, blocks = case
    ranked_columns = [j for j, ref in enumerate(refs) if ref is not None]
    ranked = RankedColumns([refs[j].values for j in ranked_columns])  # type: ignore[union-attr]
    held: list[np.ndarray] = []
    for i, block in enumerate(blocks):
        ranked.add(block[:, ranked_columns])
        held.append(block)
        if i % 2 and len(held) > 1:
            gone = held.pop(0)
            ranked.remove(gone[:, ranked_columns])
        window = np.concatenate(held)
        expected = numeric_drift(refs, window, min_samples=min_samples)
        got = numeric_drift_ranked(refs, ranked.view(), ranked_columns, min_samples=min_samples)
        assert got == expected


def test_ranked_statistics_match_scipy() -> None:
    """The four pair statistics against SciPy's KS, Wasserstein and Mann-Whitney on tied data
    (U and the tie term through mannwhitneyu's p-value, which uses both)."""
    rng = np.random.default_rng(4)
    ref = np.sort(rng.normal(size=2_000).round(1))
    win = np.sort(rng.normal(0.1, 1.0, size=700).round(1))
    right = np.searchsorted(ref, win, side="right")[None, :]
    left = np.searchsorted(ref, win, side="left")[None, :]
    reference = NumericReference.from_values(ref)
    pair = ranked_statistics([ref], [reference.tie_term], win[None, :], right, left)
    assert pair.statistics[0] == stats.ks_2samp(ref, win, method="asymp").statistic
    assert pair.distances[0] == pytest.approx(stats.wasserstein_distance(ref, win), rel=1e-12)
    assert pair.u_first[0] == stats.mannwhitneyu(ref, win).statistic
    _, counts = np.unique(np.concatenate([ref, win]), return_counts=True)
    assert pair.ties[0] == float(np.sum(counts.astype(float) ** 3 - counts))


def test_ranked_statistics_refuse_what_they_cannot_compute() -> None:
    ref = np.arange(3.0)
    ranks = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="no larger than references"):
        ranked_statistics([ref], [0.0], np.zeros((1, 4)), ranks, ranks)
    with pytest.raises(ValueError, match="one reference"):
        ranked_statistics([], [], np.zeros((1, 4)), ranks, ranks)


def test_the_callers_rows_are_not_touched_and_views_are_read_only() -> None:
    ranked = RankedColumns([np.array([1.0, 2.0])])
    rows = np.array([[3.0], [1.0], [2.0]])
    ranked.add(rows)
    ranked.remove(rows[:1])
    assert rows[:, 0].tolist() == [3.0, 1.0, 2.0]  # sorted copies, not the caller's array
    view = ranked.view()
    with pytest.raises(ValueError, match="read-only"):
        view.values[0, 0] = 0.0
    ranked.add(np.array([[0.0]]))  # updates still work: they make new arrays
    assert ranked.view().values.tolist() == [[0.0, 1.0, 2.0]]


def test_pairs_too_large_for_an_exact_tie_term_take_the_merge() -> None:
    """Beyond EXACT_TIES values a pair, t^3 of a tie group could pass 2^53: ranked_statistics
    refuses, and numeric_drift_ranked takes ks_wasserstein on the sorted window instead, so
    the results are still those of numeric_drift exactly."""
    rng = np.random.default_rng(9)
    ref = NumericReference.from_values(rng.integers(0, 3, size=EXACT_TIES).astype(np.float64))
    window = rng.integers(0, 3, size=(2_000, 1)).astype(np.float64)
    ranked = RankedColumns([ref.values])
    ranked.add(window)
    view = ranked.view()
    with pytest.raises(ValueError, match="at most"):
        ranked_statistics([ref.values], [ref.tie_term], view.values, view.right, view.left)
    assert numeric_drift_ranked([ref], view, [0]) == numeric_drift([ref], window)
