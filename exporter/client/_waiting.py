"""Labels waiting for their model to become known to the exporter.

At deploy time a model's labels can reach the exporter before its first predictions (queued
behind them in this client, or sent by another process). The exporter holds such labels itself
when the model is declared in its config; otherwise it answers 404 ``unknown_model``. That
refusal may only be a matter of seconds, so the client keeps these labels here and tries them
again with backoff for ``unknown_model_retry`` seconds, and at once after a prediction of
their model was delivered; then it drops them under ``unknown_model``. (Predictions get no
such grace: a 404 for them is final.) The sender goes on sending everything else meanwhile,
and held labels count toward the client's ``max_queue``.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.client._delivery import Backoff, Batch


@dataclass
class Held:
    """A batch of labels refused as ``unknown_model``, and when to try it again."""

    batch: Batch
    deadline: float  # the last try is at this time
    due: float
    attempt: int


class WaitingLabels:
    """Held label batches (not thread-safe: the client calls it under its lock)."""

    def __init__(self, patience: float, backoff: Backoff) -> None:
        self.patience = patience
        self.backoff = backoff
        self.events = 0  # labels held now
        self._held: list[Held] = []

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, batch: Batch, now: float, before: Held | None = None) -> bool:
        """Keep ``batch`` (refused again, if it was ``before``) for a later try; False when its
        time is up: the caller then drops it."""
        deadline = now + self.patience if before is None else before.deadline
        if now >= deadline:
            return False
        attempt = 0 if before is None else before.attempt + 1
        due = min(deadline, now + self.backoff.delay(attempt))
        self._held.append(Held(batch, deadline, due, attempt))
        self.events += len(batch.events)
        return True

    def due(self, now: float) -> list[Held]:
        """Take the batches whose time to be tried again has come."""
        ready = [h for h in self._held if h.due <= now]
        if ready:
            self._held = [h for h in self._held if h.due > now]
            self.events -= sum(len(h.batch.events) for h in ready)
        return ready

    def wake(self, model: str, now: float) -> None:
        """A prediction of ``model`` was delivered: its labels are worth trying now."""
        for held in self._held:
            if held.batch.model == model:
                held.due = min(held.due, now)

    def next_due(self) -> float | None:
        return min((h.due for h in self._held), default=None)

    def drain(self) -> list[Held]:
        """Take everything (the client is closing)."""
        return self.due(float("inf"))
