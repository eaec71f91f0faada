"""In-memory state of every monitored model: windows, join buffers, references and counters.

One :class:`ModelState` per model (its task, classes, features and join buffers, shared by its
versions) holds one :class:`VersionState` per model version (its windows, reference, counters and
cached drift results). Each model has one lock. Ingest validates a whole batch first
(``_prepare_*``, which raises :class:`~exporter.errors.RejectedInput` and changes nothing), then
commits it (``_commit_*``). Readers (the Prometheus collectors, the status API, the drift worker)
copy what they need under the lock and compute outside it, so a scrape never holds up ingest.

No statistics are computed on the ingest path: it appends and returns.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from exporter.config import ModelSpec, Settings
from exporter.errors import Reason, RejectedInput
from exporter.join import PendingBuffer
from exporter.reference import Reference, ReferenceBuilder, reference_from_rows
from exporter.results import DriftResult
from exporter.schema import (
    ClassCodec,
    ClassKind,
    ClassValue,
    FeatureBatch,
    FeatureKind,
    FeatureSchema,
    Task,
    WireValue,
    class_kind_of,
    encode_targets,
    feature_matrix,
    infer_task,
    timestamps,
)
from exporter.window import QualityWindow, SampleWindow

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Upper bounds (seconds) of the label delay histogram: 1 s to 7 days.
LABEL_DELAY_BUCKETS: tuple[float, ...] = (
    1,
    5,
    15,
    30,
    60,
    300,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    43200,
    86400,
    172800,
    604800,
)


class PredictionEventLike(Protocol):
    id: str
    features: dict[str, float | str | bool | None]
    prediction: int | float | str | bool
    timestamp: float | datetime | None
    label: int | float | str | bool | None


class LabelLike(Protocol):
    id: str
    label: int | float | str | bool
    timestamp: float | datetime | None


#: A prediction waiting for its label: (version uid, class index or predicted value, prediction
#: time). Plain tuples of numbers, deliberately: they are the cheapest to create, and CPython's
#: garbage collector stops tracking tuples of atomic values, so a full join buffer (100k+
#: entries) adds nothing to the cost of a GC pass. Holding the VersionState itself would keep
#: every entry tracked: one full collection then took ~70 ms, stalling ingest and scrapes.
Pending = tuple[int, float, float]
#: A label waiting for its prediction: (class index or true value, label time).
EarlyLabel = tuple[float, float]


@dataclass
class VersionState:
    """Windows, reference and counters of one model version."""

    uid: int  # unique within the model; what the join buffer refers to
    name: str
    quality: dict[str, QualityWindow]
    samples: dict[str, SampleWindow]
    builder: ReferenceBuilder  # first N prediction rows (column 0: the prediction)
    label_samples: dict[str, SampleWindow]  # joined labels by label time (class index or value)
    label_builder: ReferenceBuilder  # first N joined labels
    created: float
    last_activity: float
    reference: Reference | None = None  # uploaded for this version, or built from first events
    reference_uploaded: bool = False
    predictions_total: int = 0
    labels_total: int = 0
    pending: int = 0
    expired: dict[str, int] = field(default_factory=lambda: {"ttl": 0, "capacity": 0})
    outcomes: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    error_count: int = 0
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0
    delay_counts: IntArray = field(
        default_factory=lambda: np.zeros(len(LABEL_DELAY_BUCKETS) + 1, dtype=np.int64)
    )
    delay_sum: float = 0.0
    generation: int = 0  # bumped by every change to the sample windows or the reference
    drift: dict[str, DriftResult] = field(default_factory=dict)
    drift_key: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    joined: int
    pending: int

    def as_dict(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "joined": self.joined,
            "pending": self.pending,
        }


@dataclass
class _PreparedPredictions:
    version: str
    new_version: bool
    evict_version: str | None
    task: Task
    class_kind: ClassKind | None
    new_classes: dict[ClassValue, int]
    features: FeatureBatch
    ids: list[str]
    times: FloatArray
    targets: FloatArray | IntArray
    labels: FloatArray | IntArray | None  # inline labels, aligned with ids where has_label
    has_label: npt.NDArray[np.bool_] | None


@dataclass
class _PreparedLabels:
    task: Task
    class_kind: ClassKind | None
    new_classes: dict[ClassValue, int]
    ids: list[str]
    times: FloatArray
    targets: FloatArray | IntArray


class ModelState:
    """Everything known about one model; guarded by :attr:`lock`."""

    def __init__(self, name: str, spec: ModelSpec | None, settings: Settings, now: float) -> None:
        self.name = name
        self.spec = spec
        self.settings = settings
        self.lock = threading.Lock()
        self.task: Task | None = spec.task if spec else None
        self.task_declared = spec is not None
        positive = spec.positive_class if spec else None
        self.codec = ClassCodec(class_kind_of(positive) if positive is not None else None)
        self.positive_value: ClassValue | None = positive
        self.features = FeatureSchema()
        self.versions: dict[str, VersionState] = {}
        self._by_uid: dict[int, VersionState] = {}
        self._next_uid = 0
        join = settings.join
        self.pending: PendingBuffer[Pending] = PendingBuffer(
            join.prediction_ttl, join.max_pending_predictions
        )
        self.joined: PendingBuffer[None] = PendingBuffer(
            join.prediction_ttl, join.max_pending_predictions
        )
        self.early: PendingBuffer[EarlyLabel] | None = (
            PendingBuffer(join.label_ttl, join.max_pending_labels) if join.label_ttl > 0 else None
        )
        self.reference: Reference | None = None  # uploaded for every version of the model
        self.labels_received_total = 0
        self.labels_expired: dict[str, int] = {"ttl": 0, "capacity": 0}
        self.duplicate_predictions_total = 0
        self.duplicate_labels_total = 0
        self.type_mismatches: dict[str, int] = {}
        self.categories_pooled: dict[str, int] = {}
        self.features.declared_categorical = frozenset(spec.categorical) if spec else frozenset()
        self.rolling = (
            spec.reference
            if spec is not None and spec.reference is not None
            else settings.drift.reference
        ) == "previous_window"
        self.created = now

    # -- helpers -----------------------------------------------------------------------------

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class of a binary model (None before it has been seen)."""
        if self.task != "binary":
            return None
        value = self.positive_value
        if value is None:
            value = True if self.codec.kind == "bool" else 1
        return self.codec.index.get(value)

    def positive_label(self) -> str | None:
        if self.task != "binary":
            return None
        value = self.positive_value
        if value is None:
            value = True if self.codec.kind == "bool" else 1
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def version_reference(self, version: VersionState) -> Reference | None:
        """The reference drift uses for a version: its own upload, the model's, or first events."""
        return version.reference or self.reference

    def expire(self, now: float) -> None:
        """Drop join entries past their TTL and count them."""
        for uid, _, _ in self.pending.expire(now):
            version = self._by_uid.get(uid)
            if version is not None:
                version.pending -= 1
                version.expired["ttl"] += 1
        self.joined.expire(now)
        if self.early is not None:
            self.labels_expired["ttl"] += len(self.early.expire(now))

    def _new_version(self, name: str, now: float) -> VersionState:
        s = self.settings
        labels = s.window_labels
        regression = self.task == "regression"
        self._next_uid += 1
        version = VersionState(
            uid=self._next_uid,
            name=name,
            quality={
                lbl: QualityWindow(w, s.window_buckets, regression=regression)
                for lbl, w in zip(labels, s.windows, strict=True)
            },
            samples={
                lbl: SampleWindow(
                    w,
                    s.window_buckets,
                    s.drift.sample_size,
                    seed=i,
                    history=2 if self.rolling else 1,
                )
                for i, (lbl, w) in enumerate(zip(labels, s.windows, strict=True))
            },
            builder=ReferenceBuilder(s.drift.reference_size),
            label_samples={
                lbl: SampleWindow(
                    w,
                    s.window_buckets,
                    s.drift.sample_size,
                    seed=100 + i,
                    history=2 if self.rolling else 1,
                )
                for i, (lbl, w) in enumerate(zip(labels, s.windows, strict=True))
            },
            label_builder=ReferenceBuilder(s.drift.reference_size),
            created=now,
            last_activity=now,
        )
        self.versions[name] = version
        self._by_uid[version.uid] = version
        return version

    def _retire_version(self, name: str) -> None:
        """Forget a version; its predictions still waiting in the join buffer are then ignored."""
        version = self.versions.pop(name)
        del self._by_uid[version.uid]

    def _version_slot(self, version: str, now: float) -> tuple[bool, str | None]:
        """Whether ``version`` is new, and which idle version it would evict to fit."""
        if version in self.versions:
            return False, None
        limit = self.settings.limits.max_versions_per_model
        if len(self.versions) < limit:
            return True, None
        idle_after = max(self.settings.windows)
        oldest = min(self.versions.values(), key=lambda v: v.last_activity)
        if oldest.last_activity <= now - idle_after and oldest.pending == 0:
            return True, oldest.name
        raise RejectedInput(
            Reason.TOO_MANY_VERSIONS,
            f"model {self.name!r} already has {len(self.versions)} active versions "
            f"({', '.join(sorted(self.versions))}); limits.max_versions_per_model is {limit}. "
            "A version idle for longer than the longest window with no pending labels is "
            "replaced automatically",
        )

    def _check_classes(self, task: Task, new_classes: dict[ClassValue, int], n: int) -> Task:
        """Refuse too many classes; an inferred binary model with a third class turns multiclass."""
        if task == "regression":
            return task
        total = len(self.codec) + len(new_classes)
        limit = self.settings.limits.max_classes
        if total > limit:
            raise RejectedInput(
                Reason.TOO_MANY_CLASSES,
                f"model {self.name!r} would have {total} classes (new: "
                f"{', '.join(repr(c) for c in list(new_classes)[:5])}); "
                f"limits.max_classes is {limit}",
                events=n,
            )
        if task == "binary" and total > 2:
            if self.task_declared:
                raise RejectedInput(
                    Reason.TOO_MANY_CLASSES,
                    f"model {self.name!r} is declared binary, but these values would make "
                    f"{total} classes (new: {', '.join(repr(c) for c in new_classes)})",
                    events=n,
                )
            return "multiclass"
        return task

    def _grow_outcomes(self, version: VersionState) -> None:
        k = len(self.codec)
        if version.outcomes.shape[0] < k:
            grown = np.zeros((k, k), dtype=np.int64)
            old = version.outcomes.shape[0]
            grown[:old, :old] = version.outcomes
            version.outcomes = grown

    def _commit_schema(
        self,
        task: Task,
        class_kind: ClassKind | None,
        new_classes: dict[ClassValue, int],
    ) -> None:
        if self.task is None:
            self.task = task
            for v in self.versions.values():  # created by a reference upload before any event
                for w in v.quality.values():
                    w.regression = task == "regression"
        elif self.task != task:  # inferred binary promoted to multiclass
            self.task = task
        if class_kind is not None and self.codec.kind is None:
            self.codec.kind = class_kind
        for value in sorted(new_classes, key=new_classes.__getitem__):
            self.codec.add(value)

    # -- predictions -------------------------------------------------------------------------

    def prepare_predictions(
        self, version: str, events: Sequence[PredictionEventLike], now: float
    ) -> _PreparedPredictions:
        n = len(events)
        limits = self.settings.limits
        if n == 0:
            raise RejectedInput(Reason.INVALID_FIELD, "events: the batch holds no events")
        ids = [e.id for e in events]
        if len(set(ids)) != n:
            seen: set[str] = set()
            for i, ident in enumerate(ids):
                if ident in seen:
                    raise RejectedInput(
                        Reason.DUPLICATE_ID,
                        f"events[{i}].id: {ident!r} appears more than once in this batch",
                        events=n,
                    )
                seen.add(ident)
        new_version, evict = self._version_slot(version, now)
        times = timestamps(
            [e.timestamp for e in events], now, limits.max_clock_skew, "events[{}].timestamp"
        )
        predictions: list[WireValue] = [e.prediction for e in events]
        inline: list[WireValue] = [e.label for e in events]
        has_label_list = [v is not None for v in inline]
        any_label = any(has_label_list)
        task = self.task
        if task is None:
            task, _ = infer_task(predictions + [v for v in inline if v is not None])
        class_kind = self.codec.kind
        if task != "regression" and class_kind is None:
            class_kind = class_kind_of(predictions[0])
        new_classes: dict[ClassValue, int] = {}
        targets = encode_targets(
            predictions,
            task=task,
            codec=self.codec,
            kind=class_kind,
            new_classes=new_classes,
            where="events[{}].prediction",
            model=self.name,
        )
        labels = has_label = None
        if any_label:
            has_label = np.array(has_label_list)
            label_values = [v for v in inline if v is not None]
            positions = np.flatnonzero(has_label)
            try:
                labels = encode_targets(
                    label_values,
                    task=task,
                    codec=self.codec,
                    kind=class_kind,
                    new_classes=new_classes,
                    where="events[{}].label",
                    model=self.name,
                )
            except RejectedInput as exc:
                # Report the event's own index, not the index among labelled events.
                raise _reindex(exc, positions, "events[{}].label") from None
        task = self._check_classes(task, new_classes, n)
        features = feature_matrix(
            [e.features for e in events],
            self.features,
            limits.max_features,
            self.name,
            self.settings.drift.max_categories,
        )
        return _PreparedPredictions(
            version=version,
            new_version=new_version,
            evict_version=evict,
            task=task,
            class_kind=class_kind,
            new_classes=new_classes,
            features=features,
            ids=ids,
            times=times,
            targets=targets,
            labels=labels,
            has_label=has_label,
        )

    def commit_predictions(self, p: _PreparedPredictions, now: float) -> IngestResult:
        self._commit_schema(p.task, p.class_kind, p.new_classes)
        batch = p.features
        self.features.commit(batch)
        for col, count in batch.mismatches.items():
            fname = self.features.names[col]
            self.type_mismatches[fname] = self.type_mismatches.get(fname, 0) + count
        for col, count in batch.pooled.items():
            fname = self.features.names[col]
            self.categories_pooled[fname] = self.categories_pooled.get(fname, 0) + count
        if p.evict_version is not None:
            self._retire_version(p.evict_version)
        version = self.versions.get(p.version)
        if version is None:
            version = self._new_version(p.version, now)

        # Ids seen before (a retried batch, or a prediction sent twice) are not counted again.
        pending, joined_ids = self.pending, self.joined
        seen_before = pending.known(p.ids) | joined_ids.known(p.ids)
        duplicates = len(seen_before)
        ids, times, targets = p.ids, p.times, p.targets
        # Column 0 holds the prediction (class index or value), then the features.
        rows = np.column_stack([targets.astype(np.float64), batch.matrix])
        labels, has_label = p.labels, p.has_label
        if duplicates:
            self.duplicate_predictions_total += duplicates
            keep = [i not in seen_before for i in ids]
            mask = np.array(keep)
            ids = [i for i, k in zip(ids, keep, strict=True) if k]
            times, targets, rows = times[mask], targets[mask], rows[mask]
            if has_label is not None and labels is not None:
                labels = labels[mask[has_label]]
                has_label = has_label[mask]
        n = len(ids)
        version.last_activity = now
        if n == 0:
            return IngestResult(accepted=0, duplicates=duplicates, joined=0, pending=0)

        # Join: inline labels first, then labels that arrived before their prediction; the
        # rest waits. Without either (the common case) the whole batch waits, in bulk.
        targets_list = targets.tolist()
        times_list = times.tolist()
        early = self.early if self.early is not None and len(self.early) else None
        join_index: list[int] = []
        join_label: list[float] = []
        join_time: list[float] = []
        wait: list[int] | range
        if has_label is None and early is None:
            wait = range(n)
        else:
            wait = []
            label_iter = iter(labels.tolist() if labels is not None else ())
            flags = has_label.tolist() if has_label is not None else [False] * n
            for i, (ident, flagged) in enumerate(zip(ids, flags, strict=True)):
                if flagged:
                    join_index.append(i)
                    join_label.append(next(label_iter))
                    join_time.append(times_list[i])
                    continue
                early_label = early.pop(ident) if early is not None else None
                if early_label is not None:
                    join_index.append(i)
                    join_label.append(early_label[0])
                    join_time.append(early_label[1])
                    continue
                wait.append(i)
        if len(wait) == n:
            wait_ids = ids
            uid = version.uid
            payloads = [(uid, t, ts) for t, ts in zip(targets_list, times_list, strict=True)]
        else:
            wait_ids = [ids[i] for i in wait]
            payloads = [(version.uid, targets_list[i], times_list[i]) for i in wait]
        for evicted_uid, _, _ in pending.add_many(wait_ids, now, payloads):
            evicted_version = self._by_uid.get(evicted_uid)
            if evicted_version is not None:
                evicted_version.pending -= 1
                evicted_version.expired["capacity"] += 1
        version.pending += len(wait_ids)
        if join_index:
            joined_ids.add_many([ids[i] for i in join_index], now, [None] * len(join_index))
            idx = np.array(join_index)
            self._record_outcomes(
                version,
                label_times=np.array(join_time),
                prediction_times=times[idx],
                actual=np.array(join_label, dtype=np.float64),
                predicted=targets[idx].astype(np.float64),
                now=now,
            )

        for window in version.samples.values():
            window.add(times, rows, now)
        if version.reference is None and self.reference is None and not self.rolling:
            version.builder.add(rows)
            if version.builder.complete:
                version.reference = self.reference_from_builder(version, now)
        version.predictions_total += n
        version.generation += 1
        return IngestResult(
            accepted=n, duplicates=duplicates, joined=len(join_index), pending=len(wait_ids)
        )

    # -- labels ------------------------------------------------------------------------------

    def prepare_labels(self, labels: Sequence[LabelLike], now: float) -> _PreparedLabels:
        n = len(labels)
        if n == 0:
            raise RejectedInput(Reason.INVALID_FIELD, "labels: the batch holds no labels")
        ids = [lbl.id for lbl in labels]
        if len(set(ids)) != n:
            seen: set[str] = set()
            for i, ident in enumerate(ids):
                if ident in seen:
                    raise RejectedInput(
                        Reason.DUPLICATE_ID,
                        f"labels[{i}].id: {ident!r} appears more than once in this batch",
                        events=n,
                    )
                seen.add(ident)
        if self.task is None:  # registered by a reference upload, no prediction yet
            raise RejectedInput(
                Reason.UNKNOWN_MODEL,
                f"model {self.name!r} has no predictions yet, so its labels cannot be joined",
                events=n,
            )
        if self.early is None:
            for i, ident in enumerate(ids):
                if ident not in self.pending and ident not in self.joined:
                    raise RejectedInput(
                        Reason.UNKNOWN_ID,
                        f"labels[{i}].id: no prediction with id {ident!r} is waiting for a label "
                        f"in model {self.name!r} (join.label_ttl is 0, so labels cannot wait "
                        "for their prediction)",
                        events=n,
                    )
        times = timestamps(
            [lbl.timestamp for lbl in labels],
            now,
            self.settings.limits.max_clock_skew,
            "labels[{}].timestamp",
        )
        new_classes: dict[ClassValue, int] = {}
        class_kind = self.codec.kind
        targets = encode_targets(
            [lbl.label for lbl in labels],
            task=self.task,
            codec=self.codec,
            kind=class_kind,
            new_classes=new_classes,
            where="labels[{}].label",
            model=self.name,
        )
        task = self._check_classes(self.task, new_classes, n)
        return _PreparedLabels(
            task=task,
            class_kind=class_kind,
            new_classes=new_classes,
            ids=ids,
            times=times,
            targets=targets,
        )

    def commit_labels(self, p: _PreparedLabels, now: float) -> IngestResult:
        self._commit_schema(p.task, p.class_kind, p.new_classes)
        self.labels_received_total += len(p.ids)
        by_version: dict[str, tuple[VersionState, list[int], list[float], list[float]]] = {}
        duplicates = waiting = joined = 0
        targets = p.targets.tolist()
        times = p.times.tolist()
        early = self.early
        for i, ident in enumerate(p.ids):
            entry = self.pending.pop(ident)
            if entry is not None:
                uid, target, prediction_time = entry
                found = self._by_uid.get(uid)
                if found is None:
                    continue  # its version was retired while it waited
                version = found
                version.pending -= 1
                group = by_version.setdefault(version.name, (version, [], [], []))
                group[1].append(i)
                group[2].append(target)
                group[3].append(prediction_time)
                self.joined.add(ident, now, None)
                joined += 1
            elif ident in self.joined or (early is not None and ident in early):
                duplicates += 1
            elif early is not None:
                self.labels_expired["capacity"] += len(
                    early.add(ident, now, (targets[i], times[i]))
                )
                waiting += 1
        self.duplicate_labels_total += duplicates
        for version, rows, predicted, pred_times in by_version.values():
            idx = np.array(rows)
            self._record_outcomes(
                version,
                label_times=p.times[idx],
                prediction_times=np.array(pred_times),
                actual=p.targets[idx].astype(np.float64),
                predicted=np.array(predicted),
                now=now,
            )
            version.last_activity = now
        return IngestResult(
            accepted=len(p.ids), duplicates=duplicates, joined=joined, pending=waiting
        )

    def class_labels(self) -> list[str] | None:
        """Labels of the class indices stored for a classifier; None for regression."""
        if self.task == "regression":
            return None
        return [self.codec.label(i) for i in range(len(self.codec))]

    def reference_from_builder(self, version: VersionState, now: float) -> Reference:
        d = self.settings.drift
        return reference_from_rows(
            version.builder.matrix(len(self.features) + 1),
            names=self.features.names,
            kinds=self.features.kinds,
            category_labels=self.features.labels,
            target_labels=self.class_labels(),
            source="first_events",
            created=now,
            bins=d.bins,
            max_categories=d.max_categories,
        )

    def _record_outcomes(
        self,
        version: VersionState,
        *,
        label_times: FloatArray,
        prediction_times: FloatArray,
        actual: FloatArray,
        predicted: FloatArray,
        now: float,
    ) -> None:
        """Count joined (truth, prediction) pairs in the quality windows and the counters."""
        version.labels_total += actual.shape[0]
        truth = actual.reshape(-1, 1)
        for sample in version.label_samples.values():
            sample.add(label_times, truth, now)
        version.label_builder.add(truth)
        version.generation += 1
        delays = np.maximum(label_times - prediction_times, 0.0)
        version.delay_counts += np.bincount(
            np.searchsorted(LABEL_DELAY_BUCKETS, delays, side="left"),
            minlength=len(LABEL_DELAY_BUCKETS) + 1,
        )
        version.delay_sum += float(delays.sum())
        if self.task == "regression":
            errors = predicted - actual
            version.error_count += errors.shape[0]
            version.abs_error_sum += float(np.sum(np.abs(errors)))
            version.sq_error_sum += float(np.sum(errors * errors))
            for window in version.quality.values():
                window.add_errors(label_times, errors, now)
            return
        true_idx = actual.astype(np.int64)
        pred_idx = predicted.astype(np.int64)
        self._grow_outcomes(version)
        k = version.outcomes.shape[0]
        version.outcomes += np.bincount(true_idx * k + pred_idx, minlength=k * k).reshape(k, k)
        for window in version.quality.values():
            window.add_outcomes(label_times, true_idx, pred_idx, now)

    # -- reference ---------------------------------------------------------------------------

    def _adopt_reference_schema(self, reference: Reference) -> None:
        """Features the reference knows and the events have not shown yet take the
        reference's kind: a reference uploaded first declares the schema."""
        new = sorted(reference.features - set(self.features.names))
        limit = self.settings.limits.max_features
        if len(self.features) + len(new) > limit:
            raise RejectedInput(
                Reason.TOO_MANY_FEATURES,
                f"reference: model {self.name!r} would have {len(self.features) + len(new)} "
                f"features; limits.max_features is {limit}",
            )
        batch = FeatureBatch(np.empty((0, 0)), new, {}, {}, {}, {})
        self.features.commit(batch)
        for name in reference.features:
            col = self.features.index[name]
            if self.features.kinds[col] is None:
                kind: FeatureKind = "numeric" if name in reference.numeric else "categorical"
                self.features.kinds[col] = kind

    def set_reference(self, reference: Reference, version: str | None, now: float) -> None:
        """Replace the reference of one version, or of every version present and future.

        Refused when it shares no feature with the model's (a reference for another model, or
        misspelt names), or gives a feature another kind than the events do."""
        known = set(self.features.names)
        if known and reference.features and not known & reference.features:
            raise RejectedInput(
                Reason.INVALID_REFERENCE,
                f"reference: none of its features ({', '.join(sorted(reference.features)[:8])}) "
                f"is a feature of model {self.name!r} ({', '.join(sorted(known)[:8])})",
            )
        for name, kind in zip(self.features.names, self.features.kinds, strict=True):
            ref_kind = (
                "numeric"
                if name in reference.numeric
                else "categorical"
                if name in reference.categorical
                else None
            )
            if kind is not None and ref_kind is not None and ref_kind != kind:
                raise RejectedInput(
                    Reason.INVALID_REFERENCE,
                    f"reference: feature {name!r} is {ref_kind} in the reference but {kind} in "
                    f"the events of model {self.name!r}",
                )
        self._adopt_reference_schema(reference)
        if version is None:
            self.reference = reference
            for v in self.versions.values():
                v.reference = None
                v.reference_uploaded = False
                v.generation += 1
            return
        new_version, evict = self._version_slot(version, now)
        if evict is not None:
            self._retire_version(evict)
        if new_version:
            self._new_version(version, now)
        v_state = self.versions[version]
        v_state.reference = reference
        v_state.reference_uploaded = True
        v_state.generation += 1


