"""Concept-drift detectors against River 0.26 (the oracle, fed one value at a time) on seeded
streams: the same detections, the same estimate after every value; batches exactly equal to
single values; snapshots that continue exactly; the settings' validation; and the cases where
River cannot be matched, shown on River itself."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from river import drift

from exporter.stats import concept_drift as cd
from exporter.stats.concept_drift import (
    Adwin,
    AdwinSettings,
    ConceptDriftSettings,
    Ddm,
    DdmSettings,
    Detector,
    PageHinkley,
    PageHinkleySettings,
    detector_from_state,
    make_detector,
    settings_from_mapping,
)

# --- streams --------------------------------------------------------------------------------


def bernoulli(seed: int, rates: list[float], length: int) -> np.ndarray:
    """Errors (1.0) at each rate in turn, ``length`` values each: abrupt changes."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(length) < r for r in rates]).astype(np.float64)


def gradual(seed: int, low: float, high: float, before: int, ramp: int, after: int) -> np.ndarray:
    """Errors at ``low``, then a linear ramp to ``high`` over ``ramp`` values, then ``high``."""
    rng = np.random.default_rng(seed)
    rate = np.concatenate(
        [np.full(before, low), np.linspace(low, high, ramp), np.full(after, high)]
    )
    return (rng.random(rate.shape[0]) < rate).astype(np.float64)


def regression(seed: int, scales: list[float], length: int, shift: float = 0.0) -> np.ndarray:
    """Absolute errors |N(shift * k, scale_k)| of a regression, ``length`` values per scale."""
    rng = np.random.default_rng(seed)
    parts = [np.abs(rng.normal(shift * k, s, length)) for k, s in enumerate(scales)]
    return np.concatenate(parts)


STREAMS: dict[str, Callable[[int], np.ndarray]] = {
    "abrupt": lambda seed: bernoulli(seed, [0.1, 0.3, 0.05, 0.2], 1500),
    "abrupt_small": lambda seed: bernoulli(seed, [0.02, 0.06], 3000),
    "gradual": lambda seed: gradual(seed, 0.1, 0.4, 2000, 2000, 2000),
    "regression": lambda seed: regression(seed, [1.0, 2.5, 1.0], 2000),
    "regression_mean": lambda seed: regression(seed, [1.0, 1.0, 1.0], 2000, shift=0.7),
}
BINARY = ["abrupt", "abrupt_small", "gradual"]

# --- running the oracle and ours ------------------------------------------------------------


def river_detector(settings: ConceptDriftSettings) -> Any:
    if isinstance(settings, AdwinSettings):
        return drift.ADWIN(
            delta=settings.delta,
            clock=settings.clock,
            max_buckets=settings.max_buckets,
            min_window_length=settings.min_window_length,
            grace_period=settings.grace_period,
        )
    if isinstance(settings, DdmSettings):
        return drift.binary.DDM(
            warm_start=settings.warm_start,
            warning_threshold=settings.warning_threshold,
            drift_threshold=settings.drift_threshold,
        )
    return drift.PageHinkley(
        min_instances=settings.min_instances,
        delta=settings.delta,
        threshold=settings.threshold,
        alpha=settings.alpha,
        mode=settings.mode,
    )


def river_estimate(det: Any) -> float:
    """River's estimate as the module defines it: ADWIN's window mean, DDM's p_i, PH's mean."""
    if isinstance(det, drift.ADWIN):
        return float(det.estimation)
    if isinstance(det, drift.binary.DDM):
        return float(det._p.get())  # DDM exposes p_i only as its running mean
    return float(det._x_mean.get())


def run_river(settings: ConceptDriftSettings, xs: np.ndarray) -> dict[str, list[Any]]:
    det = river_detector(settings)
    out: dict[str, list[Any]] = {"hits": [], "estimate": [], "warning": [], "width": []}
    binary = isinstance(settings, DdmSettings)
    for i, v in enumerate(xs.tolist()):
        det.update(int(v) if binary else v)
        if det.drift_detected:
            out["hits"].append(i)
        out["estimate"].append(river_estimate(det))
        out["warning"].append(bool(getattr(det, "warning_detected", False)))
        out["width"].append(int(det.width) if isinstance(det, drift.ADWIN) else 0)
    return out


