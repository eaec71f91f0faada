"""Concept-drift detectors on a model version's error stream: ADWIN, DDM and Page-Hinkley.

The stream is what the join produces per labeled prediction: ``1``/``0`` for a classifier's
wrong/right answer, the absolute error of a regression. Each detector takes the outcomes in
batches (one label request's worth) and returns the offsets, within the batch, of the values at
which it detected a change; it detects at **exactly the same values as River 0.26**
(``river.drift.ADWIN``, ``river.drift.binary.DDM``, ``river.drift.PageHinkley``) given the same
parameters (same names, same defaults), fed one value at a time. That is tested on seeded
streams in ``tests/test_stats_concept_drift.py``, together with the current estimate after every
value; the code is written from the papers and from River's documented semantics, not copied.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(1000) < 0.4]).astype(float)
>>> detector = make_detector(AdwinSettings())
>>> detector.update(errors[:1500]), detector.update(errors[1500:])  # 1500 + 579: value 2079
([], [579])
>>> detector.detections, detector.width, round(detector.estimate, 3)  # after the next 920
(1, 920, 0.421)

The semantics River fixes, and this module keeps
-------------------------------------------------
* **Reset after a detection.** A detector that detected at a value keeps its state (its
  estimate is read as it was then) until the next value arrives; that value first resets it to
  a fresh detector and is then its first value. River's ADWIN does so too (it builds a new
  window, dropping even the part the cut kept): the window after a detection starts empty.
* **ADWIN** (Bifet and Gavalda, "Learning from time-changing data with adaptive windowing",
  SDM 2007; ADWIN2: the window as an exponential histogram). The window is kept as buckets:
  ``max_buckets`` (M) at most per size ``2^i``; a new value is a bucket of size 1, and when a
  size holds ``M + 1`` buckets its two oldest merge into one of the next size. A bucket keeps
  its sum and its sum of squared deviations (merged as Chan et al. do), the window its width,
  sum and sum of squared deviations (updated per value, Welford's way). Every ``clock``-th
  value since the reset, once the width exceeds ``grace_period``, each cut between two buckets
  (oldest part ``W0`` of ``n0`` values, newest ``W1`` of ``n1``, both ``>= min_window_length``)
  is tested, oldest cut first::

      |mean(W0) - mean(W1)| > sqrt(2 m v d) + 2/3 d m,   m = 1/(n0 - mwl + 1) + 1/(n1 - mwl + 1),
      v = window variance (sum of squared deviations / width),  d = ln(2 ln(width) / delta)

  The first cut that holds is a detection; the oldest bucket is dropped and the test repeated
  until no cut holds (that shrunk window is what the estimate reports until the next value).
* **DDM** (Gama, Medas, Castillo and Rodrigues, "Learning with drift detection", SBIA 2004):
  ``p_i`` the error rate since the reset, ``s_i = sqrt(p_i (1 - p_i) / i)``; once ``i >
  warm_start``, the pair with the smallest ``p_i + s_i`` so far (ties: the latest) is
  ``(p_min, s_min)``; a warning when ``p_i + s_i > p_min + warning_threshold * s_min``, a drift
  when ``p_i + s_i > p_min + drift_threshold * s_min``.
* **Page-Hinkley** (Page, "Continuous inspection schemes", Biometrika 1954): with ``xbar_i`` the
  running mean since the reset, ``U_i = alpha U_{i-1} + (x_i - xbar_i) - delta`` and ``L_i =
  alpha L_{i-1} + (x_i - xbar_i) + delta``; once ``i >= min_instances``, an increase is
  detected when ``U_i - min_j U_j > threshold``, a decrease when ``max_j L_j - L_i >
  threshold`` (the running maximum of ``L`` starts at -1, River's initial value), ``mode``
  choosing which count.

Exactly equal, in floating point
--------------------------------
A threshold test flips on the last bit of its operands, so equality with River needs the same
rounding, not just the same formulas: every sum, mean and variance here is computed in the same
order of IEEE operations as River's (the running means as ``m += (1 / n) * (x - m)``, ADWIN's
window statistics as the Welford-style update, each bucket's sum as the pairwise sum of its two
halves), and ``ln`` is the C library's (:func:`math.log`, which River's Rust code calls too).
A batch is exactly a sequence of single values. DDM and Page-Hinkley are recurrences that no
array operation rounds the same way (the running mean, ``U`` and ``L``): they run as one plain
loop over the batch, with River's arithmetic. ADWIN's running sums over a batch are
sequential accumulations (``np.add.accumulate``, never a pairwise reduction), and its buckets
are found in closed form: after ``n`` values since a reset they depend on ``n`` alone. With
``M_0 = n`` values entered at size 1 and ``M_{i+1} = ceil((M_i - M) / 2)`` buckets entered at
size ``2^(i+1)`` (while ``M_i > M``), size ``2^i`` holds the last ``c_i`` of its ``M_i`` (``c_i =
M_i`` if ``M_i <= M``, else ``M - 1`` or ``M`` as ``M_i - M`` is odd or even), its bucket ``k``
holding values ``k 2^i`` to ``(k + 1) 2^i - 1``. So a batch builds each size's new buckets at
once (a pairwise merge of the size below), and evaluates all its tests in one array operation
over (test, bucket). Values between two tests only update the window's statistics and wait;
they go into buckets at the next test.

Where River cannot be matched (explained, and tested, here)
-----------------------------------------------------------
* ``max_buckets`` must be >= 2: River 0.26 accepts 1, but then a size can hold no bucket, and
  the first detection that shrinks the window through such a size panics in River's Rust code
  (``PanicException: slice index starts at 1 but ends at 0``); a setting that crashes the
  oracle has no behaviour to match, and is refused at configuration.
* :attr:`Adwin.detections` counts every detection since construction; River's
  ``ADWIN.n_detections`` belongs to the window it rebuilds after each detection, so it is never
  more than 1. (DDM and Page-Hinkley have no count in River.)
* Values must be finite: after one NaN, River's three detectors never detect again (NaN enters
  every sum, and every comparison with NaN is false). DDM's values must be 0 or 1 (River
  takes any number; ``s_i`` is then no standard deviation). ``ValueError`` names the offset.

Pure numpy and the standard library: no HTTP, no Prometheus. The state of a detector
(:meth:`to_state`) is plain ints, floats, lists and numpy arrays; a detector rebuilt from it
(:func:`detector_from_state`) continues exactly as the original would have.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from exporter.typedefs import BoolArray, FloatArray, IntArray

#: Which detector runs on the error stream.
DetectorKind = Literal["adwin", "ddm", "page_hinkley"]
#: Which changes of the mean Page-Hinkley reports.
PageHinkleyMode = Literal["up", "down", "both"]
#: A detector's snapshot: ints, floats, lists of them and numpy arrays (no strings, no pickle).
DetectorState: TypeAlias = dict[str, Any]

#: ``state["kind"]`` is the index of the kind here, ``state["mode"]`` that of the mode.
KINDS: tuple[DetectorKind, ...] = ("adwin", "ddm", "page_hinkley")
MODES: tuple[PageHinkleyMode, ...] = ("up", "down", "both")
#: Version of the state layout written by :meth:`to_state`.
STATE_VERSION = 1
#: ADWIN: values kept waiting for the next test at most (then put in buckets anyway).
_PENDING = 4096


# --- settings -------------------------------------------------------------------------------


def _integer(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(value) < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class AdwinSettings:
    """ADWIN's parameters: River's ``drift.ADWIN`` names and defaults (validated here).

    Parameters
    ----------
    delta : float
        Confidence of the cut test, in (0, 1): smaller is more conservative.
    clock : int
        Test the cuts at every ``clock``-th value (since the last reset).
    max_buckets : int
        Buckets kept per size before the two oldest merge (>= 2; see the module docstring).
    min_window_length : int
        Values each side of a cut needs before the cut is tested.
    grace_period : int
        No test until the window holds more than this many values.
    """

    delta: float = 0.002
    clock: int = 32
    max_buckets: int = 5
    min_window_length: int = 5
    grace_period: int = 10
    kind: Literal["adwin"] = "adwin"

    def __post_init__(self) -> None:
        if not 0.0 < _real("delta", self.delta) < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")
        _integer("clock", self.clock, 1)
        _integer("max_buckets", self.max_buckets, 2)
        _integer("min_window_length", self.min_window_length, 1)
        _integer("grace_period", self.grace_period, 0)
        if self.kind != "adwin":
            raise ValueError(f"kind must be 'adwin', got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class DdmSettings:
    """DDM's parameters: River's ``drift.binary.DDM`` names and defaults (validated here).

    Parameters
    ----------
    warm_start : int
        Values since the reset before the test runs (it runs from value ``warm_start + 1``).
    warning_threshold : float
        Standard deviations above the best ``p + s`` that make a warning.
    drift_threshold : float
        Standard deviations above the best ``p + s`` that make a drift (>= the warning's).
    """

    warm_start: int = 30
    warning_threshold: float = 2.0
    drift_threshold: float = 3.0
    kind: Literal["ddm"] = "ddm"

    def __post_init__(self) -> None:
        _integer("warm_start", self.warm_start, 0)
        if not _real("warning_threshold", self.warning_threshold) > 0.0:
            raise ValueError(f"warning_threshold must be > 0, got {self.warning_threshold!r}")
        if not _real("drift_threshold", self.drift_threshold) > 0.0:
            raise ValueError(f"drift_threshold must be > 0, got {self.drift_threshold!r}")
        if self.warning_threshold > self.drift_threshold:
            raise ValueError(
                f"warning_threshold must be <= drift_threshold ({self.drift_threshold!r}), "
                f"got {self.warning_threshold!r}"
            )
        if self.kind != "ddm":
            raise ValueError(f"kind must be 'ddm', got {self.kind!r}")


@dataclass(frozen=True, slots=True)
class PageHinkleySettings:
    """Page-Hinkley's parameters: River's ``drift.PageHinkley`` names and defaults.

    Parameters
    ----------
    min_instances : int
        Values since the reset before the test runs.
    delta : float
        Magnitude of change tolerated per value (>= 0).
    threshold : float
        The cumulative deviation that makes a detection (lambda, > 0).
    alpha : float
        Forgetting factor of the cumulative sums, in (0, 1].
    mode : {"up", "down", "both"}
        Detect increases of the mean, decreases, or both.
    """

    min_instances: int = 30
    delta: float = 0.005
    threshold: float = 50.0
    alpha: float = 1 - 0.0001
    mode: PageHinkleyMode = "both"
    kind: Literal["page_hinkley"] = "page_hinkley"

    def __post_init__(self) -> None:
        _integer("min_instances", self.min_instances, 1)
        if not _real("delta", self.delta) >= 0.0:
            raise ValueError(f"delta must be >= 0, got {self.delta!r}")
        if not _real("threshold", self.threshold) > 0.0:
            raise ValueError(f"threshold must be > 0, got {self.threshold!r}")
        if not 0.0 < _real("alpha", self.alpha) <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of 'up', 'down', 'both', got {self.mode!r}")
        if self.kind != "page_hinkley":
            raise ValueError(f"kind must be 'page_hinkley', got {self.kind!r}")


#: The settings of one detector; ``kind`` tells which.
ConceptDriftSettings: TypeAlias = AdwinSettings | DdmSettings | PageHinkleySettings

_SETTINGS: dict[str, type[AdwinSettings] | type[DdmSettings] | type[PageHinkleySettings]] = {
    "adwin": AdwinSettings,
    "ddm": DdmSettings,
    "page_hinkley": PageHinkleySettings,
}


def settings_from_mapping(mapping: Mapping[str, object]) -> ConceptDriftSettings:
    """Settings from a flat mapping such as a configuration's: ``kind`` and its parameters
    (the others at their defaults). ``ValueError`` names the key that is wrong.

    >>> settings_from_mapping({"kind": "page_hinkley", "threshold": 20})
    PageHinkleySettings(min_instances=30, delta=0.005, threshold=20, alpha=0.9999, mode='both', kind='page_hinkley')
    >>> settings_from_mapping({"kind": "ddm", "clock": 8})
    Traceback (most recent call last):
    ...
    ValueError: clock is not a parameter of ddm (its parameters: warm_start, warning_threshold, drift_threshold)
    """  # noqa: E501
    kind = mapping.get("kind", "adwin")
    cls = _SETTINGS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"kind must be one of 'adwin', 'ddm', 'page_hinkley', got {kind!r}")
    names = [f.name for f in fields(cls) if f.name != "kind"]
    for key in mapping:
        if key != "kind" and key not in names:
            raise ValueError(
                f"{key} is not a parameter of {kind} (its parameters: {', '.join(names)})"
            )
    params: dict[str, Any] = {k: v for k, v in mapping.items() if k != "kind"}
    return cls(**params)


# --- the contract ---------------------------------------------------------------------------


class Detector(Protocol):
    """A concept-drift detector fed a model version's error stream in batches."""

    @property
    def settings(self) -> ConceptDriftSettings:
        """The parameters it runs with."""
        ...

    @property
    def estimate(self) -> float:
        """The current error estimate (ADWIN: the window's mean; DDM: ``p_i``; Page-Hinkley: the
        running mean), 0.0 before any value; after a detection, as it was at that value."""
        ...

    @property
    def detections(self) -> int:
        """Detections since the detector was built (restored ones included)."""
        ...

    @property
    def drift_detected(self) -> bool:
        """Whether the last value seen was a detection (the next one resets the detector)."""
        ...

    @property
    def warning(self) -> bool:
        """Whether the detector is in its warning zone (DDM; always False for the others)."""
        ...

    @property
    def samples(self) -> int:
        """Values seen since the last reset (construction or the value after a detection)."""
        ...

    def update(self, values: npt.ArrayLike) -> list[int]:
        """Feed a batch (one-dimensional, finite); the offsets of the values that were
        detections, in order. Exactly the same as feeding the values one at a time."""
        ...

    def to_state(self) -> DetectorState:
        """A snapshot: plain ints, floats, lists and numpy arrays (copies)."""
        ...


def make_detector(settings: ConceptDriftSettings) -> Detector:
    """A fresh detector of ``settings.kind`` with these parameters."""
    if isinstance(settings, AdwinSettings):
        return Adwin(settings)
    if isinstance(settings, DdmSettings):
        return Ddm(settings)
    return PageHinkley(settings)


def detector_from_state(state: Mapping[str, Any]) -> Detector:
    """The detector :meth:`to_state` saved (its kind and parameters are in the state);
    ``ValueError`` if the state is malformed."""
    kind = _state_int(state, "kind")
    if not 0 <= kind < len(KINDS):
        raise ValueError(f"state key 'kind': unknown detector kind {kind!r}")
    cls: type[Adwin] | type[Ddm] | type[PageHinkley] = (Adwin, Ddm, PageHinkley)[kind]
    return cls.from_state(state)


# --- shared helpers -------------------------------------------------------------------------


def _values(values: npt.ArrayLike) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    finite = np.isfinite(x)
    if not np.logical_and.reduce(finite):  # ufunc methods: a third of .all()'s overhead
        at = int(np.argmin(finite))
        raise ValueError(f"values[{at}] must be finite, got {float(x[at])!r}")
    return x


def _state_int(state: Mapping[str, Any], key: str) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"state key {key!r}: expected an int, got {value!r}")
    return value


