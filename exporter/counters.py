"""Cumulative counters: what Prometheus can ``increase()`` and sum across replicas.

One plain dataclass per owner: :class:`ModelCounters` for what a model counts as a whole (labels
received, duplicates, join departures of labels, feature anomalies), :class:`VersionCounters`
for each version (predictions, joined labels, outcomes, errors, label delays, join departures of
predictions, events that fell in no window). They only ever grow; :meth:`copy` gives a reader
its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from exporter.persist.plain import State, pack, str_ints, unpack
from exporter.typedefs import FloatArray, IntArray

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


def _departures() -> dict[str, int]:
    return {"ttl": 0, "capacity": 0}


def _kinds() -> dict[str, int]:
    return {"prediction": 0, "label": 0}


def _excluded() -> dict[str, int]:
    return {"negative": 0, "beyond_ttl": 0}


@dataclass
class ModelCounters:
    labels_received: int = 0
    labels_expired: dict[str, int] = field(default_factory=_departures)
    duplicate_predictions: int = 0
    duplicate_labels: int = 0
    type_mismatches: dict[str, int] = field(default_factory=dict)  # feature -> values
    categories_pooled: dict[str, int] = field(default_factory=dict)  # feature -> values

    def copy(self) -> ModelCounters:
        return replace(
            self,
            labels_expired=dict(self.labels_expired),
            type_mismatches=dict(self.type_mismatches),
            categories_pooled=dict(self.categories_pooled),
        )

    def to_state(self) -> State:
        return {
            "labels_received": self.labels_received,
            "labels_expired": dict(self.labels_expired),
            "duplicate_predictions": self.duplicate_predictions,
            "duplicate_labels": self.duplicate_labels,
            "type_mismatches": dict(self.type_mismatches),
            "categories_pooled": dict(self.categories_pooled),
        }

    @classmethod
    def from_state(cls, state: State) -> ModelCounters:
        return cls(
            labels_received=int(state["labels_received"]),
            labels_expired=str_ints(state["labels_expired"]),
            duplicate_predictions=int(state["duplicate_predictions"]),
            duplicate_labels=int(state["duplicate_labels"]),
            type_mismatches=str_ints(state["type_mismatches"]),
            categories_pooled=str_ints(state["categories_pooled"]),
        )


@dataclass
class VersionCounters:
    predictions: int = 0
    labels: int = 0  # joined to a prediction of this version
    expired: dict[str, int] = field(default_factory=_departures)  # waiting predictions dropped
    outcomes: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    error_count: int = 0
    abs_error_sum: float = 0.0
    sq_error_sum: float = 0.0
    delay_counts: IntArray = field(
        default_factory=lambda: np.zeros(len(LABEL_DELAY_BUCKETS) + 1, dtype=np.int64)
    )
    delay_sum: float = 0.0
    #: Delays kept out of the histogram: ``negative`` (the label's time is before the
    #: prediction's) or ``beyond_ttl`` (longer than join.prediction_ttl).
    delays_excluded: dict[str, int] = field(default_factory=_excluded)
    #: Events older than every window when they arrived (by prediction or label time).
    outside_windows: dict[str, int] = field(default_factory=_kinds)
    #: Joined outcomes with a score (exporter.score_window), and scores that could not be used:
    #: a binary model's score joined after the model turned multiclass.
    scored: int = 0
    scores_unusable: int = 0

    def count_outcomes(self, actual: IntArray, predicted: IntArray, classes: int) -> None:
        """Add (true class, predicted class) pairs to the confusion counts."""
        k = max(classes, self.outcomes.shape[0])
        if self.outcomes.shape[0] < k:
            grown = np.zeros((k, k), dtype=np.int64)
            old = self.outcomes.shape[0]
            grown[:old, :old] = self.outcomes
            self.outcomes = grown
        self.outcomes += np.bincount(actual * k + predicted, minlength=k * k).reshape(k, k)

    def count_errors(self, errors: FloatArray) -> None:
        """Add regression errors (prediction - truth)."""
        self.error_count += errors.shape[0]
        self.abs_error_sum += float(np.sum(np.abs(errors)))
        self.sq_error_sum += float(np.sum(errors * errors))

    def count_delays(self, delays: FloatArray, ttl: float) -> None:
        """Add label delays (seconds from prediction to label) to the histogram, except those
        below 0 or above ``ttl``, which are only counted in :attr:`delays_excluded`.

        Neither is a time a label took: a prediction waits at most ``ttl`` for its label, so
        a longer delay comes from event times far from arrival (a replay), and a negative one
        from a label timed before its prediction (sent early, or clocks apart).
        """
        negative = delays < 0
        beyond = delays > ttl
        if negative.any() or beyond.any():
            self.delays_excluded["negative"] += int(np.count_nonzero(negative))
            self.delays_excluded["beyond_ttl"] += int(np.count_nonzero(beyond))
            delays = delays[~(negative | beyond)]
        self.delay_counts += np.bincount(
            np.searchsorted(LABEL_DELAY_BUCKETS, delays, side="left"),
            minlength=len(LABEL_DELAY_BUCKETS) + 1,
        )
        self.delay_sum += float(delays.sum())

    def copy(self) -> VersionCounters:
        return replace(
            self,
            expired=dict(self.expired),
            outcomes=self.outcomes.copy(),
            delay_counts=self.delay_counts.copy(),
            delays_excluded=dict(self.delays_excluded),
            outside_windows=dict(self.outside_windows),
        )

    def to_state(self) -> State:
        return {
            "predictions": self.predictions,
            "labels": self.labels,
            "expired": dict(self.expired),
            "outcomes": pack(self.outcomes),
            "error_count": self.error_count,
            "abs_error_sum": self.abs_error_sum,
            "sq_error_sum": self.sq_error_sum,
            "delay_counts": pack(self.delay_counts),
            "delay_sum": self.delay_sum,
            "delays_excluded": dict(self.delays_excluded),
            "outside_windows": dict(self.outside_windows),
            "scored": self.scored,
            "scores_unusable": self.scores_unusable,
        }

    @classmethod
    def from_state(cls, state: State) -> VersionCounters:
        outcomes, delays = unpack(state["outcomes"]), unpack(state["delay_counts"])
        if outcomes.ndim != 2 or delays.shape != (len(LABEL_DELAY_BUCKETS) + 1,):
            raise ValueError("saved outcome or delay counts have the wrong shape")
        return cls(
            predictions=int(state["predictions"]),
            labels=int(state["labels"]),
            expired=str_ints(state["expired"]),
            outcomes=outcomes,
            error_count=int(state["error_count"]),
            abs_error_sum=float(state["abs_error_sum"]),
            sq_error_sum=float(state["sq_error_sum"]),
            delay_counts=delays,
            delay_sum=float(state["delay_sum"]),
            delays_excluded=str_ints(state["delays_excluded"]),
            outside_windows=str_ints(state["outside_windows"]),
            scored=int(state.get("scored", 0)),
            scores_unusable=int(state.get("scores_unusable", 0)),
        )