def run_ours(settings: ConceptDriftSettings, xs: np.ndarray) -> dict[str, list[Any]]:
    """One value at a time, reading everything after each."""
    det = make_detector(settings)
    out: dict[str, list[Any]] = {"hits": [], "estimate": [], "warning": [], "width": []}
    for i in range(xs.shape[0]):
        found = det.update(xs[i : i + 1])
        assert found in ([], [0])
        assert det.drift_detected == bool(found)
        if found:
            out["hits"].append(i)
        out["estimate"].append(det.estimate)
        out["warning"].append(det.warning)
        out["width"].append(det.width if isinstance(det, Adwin) else 0)
    return out


def run_batches(det: Detector, xs: np.ndarray, sizes: list[int]) -> tuple[list[int], list[float]]:
    """Feed ``xs`` in batches of the given sizes (cycled); detections (stream indices) and the
    estimate after each batch."""
    hits: list[int] = []
    estimates: list[float] = []
    start, k = 0, 0
    while start < xs.shape[0]:
        size = sizes[k % len(sizes)]
        hits += [start + o for o in det.update(xs[start : start + size])]
        estimates.append(det.estimate)
        start += size
        k += 1
    return hits, estimates


ADWIN_SETTINGS = [
    AdwinSettings(),
    AdwinSettings(clock=1),
    AdwinSettings(delta=0.05, clock=4, max_buckets=2, min_window_length=1, grace_period=0),
    AdwinSettings(delta=0.2, clock=7, max_buckets=3, min_window_length=10, grace_period=100),
    AdwinSettings(delta=1e-5, clock=64, max_buckets=8),
]
DDM_SETTINGS = [
    DdmSettings(),
    DdmSettings(warm_start=0, warning_threshold=1.5, drift_threshold=2.0),
    DdmSettings(warm_start=100, warning_threshold=2.5, drift_threshold=3.5),
]
PH_SETTINGS = [
    PageHinkleySettings(),
    PageHinkleySettings(threshold=10.0, mode="up"),
    PageHinkleySettings(threshold=8.0, mode="down", delta=0.0),
    PageHinkleySettings(min_instances=1, threshold=5.0, alpha=0.99, delta=0.05),
    PageHinkleySettings(threshold=20.0, alpha=1.0),
]


def cases() -> list[tuple[ConceptDriftSettings, str]]:
    out: list[tuple[ConceptDriftSettings, str]] = []
    for s in ADWIN_SETTINGS + PH_SETTINGS:
        out += [(s, name) for name in STREAMS]
    for s in DDM_SETTINGS:
        out += [(s, name) for name in BINARY]
    return out


# --- parity with River ----------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "stream"), cases(), ids=lambda v: str(v)[:60])
def test_same_detections_and_estimates_as_river(
    settings: ConceptDriftSettings, stream: str
) -> None:
    xs = STREAMS[stream](7)
    river, ours = run_river(settings, xs), run_ours(settings, xs)
    assert ours["hits"] == river["hits"]
    assert ours["estimate"] == river["estimate"]  # bit for bit, after every value
    assert ours["warning"] == river["warning"]
    assert ours["width"] == river["width"]


