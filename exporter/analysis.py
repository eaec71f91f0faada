"""Read-side views of the store, shared by the Prometheus collectors and the status API.

``model_view`` copies what it needs under the model's lock (window aggregates, counters) and
computes scores outside it. ``refresh_drift`` is the drift worker's step: it snapshots the sample
windows whose content changed, computes KS drift outside the lock and caches the result on the
version, so neither ingest nor a scrape ever waits for a drift computation.
"""

from __future__ import annotations

import itertools
import logging
import time
import zlib
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from exporter.config import DriftSettings
from exporter.reference import (
    CategoricalReference,
    Reference,
    TargetReference,
    reference_from_rows,
    target_from_column,
)
from exporter.results import DriftResult, FeatureDrift, TargetDrift
from exporter.stats.drift import categorical_drift, numeric_drift, significant
from exporter.stats.performance import (
    ClassificationScores,
    RegressionScores,
    classification_scores,
    regression_scores,
)
from exporter.store import ModelState, Store, VersionState
from exporter.window import draw_sample

log = logging.getLogger("exporter.analysis")
_SERIALS = itertools.count(1)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


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
    categories_pooled: dict[str, int] = field(default_factory=dict)


def reference_info(state: ModelState, version: VersionState) -> ReferenceInfo:
    """Which reference a version's drift uses: its own upload, the model's (uploaded or from a
    file named in the config), the previous window (rolling), or its first predictions."""
    target = version.builder.size
    if version.reference is not None and version.reference_uploaded:
        ref = version.reference
        return ReferenceInfo(ref.source, "version", ref.rows, ref.rows, ref)
    if state.reference is not None:
        ref = state.reference
        return ReferenceInfo(ref.source, "model", ref.rows, ref.rows, ref)
    if state.rolling:
        return ReferenceInfo("previous_window", "version", 0, 0, None)
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
            categories_pooled=dict(state.categories_pooled),
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
    """What one window's drift computation needs, copied under the model's lock."""

    state: ModelState
    version: VersionState
    window: str
    key: tuple[int, int]
    reservoirs: list[FloatArray]
    seen: IntArray
    label_reservoirs: list[FloatArray]
    label_seen: IntArray
    reference: Reference | None
    reference_source: str | None
    label_reference: TargetReference | None
    rolling: tuple[list[FloatArray], IntArray, list[FloatArray], IntArray] | None
    names: list[str]
    kinds: list[str | None]
    category_labels: list[list[str]]
    class_labels: list[str] | None


@dataclass
class DriftRefreshStats:
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0


def _label_reference(state: ModelState, version: VersionState) -> TargetReference | None:
    ref = state.version_reference(version)
    if ref is not None and ref.labels is not None:
        return ref.labels
    builder = version.label_builder
    if builder.complete:
        d = state.settings.drift
        column = builder.matrix(1)[:, 0]
        return target_from_column(column, state.class_labels(), d.bins, d.max_categories)
    return None


def refresh_drift(
    store: Store, *, force: bool = False, executor: Executor | None = None
) -> DriftRefreshStats:
    """Recompute drift for every window whose sample or reference changed since the last run.

    A window's sample changes when events or labels arrive (the version's ``generation``) or
    when a bucket holding events leaves the window (its event count drops), so the key is
    ``(generation, events in the window)``: a quiet window is not recomputed every bucket.
    """
    started = time.perf_counter()
    stats = DriftRefreshStats()
    now = store.clock()
    jobs: list[_DriftJob] = []
    for state in store.models():
        with state.lock:
            names = list(state.features.names)
            kinds: list[str | None] = list(state.features.kinds)
            category_labels = [list(labels) for labels in state.features.labels]
            class_labels = state.class_labels()
            for version in state.versions.values():
                info = reference_info(state, version)
                label_ref = _label_reference(state, version)
                for label, window in version.samples.items():
                    labels_window = version.label_samples[label]
                    key = (version.generation, window.events(now) + labels_window.events(now))
                    if not force and version.drift_key.get(label) == key:
                        continue
                    reservoirs, seen = window.snapshot(now)
                    label_reservoirs, label_seen = labels_window.snapshot(now)
                    rolling = None
                    if info.source == "previous_window":
                        rolling = (
                            *window.snapshot(now, windows_back=1),
                            *labels_window.snapshot(now, windows_back=1),
                        )
                    jobs.append(
                        _DriftJob(
                            state,
                            version,
                            label,
                            key,
                            reservoirs,
                            seen,
                            label_reservoirs,
                            label_seen,
                            info.reference,
                            info.source if info.reference is not None or rolling else None,
                            label_ref,
                            rolling,
                            names,
                            kinds,
                            category_labels,
                            class_labels,
                        )
                    )
    for job in jobs:
        try:
            result = _compute_drift(job, store.settings.drift, now, executor)
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