def _reindex(exc: RejectedInput, positions: npt.NDArray[np.intp], where: str) -> RejectedInput:
    """Rewrite ``events[i].label`` in a message from the i-th labelled event to the i-th event."""

    def fix(match: re.Match[str]) -> str:
        return where.format(int(positions[int(match.group(1))]))

    message = re.sub(r"events\[(\d+)\]\.label", fix, exc.message, count=1)
    return type(exc)(exc.reason, message, events=exc.events)


class Store:
    """All models, with the limits on how many there may be."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, ModelState] = {}

    def models(self) -> list[ModelState]:
        with self._lock:
            return list(self._models.values())

    def get(self, model: str) -> ModelState:
        with self._lock:
            state = self._models.get(model)
        if state is None:
            raise RejectedInput(
                Reason.UNKNOWN_MODEL,
                f"model {model!r} is unknown: no prediction has been received for it",
            )
        return state

    def _new_model(self, model: str, now: float, events: int) -> ModelState:
        spec = self.settings.models.get(model)
        if spec is None and not self.settings.auto_register:
            raise RejectedInput(
                Reason.UNKNOWN_MODEL,
                f"model {model!r} is not declared under 'models' in the config and "
                "auto_register is off",
                events=events,
            )
        if len(self._models) >= self.settings.limits.max_models:
            raise RejectedInput(
                Reason.TOO_MANY_MODELS,
                f"model {model!r} would be model number {len(self._models) + 1}; "
                f"limits.max_models is {self.settings.limits.max_models}",
                events=events,
            )
        return ModelState(model, spec, self.settings, now)

    def add_predictions(
        self, model: str, version: str | None, events: Sequence[PredictionEventLike]
    ) -> IngestResult:
        now = self.clock()
        version_name = version or self.settings.default_model_version
        with self._lock:
            state = self._models.get(model)
            if state is None:
                # Validate against a fresh model and register it only if the batch is valid,
                # so that a rejected first batch leaves no trace.
                state = self._new_model(model, now, len(events))
                with state.lock:
                    prepared = state.prepare_predictions(version_name, events, now)
                    result = state.commit_predictions(prepared, now)
                self._models[model] = state
                return result
        with state.lock:
            state.expire(now)
            prepared = state.prepare_predictions(version_name, events, now)
            return state.commit_predictions(prepared, now)

    def add_labels(self, model: str, labels: Sequence[LabelLike]) -> IngestResult:
        now = self.clock()
        state = self.get(model)
        with state.lock:
            state.expire(now)
            prepared = state.prepare_labels(labels, now)
            return state.commit_labels(prepared, now)

    def set_reference(self, model: str, version: str | None, reference: Reference) -> list[str]:
        """Replace a reference; registers the model (and version) when it is new, so that a
        reference can be uploaded before the first prediction. Returns the features the model knew
        before."""
        now = self.clock()
        with self._lock:
            state = self._models.get(model)
            if state is None:
                state = self._new_model(model, now, 1)
                with state.lock:
                    state.set_reference(reference, version, now)
                self._models[model] = state
                return []
        with state.lock:
            known = list(state.features.names)  # before the reference adds its own
            state.set_reference(reference, version, now)
            return known

    def expire_all(self) -> None:
        now = self.clock()
        for state in self.models():
            with state.lock:
                state.expire(now)
