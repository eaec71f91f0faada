"""Read-side views of the store, shared by the Prometheus collectors and the status API.

``model_view`` copies what it needs under the model's lock (window aggregates, counters) and
computes scores outside it. ``refresh_drift`` is the drift worker's step: it snapshots the sample
windows whose content changed, computes KS drift outside the lock and caches the result on the
version, so neither ingest nor a scrape ever waits for a drift computation.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from exporter.reference import Reference
from exporter.stats.drift import ks_columns
from exporter.stats.performance import (
    ClassificationScores,
    RegressionScores,
    classification_scores,
    regression_scores,
)
from exporter.store import DriftResult, FeatureDrift, ModelState, Store, VersionState
from exporter.window import draw_sample

log = logging.getLogger("exporter.analysis")

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class WindowQuality:
    window: str
    predictions: int
    labeled: int
    #: None while the window holds fewer than ``quality.min_samples`` labeled predictions.
    scores: ClassificationScores | RegressionScores | None


@dataclass(frozen=True)
class ReferenceInfo:
    source: str  # "upload", "first_events" or "collecting"
    scope: str  # "model" or "version"
    rows: int
    target_rows: int
    reference: Reference | None


@dataclass(frozen=True)
class VersionView:
    name: str
    windows: list[WindowQuality]
    drift: dict[str, DriftResult]
    reference: ReferenceInfo
    predictions_total: int
    labels_total: int
    pending: int
    expired: dict[str, int]
    outcomes: IntArray
    error_count: int
    abs_error_sum: float
    sq_error_sum: float
    delay_counts: IntArray
    delay_sum: float


@dataclass(frozen=True)
class ModelView:
    name: str
    task: str | None
    task_declared: bool
    positive_class: str | None
    classes: list[str]
    features: list[tuple[str, str | None]]
    versions: list[VersionView]
    labels_received_total: int
    labels_expired: dict[str, int]
    pending_labels: int
    duplicate_predictions_total: int
    duplicate_labels_total: int
    type_mismatches: dict[str, int] = field(default_factory=dict)


def reference_info(state: ModelState, version: VersionState) -> ReferenceInfo:
    target = version.builder.size
    if version.reference is not None and version.reference_uploaded:
        ref = version.reference
        return ReferenceInfo("upload", "version", ref.rows, ref.rows, ref)
    if state.reference is not None:
        ref = state.reference
        return ReferenceInfo("upload", "model", ref.rows, ref.rows, ref)
    if version.reference is not None:
        ref = version.reference
        return ReferenceInfo("first_events", "version", ref.rows, target, ref)
    return ReferenceInfo("collecting", "version", version.builder.rows, target, None)


def model_view(
    state: ModelState, now: float, min_samples: int, *, with_scores: bool = True
) -> ModelView:
    """A consistent picture of one model: counters copied under its lock, scores computed after.

    ``with_scores=False`` skips the window aggregates and scores (for readers of counters only).
    """
    Aggregate = IntArray | tuple[int, float, float]
    copied: list[tuple[VersionView, list[tuple[str, int, Aggregate]]]] = []
    with state.lock:
        state.expire(now)
        task = state.task
        positive = state.positive_index
        for version in state.versions.values():
            windows: list[tuple[str, int, Aggregate]] = []
            for label, quality in version.quality.items() if with_scores else ():
                aggregate: Aggregate = (
                    quality.error_sums(now) if task == "regression" else quality.confusion(now)
                )
                windows.append((label, version.samples[label].events(now), aggregate))
            shell = VersionView(
                name=version.name,
                windows=[],
                drift=dict(version.drift),
                reference=reference_info(state, version),
                predictions_total=version.predictions_total,
                labels_total=version.labels_total,
                pending=version.pending,
                expired=dict(version.expired),
                outcomes=version.outcomes.copy(),
                error_count=version.error_count,
                abs_error_sum=version.abs_error_sum,
                sq_error_sum=version.sq_error_sum,
                delay_counts=version.delay_counts.copy(),
                delay_sum=version.delay_sum,
            )
            copied.append((shell, windows))
        view = ModelView(
            name=state.name,
            task=task,
            task_declared=state.task_declared,
            positive_class=state.positive_label(),
            classes=[state.codec.label(i) for i in range(len(state.codec))],
            features=list(zip(state.features.names, state.features.kinds, strict=True)),
            versions=[],
            labels_received_total=state.labels_received_total,
            labels_expired=dict(state.labels_expired),
            pending_labels=len(state.early) if state.early is not None else 0,
            duplicate_predictions_total=state.duplicate_predictions_total,
            duplicate_labels_total=state.duplicate_labels_total,
            type_mismatches=dict(state.type_mismatches),
        )

    for shell, windows in copied:
        for label, predictions, aggregate in windows:
            scores: ClassificationScores | RegressionScores | None = None
            if isinstance(aggregate, tuple):
                labeled = aggregate[0]
                if labeled >= min_samples:
                    scores = regression_scores(*aggregate)
            else:
                labeled = int(aggregate.sum())
                if labeled >= min_samples:
                    scores = classification_scores(aggregate, positive_class=positive)
            shell.windows.append(WindowQuality(label, predictions, labeled, scores))
        view.versions.append(shell)
    return view


@dataclass(frozen=True)
class _DriftJob:
    state: ModelState
    version: VersionState
    window: str
    key: tuple[int, int]
    reservoirs: list[npt.NDArray[np.float64]]
    seen: IntArray
    reference: Reference | None
    reference_source: str | None
    names: list[str]
    numeric: list[bool]


@dataclass
class DriftRefreshStats:
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0


def refresh_drift(store: Store, *, force: bool = False) -> DriftRefreshStats:
    """Recompute drift for every window whose sample or reference changed since the last run.

    A window's sample changes when events arrive (the version's ``generation``) or when a bucket
    holding events leaves the window (its event count drops), so the key is
    ``(generation, events in the window)``: a quiet window is not recomputed every bucket.
    """
    started = time.perf_counter()
    stats = DriftRefreshStats()
    settings = store.settings
    now = store.clock()
    jobs: list[_DriftJob] = []
    for state in store.models():
        with state.lock:
            names = list(state.features.names)
            numeric = state.features.numeric_mask()
            for version in state.versions.values():
                info = reference_info(state, version)
                for label, window in version.samples.items():
                    key = (version.generation, window.events(now))
                    if not force and version.drift_key.get(label) == key:
                        continue
                    reservoirs, seen = window.snapshot(now)
                    jobs.append(
                        _DriftJob(
                            state,
                            version,
                            label,
                            key,
                            reservoirs,
                            seen,
                            info.reference,
                            info.source if info.reference is not None else None,
                            names,
                            numeric,
                        )
                    )
    for job in jobs:
        try:
            result = _compute_drift(
                job, settings.drift.sample_size, settings.drift.min_samples, now
            )
        except Exception:  # one bad window must not stop the others
            log.exception(
                "drift computation failed for model=%s version=%s window=%s",
                job.state.name,
                job.version.name,
                job.window,
            )
            stats.failed += 1
            continue
        with job.state.lock:
            job.version.drift[job.window] = result
            job.version.drift_key[job.window] = job.key
        stats.computed += 1
    stats.seconds = time.perf_counter() - started
    return stats


def _compute_drift(job: _DriftJob, capacity: int, min_samples: int, now: float) -> DriftResult:
    # A seed from the window's key makes the sample, and so the exported value, reproducible
    # (crc32, not hash(): str hashes change from one process to the next).
    seed = zlib.crc32(repr((job.key, job.window)).encode())
    if not job.reservoirs:
        sample_rows = np.empty((0, len(job.names)))
        events = 0
    else:
        sample = draw_sample(job.reservoirs, job.seen, capacity, seed=seed)
        sample_rows, events = sample.rows, sample.events
    features: dict[str, FeatureDrift] = {}
    ref = job.reference
    if ref is not None:
        cols = [
            j
            for j, name in enumerate(job.names)
            if job.numeric[j] and name in ref.numeric and j < sample_rows.shape[1]
        ]
        if cols:
            window = sample_rows[:, cols]
            counts = np.count_nonzero(~np.isnan(window), axis=0)
            references = [ref.numeric[job.names[j]] for j in cols]
            results = ks_columns(references, window, min_samples)
            for j, n_window, reference, res in zip(cols, counts, references, results, strict=True):
                features[job.names[j]] = FeatureDrift(
                    window_values=int(n_window),
                    reference_values=int(reference.shape[0]),
                    ks=res,
                )
    return DriftResult(
        computed_at=now,
        window_events=events,
        window_sample=int(sample_rows.shape[0]),
        features=features,
        reference_source=job.reference_source,
    )
