"""exporter.score_window: sliding-window sums, histograms and kept outcomes, driven directly
with a fake clock, and by a hypothesis state machine against a naive record of every
outcome."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import msgspec
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sklearn import metrics as skm

from exporter.persist import fileformat
from exporter.score_window import ScoreWindow
from exporter.stats import scores as S

T0 = 1_800_000_000.0


def window(binary: bool = True, **kw: int) -> ScoreWindow:
    options = {"rank_bins": 64, "calibration_bins": 10, "exact_capacity": 50} | kw
    return ScoreWindow(600.0, 10, binary=binary, **options)


def test_a_window_is_exact_until_it_overflows_and_again_once_that_bucket_left() -> None:
    w = window(exact_capacity=50)
    rng = np.random.default_rng(0)
    s = rng.random((40, 1))
    y = (rng.random(40) < s[:, 0]).astype(np.int64)
    w.add(np.full(40, T0), s, y, T0)
    counts = w.counts(T0)
    assert counts.outcomes is not None and counts.count == 40
    q = counts.quality()
    assert q is not None and q.exact
    assert q.roc_auc is not None and q.roc_auc.value == pytest.approx(skm.roc_auc_score(y, s[:, 0]))
    # 20 more a bucket later: 60 > 50, so that bucket keeps none, and the window is binned.
    w.add(np.full(20, T0 + 60), s[:20], y[:20], T0 + 60)
    later = w.counts(T0 + 60)
    assert later.outcomes is None and later.count == 60
    q = later.quality()
    assert q is not None and not q.exact and q.roc_auc is not None and q.roc_auc.max_error >= 0
    # The first bucket leaves (600 s later): 20 remain, all binned (their bucket overflowed).
    assert w.counts(T0 + 600).outcomes is None
    # ...and once the overflowing bucket has left too, new outcomes are kept exactly again.
    w.add(np.full(5, T0 + 700), s[:5], y[:5], T0 + 700)
    again = w.counts(T0 + 700)
    assert again.count == 5 and again.outcomes is not None


def test_outcomes_older_than_the_window_are_dropped_and_future_ones_count_as_now() -> None:
    w = window()
    s, y = np.array([[0.2], [0.7]]), np.array([0, 1])
    w.add(np.array([T0 - 700, T0 + 30]), s, y, T0)
    counts = w.counts(T0)
    assert counts.count == 1
    assert counts.outcomes is not None and counts.outcomes[0].tolist() == [[0.7]]


def test_multiclass_windows_widen_as_classes_appear() -> None:
    w = window(binary=False)
    w.add(np.full(2, T0), np.array([[0.6, 0.4], [0.3, 0.7]]), np.array([0, 1]), T0)
    # A third class: earlier outcomes had probability 0 for it.
    w.add(np.full(1, T0), np.array([[0.1, 0.1, 0.8]]), np.array([2]), T0)
    counts = w.counts(T0)
    assert counts.ranks.shape == (3, 2, 64)
    assert counts.outcomes is not None
    assert counts.outcomes[0].tolist() == [[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.1, 0.1, 0.8]]
    # A true class beyond the scores sent (a label of a class the event did not name): p = 0.
    w.add(np.full(1, T0), np.array([[0.5, 0.5]]), np.array([3]), T0)
    q = w.counts(T0).quality()
    assert q is not None
    assert q.log_loss == pytest.approx(
        (-math.log(0.6) - math.log(0.7) - math.log(0.8) - math.log(S.EPS)) / 4
    )


def test_state_round_trips_through_the_snapshot_format() -> None:
    w = window(binary=False, exact_capacity=5)
    rng = np.random.default_rng(1)
    for i in range(4):
        p = rng.dirichlet([1, 1, 1], 3)
        w.add(np.full(3, T0 + 60 * i), p, rng.integers(0, 3, 3), T0 + 60 * i)
    now = T0 + 180
    saved = msgspec.msgpack.decode(zlib.decompress(fileformat.encode_body({"w": w.to_state()})))[
        "w"
    ]
    back = ScoreWindow.from_state(
        saved, 600.0, 10, rank_bins=64, calibration_bins=10, exact_capacity=5
    )
    a, b = w.counts(now), back.counts(now)
    assert (a.count, a.log_loss_sum, a.brier_sum) == (b.count, b.log_loss_sum, b.brier_sum)
    assert np.array_equal(a.ranks, b.ranks) and np.array_equal(a.calibration, b.calibration)
    assert (a.outcomes is None) == (b.outcomes is None)
    with pytest.raises(ValueError, match="do not fit"):
        ScoreWindow.from_state(
            saved, 600.0, 10, rank_bins=32, calibration_bins=10, exact_capacity=5
        )


# -- against a naive record -----------------------------------------------------------------------

DURATION, BUCKETS = 600.0, 10
WIDTH = DURATION / BUCKETS


@dataclass
class Kept:
    bucket: int
    scores: list[float]
    truth: int


class ScoreWindowMachine(RuleBasedStateMachine):
    """Every outcome is recorded with the bucket it went to; the naive model also replays the
    rule for which buckets keep their outcomes (a bucket that would take the kept outcomes of
    the window over the capacity keeps none, until it leaves)."""

    @initialize(binary=st.booleans(), capacity=st.sampled_from([0, 7, 40]))
    def start(self, binary: bool, capacity: int) -> None:
        self.binary = binary
        self.capacity = capacity
        self.w = ScoreWindow(
            DURATION,
            BUCKETS,
            binary=binary,
            rank_bins=32,
            calibration_bins=5,
            exact_capacity=capacity,
        )
        self.now = T0
        self.record: list[Kept] = []
        self.overflowed: set[int] = set()
        self.classes = 1 if binary else 2
        self.rng = np.random.default_rng(0)

    def _current(self) -> int:
        return math.floor(self.now / WIDTH)

    @rule(
        n=st.integers(1, 12),
        back=st.lists(st.floats(-700, 30), min_size=1, max_size=3),
        grow=st.booleans(),
    )
    def add(self, n: int, back: list[float], grow: bool) -> None:
        rng = self.rng
        if self.binary:
            scores = np.round(rng.random((n, 1)), 2)
            truth = rng.integers(0, 2, n)
        else:
            if grow and self.classes < 5:
                self.classes += 1
            scores = rng.dirichlet(np.ones(self.classes), n)
            truth = rng.integers(0, self.classes + (1 if grow else 0), n)  # now and then unseen
        times = self.now + np.array([back[i % len(back)] for i in range(n)])
        self.w.add(times, scores, truth, self.now)
        current = self._current()
        buckets = np.minimum(np.floor_divide(times, WIDTH).astype(np.int64), current)
        for b in sorted(set(buckets.tolist())):
            if b <= current - BUCKETS:
                continue
            rows = np.flatnonzero(buckets == b)
            held = sum(1 for k in self._live_kept() if k.bucket not in self.overflowed)
            if b in self.overflowed or held + rows.shape[0] > self.capacity:
                self.overflowed.add(b)
            for i in rows.tolist():
                self.record.append(Kept(b, scores[i].tolist(), int(truth[i])))

    @rule(seconds=st.sampled_from([1.0, 59.0, 60.0, 301.0, 601.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds
        current = self._current()
        # A bucket that left the window is forgotten, with whether it overflowed.
        self.overflowed = {b for b in self.overflowed if b > current - BUCKETS}
        self.record = [k for k in self.record if k.bucket > current - BUCKETS]

    def _live_kept(self) -> list[Kept]:
        current = self._current()
        return [k for k in self.record if k.bucket > current - BUCKETS]

    @invariant()
    def equals_the_naive_record(self) -> None:
        if not hasattr(self, "w"):
            return
        counts = self.w.counts(self.now)
        live = self._live_kept()
        assert counts.count == len(live)
        if not live:
            assert counts.quality() is None
            return
        width = counts.ranks.shape[0]
        scores = np.zeros((len(live), max(width, max(len(k.scores) for k in live))))
        for i, k in enumerate(live):
            scores[i, : len(k.scores)] = k.scores
        truth = np.array([k.truth for k in live])
        if not self.binary:
            scores = scores[:, : max(width, int(truth.max()) + 1)]
        assert counts.log_loss_sum == pytest.approx(S.log_losses(scores, truth).sum(), rel=1e-9)
        assert counts.brier_sum == pytest.approx(
            S.brier_scores(scores, truth).sum(), rel=1e-9, abs=1e-12
        )
        confidence, hit = S.confidence_and_hit(scores, truth)
        np.testing.assert_allclose(
            counts.calibration, S.calibration_sums(confidence, hit, 5), atol=1e-9
        )
        for c in range(counts.ranks.shape[0]):
            which = S.rank_bins(scores[:, c], 32)
            is_class = truth == (1 if self.binary else c)
            assert (
                counts.ranks[c, 1].tolist() == np.bincount(which[is_class], minlength=32).tolist()
            )
            assert (
                counts.ranks[c, 0].tolist() == np.bincount(which[~is_class], minlength=32).tolist()
            )
        exact = not any(k.bucket in self.overflowed for k in live)
        assert (counts.outcomes is not None) == exact
        if counts.outcomes is not None:
            got = sorted(
                zip(
                    map(tuple, counts.outcomes[0].tolist()),
                    counts.outcomes[1].tolist(),
                    strict=True,
                )
            )
            want = sorted(
                zip(
                    map(tuple, scores[:, : counts.outcomes[0].shape[1]].tolist()),
                    truth.tolist(),
                    strict=True,
                )
            )
            assert got == want
            assert len(got) <= self.capacity


ScoreWindowMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None
)
TestScoreWindowMachine = ScoreWindowMachine.TestCase
