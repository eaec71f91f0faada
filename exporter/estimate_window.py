"""Expected confusion matrices over a sliding window: the label-free estimate's sums.

An :class:`EstimateWindow` keeps per bucket the expected confusion matrix (exporter.stats.cbpe)
of the predictions it took: by prediction time for the estimate over every prediction, or by
label time, with the realised matrix of the same outcomes beside it (``labeled=True``), for
realised minus estimated over the same labeled predictions. Binary windows are 2 x 2 in the
order (negative, positive); multiclass ones grow with the model's classes. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exporter.persist.plain import State, pack, unpack
from exporter.stats.cbpe import expected_confusion
from exporter.typedefs import FloatArray, IntArray
from exporter.window import TimeBuckets


@dataclass(frozen=True, slots=True)
class EstimateCounts:
    """A window's expected confusion (true x predicted) and, for labeled outcomes, the
    realised one of the same outcomes."""

    expected: FloatArray
    realised: IntArray | None
    binary: bool  # 2 x 2 in (negative, positive) order

    @property
    def predictions(self) -> int:
        return int(np.rint(self.expected.sum()))


class EstimateWindow:
    def __init__(self, duration: float, buckets: int, *, binary: bool, labeled: bool) -> None:
        self.time = TimeBuckets(duration, buckets)
        self.binary = binary
        self.labeled = labeled
        self.classes = 2 if binary else 0
        self._expected = np.zeros((buckets, self.classes, self.classes))
        self._realised = np.zeros(self._realised_shape(), dtype=np.int64)

    def _realised_shape(self) -> tuple[int, int, int]:
        """The realised counts' shape: kept by labeled windows only."""
        k = self.classes if self.labeled else 0
        return (self.time.count, k, k)

    def _grow(self, classes: int) -> None:
        if classes <= self.classes:
            return
        b = self.time.count
        expected = np.zeros((b, classes, classes))
        expected[:, : self.classes, : self.classes] = self._expected
        old = self.classes
        self._expected, self.classes = expected, classes
        realised = np.zeros(self._realised_shape(), dtype=np.int64)
        if self.labeled:
            realised[:, :old, :old] = self._realised
        self._realised = realised

    def add(
        self,
        times: FloatArray,
        probabilities: FloatArray,
        predicted: IntArray,
        now: float,
        truth: IntArray | None = None,
    ) -> None:
        """Predictions of class ``predicted`` with calibrated ``probabilities`` (binary: the
        columns (negative, positive) and 1 for a positive prediction), at ``times``; with
        ``truth`` (labeled windows) their true classes too."""
        if times.shape[0] == 0:
            return
        width = probabilities.shape[1]
        if not self.binary:
            width = max(width, int(predicted.max()) + 1)
            if truth is not None:
                width = max(width, int(truth.max()) + 1)
        self._grow(width)
        k = self.classes
        for bucket, idx in self.time.split(times, now):
            slot, fresh = self.time.claim(bucket)
            if fresh:
                self._expected[slot] = 0.0
                self._realised[slot] = 0
            self._expected[slot] += expected_confusion(probabilities[idx], predicted[idx], k)
            if truth is not None and self.labeled:
                flat = truth[idx] * k + predicted[idx]
                self._realised[slot] += np.bincount(flat, minlength=k * k).reshape(k, k)

    def counts(self, now: float) -> EstimateCounts:
        live = self.time.live(now)
        expected = self._expected[live].sum(axis=0)
        if expected.ndim != 2:
            expected = np.zeros((self.classes, self.classes))
        realised = self._realised[live].sum(axis=0, dtype=np.int64) if self.labeled else None
        return EstimateCounts(expected, realised, self.binary)

    def to_state(self) -> State:
        return {
            "time": self.time.to_state(),
            "binary": self.binary,
            "labeled": self.labeled,
            "expected": pack(self._expected),
            "realised": pack(self._realised),
        }

    @classmethod
    def from_state(cls, state: State, duration: float, buckets: int) -> EstimateWindow:
        window = cls(
            duration, buckets, binary=bool(state["binary"]), labeled=bool(state["labeled"])
        )
        window.time.load_state(state["time"])
        expected, realised = unpack(state["expected"]), unpack(state["realised"])
        if (
            expected.ndim != 3
            or expected.shape[0] != buckets
            or expected.shape[1] != expected.shape[2]
        ):
            raise ValueError("saved estimate buckets do not fit the configured window")
        window._expected, window.classes = expected.astype(np.float64), expected.shape[1]
        if realised.shape != window._realised_shape():
            raise ValueError("saved realised counts do not fit the saved estimate buckets")
        window._realised = realised.astype(np.int64)
        return window
