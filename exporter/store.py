"""The registry of monitored models, within ``limits.max_models``: registration and removal.

A model is registered by its first valid prediction batch, by a reference (an upload, or a file
named in the config), by a comparison (through the API or in the config), or, when it is
declared under ``models`` in the config, by its first labels (which then wait for their
predictions). A request that is rejected registers nothing:
a new model is validated against a fresh :class:`~exporter.model.ModelState` and registered
only if the request succeeded. Names are checked where they enter, here
(:func:`~exporter.names.check_name`). Everything else is the model's own business.

A model leaves when it is deleted (:meth:`Store.delete`) or has been idle for
``limits.idle_model_ttl`` (:meth:`Store.expire_all`, on the drift worker's cadence); a version
when it is deleted, idle, or replaced by a new one. A model declared in the config stays
declared: its next event registers it anew, empty, with the reference from its file. The
removed model's counters go with it, so what removal drops is counted here
(:class:`RemovalCounts`), and listeners (the drift worker's cache) are told, so that no reader
shows the model again.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, get_args

from exporter.batch import LabelLike, PredictionEventLike
from exporter.comparison import Declaration
from exporter.config import Settings
from exporter.errors import Reason, RejectedInput
from exporter.model import IngestResult, ModelRemoved, ModelState, Removal, RemovalReason
from exporter.names import check_name
from exporter.persist.plain import Deferred, State, str_ints
from exporter.reference import Reference
from exporter.snapshot import ComparisonInfo

R = TypeVar("R")

#: Told of every removal: (model, version), the version None when the whole model went.
Listener = Callable[[str, str | None], None]

ModelRemovalReason = Literal["deleted", "idle"]
MODEL_REMOVALS: tuple[str, ...] = get_args(ModelRemovalReason)
VERSION_REMOVALS: tuple[str, ...] = get_args(RemovalReason)


@dataclass
class RemovalCounts:
    """What left the store, cumulative: models and versions by reason, and the predictions
    and labels that waited in a removed join (``prediction``, ``label``)."""

    models: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODEL_REMOVALS, 0))
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERSION_REMOVALS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: {"prediction": 0, "label": 0})

    def copy(self) -> RemovalCounts:
        return replace(
            self, models=dict(self.models), versions=dict(self.versions), dropped=dict(self.dropped)
        )


class Store:
    """All models, and the limit on how many there may be."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, ModelState] = {}
        self._uids = itertools.count(1)
        self._file_references: dict[str, Reference] = {}
        self._listeners: list[Listener] = []
        # Apart from _lock: versions are counted under their model's lock, which a thread
        # holding _lock may be waiting for.
        self._counts_lock = threading.Lock()
        self._counts = RemovalCounts()

    def models(self) -> list[ModelState]:
        """The registered models, without those being removed."""
        with self._lock:
            return [state for state in self._models.values() if not state.closed]

    def get(self, model: str) -> ModelState:
        with self._lock:
            state = self._models.get(model)
        if state is None or state.closed:  # closed: being removed
            raise _unknown(model)
        return state

    def on_removed(self, listener: Listener) -> None:
        """Tell ``listener`` of every model and version removed from now on."""
        self._listeners.append(listener)

    def removals(self) -> RemovalCounts:
        with self._counts_lock:
            return self._counts.copy()

    # -- persistence ----------------------------------------------------------------------------

    def to_state(self, *, deferred: bool = False) -> State:
        """Every model (each one consistent, copied under its own lock), the removal counts
        and the last model uid given. ``deferred``: the models as a
        :class:`~exporter.persist.plain.Deferred` list, each copied when the snapshot's
        encoder reaches it (None for one removed by then), so that no snapshot holds the
        copies of every model at once."""
        with self._lock:
            states = list(self._models.values())
            last_uid = next(self._uids) - 1
            self._uids = itertools.count(last_uid + 1)
        models: list[State | None] | Deferred = (
            Deferred([s.to_state for s in states])
            if deferred
            else [state for state in (s.to_state() for s in states) if state is not None]
        )
        counts = self.removals()
        return {
            "models": models,
            "last_uid": last_uid,
            "removals": {
                "models": counts.models,
                "versions": counts.versions,
                "dropped": counts.dropped,
            },
        }

    def load_state(self, state: State, *, counters: bool = True) -> list[str]:
        """Replace every model by those saved; ``counters`` False: their counters, and the
        store's removal counts, start from zero (see :meth:`ModelState.from_state`). Returns
        the models restored. Raises on a malformed state, leaving the store as it was."""
        models = {}
        for saved in state["models"]:
            if saved is None:
                continue  # removed while the snapshot was taken
            name = saved["name"]
            check_name(name, "model")
            models[name] = ModelState.from_state(
                saved,
                self.settings.models.get(name),
                self.settings,
                counters=counters,
                on_version_removed=functools.partial(self._version_removed, name),
            )
        if len(models) > self.settings.limits.max_models:
            raise ValueError(f"{len(models)} models saved; limits.max_models is smaller")
        removals = state["removals"]
        counts = (
            RemovalCounts(
                str_ints(removals["models"]),
                str_ints(removals["versions"]),
                str_ints(removals["dropped"]),
            )
            if counters
            else RemovalCounts()
        )
        last_uid = max([int(state["last_uid"]), *(m.uid for m in models.values())])
        with self._lock:
            self._models = models
            self._uids = itertools.count(last_uid + 1)
        with self._counts_lock:
            self._counts = counts
        return list(models)

    def comparison_is(self, model: str, declaration: Declaration) -> bool:
        """Whether the model has this comparison running already (restored at start)."""
        with self._lock:
            state = self._models.get(model)
        info = None if state is None else state.comparison_state.info
        return info is not None and Declaration(info.champion, info.challengers, info.mode) == (
            declaration
        )

    # -- writers --------------------------------------------------------------------------------

    def add_predictions(
        self, model: str, version: str | None, events: Sequence[PredictionEventLike]
    ) -> IngestResult:
        check_name(model, "model")
        if version is not None:
            check_name(version, "model_version")
        now = self.clock()
        name = version or self.settings.default_model_version
        return self._write(model, now, lambda s: s.add_predictions(name, events, now))

    def add_labels(self, model: str, labels: Sequence[LabelLike]) -> IngestResult:
        """Labels of a model seen before, or of one declared in the config (which then wait
        for their predictions); any other model is unknown."""
        check_name(model, "model")
        now = self.clock()
        if model not in self.settings.models:
            return self._write_existing(model, lambda s: s.add_labels(labels, now))
        return self._write(model, now, lambda s: s.add_labels(labels, now))

    def set_reference(self, model: str, version: str | None, reference: Reference) -> list[str]:
        """Replace a reference; registers the model (and version) when it is new, so that a
        reference can be uploaded before the first prediction. Returns the features the model
        knew before."""
        check_name(model, "model")
        if version is not None:
            check_name(version, "model_version")
        now = self.clock()
        return self._write(model, now, lambda s: s.set_reference(reference, version, now))

    def load_reference(self, model: str, reference: Reference) -> None:
        """The reference of a file named in the config: the model's now (unless a model
        restored at start holds the same reference already), and again whenever the model is
        registered anew after a removal."""
        self._file_references[model] = reference
        with self._lock:
            state = self._models.get(model)
        held = None if state is None else state.references.model
        if held is None or {**held.to_state(), "created": 0} != {
            **reference.to_state(),
            "created": 0,
        }:
            self.set_reference(model, None, reference)

    def set_comparison(self, model: str, declaration: Declaration) -> ComparisonInfo:
        """Declare or replace a model's comparison, started now; registers the model when it
        is new, so that a comparison (shadow mode above all) can precede the first event."""
        check_name(model, "model")
        now = self.clock()
        return self._write(model, now, lambda s: s.set_comparison(declaration, now))

    def end_comparison(self, model: str) -> ComparisonInfo:
        """End a model's comparison; returns it. Raises ``unknown_model`` or
        ``no_comparison``."""
        now = self.clock()
        return self._write_existing(model, lambda s: s.end_comparison(now))

    # -- removal --------------------------------------------------------------------------------

    def delete(self, model: str) -> Removal:
        """Remove a model with everything it holds.

        Raises :class:`~exporter.errors.RejectedInput`: ``unknown_model``, or
        ``pinned_version`` while a comparison names one of its versions."""
        now = self.clock()
        while True:
            state = self.get(model)
            try:
                # The model's lock only: a batch being committed delays this deletion, not
                # the other models (the store's lock is not held meanwhile).
                removal = state.close(now)
            except ModelRemoved:
                continue  # another removal closed it first: this one finds what is left
            assert removal is not None  # a deletion closes or raises
            self._unregister(state)
            self._model_removed(removal, "deleted")
            return removal

    def delete_version(self, model: str, version: str) -> int:
        """Remove one version of a model; returns how many of its predictions waited for a
        label (dropped). Raises ``unknown_model``, ``unknown_version`` or ``pinned_version``."""
        now = self.clock()
        dropped = self._write_existing(model, lambda s: s.delete_version(version, now))
        with self._counts_lock:
            self._counts.dropped["prediction"] += dropped
        return dropped

    def expire_all(self) -> None:
        """Drop join entries past their TTL; remove the versions, then the models, idle for
        ``limits.idle_model_ttl`` (0: never)."""
        now = self.clock()
        ttl = self.settings.limits.idle_model_ttl
        idle = []
        for state in self.models():
            state.expire(now)
            if ttl and state.expire_idle(now, ttl):
                idle.append(state)
        for state in idle:
            removal = state.close(now, idle_ttl=ttl)  # None: active again, or removed already
            if removal is not None:
                self._unregister(state)
                self._model_removed(removal, "idle")

    # -- internals ------------------------------------------------------------------------------

    def _unregister(self, state: ModelState) -> None:
        """Forget a closed model, unless a writer already registered its successor."""
        with self._lock:
            if self._models.get(state.name) is state:
                del self._models[state.name]

    def _write(self, model: str, now: float, write: Callable[[ModelState], R]) -> R:
        """Apply ``write`` to the model, registering it first if it is new and ``write``
        succeeds (a rejected first request leaves no trace); a model removed while ``write``
        waited for its lock is registered anew."""
        while True:
            with self._lock:
                state = self._models.get(model)
                if state is None or state.closed:  # closed: removed, its successor is new
                    if state is not None:
                        del self._models[model]  # its slot counts no more against the limit
                    state = self._new_model(model, now)
                    result = write(state)
                    self._models[model] = state
                    return result
            try:
                return write(state)
            except ModelRemoved:
                continue

    def _write_existing(self, model: str, write: Callable[[ModelState], R]) -> R:
        """Apply ``write`` to a registered model; ``unknown_model`` if there is none (also when
        it is removed while ``write`` waited for its lock)."""
        while True:
            try:
                return write(self.get(model))
            except ModelRemoved:
                continue

    def _new_model(self, model: str, now: float) -> ModelState:
        spec = self.settings.models.get(model)
        if spec is None and not self.settings.auto_register:
            raise RejectedInput(
                Reason.UNKNOWN_MODEL,
                f"{model!r} is not declared under 'models' in the config and auto_register is off",
                field="model",
                value=model,
            )
        limit = self.settings.limits.max_models
        if len(self._models) >= limit:
            raise RejectedInput(
                Reason.TOO_MANY_MODELS,
                f"{model!r} would be model number {len(self._models) + 1}; "
                f"limits.max_models is {limit}",
                field="model",
                value=model,
            )
        state = ModelState(
            model,
            spec,
            self.settings,
            now,
            uid=next(self._uids),
            on_version_removed=functools.partial(self._version_removed, model),
        )
        reference = self._file_references.get(model)
        if reference is not None:
            state.set_reference(reference, None, now)
        return state

    def _version_removed(self, model: str, version: str, reason: RemovalReason) -> None:
        with self._counts_lock:
            self._counts.versions[reason] += 1
        for listener in self._listeners:
            listener(model, version)

    def _model_removed(self, removal: Removal, reason: ModelRemovalReason) -> None:
        with self._counts_lock:
            self._counts.models[reason] += 1
            self._counts.dropped["prediction"] += removal.pending_predictions
            self._counts.dropped["label"] += removal.pending_labels
        for listener in self._listeners:
            listener(removal.model, None)


def _unknown(model: str) -> RejectedInput:
    return RejectedInput(
        Reason.UNKNOWN_MODEL,
        f"{model!r} is unknown: no prediction has been received for it, or it was removed",
        field="model",
        value=model,
    )
