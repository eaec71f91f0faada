"""Windows: exact counts over the live buckets, uniform bounded samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from exporter.window import QualityWindow, SampleWindow, TimeBuckets, draw_sample


def test_time_buckets_cover_the_last_b_buckets() -> None:
    tb = TimeBuckets(60.0, 6)  # 10 s buckets
    assert tb.width == 10.0
    for b in (0, 1, 2, 3, 4, 5, 6):
        tb.claim(b)
    # At t=65 the current bucket is 6; live buckets are 1..6 (bucket 0's slot now holds 6).
    live = tb.ids[tb.live(65.0)]
    assert sorted(live.tolist()) == [1, 2, 3, 4, 5, 6]
    assert sorted(tb.ids[tb.live(95.0)].tolist()) == [4, 5, 6]


def test_time_buckets_reject_bad_parameters() -> None:
    with pytest.raises(ValueError, match="duration"):
        TimeBuckets(0, 6)
    with pytest.raises(ValueError, match="buckets"):
        TimeBuckets(60, 0)


def test_quality_window_equals_brute_force_over_time() -> None:
    """Random outcomes over 3 windows' worth of time; at every step the window sum equals a
    brute-force count of the outcomes whose bucket is live."""
    rng = np.random.default_rng(3)
    w = QualityWindow(600.0, 60, regression=False)  # 10 s buckets
    log_t, log_a, log_p = [], [], []
    now = 1_000_000.0
    for _ in range(200):
        now += float(rng.exponential(9.0))
        n = int(rng.integers(1, 30))
        # Outcomes stamped up to 5 minutes in the past, and a few "future" ones (clamped).
        t = now - rng.uniform(-5, 300, n)
        a = rng.integers(0, 4, n)
        p = rng.integers(0, 4, n)
        w.add_outcomes(t, a, p, now)
        log_t.append(np.minimum(t, now))
        log_a.append(a)
        log_p.append(p)
        all_t = np.concatenate(log_t)
        bucket = np.floor_divide(all_t, 10.0)
        cur = np.floor(now / 10.0)
        live = bucket > cur - 60
        # An outcome only counts if it was inside the window when it arrived; with 5-minute-old
        # timestamps and a 10-minute window that is always true here.
        expected = np.zeros((4, 4), dtype=np.int64)
        np.add.at(expected, (np.concatenate(log_a)[live], np.concatenate(log_p)[live]), 1)
        np.testing.assert_array_equal(w.confusion(now), expected)


def test_quality_window_drops_outcomes_older_than_the_window() -> None:
    w = QualityWindow(60.0, 6, regression=False)
    now = 10_000.0
    w.add_outcomes(np.array([now - 100.0, now - 1.0]), np.array([0, 1]), np.array([0, 1]), now)
    assert w.confusion(now).sum() == 1
    assert w.confusion(now + 61.0).sum() == 0  # everything has left the window


def test_quality_window_regression_sums() -> None:
    w = QualityWindow(60.0, 6, regression=True)
    e = np.array([1.0, -2.0, 3.0])
    w.add_errors(np.array([0.0, 15.0, 30.0]) + 1000, e, 1030.0)
    assert w.error_sums(1030.0) == (3, 6.0, 14.0)
    assert w.error_sums(1075.0) == (1, 3.0, 9.0)  # buckets at 1000 and 1015 left


def test_sample_window_keeps_everything_under_capacity() -> None:
    w = SampleWindow(60.0, 6, capacity=1000)
    rows = np.arange(200.0).reshape(100, 2)
    times = np.linspace(1000.0, 1059.0, 100)
    w.add(times, rows, 1059.0)
    r = w.snapshot(1059.0)
    s = draw_sample(list(r.rows), r.seen, 1000)
    assert s.events == 100
    np.testing.assert_array_equal(np.sort(s.rows[:, 0]), rows[:, 0])


def test_sample_window_grows_features_with_nan() -> None:
    w = SampleWindow(60.0, 6, capacity=100)
    w.add(np.array([1000.0]), np.array([[1.0]]), 1000.0)
    w.add(np.array([1001.0]), np.array([[2.0, 5.0]]), 1001.0)
    r = w.snapshot(1001.0)
    s = draw_sample(list(r.rows), r.seen, 100)
    assert s.rows.shape == (2, 2)
    assert np.isnan(s.rows[s.rows[:, 0] == 1.0, 1]).all()
    wider = r.draw(100, width=4)  # columns the model learnt after these rows: missing
    assert wider.rows.shape == (2, 4) and wider.events == 2
    assert np.isnan(wider.rows[:, 2:]).all()
    np.testing.assert_array_equal(np.sort(wider.rows[:, 0]), [1.0, 2.0])


def test_sample_window_is_bounded_and_counts_exactly() -> None:
    w = SampleWindow(600.0, 60, capacity=500)
    now = 50_000.0
    rng = np.random.default_rng(0)
    total = 0
    for _ in range(590):  # 590 s of traffic: all of it inside the (590..600 s) window
        now += 1.0
        n = int(rng.integers(50, 150))
        w.add(np.full(n, now), rng.normal(size=(n, 3)), now)
        total += n
    assert w.held() <= 3 * 500 + 150  # the budget, plus at most one batch
    assert w.events(now) == total  # exact, although only a sample of rows is held
    s = w.snapshot(now).draw(500, width=1)
    assert s.rows.shape[0] == 500
    assert s.events == total


def test_sample_is_uniform_over_the_window() -> None:
    """Each event's value is its arrival index; a uniform sample of the window has uniformly
    distributed indices even though the reservoirs overflowed and the rate varied 20-fold."""
    w = SampleWindow(600.0, 60, capacity=2000, seed=1)
    now = 100_000.0
    index = 0
    rates = np.where(np.arange(590) < 300, 20, 400)  # a burst in the second half
    for rate in rates:
        now += 1.0
        w.add(np.full(rate, now), np.arange(index, index + rate, dtype=float)[:, None], now)
        index += rate
    s = w.snapshot(now).draw(2000, width=1, seed=5)
    assert s.events == index
    # Share of the sample from the quiet first half should match its share of events.
    quiet = 300 * 20  # indices below this arrived in the quiet first half
    observed = int((s.rows[:, 0] < quiet).sum())
    expected_share = quiet / index
    # Binomial 6-sigma band: deterministic (seeded) yet meaningful.
    n = s.rows.shape[0]
    sigma = np.sqrt(n * expected_share * (1 - expected_share))
    assert abs(observed - n * expected_share) < 6 * sigma
    # And within the busy half, the KS distance to uniform is small.
    busy = s.rows[:, 0][s.rows[:, 0] >= quiet]
    ks = stats.kstest(busy, stats.uniform(loc=quiet, scale=index - quiet).cdf)
    assert ks.pvalue > 1e-4


def test_one_burst_in_one_bucket_is_kept_whole_under_capacity() -> None:
    w = SampleWindow(3600.0, 60, capacity=10_000)
    w.add(np.full(1800, 5000.0), np.arange(1800.0)[:, None], 5000.0)
    s = w.snapshot(5000.0).draw(10_000, width=1)
    assert s.rows.shape[0] == 1800


def test_expired_buckets_free_their_memory() -> None:
    w = SampleWindow(60.0, 6, capacity=100)
    w.add(np.full(50, 1000.0), np.zeros((50, 1)), 1000.0)
    w.add(np.full(5, 2000.0), np.zeros((5, 1)), 2000.0)
    assert w.held() == 5


def test_draw_sample_shrinks_when_one_bucket_cannot_supply_its_share() -> None:
    reservoirs = [np.zeros((5, 1)), np.ones((5, 1))]
    seen = np.array([1000, 5])  # the first bucket saw 1000 events but holds 5
    s = draw_sample(reservoirs, seen, capacity=100)
    # The first bucket holds 99.5 % of events but can supply only 5 rows: m = 5 / 0.995.
    assert s.rows.shape[0] == 5
    assert s.events == 1005


def test_live_buckets_count_the_buckets_with_data_that_are_still_in_the_window() -> None:
    q = QualityWindow(60.0, 6, regression=False)  # 10 s buckets
    s = SampleWindow(60.0, 6, capacity=10)
    assert q.live_buckets(1000.0) == s.live_buckets(1000.0) == 0
    for t in (1000.0, 1001.0, 1025.0):
        q.add_outcomes(np.array([t]), np.array([0]), np.array([1]), t)
        s.add(np.array([t]), np.array([[1.0]]), t)
    assert q.live_buckets(1025.0) == s.live_buckets(1025.0) == 2
    assert q.live_buckets(1059.0) == s.live_buckets(1059.0) == 2
    assert q.live_buckets(1060.0) == s.live_buckets(1060.0) == 1  # the bucket at 1000 left
    r = QualityWindow(60.0, 6, regression=True)
    r.add_errors(np.array([1000.0]), np.array([0.5]), 1000.0)
    assert r.live_buckets(1000.0) == 1 and r.live_buckets(1100.0) == 0


def test_late_rows_of_a_thinned_bucket_do_not_shrink_the_sample() -> None:
    """A bucket thinned to a tiny share (it had 10 of 40,010 events) then receives 30,000 late
    rows (clients whose clocks lag): they open a new stratum, so the window still yields its
    full sample, in the right proportions. Kept at the thinned capacity, the bucket would have
    held 1 row for 30,010 events and the draw would have shrunk to 2 rows."""
    w = SampleWindow(3600.0, 60, capacity=1000, seed=2)
    now = 360_000.0
    w.add(np.full(10, now), np.zeros((10, 1)), now)
    for _ in range(4):
        now += 60.0
        w.add(np.full(10_000, now), np.ones((10_000, 1)), now)  # the first bucket is thinned
    w.add(np.full(30_000, now - 240.0), np.full((30_000, 1), 2.0), now)
    s = w.snapshot(now).draw(1000, width=1, seed=1)
    assert s.events == 70_010
    assert s.rows.shape[0] == 1000
    late = int((s.rows[:, 0] == 2.0).sum())
    share = 30_000 / 70_010
    assert abs(late - 1000 * share) < 6 * np.sqrt(1000 * share * (1 - share))
    assert w.held() <= 3 * 1000 + 30_000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calls=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 5), st.integers(1, 120)),
        min_size=1,
        max_size=60,
    )
)
# Found by hypothesis: a bucket of 50 expires after the window was thinned at 132 events.
@example(calls=[(0, 0, 50)] + [(1, 0, 1)] * 6 + [(1, 0, 2), (1, 0, 35), (1, 0, 39), (1, 0, 1)])
def test_sample_window_against_a_naive_model(calls: list[tuple[int, int, int]]) -> None:
    """Any sequence of calls, each moving the clock on by 0 or 1 bucket and sending rows up to
    5 buckets late, never leaving a 10-bucket window: the counts are exact, memory stays in
    budget, a bucket holds at most MAX_STRATA strata, every row drawn is a row sent to a live
    bucket, and the sample keeps (nearly) its full size. It is short only by the rounding of
    merged strata, which the 1.5x share kept at thinning covers, and, where the window shrank
    after a thinning (busy buckets expired), by what the 1.5x cannot cover: a stratum thinned
    when the window held ``N`` events keeps ``1.5 capacity seen / N`` rows, short of its share
    of a window of fewer than ``N / 1.5``."""
    capacity = 40
    w = SampleWindow(100.0, 10, capacity=capacity, seed=7)  # 10 s buckets
    now = 10_000.0
    sent: dict[int, set[float]] = {}  # bucket -> values sent to it
    value = 0.0
    thinned_at = 0  # the largest window a thinning cut down to its shares
    for advance, late, n in calls:
        now += 10.0 * advance
        bucket = int(now // 10.0) - late
        values = value + np.arange(n, dtype=float)
        value += n
        before = [(stratum, stratum.cap) for strata in w._strata for stratum in strata]
        w.add(np.full(n, bucket * 10.0 + 5.0), values[:, None], now)
        sent.setdefault(bucket, set()).update(values.tolist())
        if any(stratum.cap < cap for stratum, cap in before):  # this add thinned
            thinned_at = max(thinned_at, w.events(now))
        assert w.held() <= 3 * capacity + n
        assert all(len(strata) <= SampleWindow.MAX_STRATA for strata in w._strata)
    current = int(now // 10.0)
    live = {b: v for b, v in sent.items() if b > current - 10}
    events = sum(len(v) for v in live.values())
    assert w.events(now) == events
    s = w.snapshot(now).draw(capacity, width=1)
    assert s.events == events
    drawn = s.rows[:, 0].tolist()
    assert len(set(drawn)) == len(drawn)
    assert set(drawn) <= set().union(*live.values())
    full = min(capacity, events)
    if thinned_at:  # each stratum kept 1.5 capacity seen / thinned_at rows
        full = min(full, math.floor(SampleWindow.KEEP * capacity * events / thinned_at))
    assert len(drawn) >= full - 2


def test_a_bucket_that_keeps_receiving_late_rows_merges_its_oldest_strata() -> None:
    """Late rows after every thinning would open a stratum each time: the bucket keeps at most
    MAX_STRATA, merging its two oldest into one proportional sample, and the window's sample
    stays full-sized and uniform (on-time and late rows in their shares)."""
    w = SampleWindow(100.0, 10, capacity=100, seed=4)  # 10 s buckets
    now = 10_005.0
    for _ in range(8):  # fill the window so that every call thins the older buckets
        w.add(np.full(300, now), np.zeros((300, 1)), now)
        now += 10.0
    late_bucket_time = now - 10.0
    for _ in range(30):
        w.add(np.full(300, now), np.zeros((300, 1)), now)
        w.add(np.full(50, late_bucket_time), np.ones((50, 1)), now)
        assert max(len(strata) for strata in w._strata) <= SampleWindow.MAX_STRATA
    slot = int(late_bucket_time // 10.0) % 10
    assert len(w._strata[slot]) == SampleWindow.MAX_STRATA  # merged, not grown
    assert sum(s.seen for s in w._strata[slot]) == 300 + 30 * 50
    s = w.snapshot(now).draw(100, width=1, seed=3)
    assert s.events == 8 * 300 + 30 * 350
    assert s.rows.shape[0] >= 98
    late = int(s.rows[:, 0].sum())
    share = 1500 / s.events
    assert abs(late - s.rows.shape[0] * share) < 6 * np.sqrt(100 * share * (1 - share))