def test_the_parity_streams_do_detect() -> None:
    """The parity tests compare detections, not only their absence: on the abrupt streams every
    detector's defaults find the changes, within the segment after each change."""
    xs = STREAMS["abrupt"](7)
    for settings in (AdwinSettings(), DdmSettings(), PageHinkleySettings(threshold=20.0)):
        hits = run_river(settings, xs)["hits"]
        assert any(1500 <= h < 3000 for h in hits), (settings, hits)
    reg = STREAMS["regression"](7)
    for reg_settings in (AdwinSettings(), PageHinkleySettings()):
        hits = run_river(reg_settings, reg)["hits"]
        assert any(2000 <= h < 4000 for h in hits), (reg_settings, hits)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        (AdwinSettings(), "binary"),
        (AdwinSettings(), "regression"),
        (DdmSettings(warm_start=500, drift_threshold=4.0), "binary"),
        (PageHinkleySettings(threshold=100.0), "binary"),
        (PageHinkleySettings(delta=0.05), "regression"),
    ],
)
def test_stationary_streams_no_detection(
    settings: ConceptDriftSettings, kind: str, seed: int
) -> None:
    rng = np.random.default_rng(100 + seed)
    if kind == "binary":
        xs = (rng.random(20_000) < 0.1).astype(np.float64)
    else:
        xs = np.abs(rng.normal(size=20_000))
    assert run_river(settings, xs)["hits"] == []
    det = make_detector(settings)
    assert run_batches(det, xs, [100])[0] == []
    assert det.detections == 0 and det.samples == 20_000


def test_adwin_switches_from_binary_to_general_form_exactly() -> None:
    """A 0/1 stream keeps ADWIN in its binary form; the first other value converts the buckets
    (with the closed-form squared deviations) and the results stay River's."""
    xs = bernoulli(3, [0.1, 0.1, 0.4], 1200)
    xs[1500] = 0.5  # one non-binary value in a long 0/1 window
    xs[3000:] *= 1.5
    for settings in (AdwinSettings(), AdwinSettings(clock=1, max_buckets=2)):
        river = run_river(settings, xs)
        ours = run_ours(settings, xs)
        assert ours["hits"] == river["hits"] and ours["hits"]
        assert ours["estimate"] == river["estimate"]
        assert ours["width"] == river["width"]


# --- batches ---------------------------------------------------------------------------------

ALL_SETTINGS: list[ConceptDriftSettings] = [*ADWIN_SETTINGS, *DDM_SETTINGS, *PH_SETTINGS]


def pairs(streams: list[str]) -> list[tuple[ConceptDriftSettings, str]]:
    """Every setting with every stream, but DDM (0/1 only) with the binary ones."""
    return [
        (s, name)
        for s in ALL_SETTINGS
        for name in streams
        if name in BINARY or not isinstance(s, DdmSettings)
    ]


@pytest.mark.parametrize(
    ("settings", "stream"), pairs(["abrupt", "gradual", "regression"]), ids=lambda v: str(v)[:60]
)
def test_batches_equal_single_values(settings: ConceptDriftSettings, stream: str) -> None:
    xs = STREAMS[stream](11)
    single = make_detector(settings)
    hits_single, _ = run_batches(single, xs, [1])
    assert hits_single == run_river(settings, xs)["hits"]
    rng = np.random.default_rng(5)
    for sizes in ([100], [1000], [xs.shape[0]], rng.integers(1, 400, size=50).tolist()):
        det = make_detector(settings)
        hits, estimates = run_batches(det, xs, sizes)
        assert hits == hits_single, sizes
        assert det.estimate == single.estimate
        assert det.detections == single.detections == len(hits)
        assert det.samples == single.samples
        assert_same_state(det.to_state(), single.to_state())
        assert len(estimates) >= 1


def test_batch_offsets_are_within_the_batch() -> None:
    """Several detections in one batch: their offsets in order, the detector reset between."""
    xs = bernoulli(2, [0.05, 0.6, 0.05, 0.6, 0.05], 400)
    det = Adwin(AdwinSettings(clock=1, delta=0.01))
    found = det.update(xs)
    assert len(found) >= 3 and found == sorted(found)
    assert found == run_river(det.settings, xs)["hits"]
    assert det.detections == len(found)
    assert det.update(np.zeros(0)) == []