def _sample(
    reservoirs: list[FloatArray], seen: IntArray, capacity: int, seed: int, width: int
) -> tuple[FloatArray, int]:
    if not reservoirs:
        return np.empty((0, width)), 0
    drawn = draw_sample(reservoirs, seen, capacity, seed=seed)
    rows = drawn.rows
    if rows.shape[1] < width:  # features added after these rows: missing
        grown = np.full((rows.shape[0], width), np.nan)
        grown[:, : rows.shape[1]] = rows
        rows = grown
    return rows, drawn.events


def _compute_drift(
    job: _DriftJob, settings: DriftSettings, now: float, executor: Executor | None
) -> DriftResult:
    # A seed from the window's key makes the sample, and so the exported value, reproducible
    # (crc32, not hash(): str hashes change from one process to the next).
    seed = zlib.crc32(repr((job.key, job.window)).encode())
    width = len(job.names) + 1
    rows, events = _sample(job.reservoirs, job.seen, settings.sample_size, seed, width)
    label_rows, _ = _sample(job.label_reservoirs, job.label_seen, settings.sample_size, seed, 1)
    reference, label_reference = job.reference, job.label_reference
    if job.rolling is not None:
        prev_rows, _ = _sample(job.rolling[0], job.rolling[1], settings.sample_size, seed, width)
        prev_labels, _ = _sample(job.rolling[2], job.rolling[3], settings.sample_size, seed, 1)
        reference = (
            reference_from_rows(
                prev_rows,
                names=job.names,
                kinds=job.kinds,
                category_labels=job.category_labels,
                target_labels=job.class_labels,
                source="previous_window",
                created=now,
                bins=settings.bins,
                max_categories=settings.max_categories,
            )
            if prev_rows.shape[0]
            else None
        )
        label_reference = (
            target_from_column(
                prev_labels[:, 0], job.class_labels, settings.bins, settings.max_categories
            )
            if prev_labels.shape[0]
            else None
        )
    need = max(settings.min_samples, 2)
    features: dict[str, FeatureDrift] = {}
    n_rows = rows.shape[0]
    missing = np.count_nonzero(np.isnan(rows[:, 1:]), axis=0) / n_rows if n_rows else np.zeros(0)
    numeric_cols = [j for j, k in enumerate(job.kinds) if k == "numeric"]
    numeric_refs = [
        reference.numeric.get(job.names[j]) if reference is not None else None for j in numeric_cols
    ]
    numeric = (
        numeric_drift(
            numeric_refs,
            rows[:, [j + 1 for j in numeric_cols]],
            min_samples=need,
            executor=executor,
            chunks=settings.threads,
        )
        if numeric_cols and n_rows
        else [None] * len(numeric_cols)
    )
    for j, ref, result in zip(numeric_cols, numeric_refs, numeric, strict=True):
        if n_rows == 0:
            continue
        values = int(n_rows - round(missing[j] * n_rows))
        features[job.names[j]] = FeatureDrift(
            kind="numeric",
            window_values=values,
            reference_values=ref.size if ref is not None else 0,
            missing=float(missing[j]),
            numeric=result,
        )
    for j, kind in enumerate(job.kinds):
        if kind != "categorical" or n_rows == 0:
            continue
        name = job.names[j]
        cat_ref = reference.categorical.get(name) if reference is not None else None
        codes = rows[:, j + 1]
        codes = codes[~np.isnan(codes)]
        result_c = None
        if cat_ref is not None and codes.shape[0] >= need and cat_ref.size >= need:
            counts, other = _bin_codes(codes, job.category_labels[j], cat_ref)
            result_c = categorical_drift(cat_ref.counts, cat_ref.pooled, counts, other)
        features[name] = FeatureDrift(
            kind="categorical",
            window_values=int(codes.shape[0]),
            reference_values=cat_ref.size if cat_ref is not None else 0,
            missing=float(missing[j]),
            categorical=result_c,
        )
    features = _verdicts(features, settings)
    predictions = labels = None
    if reference is not None and reference.predictions is not None and n_rows:
        predictions = _target_drift(rows[:, 0], reference.predictions, job.class_labels, settings)
    if label_reference is not None and label_rows.shape[0]:
        labels = _target_drift(label_rows[:, 0], label_reference, job.class_labels, settings)
    return DriftResult(
        computed_at=now,
        serial=next(_SERIALS),
        window_events=events,
        window_sample=n_rows,
        reference_source=job.reference_source,
        correction=settings.correction,
        alpha=settings.alpha,
        features=features,
        predictions=predictions,
        labels=labels,
        label_sample=int(label_rows.shape[0]),
    )


