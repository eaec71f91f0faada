"""A version's concept-drift watch: its detector on the error stream, and what it exports.

The join hands each version its outcomes in the order they were joined (one label request's
worth at a time): ``1``/``0`` for a classifier's wrong/right answer, the absolute error of a
regression. :class:`ConceptWatch` feeds them to the detector of
:mod:`exporter.stats.concept_drift` at once, on the join path (ADWIN costs a few microseconds
per outcome: a detection never waits for the drift refresh), and keeps the count of detections
and the label time of the outcome at which the last one came. Readers take a
:class:`ConceptDriftInfo`. It knows nothing of ids, windows or HTTP.

>>> import numpy as np
>>> from exporter.stats.concept_drift import AdwinSettings
>>> watch = ConceptWatch(AdwinSettings())
>>> rng = np.random.default_rng(1)
>>> errors = np.concatenate([rng.random(2000) < 0.1, rng.random(1000) < 0.4]).astype(float)
>>> watch.add(errors, np.arange(3000.0))
>>> info = watch.info()
>>> info.detections, info.last_detection  # the outcome at label time 2079 (see the detector)
(1, 2079.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exporter.persist.plain import State, StateError, pack, unpack
from exporter.stats.concept_drift import (
    ConceptDriftSettings,
    Detector,
    DetectorKind,
    detector_from_state,
    make_detector,
)
from exporter.typedefs import FloatArray


@dataclass(frozen=True, slots=True)
class ConceptDriftInfo:
    """What a version's detector says, as of one snapshot."""

    detector: DetectorKind
    detections: int  # since the counters started (they restart after an unclean stop)
    last_detection: float | None  # label time of the outcome that made the last detection
    estimate: float  # mean error since the detector's last reset
    outcomes: int  # outcomes since the detector's last reset
    warning: bool  # DDM's warning zone (always False for the others)


class ConceptWatch:
    """One detector on one version's error stream, and its detection count."""

    def __init__(self, settings: ConceptDriftSettings) -> None:
        self.settings = settings
        self.detector: Detector = make_detector(settings)
        self.detections = 0
        self.last_detection: float | None = None

    def add(self, errors: FloatArray, label_times: FloatArray) -> None:
        """Outcomes in the order they were joined, with their label times."""
        if errors.shape[0] == 0:
            return
        hits = self.detector.update(errors)
        if hits:
            self.detections += len(hits)
            self.last_detection = float(label_times[hits[-1]])

    def info(self) -> ConceptDriftInfo:
        d = self.detector
        return ConceptDriftInfo(
            detector=self.settings.kind,
            detections=self.detections,
            last_detection=self.last_detection,
            estimate=d.estimate,
            outcomes=d.samples,
            warning=d.warning,
        )

    def restart_counts(self) -> None:
        """The detection counter starts again from zero (restored after an unclean stop)."""
        self.detections = 0

    def to_state(self) -> State:
        """The detector's state (its arrays packed as bytes), the count and the last time."""
        detector = {
            key: pack(value) if isinstance(value, np.ndarray) else value
            for key, value in self.detector.to_state().items()
        }
        return {
            "detector": detector,
            "detections": self.detections,
            "last_detection": self.last_detection,
        }

    @classmethod
    def from_state(cls, state: State, settings: ConceptDriftSettings) -> ConceptWatch | None:
        """The watch as saved, if it ran with ``settings``. Saved with other parameters of
        the same detector: a fresh detector (a detector's state means nothing under others),
        the count and the last time carried on (their series keep their labels). Saved with
        another detector: None (the version starts a fresh watch, with series of its own)."""
        saved = state["detector"]
        if not isinstance(saved, dict):
            raise StateError("a concept-drift detector's state must be a mapping")
        detector = detector_from_state(
            {
                key: unpack(value) if isinstance(value, dict) else value
                for key, value in saved.items()
            }
        )
        if detector.settings.kind != settings.kind:
            return None
        watch = cls(settings)
        if detector.settings == settings:
            watch.detector = detector
        watch.detections = int(state["detections"])
        last = state["last_detection"]
        watch.last_detection = None if last is None else float(last)
        return watch
