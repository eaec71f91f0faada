"""The registry of monitored models, within ``limits.max_models``.

A model is registered by its first valid prediction batch, by a reference (an upload, or a file
named in the config), or, when it is declared under ``models`` in the config, by its first
labels (which then wait for their predictions). A request that is rejected registers nothing:
a new model is validated against a fresh :class:`~exporter.model.ModelState` and registered
only if the request succeeded. Everything else is the model's own business.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.batch import LabelLike, PredictionEventLike
from exporter.config import Settings
from exporter.errors import Reason, RejectedInput
from exporter.model import IngestResult, ModelState
from exporter.reference import Reference

R = TypeVar("R")


class Store:
    """All models, and the limit on how many there may be."""

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
                f"{model!r} is unknown: no prediction has been received for it",
                field="model",
                value=model,
            )
        return state

    def add_predictions(
        self, model: str, version: str | None, events: Sequence[PredictionEventLike]
    ) -> IngestResult:
        now = self.clock()
        name = version or self.settings.default_model_version
        return self._write(model, now, lambda s: s.add_predictions(name, events, now))

    def add_labels(self, model: str, labels: Sequence[LabelLike]) -> IngestResult:
        """Labels of a model seen before, or of one declared in the config (which then wait
        for their predictions); any other model is unknown."""
        now = self.clock()
        if model not in self.settings.models:
            return self.get(model).add_labels(labels, now)
        return self._write(model, now, lambda s: s.add_labels(labels, now))

    def set_reference(self, model: str, version: str | None, reference: Reference) -> list[str]:
        """Replace a reference; registers the model (and version) when it is new, so that a
        reference can be uploaded before the first prediction. Returns the features the model
        knew before."""
        now = self.clock()
        return self._write(model, now, lambda s: s.set_reference(reference, version, now))

    def expire_all(self) -> None:
        now = self.clock()
        for state in self.models():
            state.expire(now)

    def _write(self, model: str, now: float, write: Callable[[ModelState], R]) -> R:
        """Apply ``write`` to the model, registering it first if it is new and ``write``
        succeeds (a rejected first request leaves no trace)."""
        with self._lock:
            state = self._models.get(model)
            if state is None:
                state = self._new_model(model, now)
                result = write(state)
                self._models[model] = state
                return result
        return write(state)

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
        return ModelState(model, spec, self.settings, now)