def _state_count(state: Mapping[str, Any], key: str) -> int:
    value = _state_int(state, key)
    if value < 0:
        raise ValueError(f"state key {key!r}: expected a count >= 0, got {value!r}")
    return value


def _state_float(state: Mapping[str, Any], key: str) -> float:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"state key {key!r}: expected a float, got {value!r}")
    return float(value)


def _state_array(state: Mapping[str, Any], key: str, length: int) -> FloatArray:
    value = state.get(key)
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.shape[0] != length:
        raise ValueError(f"state key {key!r}: expected a one-dimensional array of {length}")
    return np.array(value, dtype=np.float64)


def _state_header(state: Mapping[str, Any], kind: DetectorKind) -> None:
    if _state_int(state, "version") != STATE_VERSION:
        raise ValueError(f"state key 'version': expected {STATE_VERSION}, got {state['version']}")
    if _state_int(state, "kind") != KINDS.index(kind):
        raise ValueError(f"state key 'kind': not a {kind} state")


# --- ADWIN ----------------------------------------------------------------------------------


def _buckets(n: int, m: int) -> list[tuple[int, int]]:
    """Per size ``2^i`` (index i): buckets entered so far and buckets held, after ``n`` values
    since a reset with ``max_buckets = m`` (module docstring).

    >>> _buckets(12, 5)  # 12 values: 4 of size 1, 4 of size 2 (values 0-7)
    [(12, 4), (4, 4)]
    """
    out = []
    entered = n
    while entered > 0:
        held = entered if entered <= m else m - ((entered - m) & 1)
        out.append((entered, held))
        entered = (entered - held) >> 1
    return out