def test_update_does_not_keep_the_callers_array() -> None:
    xs = STREAMS["regression"](4)
    for settings in (AdwinSettings(), AdwinSettings(clock=1), PageHinkleySettings()):
        det, reference = make_detector(settings), make_detector(settings)
        for start in range(0, 3000, 10):
            batch = xs[start : start + 10].copy()
            det.update(batch)
            batch[:] = 1e6  # the caller reuses its buffer
            reference.update(xs[start : start + 10])
        assert det.update(xs[3000:]) == reference.update(xs[3000:])
        assert det.estimate == reference.estimate


# --- snapshots -------------------------------------------------------------------------------


def assert_plain(value: object) -> None:
    """Only ints, floats, lists of them and numpy arrays: no strings, no objects."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain(v)
    else:
        assert isinstance(value, int | float | np.ndarray), type(value)
        if isinstance(value, np.ndarray):
            assert value.dtype in (np.float64, np.int64)


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert np.array_equal(a[key], b[key]), key
        elif isinstance(a[key], float) and math.isnan(a[key]):
            assert math.isnan(b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize(
    ("settings", "stream"), pairs(["abrupt", "regression"]), ids=lambda v: str(v)[:60]
)
def test_restored_detector_continues_exactly(settings: ConceptDriftSettings, stream: str) -> None:
    xs = STREAMS[stream](13)
    whole = run_ours(settings, xs)
    # Snapshot points: early (warm-up), mid-stream, right after each detection (the reset is
    # pending), and one value after it.
    points = {3, 37, 1000, xs.shape[0] - 1}
    points |= {h + 1 for h in whole["hits"][:3]} | {h + 2 for h in whole["hits"][:3]}
    for point in sorted(p for p in points if p < xs.shape[0]):
        det = make_detector(settings)
        first = det.update(xs[:point])
        state = det.to_state()
        assert_plain(state)
        restored = detector_from_state(state)
        assert restored.settings == settings
        assert restored.detections == det.detections == len(first)
        assert restored.drift_detected == det.drift_detected
        assert restored.estimate == det.estimate == (whole["estimate"][point - 1])
        assert_same_state(restored.to_state(), state)
        rest = restored.update(xs[point:])
        assert first + [point + o for o in rest] == whole["hits"], point
        assert restored.estimate == whole["estimate"][-1]


def test_adwin_snapshot_with_values_waiting_for_a_test() -> None:
    """Values between two tests wait outside the buckets; a snapshot puts them in first, and a
    restored detector takes the binary form again."""
    xs = STREAMS["abrupt"](1)
    det, reference = Adwin(), Adwin()
    det.update(xs[:1003])  # 1003 = 31 * 32 + 11: 11 values wait for the test at 1024
    reference.update(xs[:1003])
    state = det.to_state()
    restored = detector_from_state(state)
    assert isinstance(restored, Adwin) and restored.width == 1003
    assert restored._binary and not restored._pending
    assert restored.update(xs[1003:]) == reference.update(xs[1003:])
    assert restored.estimate == reference.estimate


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"version": 2}, "version"),
        ({"kind": 7}, "kind"),
        ({"n": -1}, "n"),
        ({"n": "12"}, "n"),
        ({"detections": True}, "detections"),
        ({"held": [1, "x"]}, "held"),
        ({"held": [3]}, "held"),
        ({"sums": np.zeros(99)}, "sums"),
        ({"total": None}, "total"),
        ({"max_buckets": 1}, "max_buckets"),
    ],
)
def test_malformed_adwin_state_is_refused(change: dict[str, Any], key: str) -> None:
    det = Adwin()
    det.update(STREAMS["abrupt"](0)[:500])
    state = {**det.to_state(), **change}
    with pytest.raises(ValueError, match=key):
        detector_from_state(state)


def test_malformed_states_of_the_others_are_refused() -> None:
    ddm, ph = Ddm(), PageHinkley()
    ddm.update(np.ones(40))
    ph.update(np.ones(40))
    with pytest.raises(ValueError, match="'kind': not a ddm state"):
        Ddm.from_state(ph.to_state())
    with pytest.raises(ValueError, match="mode"):
        detector_from_state({**ph.to_state(), "mode": 5})
    with pytest.raises(ValueError, match="mean"):
        detector_from_state({**ddm.to_state(), "mean": "0.5"})
    with pytest.raises(ValueError, match="drift_threshold"):
        detector_from_state({**ddm.to_state(), "drift_threshold": 1.0})


# --- settings and input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (lambda: AdwinSettings(delta=0.0), "delta"),
        (lambda: AdwinSettings(delta=1.5), "delta"),
        (lambda: AdwinSettings(delta=math.nan), "delta"),
        (lambda: AdwinSettings(clock=0), "clock"),
        (lambda: AdwinSettings(clock=2.0), "clock"),  # type: ignore[arg-type]
        (lambda: AdwinSettings(max_buckets=1), "max_buckets"),
        (lambda: AdwinSettings(min_window_length=0), "min_window_length"),
        (lambda: AdwinSettings(grace_period=-1), "grace_period"),
        (lambda: AdwinSettings(grace_period=True), "grace_period"),
        (lambda: DdmSettings(warm_start=-1), "warm_start"),
        (lambda: DdmSettings(warning_threshold=0.0), "warning_threshold"),
        (lambda: DdmSettings(drift_threshold=-3.0), "drift_threshold"),
        (lambda: DdmSettings(warning_threshold=4.0), "warning_threshold"),
        (lambda: DdmSettings(drift_threshold=math.inf), "drift_threshold"),
        (lambda: PageHinkleySettings(min_instances=0), "min_instances"),
        (lambda: PageHinkleySettings(delta=-0.1), "delta"),
        (lambda: PageHinkleySettings(threshold=0.0), "threshold"),
        (lambda: PageHinkleySettings(alpha=0.0), "alpha"),
        (lambda: PageHinkleySettings(alpha=1.01), "alpha"),
        (lambda: PageHinkleySettings(mode="sideways"), "mode"),  # type: ignore[arg-type]
        (lambda: PageHinkleySettings(kind="adwin"), "kind"),  # type: ignore[arg-type]
    ],
)
def test_invalid_settings_name_the_parameter(factory: Callable[[], object], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key} must"):
        factory()


def test_defaults_are_rivers() -> None:
    for ours, theirs in (
        (AdwinSettings(), drift.ADWIN()),
        (DdmSettings(), drift.binary.DDM()),
        (PageHinkleySettings(), drift.PageHinkley()),
    ):
        params = theirs._get_params()
        assert {k: getattr(ours, k) for k in params} == params


def test_settings_from_mapping() -> None:
    assert settings_from_mapping({}) == AdwinSettings()
    assert settings_from_mapping({"kind": "ddm", "warm_start": 50}) == DdmSettings(warm_start=50)
    assert settings_from_mapping({"kind": "page_hinkley", "mode": "up"}) == PageHinkleySettings(
        mode="up"
    )
    with pytest.raises(ValueError, match=r"^kind must be one of"):
        settings_from_mapping({"kind": "kswin"})
    with pytest.raises(ValueError, match=r"^threshold is not a parameter of adwin"):
        settings_from_mapping({"kind": "adwin", "threshold": 3})
    with pytest.raises(ValueError, match=r"^clock must be >= 1"):
        settings_from_mapping({"clock": 0})


def test_factory_builds_each_kind() -> None:
    for settings, cls in (
        (AdwinSettings(clock=8), Adwin),
        (DdmSettings(warm_start=5), Ddm),
        (PageHinkleySettings(threshold=3.0), PageHinkley),
    ):
        det = make_detector(settings)
        assert isinstance(det, cls) and det.settings == settings
        assert (det.estimate, det.detections, det.samples, det.warning) == (0.0, 0, 0, False)
        assert det.to_state()["kind"] == cd.KINDS.index(settings.kind)


@pytest.mark.parametrize("settings", [AdwinSettings(), DdmSettings(), PageHinkleySettings()])
def test_bad_values_are_refused_and_change_nothing(settings: ConceptDriftSettings) -> None:
    det = make_detector(settings)
    det.update(np.zeros(10))
    before = det.to_state()
    with pytest.raises(ValueError, match=r"values\[2\] must be finite"):
        det.update([0.0, 1.0, math.nan])
    with pytest.raises(ValueError, match="one-dimensional"):
        det.update(np.zeros((2, 2)))
    assert_same_state(det.to_state(), before)


def test_ddm_takes_zeros_and_ones_only() -> None:
    det = Ddm()
    assert det.update([True, False, 1, 0]) == []
    with pytest.raises(ValueError, match=r"values\[1\] must be 0 or 1 for DDM, got 0.5"):
        det.update([1.0, 0.5])
    assert det.samples == 4


# --- where River cannot be matched (the module docstring's list) ----------------------------


def test_river_panics_with_one_bucket_per_size_so_we_refuse_it() -> None:
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.random(3000) < 0.1, rng.random(3000) < 0.6]).astype(float)
    adwin = drift.ADWIN(max_buckets=1, clock=1)
    with pytest.raises(BaseException) as info:  # pyo3's PanicException is a BaseException
        for v in xs.tolist():
            adwin.update(v)
    assert type(info.value).__name__ == "PanicException"
    with pytest.raises(ValueError, match=r"^max_buckets must be >= 2"):
        AdwinSettings(max_buckets=1)


def test_rivers_adwin_count_restarts_with_each_window_ours_does_not() -> None:
    xs = bernoulli(2, [0.05, 0.6, 0.05, 0.6, 0.05], 400)
    river = drift.ADWIN(clock=1, delta=0.01)
    counts = []
    for v in xs.tolist():
        river.update(v)
        counts.append(river.n_detections)
    det = Adwin(AdwinSettings(clock=1, delta=0.01))
    found = det.update(xs)
    assert max(counts) == 1 and len(found) >= 3
    assert det.detections == len(found)


def test_river_stops_detecting_after_a_nan_so_we_refuse_it() -> None:
    xs = np.concatenate([np.zeros(500), [math.nan], np.zeros(500), np.ones(3000)])
    for river in (drift.ADWIN(), drift.binary.DDM(), drift.PageHinkley()):
        hits = []
        for v in xs.tolist():
            river.update(v)
            hits.append(river.drift_detected)
        assert not any(hits)  # the change at 1001 is never found
        clean = np.delete(xs, 500)
        settings = {
            "ADWIN": AdwinSettings(),
            "DDM": DdmSettings(),
            "PageHinkley": PageHinkleySettings(),
        }[type(river).__name__]
        assert make_detector(settings).update(clean) != []  # without the NaN, it is
        with pytest.raises(ValueError, match=r"values\[500\] must be finite"):
            make_detector(settings).update(xs)


# --- ADWIN's buckets ------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 3, 5, 8])
def test_bucket_counts_match_a_literal_exponential_histogram(m: int) -> None:
    """:func:`_buckets` and the closed form used for the tests, against the merging done by
    hand: each size a list of (first value, last value), merged when it holds m + 1."""
    levels: list[list[tuple[int, int]]] = [[]]
    det = Adwin(AdwinSettings(max_buckets=m))
    for n in range(1, 1500):
        levels[0].append((n - 1, n - 1))
        i = 0
        while len(levels[i]) == m + 1:
            a, b = levels[i].pop(0), levels[i].pop(0)
            assert a[1] + 1 == b[0]
            if i + 1 == len(levels):
                levels.append([])
            levels[i + 1].append((a[0], b[1]))
            i += 1
        held = [len(level) for level in levels]
        assert [h for _, h in cd._buckets(n, m)] == held
        _, closed, ends, present = det._windows(np.array([n], dtype=np.int64))
        assert closed[0, ::-1][: len(held)].tolist() == held
        expected_ends = [b + 1 for level in reversed(levels) for _, b in level]
        assert ends[0][present[0]].tolist() == expected_ends
