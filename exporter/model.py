"""One monitored model: the owner of its schema, versions, join, counters and lock.

:class:`ModelState` composes the parts and is the only code that takes the model's lock; the
parts own no lock and are called under it: :class:`~exporter.schema.ModelSchema`,
:class:`~exporter.version.Versions`, :class:`~exporter.join.Join`,
:class:`~exporter.counters.ModelCounters`, :class:`~exporter.reference_state.ReferenceState`
(which reference each version's drift uses) and
:class:`~exporter.comparison_state.ComparisonState` (the declared comparison and a shadow
comparison's pairs). Writers (:meth:`~ModelState.add_predictions`,
:meth:`~ModelState.add_labels`, :meth:`~ModelState.set_reference`,
:meth:`~ModelState.set_comparison`) validate a whole batch first (:mod:`exporter.batch`,
:func:`~exporter.reference_state.check_reference`, which raise
:class:`~exporter.errors.RejectedInput` and change nothing), then commit it; readers take one
immutable snapshot (:meth:`~ModelState.snapshot`, :meth:`~ModelState.drift_snapshot`) and
compute outside the lock, so a scrape never holds up ingest.

Removal, under the same lock: a version leaves when it is deleted, idle for
``limits.idle_model_ttl`` or replaced by a new one (:meth:`~ModelState.delete_version`,
:meth:`~ModelState.expire_idle`), each departure told to ``on_version_removed``; the
model as a whole is closed by the store (:meth:`~ModelState.close`), after which a writer that
was waiting for the lock raises :class:`ModelRemoved` and the store registers the model anew.
A version named in :attr:`~exporter.version.Versions.pinned` (by a comparison) is never
replaced, expired or deleted, nor is its model.

Comparison, under the same lock: :meth:`~ModelState.set_comparison` declares (or replaces) the
model's one comparison, starting it now, and pins exactly the versions it names (present or
future); :meth:`~ModelState.end_comparison` ends it and unpins them. Readers see it as
:attr:`~exporter.snapshot.ModelSnapshot.comparison`. A shadow comparison needs the join keyed
by (id, version) (:class:`~exporter.join.Join` ``per_version``); the join changes its keying in
place when a shadow comparison starts, and back to by id (after ``join.prediction_ttl``, one
prediction per id for new events at once) when it ends or turns split, losing no entry
(:meth:`~exporter.join.Join.key_per_version`). Every joined prediction is also fed, with its
loss, to a shadow comparison's pair book (snapshot's
:attr:`~exporter.snapshot.ModelSnapshot.pairs`).

No statistics are computed on the ingest path, but one: a joined outcome goes through its
version's concept-drift detector at once (docs/architecture.md says why); the rest appends.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from exporter.batch import (
    LabelLike,
    PredictionEventLike,
    PreparedLabels,
    PreparedPredictions,
    prepare_labels,
    prepare_predictions,
)
from exporter.comparison import Declaration, check_limits
from exporter.comparison_state import ComparisonState
from exporter.config import ModelSpec, Settings
from exporter.counters import ModelCounters, VersionCounters
from exporter.early_labels import encode_early_labels
from exporter.errors import Reason, RejectedInput
from exporter.estimation import Estimators
from exporter.join import Join, Pairs
from exporter.persist.plain import State
from exporter.probabilities import Score
from exporter.reference import Reference, RowLayout
from exporter.reference_state import ReferenceState, check_reference
from exporter.schema import FeatureBatch, ModelSchema
from exporter.snapshot import (
    ComparisonInfo,
    DriftInput,
    DriftSnapshot,
    ModelSnapshot,
    VersionSnapshot,
)
from exporter.typedefs import FloatArray, IntArray
from exporter.version import Versions, VersionState

log = logging.getLogger("exporter.model")

#: Why a version left its model: deleted, idle for limits.idle_model_ttl, or replaced by a new
#: version (limits.max_versions_per_model).
RemovalReason = Literal["deleted", "idle", "replaced"]
#: Told of every version that leaves a model: (version, why).
VersionRemoved = Callable[[str, RemovalReason], None]


class ModelRemoved(Exception):
    """The model was closed while a writer waited for its lock; the store retries the write on
    the model registered anew."""


@dataclass(frozen=True)
class Removal:
    """What closing a model removed."""

    model: str
    versions: tuple[str, ...]
    pending_predictions: int  # predictions that waited for their label, dropped
    pending_labels: int  # labels that waited for their prediction, dropped


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


class ModelState:
    """Everything known about one model.

    ``per_version_join``: each version may predict an id once and a label joins every
    version's prediction of it (shadow deployments); by default an id has one prediction.
    ``uid`` tells this model apart from an earlier one of the same name (readers' caches key on
    it); ``on_version_removed`` is told of every version that leaves.
    """

    def __init__(
        self,
        name: str,
        spec: ModelSpec | None,
        settings: Settings,
        now: float,
        *,
        per_version_join: bool = False,
        uid: int = 0,
        on_version_removed: VersionRemoved | None = None,
    ) -> None:
        self.name = name
        self.uid = uid
        self.settings = settings
        self.lock = threading.Lock()
        self.created = now
        #: When a request last changed the model (registration included): idle expiry's clock.
        self.last_activity = now
        self.closed = False
        self._on_version_removed = on_version_removed
        self.schema = ModelSchema(
            spec.task if spec else None,
            spec.positive_class if spec else None,
            spec.categorical if spec else (),
        )
        self.versions = Versions(settings.limits.max_versions_per_model, max(settings.windows))
        self.join = self._new_join(per_version_join)
        self.counters = ModelCounters()
        policy = spec.reference if spec is not None and spec.reference else settings.drift.reference
        self.references = ReferenceState(policy, settings.drift)
        self.comparison_state = ComparisonState(settings)
        #: The label-free estimate's calibrators, per version (exporter.estimation).
        self.estimators = Estimators()
        #: Each version's concept-drift detector (None: off).
        self.concept_settings = settings.concept_drift_for(name).detector_settings()
        #: Bumped by every change but the passage of time (readers' caches key on it).
        self.revision = 0

    # -- persistence ----------------------------------------------------------------------------

    def to_state(self) -> State | None:
        """One consistent copy of everything the model holds (plain values, byte copies of arrays,
        and the join's buffers as Rows of references to immutable entries), taken under
        its lock (the caller encodes it outside); None once it is closed (being removed)."""
        with self.lock:
            if self.closed:
                return None
            return {
                "name": self.name,
                "uid": self.uid,
                "created": self.created,
                "last_activity": self.last_activity,
                "revision": self.revision,
                "schema": self.schema.to_state(),
                "versions": self.versions.to_state(),
                "join": self.join.to_state(),
                "counters": self.counters.to_state(),
                "references": self.references.to_state(),
                "comparison": self.comparison_state.to_state(),
            }

    @classmethod
    def from_state(
        cls,
        state: State,
        spec: ModelSpec | None,
        settings: Settings,
        *,
        counters: bool = True,
        on_version_removed: VersionRemoved | None = None,
    ) -> ModelState:
        """The model saved in ``state``; ``counters`` False: its counters start from zero
        (and so do the counts since a comparison or a reference started), the rest as saved."""
        model = cls(
            state["name"],
            spec,
            settings,
            float(state["created"]),
            uid=int(state["uid"]),
            on_version_removed=on_version_removed,
        )
        model.last_activity = float(state["last_activity"])
        model.revision = int(state["revision"])
        model.schema = ModelSchema.from_state(state["schema"])
        model.references.load_state(state["references"])
        model.versions.load_state(
            state["versions"],
            settings,
            task=model.schema.task,
            rolling=model.references.rolling,
            concept=model.concept_settings,
        )
        model.join.load_state(state["join"])
        model.comparison_state.load_state(state["comparison"])
        if counters:
            model.counters = ModelCounters.from_state(state["counters"])
        else:
            for version in model.versions:
                version.counters = VersionCounters()
                if version.concept is not None:
                    version.concept.restart_counts()
            model.references.restart_counts()
            model.comparison_state.restart_counts()
        return model

    # -- writers --------------------------------------------------------------------------------

    def add_predictions(
        self, version: str, events: Sequence[PredictionEventLike], now: float
    ) -> IngestResult:
        with self.lock:
            self._check_open()
            self._expire(now)
            batch = prepare_predictions(
                self.schema,
                events,
                now,
                model=self.name,
                limits=self.settings.limits,
                max_categories=self.settings.drift.max_categories,
                probability_tolerance=self.settings.quality.probability_tolerance,
            )
            replaces = self.versions.slot(version, now, self.join.pending, self.name)
            return self._commit_predictions(version, replaces, batch, now)

    def add_labels(self, labels: Sequence[LabelLike], now: float) -> IngestResult:
        with self.lock:
            self._check_open()
            self._expire(now)
            batch = prepare_labels(
                self.schema, labels, now, model=self.name, limits=self.settings.limits
            )
            if not self.join.labels_can_wait:
                for i, ident in enumerate(batch.ids):
                    if not self.join.awaits(ident):
                        raise RejectedInput(
                            Reason.UNKNOWN_ID,
                            f"no prediction with id {ident!r} is waiting for a label in model "
                            f"{self.name!r} (join.label_ttl is 0, so labels cannot wait for "
                            "their prediction)",
                            field=f"labels[{i}].id",
                            value=ident,
                        )
            return self._commit_labels(batch, now)

    def set_reference(self, reference: Reference, version: str | None, now: float) -> list[str]:
        """Replace the reference of one version, or of every version present and future;
        returns the features the model knew before.

        Refused when it shares no feature with the model's (a reference for another model, or
        misspelt names), gives a feature another kind than the events do, or would exceed
        ``limits.max_features``."""
        with self.lock:
            self._check_open()
            known = list(self.schema.features.names)
            check_reference(
                self.schema,
                reference,
                model=self.name,
                max_features=self.settings.limits.max_features,
            )
            replaces = (
                self.versions.slot(version, now, self.join.pending, self.name)
                if version is not None
                else None
            )
            # Every check passed: from here on nothing raises.
            self.schema.adopt_features(reference.numeric, reference.categorical)
            if replaces is not None:
                self._retire(replaces, "replaced")
            target = None if version is None else self._version(version, now)
            self.last_activity = now
            self.revision += 1
            if target is None:
                self.references.set_for_model(reference, self.versions, self.revision)
            else:
                target.last_activity = now
                self.references.set_for_version(target, reference, self.revision)
            return known

    def expire(self, now: float) -> None:
        """Drop join entries past their TTL and count them."""
        with self.lock:
            self._expire(now)

    # -- removal --------------------------------------------------------------------------------

    def delete_version(self, name: str, now: float) -> int:
        """Remove a version with its windows and counters; returns how many of its predictions
        waited for a label (dropped with it).

        Raises :class:`~exporter.errors.RejectedInput`: ``unknown_version``, or
        ``pinned_version`` when a comparison names it."""
        with self.lock:
            self._check_open()
            self._expire(now)
            if name not in self.versions:
                known = ", ".join(sorted(self.versions.names())) or "none"
                raise RejectedInput(
                    Reason.UNKNOWN_VERSION,
                    f"model {self.name!r} has no version {name!r} (its versions: {known})",
                    field="model_version",
                    value=name,
                )
            if name in self.versions.pinned:
                raise RejectedInput(
                    Reason.PINNED_VERSION,
                    f"version {name!r} of model {self.name!r} is named by a comparison; "
                    "remove the comparison first",
                    field="model_version",
                    value=name,
                )
            return self._retire(name, "deleted")

    def expire_idle(self, now: float, ttl: float) -> bool:
        """Remove the versions idle for ``ttl`` seconds with nothing waiting for a label;
        returns whether the model as a whole is idle (its versions are then left for the store,
        which removes the model)."""
        with self.lock:
            self._expire(now)
            if self.closed:
                return False
            if self._idle(now, ttl):
                return True
            idle = [
                v.name
                for v in self.versions
                if v.last_activity <= now - ttl
                and not self.join.pending(v.uid)
                and v.name not in self.versions.pinned
            ]
            for name in idle:
                self._retire(name, "idle")
            return False

    def close(self, now: float, *, idle_ttl: float | None = None) -> Removal | None:
        """Close the model for good: the store then forgets it. With ``idle_ttl``, only if it is
        idle (nothing accepted for that long, nothing waiting in its join, no pinned version);
        returns None if it is not (or is closed already). Without, it is a deletion: refused
        with ``pinned_version`` while a comparison names one of its versions, and with
        :class:`ModelRemoved` when another removal closed it first."""
        with self.lock:
            if self.closed:
                if idle_ttl is not None:
                    return None
                raise ModelRemoved(self.name)
            self._expire(now)
            if idle_ttl is not None and not self._idle(now, idle_ttl):
                return None
            pinned = self.versions.pinned
            if pinned:
                raise RejectedInput(
                    Reason.PINNED_VERSION,
                    f"model {self.name!r} has versions named by a comparison "
                    f"({', '.join(sorted(pinned))}); remove the comparison first",
                    field="model",
                    value=self.name,
                )
            self.closed = True
            return Removal(
                self.name,
                tuple(self.versions.names()),
                sum(self.join.pending(v.uid) for v in self.versions),
                self.join.early_labels,
            )

    # -- comparison -----------------------------------------------------------------------------

    def set_comparison(self, declaration: Declaration, now: float) -> ComparisonInfo:
        """Declare the model's comparison, or replace it (its sequential statistics then run
        from ``now`` again); it pins exactly the versions it names, present or future.

        Raises :class:`~exporter.errors.RejectedInput`: ``invalid_comparison`` for more
        challengers than ``limits.max_versions_per_model - 1``, ``string_too_long`` for a
        version name over ``limits.max_name_length``."""
        with self.lock:
            self._check_open()
            self._expire(now)
            limits = self.settings.limits
            check_limits(
                declaration,
                max_versions=limits.max_versions_per_model,
                max_name_length=limits.max_name_length,
            )
            shadow = declaration.mode == "shadow"
            # Every check passed: from here on nothing raises.
            self.join.key_per_version(shadow, now)
            declared = self.comparison_state.declare(declaration, self.versions, now)
            self.versions.pinned.clear()
            self.versions.pinned.update(declaration.versions)
            self.last_activity = now
            self.revision += 1
            return declared

    def end_comparison(self, now: float) -> ComparisonInfo:
        """End the model's comparison and unpin its versions; returns the comparison ended.

        Raises :class:`~exporter.errors.RejectedInput` ``no_comparison`` when there is none."""
        with self.lock:
            self._check_open()
            self._expire(now)
            ended = self.comparison_state.info
            if ended is None:
                raise RejectedInput(
                    Reason.NO_COMPARISON,
                    f"model {self.name!r} has no comparison to end",
                    field="model",
                    value=self.name,
                )
            self.join.key_per_version(False, now)
            self.comparison_state.end()
            self.versions.pinned.clear()
            self.last_activity = now
            self.revision += 1
            return ended

    def pin(self, version: str) -> None:
        """Exempt a version (present or future) from replacement, idle expiry and deletion."""
        with self.lock:
            self.versions.pinned.add(version)

    def unpin(self, version: str) -> None:
        with self.lock:
            self.versions.pinned.discard(version)

    # -- readers --------------------------------------------------------------------------------

    def snapshot(self, now: float) -> ModelSnapshot:
        """Counters, window aggregates and references of every version, as of ``now``."""
        snapshot = self._snapshot(now, None)
        assert snapshot is not None
        return snapshot

    def snapshot_if_changed(self, now: float, key: object) -> ModelSnapshot | None:
        """A snapshot as of ``now``, or None if its key would be ``key``: the reader's copy,
        taken with that key, is still current (and nothing is copied)."""
        return self._snapshot(now, key)

    def _snapshot(self, now: float, unless: object) -> ModelSnapshot | None:
        with self.lock:
            self._expire(now)
            content = tuple((v.uid, v.content_key(now)) for v in self.versions)
            key = (self.revision, content, self.uid)
            if key == unless:
                return None
            schema = self.schema
            versions = tuple(
                VersionSnapshot(
                    name=v.name,
                    uid=v.uid,
                    counters=v.counters.copy(),
                    pending=self.join.pending(v.uid),
                    windows=v.window_counts(now, schema.task),
                    reference=self.references.info(v),
                    concept=None if v.concept is None else v.concept.info(),
                )
                for v in self.versions
            )
            return ModelSnapshot(
                name=self.name,
                taken_at=now,
                key=key,
                task=schema.task,
                task_declared=schema.task_declared,
                positive_index=schema.positive_index,
                positive_label=schema.positive_label,
                classes=tuple(schema.codec.label(i) for i in range(len(schema.codec))),
                features=tuple(zip(schema.features.names, schema.features.kinds, strict=True)),
                counters=self.counters.copy(),
                pending_labels=self.join.early_labels,
                versions=versions,
                comparison=self.comparison_state.info,
                pairs=self.comparison_state.pairs_snapshot(now)
                if schema.task is not None
                else None,
            )

    def drift_snapshot(
        self, now: float, known: Mapping[tuple[str, str], tuple[int, ...]]
    ) -> DriftSnapshot:
        """Copies of the samples of every window whose drift key is not ``known[(version,
        window)]`` (what the caller last computed), with the references they are compared to."""
        with self.lock:
            inputs = []
            for v in self.versions:
                info = self.references.info(v)
                label_reference = self.references.labels(v)
                for window in v.samples:
                    key = v.drift_key(window, now)
                    if known.get((v.name, window)) == key:
                        continue
                    rows, labels = v.reservoirs(window, now)
                    rolling = info.source == "previous_window"
                    inputs.append(
                        DriftInput(
                            version=v.name,
                            window=window,
                            key=key,
                            rows=rows,
                            labels=labels,
                            previous=v.reservoirs(window, now, windows_back=1) if rolling else None,
                            reference=info.reference,
                            reference_source=info.source
                            if info.reference is not None or rolling
                            else None,
                            label_reference=label_reference,
                        )
                    )
            return DriftSnapshot(
                self.name, self._layout(), tuple(self.versions.names()), tuple(inputs)
            )

    # -- predictions ----------------------------------------------------------------------------

    def _commit_predictions(
        self, name: str, replaces: str | None, p: PreparedPredictions, now: float
    ) -> IngestResult:
        task_was_known = self.schema.task is not None
        self.schema.commit(p.task, p.class_kind, p.new_classes, p.features)
        self._count_feature_anomalies(p.features)
        if not task_was_known:
            self._task_established()
        if replaces is not None:
            self._retire(replaces, "replaced")
        version = self._version(name, now)
        version.last_activity = now
        self.last_activity = now
        self.revision += 1
        joined = self.join.add_predictions(
            version.uid, p.ids, p.targets.tolist(), p.times.tolist(), p.inline, now, p.scores
        )
        self.counters.duplicate_predictions += joined.duplicates
        self._count_evicted(joined.evicted)
        if not joined.kept:
            return IngestResult(accepted=0, duplicates=joined.duplicates, joined=0, pending=0)
        # Column 0 holds the prediction (class index or value), then the features.
        rows = np.column_stack([p.targets, p.features.matrix])
        times = p.times
        if joined.duplicates:
            rows, times = rows[joined.kept], times[joined.kept]
        self._record(version, joined.pairs, p.ids, now)
        for uid, pairs in joined.others.items():
            other = self.versions.by_uid(uid)
            if other is not None:  # always: a version is retired only with nothing waiting
                self._record(other, pairs, p.ids, now)
        if p.scores is not None:
            kept = p.scores if not joined.duplicates else [p.scores[i] for i in joined.kept]
            self._estimate(version, kept, rows[:, 0], times, now)
        collecting = self.references.collects_first(version)
        version.record_predictions(times, rows, now, collect_first=collecting)
        if collecting and version.first_rows.complete:
            self.references.freeze_first_events(version, self._layout(), now)
        return IngestResult(
            accepted=len(joined.kept),
            duplicates=joined.duplicates,
            joined=len(joined.pairs.rows),
            pending=joined.waiting,
        )

    def _count_feature_anomalies(self, batch: FeatureBatch) -> None:
        names = self.schema.features.names
        for counts, into in (
            (batch.mismatches, self.counters.type_mismatches),
            (batch.pooled, self.counters.categories_pooled),
        ):
            for col, count in counts.items():
                into[names[col]] = into.get(names[col], 0) + count

    # -- labels ---------------------------------------------------------------------------------

    def _commit_labels(self, p: PreparedLabels, now: float) -> IngestResult:
        if p.task is not None:
            self.schema.commit(p.task, p.class_kind, p.new_classes)
        self.counters.labels_received += len(p.ids)
        self.last_activity = now
        joined = self.join.add_labels(p.ids, p.targets, p.times.tolist(), now)
        self.counters.duplicate_labels += joined.duplicates
        self.counters.labels_expired["capacity"] += joined.evicted
        for uid, pairs in joined.pairs.items():
            version = self.versions.by_uid(uid)
            if version is not None:  # always: a version is retired only with nothing waiting
                self._record(version, pairs, p.ids, now)
        self.revision += 1
        return IngestResult(
            accepted=len(p.ids) - joined.duplicates,
            duplicates=joined.duplicates,
            joined=joined.joined,
            pending=joined.waiting,
        )

    def _record(self, version: VersionState, pairs: Pairs, ids: Sequence[str], now: float) -> None:
        """Record joined pairs on their version (``ids``: the batch's, which ``pairs.rows``
        index), and in a shadow comparison's pair book; then, once its first labels are
        complete, freeze them as the version's label reference. A joined label is activity of
        the version (idle expiry and replacement go by it)."""
        if not pairs.rows:
            return
        version.last_activity = now
        task = self.schema.task
        assert task is not None  # a prediction was committed, so the task is known
        actual = np.array(pairs.actual, dtype=np.float64)
        predicted = np.array(pairs.predicted, dtype=np.float64)
        version.record_outcomes(
            label_times=np.array(pairs.label_times),
            prediction_times=np.array(pairs.prediction_times),
            actual=actual,
            predicted=predicted,
            task=task,
            classes=len(self.schema.codec),
            now=now,
            scores=None if pairs.scores.count(None) == len(pairs.scores) else pairs.scores,
            positive=self.schema.positive_index,
        )
        if pairs.scores.count(None) != len(pairs.scores):
            truth = actual.astype(np.int64)
            self._estimate(
                version, pairs.scores, predicted, np.array(pairs.label_times), now, truth=truth
            )
        self.comparison_state.record(version.name, pairs, ids, actual, predicted, task, now)
        if version.first_label_reference is None and version.first_labels.complete:
            self.references.freeze_first_labels(version, self.schema.class_labels())

    def _estimate(
        self,
        version: VersionState,
        scores: Sequence[Score],
        predicted: FloatArray,
        times: FloatArray,
        now: float,
        truth: IntArray | None = None,
    ) -> None:
        """Calibrate scored predictions into the version's estimate windows (with ``truth``:
        joined outcomes, for realised minus estimated), if its reference has scores."""
        schema = self.schema
        estimator = self.estimators.get(
            version.uid,
            self.references.scored(version),
            schema.task,
            schema.class_labels() or [],
            schema.positive_label,
        )
        if estimator is None:
            return
        positive = schema.positive_index
        calibrated = estimator.calibrated(scores, predicted.astype(np.int64), positive)
        if calibrated is None:
            return
        rows, probabilities, classes = calibrated
        if truth is not None:
            truth = truth[rows]
            if estimator.binary:
                truth = (truth == positive).astype(np.int64)
        version.record_estimates(
            times[rows], probabilities, classes, now, binary=estimator.binary, truth=truth
        )

    def _task_established(self) -> None:
        """The first prediction fixed the task: tell the versions a reference upload created,
        and encode the labels that waited as they were sent."""
        task = self.schema.task
        assert task is not None
        for v in self.versions:
            v.set_task(task)
        concept = self.concept_settings
        if task == "regression" and concept is not None and concept.kind == "ddm":
            log.warning(
                "model %r is a regression: concept_drift.detector ddm takes a classifier's 0/1 "
                "errors, so no concept-drift detector runs on it (use adwin or page_hinkley)",
                self.name,
            )
        dropped = self.join.encode_early_labels(
            lambda values: encode_early_labels(
                self.schema, values, max_classes=self.settings.limits.max_classes, model=self.name
            )
        )
        if dropped:
            expired = self.counters.labels_expired
            expired["task_mismatch"] = expired.get("task_mismatch", 0) + dropped

    # -- versions, expiry, row layout -----------------------------------------------------------

    def _version(self, name: str, now: float) -> VersionState:
        version = self.versions.get(name)
        if version is None:
            version = VersionState(
                self.versions.next_uid(),
                name,
                self.settings,
                task=self.schema.task,
                rolling=self.references.rolling,
                now=now,
                concept=self.concept_settings,
            )
            self.versions.add(version)
        return version

    def _new_join(self, per_version: bool) -> Join:
        j = self.settings.join
        return Join(
            j.prediction_ttl,
            j.max_pending_predictions,
            j.label_ttl,
            j.max_pending_labels,
            per_version=per_version,
            max_versions=self.settings.limits.max_versions_per_model,
        )

    def _retire(self, name: str, reason: RemovalReason) -> int:
        """Remove a version; returns how many of its predictions waited (dropped)."""
        uid = self.versions.retire(name).uid
        dropped = self.join.forget(uid)
        self.references.forget(uid)
        self.estimators.forget(uid)
        self.revision += 1
        if self._on_version_removed is not None:
            self._on_version_removed(name, reason)
        return dropped

    def _check_open(self) -> None:
        if self.closed:
            raise ModelRemoved(self.name)

    def _idle(self, now: float, ttl: float) -> bool:
        """Nothing accepted for ``ttl`` seconds, nothing waiting in the join, nothing pinned."""
        return (
            self.last_activity <= now - ttl
            and not self.join.early_labels
            and not self.versions.pinned
            and not any(self.join.pending(v.uid) for v in self.versions)
        )

    def _count_evicted(self, evicted: Counter[int]) -> None:
        for uid, count in evicted.items():
            version = self.versions.by_uid(uid)
            if version is not None:
                version.counters.expired["capacity"] += count

    def _expire(self, now: float) -> None:
        gone = self.join.expire(now)
        for uid, count in gone.predictions.items():
            version = self.versions.by_uid(uid)
            if version is not None:
                version.counters.expired["ttl"] += count
        self.counters.labels_expired["ttl"] += gone.labels
        if gone.predictions or gone.labels:
            self.revision += 1

    def _layout(self) -> RowLayout:
        features = self.schema.features
        classes = self.schema.class_labels()
        return RowLayout(
            names=tuple(features.names),
            kinds=tuple(features.kinds),
            categories=tuple(tuple(labels) for labels in features.labels),
            classes=None if classes is None else tuple(classes),
        )
