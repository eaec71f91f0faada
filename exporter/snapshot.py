"""Immutable pictures of a model, taken under its lock and read without it.

Every reader takes one: the Prometheus collectors and the status API a :class:`ModelSnapshot`
(counters, window aggregates, references), the drift worker a :class:`DriftSnapshot` (copies of
the sample reservoirs of the windows whose content changed). Each holds copies, never live
state, so whatever a reader computes from it is consistent with one instant and costs the
writers nothing. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.counters import ModelCounters, VersionCounters
from exporter.reference import Reference, RowLayout, TargetReference
from exporter.typedefs import FeatureKind, IntArray, Task
from exporter.window import Reservoirs


@dataclass(frozen=True, slots=True)
class ErrorSums:
    """Regression errors over a window: count, sum of |error|, sum of error^2."""

    count: int
    abs_sum: float
    sq_sum: float


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One window of one version: exact event counts and the quality aggregate."""

    window: str
    predictions: int  # events in the window, by prediction time
    labeled: int  # joined labels in the window, by label time
    confusion: IntArray | None  # classification: true x predicted class counts
    errors: ErrorSums | None  # regression


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """Which reference a version's drift uses."""

    source: str  # upload, file, first_events, previous_window, or collecting
    scope: str  # "model" (every version) or "version"
    rows: int
    target_rows: int  # rows a first-events reference is being collected to
    reference: Reference | None


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    name: str
    counters: VersionCounters
    pending: int  # predictions waiting for their label
    windows: tuple[WindowCounts, ...]
    reference: ReferenceInfo


@dataclass(frozen=True, slots=True)
class ComparisonInfo:
    """A declared comparison: each challenger version against the champion version.

    ``mode`` is ``split`` (independent traffic) or ``shadow`` (every challenger predicts the same
    requests as the champion); ``started`` (epoch seconds) is when it was declared, from which
    its sequential statistics run."""

    champion: str
    challengers: tuple[str, ...]
    mode: Literal["split", "shadow"]
    started: float


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """Everything the collectors and the status API show of one model, at ``taken_at``."""

    name: str
    taken_at: float
    #: Equal keys mean equal content: the model's revision (bumped by every change but the
    #: passage of time) and, per version, the live buckets holding data (which time changes).
    key: tuple[object, ...]
    task: Task | None
    task_declared: bool
    positive_index: int | None
    positive_label: str | None
    classes: tuple[str, ...]
    features: tuple[tuple[str, FeatureKind | None], ...]
    counters: ModelCounters
    pending_labels: int
    versions: tuple[VersionSnapshot, ...]
    comparison: ComparisonInfo | None = None

    @property
    def revision(self) -> int:
        revision = self.key[0]
        assert isinstance(revision, int)
        return revision


@dataclass(frozen=True, slots=True)
class DriftInput:
    """What one window's drift computation needs."""

    version: str
    window: str
    key: tuple[int, ...]  # equal keys: same sample and reference, so the same result
    rows: Reservoirs  # column 0 the prediction, then the features (see RowLayout)
    labels: Reservoirs  # joined labels (one column) by label time
    previous: tuple[Reservoirs, Reservoirs] | None  # rolling reference: the window before
    reference: Reference | None
    reference_source: str | None
    label_reference: TargetReference | None


@dataclass(frozen=True, slots=True)
class DriftSnapshot:
    model: str
    layout: RowLayout
    versions: tuple[str, ...]  # every version the model has now
    windows: tuple[DriftInput, ...]  # the windows whose key is not among those already known