def _bin_codes(
    codes: FloatArray, labels: list[str], reference: CategoricalReference
) -> tuple[IntArray, int]:
    """Window category codes as counts over the reference's categories, plus the rest."""
    index = reference.index()
    mapping = np.array([index.get(label, -1) for label in labels], dtype=np.int64)
    ints = codes.astype(np.int64)
    known = ints >= 0
    bins = np.full(ints.shape[0], -1, dtype=np.int64)
    if mapping.shape[0]:
        bins[known] = mapping[ints[known]]
    counts = np.bincount(bins[bins >= 0], minlength=len(reference.categories))
    return counts.astype(np.int64), int(np.count_nonzero(bins < 0))


def _verdicts(
    features: dict[str, FeatureDrift], settings: DriftSettings
) -> dict[str, FeatureDrift]:
    """Which features drifted: significant after the correction, and material."""
    tested = [name for name, f in features.items() if f.pvalue is not None]
    pvalues = np.array([features[name].pvalue for name in tested], dtype=np.float64)
    rejected = significant(pvalues, settings.alpha, settings.correction)
    out = dict(features)
    for name, reject in zip(tested, rejected.tolist(), strict=True):
        f = features[name]
        if f.numeric is not None:
            material = f.numeric.ks_statistic >= settings.min_ks_statistic
        else:
            material = f.categorical is not None and f.categorical.psi >= settings.min_psi
        out[name] = replace(f, drifted=bool(reject and material))
    return out


def _target_drift(
    column: FloatArray,
    reference: TargetReference,
    class_labels: list[str] | None,
    settings: DriftSettings,
) -> TargetDrift | None:
    values = column[~np.isnan(column)]
    need = max(settings.min_samples, 2)
    if values.shape[0] < need:
        return None
    if class_labels is None:  # regression: compare the values
        if reference.numeric is None or reference.numeric.size < need:
            return None
        [num] = numeric_drift([reference.numeric], values.reshape(-1, 1), min_samples=need)
        if num is None:
            return None
        drifted = num.ks_pvalue <= settings.alpha and num.ks_statistic >= settings.min_ks_statistic
        return TargetDrift(num, None, drifted)
    cats = reference.categories
    if cats.size < need:
        return None
    counts, other = _bin_codes(values, class_labels, cats)
    cat = categorical_drift(cats.counts, cats.pooled, counts, other)
    drifted = cat.chi2_pvalue <= settings.alpha and cat.psi >= settings.min_psi
    return TargetDrift(None, cat, drifted)