class Adwin:
    """ADWIN2 over an exponential histogram; River's ``drift.ADWIN`` (module docstring).

    Memory is ``O(max_buckets log W)`` floats; a value costs amortised O(1) and every
    ``clock``-th value a test of ``O(max_buckets log W)`` cuts: ``O(log W)`` per value at
    ``clock = 1``. A batch finds the buckets held at each of its tests in closed form and
    evaluates every test in one array operation over (test, bucket).

    Two exact forms of the same buckets. While every value since the reset is 0 or 1 (a
    classifier's errors), a bucket's sum is an integer, so every sum River forms from bucket
    sums is exact and equals the window's running count at the bucket's end; and its sum of
    squared deviations is ``k - k^2 / 2^i`` (``k`` errors among ``2^i`` values), the exact value
    of River's merge arithmetic, whose operands are then dyadic fractions of at most 2i bits
    (exact up to buckets of ``2^27`` values, in windows of ~670 million values; beyond, this
    form has the correctly rounded value where River's arithmetic may round otherwise. Squared
    deviations of buckets serve only the shrinking after a detection: the estimate between a
    detection and the next value could then differ in its last bits, the detections cannot).
    This form keeps only where each bucket ends and the count up to there. Any other value
    turns it into the general form (per size, each bucket's sum and squared deviations, merged
    as River merges them), until the next reset. On a 0/1 stream the binary form was about
    twice as fast (``bench/concept_drift.py``).
    """

    def __init__(self, settings: AdwinSettings | None = None) -> None:
        self._settings = settings if settings is not None else AdwinSettings()
        self._detections = 0
        self._grids: dict[int, tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]] = {}
        self._reset()

    def _reset(self) -> None:
        self._n = 0  # values since the reset (River's tick)
        self._width = 0  # values in the window: n, but after a detection's shrinking
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations in the window
        self._drift = False
        # Values since the last test wait here (the window's statistics above include them);
        # the buckets below are those of the first ``_fold_n`` values.
        self._pending: list[FloatArray] = []
        self._waiting = 0
        self._fold_n = 0
        self._fold_total = 0.0
        self._fold_variance = 0.0
        # The binary form: where each held bucket ends (values since the reset), oldest first,
        # and the window's sum up to there.
        self._binary = True
        self._ends: FloatArray = np.zeros(0)
        self._prefix: FloatArray = np.zeros(0)
        # The general form: per size 2^i, the held buckets' sums and sums of squared
        # deviations, oldest first.
        self._sums: list[FloatArray] = []
        self._squares: list[FloatArray] = []

    @property
    def settings(self) -> AdwinSettings:
        return self._settings

    @property
    def estimate(self) -> float:
        return self._total / self._width if self._width else 0.0

    @property
    def width(self) -> int:
        """Values in the window."""
        return self._width

    @property
    def variance(self) -> float:
        """The window's variance (sum of squared deviations over the width), 0.0 if empty."""
        return self._variance / self._width if self._width else 0.0

    @property
    def detections(self) -> int:
        return self._detections

    @property
    def drift_detected(self) -> bool:
        return self._drift

    @property
    def warning(self) -> bool:
        return False

    @property
    def samples(self) -> int:
        return self._n

    def update(self, values: npt.ArrayLike) -> list[int]:
        x = _values(values)
        found: list[int] = []
        start = 0
        while start < x.shape[0]:
            if self._drift:
                self._reset()
            rest = x.shape[0] - start
            if rest < self._due() and self._waiting + rest <= _PENDING:
                self._stash(x[start:])  # no test among them
                break
            hit = self._advance(x[start:])
            if hit < 0:
                break
            found.append(start + hit)
            self._detections += 1
            start += hit + 1
        return found

    def _due(self) -> int:
        """Values until the next test, that one included."""
        cfg = self._settings
        lowest = max(self._n + 1, cfg.grace_period + 1)
        return -(-lowest // cfg.clock) * cfg.clock - self._n

    def _stash(self, x: FloatArray) -> None:
        """Values before the next test: the window's statistics, as River updates them."""
        self._pending.append(x.copy())
        self._waiting += x.shape[0]
        width, total, squares = float(self._width), self._total, self._variance
        for value in x.tolist():
            width += 1.0
            if width > 1.0:
                dev = value - total / (width - 1.0)
                squares += (width - 1.0) * dev * dev / width
            total += value
        self._n = self._width = int(width)
        self._total, self._variance = total, squares

    def _advance(self, x: FloatArray) -> int:
        """Feed the waiting values and ``x`` up to the first detection: its offset in ``x``,
        or -1 (all of ``x`` taken)."""
        cfg = self._settings
        waiting = self._waiting
        if waiting:
            x = np.concatenate((*self._pending, x))
            self._pending, self._waiting = [], 0
        n0 = self._fold_n
        size = x.shape[0]
        n1 = n0 + size
        if self._binary and np.logical_or.reduce(x * (1.0 - x)):  # 0 for 0 and 1 only
            self._to_general()
        # The window's sum and sum of squared deviations after each value, as River updates
        # them one value at a time: sequential accumulations.
        totals = np.empty(size + 1)
        totals[0] = self._fold_total
        totals[1:] = x
        np.add.accumulate(totals, out=totals)
        seen = np.arange(n0, n1, dtype=np.float64)  # values before each one
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = x - totals[:-1] / seen
            squares = np.empty(size + 1)
            squares[0] = self._fold_variance
            squares[1:] = seen * dev * dev / (seen + 1.0)
        if n0 == 0:
            squares[1] = 0.0  # the first value of a window adds no deviation
        np.add.accumulate(squares, out=squares)
        # The tests in this batch (values since the reset at a multiple of the clock, past the
        # grace period), then the end of the batch.
        lowest = max(n0 + 1, cfg.grace_period + 1)
        ticks = list(range(-(-lowest // cfg.clock) * cfg.clock, n1 + 1, cfg.clock))
        rows = np.array([*ticks, n1], dtype=np.int64)
        entered, held, ends, present = self._windows(rows)
        at = rows - n0
        grown = None
        if self._binary:
            known = np.concatenate((self._ends, np.arange(n0 + 1, n1 + 1, dtype=np.float64)))
            counts = np.concatenate((self._prefix, totals[1:]))
            u0 = counts.take(known.searchsorted(ends), mode="clip")
            u1 = totals[at][:, None] - u0
        else:
            grown = self._grow(x, n0, n1)
            u0, u1 = self._bucket_sums(grown, entered, held, present, totals[at])
        tests = len(ticks)
        row = tests  # the end of the batch, unless a test detects
        if tests:
            hits = self._cuts(
                ends[:tests],
                u0[:tests],
                u1[:tests],
                present[:tests],
                rows[:tests].astype(np.float64),
                squares[at[:tests]],
            )
            if hits.any():
                row = int(np.argmax(hits))
        n = int(rows[row])
        if grown is None:
            keep = present[row]
            self._ends, self._prefix = ends[row][keep], u0[row][keep]
        else:
            self._commit(n, *grown)
        self._fold_n = self._n = self._width = n
        self._fold_total = self._total = float(totals[n - n0])
        self._fold_variance = self._variance = float(squares[n - n0])
        if row == tests:
            return -1
        self._to_general()
        self._shrink()
        self._drift = True
        return n - n0 - 1 - waiting

    def _grid(self, levels: int) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:
        """Per size, largest first: ``2^i``, ``(2^i - 1) max_buckets``; the slots of a size,
        and the same as floats (slot + 1, and ``2^i`` as a column)."""
        grid = self._grids.get(levels)
        if grid is not None:
            return grid
        power: IntArray = 1 << np.arange(levels - 1, -1, -1, dtype=np.int64)
        m = self._settings.max_buckets
        scaled: IntArray = (power - 1) * m
        slots: IntArray = np.arange(m, dtype=np.int64)
        after: FloatArray = slots.astype(np.float64) + 1.0
        sizes: FloatArray = power[:, None].astype(np.float64)
        self._grids[levels] = (power, scaled, slots, after, sizes)
        return power, scaled, slots, after, sizes

    def _windows(self, rows: IntArray) -> tuple[IntArray, IntArray, FloatArray, BoolArray]:
        """The buckets after each ``rows`` values since the reset, one row per window, largest
        size first, ``max_buckets`` slots per size: buckets entered and held per size (the
        closed form of :func:`_buckets`, ``M_i = ceil((n - (2^i - 1) M) / 2^i)``, which is
        <= 0 for sizes not reached yet), where each slot's bucket ends (values since the
        reset), and which slots hold one. Oldest first along a row."""
        m = self._settings.max_buckets
        power, scaled, slots, after, sizes = self._grid(max(int(rows[-1]).bit_length(), 1))
        entered = np.maximum(-((scaled - rows[:, None]) // power), 0)
        held = np.minimum(entered, m - ((entered - m) & 1))
        ends = (entered - held)[:, :, None] + after
        ends *= sizes
        present = slots < held[:, :, None]
        count = rows.shape[0]
        return entered, held, ends.reshape(count, -1), present.reshape(count, -1)

    def _grow(
        self, x: FloatArray, n0: int, n1: int
    ) -> tuple[list[FloatArray], list[FloatArray], list[int]]:
        """General form: every bucket held at any time between ``n0`` and ``n1`` values, per
        size: their sums, their sums of squared deviations, and the index of the first."""
        m = self._settings.max_buckets
        before, after = _buckets(n0, m), _buckets(n1, m)
        sums: list[FloatArray] = []
        devs: list[FloatArray] = []
        first: list[int] = []
        new_sums, new_devs = x, np.zeros(x.shape[0])
        for i in range(len(after)):
            old_entered, old_held = before[i] if i < len(before) else (0, 0)
            first.append(old_entered - old_held)
            if i < len(self._sums):
                sums.append(np.concatenate((self._sums[i], new_sums)))
                devs.append(np.concatenate((self._squares[i], new_devs)))
            elif i == 0:  # a copy: the buckets must not share the caller's array
                sums.append(new_sums.copy())
                devs.append(new_devs)
            else:
                sums.append(new_sums)
                devs.append(new_devs)
            # Merges into size 2^(i+1) during the batch: pairs of the oldest buckets of size 2^i.
            merges = (after[i + 1][0] if i + 1 < len(after) else 0) - (
                before[i + 1][0] if i + 1 < len(before) else 0
            )
            if merges == 0:  # and none above: the larger sizes are as they were
                for j in range(i + 1, len(after)):
                    first.append(before[j][0] - before[j][1])
                    sums.append(self._sums[j])
                    devs.append(self._squares[j])
                break
            pair = sums[i][: 2 * merges]
            left, right = pair[0::2], pair[1::2]
            if i == 0:  # the same IEEE results: x / 1 is x, and 0 + 0 + t is t
                gap = left - right
                new_devs = 0.5 * gap * gap
            else:
                n = float(1 << i)
                gap = left / n - right / n
                new_devs = devs[i][0 : 2 * merges : 2] + devs[i][1 : 2 * merges : 2]
                new_devs += n * 0.5 * gap * gap
            new_sums = left + right
        return sums, devs, first

    def _bucket_sums(
        self,
        grown: tuple[list[FloatArray], list[FloatArray], list[int]],
        entered: IntArray,
        held: IntArray,
        present: BoolArray,
        totals: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        """General form: for each row, the sums River accumulates at each cut: the oldest
        buckets' sums added, and subtracted from the window's sum, bucket by bucket."""
        sums, _, first = grown
        _, _, slots, _, _ = self._grid(entered.shape[1])
        # Where each size's first bucket would sit in the concatenation, largest size first.
        starts, offset = [0] * entered.shape[1], 0
        for i, level in enumerate(sums):
            starts[-1 - i] = offset - first[i]
            offset += level.shape[0]
        index = (entered - held + np.array(starts))[:, :, None] + slots
        index = index.reshape(entered.shape[0], -1)
        values = np.concatenate(sums).take(index, mode="clip") * present
        u0 = np.add.accumulate(values, axis=1)
        u1 = np.subtract.accumulate(np.concatenate((totals[:, None], values), axis=1), axis=1)
        return u0, u1[:, 1:]

    def _cuts(
        self,
        n0: FloatArray,
        u0: FloatArray,
        u1: FloatArray,
        present: BoolArray,
        width: FloatArray,
        squares: FloatArray,
    ) -> BoolArray:
        """For each row (a window), whether a cut holds: River's test at every cut after a
        held bucket (``n0`` values and sum ``u0`` before it, sum ``u1`` after it)."""
        cfg = self._settings
        mwl = float(cfg.min_window_length)
        n1 = width[:, None] - n0
        tested = present & (n0 >= mwl) & (n1 >= mwl)
        # ln(2 ln(width) / delta), by the C library's log as in River; a window of one value
        # has no cut (its factor is unused).
        delta = cfg.delta
        d = np.array(
            [math.log(2.0 * math.log(w) / delta) if w > 1.0 else 0.0 for w in width.tolist()]
        )[:, None]
        shift = 1.0 - mwl  # n - mwl + 1, exactly (integers)
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(u0 / n0 - u1 / n1)
            m = 1.0 / (n0 + shift) + 1.0 / (n1 + shift)
            eps = np.sqrt(2.0 * m * (squares / width)[:, None] * d) + 2.0 / 3.0 * d * m
        found: BoolArray = np.logical_or.reduce(tested & (gap > eps), axis=1)
        return found

    def _commit(
        self, n: int, sums: list[FloatArray], devs: list[FloatArray], first: list[int]
    ) -> None:
        """General form: keep the buckets held after ``n`` values (slices of arrays of this
        batch's, or the unchanged ones)."""
        held_sums, held_devs = [], []
        for i, (entered, held) in enumerate(_buckets(n, self._settings.max_buckets)):
            stop = entered - first[i]
            held_sums.append(sums[i][stop - held : stop])
            held_devs.append(devs[i][stop - held : stop])
        self._sums, self._squares = held_sums, held_devs

    def _general_form(self) -> tuple[list[FloatArray], list[FloatArray]]:
        """The held buckets' sums and squared deviations per size, from either form."""
        if not self._binary:
            return self._sums, self._squares
        sums: list[list[float]] = []
        squares: list[list[float]] = []
        end, count = 0, 0
        for e, c in zip(self._ends.tolist(), self._prefix.tolist(), strict=True):
            size, k = round(e) - end, round(c) - count
            end, count = round(e), round(c)
            level = size.bit_length() - 1
            while len(sums) <= level:
                sums.append([])
                squares.append([])
            sums[level].append(float(k))
            squares[level].append((k * size - k * k) / size)  # correctly rounded: exact
        return [np.array(s) for s in sums], [np.array(s) for s in squares]

    def _to_general(self) -> None:
        if self._binary:
            self._sums, self._squares = self._general_form()
            self._binary = False

    def _shrink(self) -> None:
        """After a detection: drop the oldest bucket until no cut holds (River does so)."""
        while True:
            sums = np.concatenate(self._sums[::-1])
            sizes = np.concatenate(
                [np.full(s.shape[0], float(1 << i)) for i, s in enumerate(self._sums)][::-1]
            )
            hit = self._cuts(
                np.add.accumulate(sizes)[None, :],
                np.add.accumulate(sums)[None, :],
                np.subtract.accumulate(np.concatenate(([self._total], sums)))[None, 1:],
                np.ones((1, sums.shape[0]), dtype=bool),
                np.array([float(self._width)]),
                np.array([self._variance]),
            )
            if not hit[0]:
                return
            top = len(self._sums) - 1
            n = float(1 << top)
            u, v = float(self._sums[top][0]), float(self._squares[top][0])
            mu = u / n
            width = float(self._width) - n
            self._total -= u
            mu_window = self._total / width
            self._variance -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
            self._width = int(width)
            self._sums[top], self._squares[top] = self._sums[top][1:], self._squares[top][1:]
            if self._sums[top].shape[0] == 0:
                self._sums.pop()
                self._squares.pop()

    def _adopt_binary(self) -> None:
        """Take the binary form if the buckets fit it exactly (integer sums, the closed-form
        squared deviations, an integer window sum): the general form's results, faster."""
        if self._drift or not self._total.is_integer():
            return
        ends, prefix = [], []
        end, count = 0, 0.0
        for i in range(len(self._sums) - 1, -1, -1):
            size = 1 << i
            for s, v in zip(self._sums[i].tolist(), self._squares[i].tolist(), strict=True):
                if not (s.is_integer() and 0 <= s <= size):
                    return
                k = int(s)
                if v != (k * size - k * k) / size:
                    return
                end, count = end + size, count + s
                ends.append(end)
                prefix.append(count)
        if count != self._total:
            return
        self._ends = np.array(ends, dtype=np.float64)
        self._prefix = np.array(prefix, dtype=np.float64)
        self._sums, self._squares = [], []
        self._binary = True

    def to_state(self) -> DetectorState:
        """A snapshot (the values waiting for the next test are first put in buckets)."""
        if self._waiting:
            self._advance(np.zeros(0))
        cfg = self._settings
        sums, squares = self._general_form()
        return {
            "version": STATE_VERSION,
            "kind": KINDS.index("adwin"),
            "delta": cfg.delta,
            "clock": cfg.clock,
            "max_buckets": cfg.max_buckets,
            "min_window_length": cfg.min_window_length,
            "grace_period": cfg.grace_period,
            "detections": self._detections,
            "drift": int(self._drift),
            "n": self._n,
            "width": self._width,
            "total": self._total,
            "variance": self._variance,
            "held": [int(s.shape[0]) for s in sums],
            "sums": np.concatenate([*sums, np.zeros(0)]),
            "squares": np.concatenate([*squares, np.zeros(0)]),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Adwin:
        _state_header(state, "adwin")
        settings = AdwinSettings(
            delta=_state_float(state, "delta"),
            clock=_state_int(state, "clock"),
            max_buckets=_state_int(state, "max_buckets"),
            min_window_length=_state_int(state, "min_window_length"),
            grace_period=_state_int(state, "grace_period"),
        )
        out = cls(settings)
        out._detections = _state_count(state, "detections")
        out._drift = bool(_state_int(state, "drift"))
        out._n, out._width = _state_count(state, "n"), _state_count(state, "width")
        out._total, out._variance = _state_float(state, "total"), _state_float(state, "variance")
        out._fold_n, out._fold_total, out._fold_variance = out._n, out._total, out._variance
        held = state.get("held")
        if not isinstance(held, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in held
        ):
            raise ValueError("state key 'held': expected a list of counts")
        if out._drift:  # shrunk after a detection: any buckets that make up the width
            fits = sum(h << i for i, h in enumerate(held)) == out._width <= out._n
        else:
            expected = [h for _, h in _buckets(out._n, settings.max_buckets)]
            fits = held == expected and out._width == out._n
        if not fits:
            raise ValueError(f"state key 'held': {held} buckets do not fit {out._n} values")
        sums = _state_array(state, "sums", sum(held))
        squares = _state_array(state, "squares", sum(held))
        cuts = list(itertools.pairwise(itertools.accumulate(held, initial=0)))
        out._sums = [sums[a:b] for a, b in cuts]
        out._squares = [squares[a:b] for a, b in cuts]
        out._binary = False
        out._adopt_binary()
        return out


# --- DDM ------------------------------------------------------------------------------------


class Ddm:
    """DDM on a 0/1 error stream; River's ``drift.binary.DDM`` (module docstring).

    O(1) memory and one plain loop over the batch: the running mean is a recurrence no array
    operation rounds the same way, and at 100 values a batch the loop (0.24 us a value) was
    twice as fast as the same loop for the mean plus array operations for the rest (0.53 us);
    the arrays won only from ~1000 values on, and by 30 %.
    """

    def __init__(self, settings: DdmSettings | None = None) -> None:
        self._settings = settings if settings is not None else DdmSettings()
        self._detections = 0
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._p_min = math.nan  # River's None: no minimum before the warm start ends
        self._s_min = math.nan
        self._ps_min = math.inf
        self._warning = False
        self._drift = False

    @property
    def settings(self) -> DdmSettings:
        return self._settings

    @property
    def estimate(self) -> float:
        return self._mean

    @property
    def detections(self) -> int:
        return self._detections

    @property
    def drift_detected(self) -> bool:
        return self._drift

    @property
    def warning(self) -> bool:
        return self._warning

    @property
    def samples(self) -> int:
        return self._n

    def update(self, values: npt.ArrayLike) -> list[int]:
        x = _values(values)
        if np.logical_or.reduce(x * (1.0 - x)):  # 0 exactly for 0 and 1 (x is finite)
            binary = (x == 0.0) | (x == 1.0)
            at = int(np.argmin(binary))
            raise ValueError(f"values[{at}] must be 0 or 1 for DDM, got {float(x[at])!r}")
        found: list[int] = []
        start = 0
        while start < x.shape[0]:
            if self._drift:
                self._reset()
            hit = self._advance(x[start:])
            if hit < 0:
                break
            found.append(start + hit)
            self._detections += 1
            start += hit + 1
        return found

    def _advance(self, x: FloatArray) -> int:
        """Feed ``x`` up to its first detection; its offset, or -1 (all of ``x`` taken)."""
        cfg = self._settings
        warm, warn_at, drift_at = cfg.warm_start, cfg.warning_threshold, cfg.drift_threshold
        count, mean = float(self._n), self._mean
        p_min, s_min, ps_min, warning = self._p_min, self._s_min, self._ps_min, self._warning
        hit = -1
        for k, value in enumerate(x.tolist()):
            count += 1.0
            mean += (1.0 / count) * (value - mean)
            if count > warm:
                s = math.sqrt(mean * (1.0 - mean) / count)
                ps = mean + s
                if ps <= ps_min:
                    p_min, s_min, ps_min = mean, s, ps
                if ps > p_min + drift_at * s_min:
                    hit = k
                    warning = False
                    break
                warning = ps > p_min + warn_at * s_min
        self._n = int(count)
        self._mean, self._p_min, self._s_min, self._ps_min = mean, p_min, s_min, ps_min
        self._warning = warning
        self._drift = hit >= 0
        return hit

    def to_state(self) -> DetectorState:
        cfg = self._settings
        return {
            "version": STATE_VERSION,
            "kind": KINDS.index("ddm"),
            "warm_start": cfg.warm_start,
            "warning_threshold": cfg.warning_threshold,
            "drift_threshold": cfg.drift_threshold,
            "detections": self._detections,
            "drift": int(self._drift),
            "warning": int(self._warning),
            "n": self._n,
            "mean": self._mean,
            "p_min": self._p_min,
            "s_min": self._s_min,
            "ps_min": self._ps_min,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Ddm:
        _state_header(state, "ddm")
        out = cls(
            DdmSettings(
                warm_start=_state_int(state, "warm_start"),
                warning_threshold=_state_float(state, "warning_threshold"),
                drift_threshold=_state_float(state, "drift_threshold"),
            )
        )
        out._detections = _state_count(state, "detections")
        out._drift = bool(_state_int(state, "drift"))
        out._warning = bool(_state_int(state, "warning"))
        out._n = _state_count(state, "n")
        out._mean = _state_float(state, "mean")
        out._p_min, out._s_min = _state_float(state, "p_min"), _state_float(state, "s_min")
        out._ps_min = _state_float(state, "ps_min")
        return out


# --- Page-Hinkley ---------------------------------------------------------------------------


class PageHinkley:
    """The Page-Hinkley test; River's ``drift.PageHinkley`` (module docstring).

    O(1) memory and one plain loop over the batch (the running mean and the two cumulative
    sums are recurrences no array operation rounds the same way; see :class:`Ddm` for why the
    rest is in the loop too).
    """

    def __init__(self, settings: PageHinkleySettings | None = None) -> None:
        self._settings = settings if settings is not None else PageHinkleySettings()
        self._detections = 0
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._up = 0.0  # U: the cumulative sum watched for increases
        self._down = 0.0  # L: the one watched for decreases
        self._up_min = math.inf
        self._down_max = -1.0  # River's initial value
        self._drift = False

    @property
    def settings(self) -> PageHinkleySettings:
        return self._settings

    @property
    def estimate(self) -> float:
        return self._mean

    @property
    def detections(self) -> int:
        return self._detections

    @property
    def drift_detected(self) -> bool:
        return self._drift

    @property
    def warning(self) -> bool:
        return False

    @property
    def samples(self) -> int:
        return self._n

    def update(self, values: npt.ArrayLike) -> list[int]:
        x = _values(values)
        found: list[int] = []
        start = 0
        while start < x.shape[0]:
            if self._drift:
                self._reset()
            hit = self._advance(x[start:])
            if hit < 0:
                break
            found.append(start + hit)
            self._detections += 1
            start += hit + 1
        return found

    def _advance(self, x: FloatArray) -> int:
        """Feed ``x`` up to its first detection; its offset, or -1 (all of ``x`` taken)."""
        cfg = self._settings
        alpha, delta, threshold = cfg.alpha, cfg.delta, cfg.threshold
        ups, downs = cfg.mode != "down", cfg.mode != "up"
        start = float(cfg.min_instances)
        count, mean, up, down = float(self._n), self._mean, self._up, self._down
        up_min, down_max = self._up_min, self._down_max
        hit = -1
        for k, value in enumerate(x.tolist()):
            count += 1.0
            mean += (1.0 / count) * (value - mean)
            dev = value - mean
            up = alpha * up + dev - delta
            down = alpha * down + dev + delta
            up_min = min(up_min, up)
            down_max = max(down_max, down)
            if count >= start and (
                (ups and up - up_min > threshold) or (downs and down_max - down > threshold)
            ):
                hit = k
                break
        self._n = int(count)
        self._mean, self._up, self._down = mean, up, down
        self._up_min, self._down_max = up_min, down_max
        self._drift = hit >= 0
        return hit

    def to_state(self) -> DetectorState:
        cfg = self._settings
        return {
            "version": STATE_VERSION,
            "kind": KINDS.index("page_hinkley"),
            "min_instances": cfg.min_instances,
            "delta": cfg.delta,
            "threshold": cfg.threshold,
            "alpha": cfg.alpha,
            "mode": MODES.index(cfg.mode),
            "detections": self._detections,
            "drift": int(self._drift),
            "n": self._n,
            "mean": self._mean,
            "up": self._up,
            "down": self._down,
            "up_min": self._up_min,
            "down_max": self._down_max,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PageHinkley:
        _state_header(state, "page_hinkley")
        mode = _state_int(state, "mode")
        if not 0 <= mode < len(MODES):
            raise ValueError(f"state key 'mode': unknown mode {mode!r}")
        out = cls(
            PageHinkleySettings(
                min_instances=_state_int(state, "min_instances"),
                delta=_state_float(state, "delta"),
                threshold=_state_float(state, "threshold"),
                alpha=_state_float(state, "alpha"),
                mode=MODES[mode],
            )
        )
        out._detections = _state_count(state, "detections")
        out._drift = bool(_state_int(state, "drift"))
        out._n = _state_count(state, "n")
        out._mean = _state_float(state, "mean")
        out._up, out._down = _state_float(state, "up"), _state_float(state, "down")
        out._up_min, out._down_max = _state_float(state, "up_min"), _state_float(state, "down_max")
        return out
