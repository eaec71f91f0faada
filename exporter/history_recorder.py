"""What the history records, and the recorder that records it after each drift worker run.

The series (:data:`SERIES`) are the summary values ``/metrics`` exports, named as their
families without the ``model_`` prefix and labelled as there (without ``model``): quality per
average, traffic, the join's health, drift's count of drifted features, and the label delay.
Not every per-feature or per-class series: those are the scrape's (and Prometheus') to keep.

Who records, and when: :meth:`HistoryRecorder.record`, called by the drift worker after each
run (``drift.refresh_interval``, 5 s by default), never by ingest. Each call takes one snapshot
per model (:meth:`~exporter.model.ModelState.snapshot_if_changed`: an idle model costs no
copy), computes the values outside any lock with the functions the collectors use
(:mod:`exporter.views`), and records them in the current slot of the
:class:`~exporter.history.History`, replacing what an earlier run of the same slot recorded:
a slot holds the last value of its ``history.resolution``. A model whose snapshot and drift
results did not change since the last call in the same slot is not recorded again.

``label_delay_seconds_mean`` is the mean delay of the labels joined during the slot, from the
deltas of the delay histogram's sum and count (``model_label_delay_seconds_sum`` and
``_count``) since the last recording of the previous slot: what ``increase(_sum[1m]) /
increase(_count[1m])`` gives in Prometheus, and a chart can show a change of delay, which a
mean since the start would flatten. A slot in which no label joined has no value. A version's
first slot counts from the version's start (from the restored counters after a restart).

The recorder owns what it needs from one call to the next (each model's snapshot key, values
and delay sums), keyed by the model's uid: a model removed and registered again starts afresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from exporter.config import Settings
from exporter.drift_worker import DriftCache, DriftResult, WindowKey
from exporter.history import History, Labels, Row
from exporter.model import ModelState
from exporter.snapshot import ModelSnapshot
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.store import Store
from exporter.views import window_estimate, window_quality

log = logging.getLogger("exporter.history")

Scope = Literal["window", "version", "model"]

#: The averages of precision, recall and F1 (as ``/metrics``: binary only with a positive class).
AVERAGES: Final = ("binary", "macro", "weighted")


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One recorded series name: its scope (which labels it has) and whether its values are
    counts (whole numbers)."""

    name: str
    scope: Scope
    averaged: bool = False
    count: bool = False

    @property
    def per_scope(self) -> int:
        """Series of this name per (version, window), version or model."""
        return len(AVERAGES) if self.averaged else 1


#: Every series name the history records (reads list series by name, then labels).
SERIES: Final[tuple[SeriesInfo, ...]] = (
    SeriesInfo("accuracy", "window"),
    SeriesInfo("precision", "window", averaged=True),
    SeriesInfo("recall", "window", averaged=True),
    SeriesInfo("f1_score", "window", averaged=True),
    SeriesInfo("mean_absolute_error", "window"),
    SeriesInfo("root_mean_squared_error", "window"),
    SeriesInfo("roc_auc", "window"),
    SeriesInfo("estimated_accuracy", "window"),
    SeriesInfo("predictions", "window", count=True),
    SeriesInfo("labeled_predictions", "window", count=True),
    SeriesInfo("features_drifted", "window", count=True),
    SeriesInfo("predictions_total", "version", count=True),
    SeriesInfo("labels_total", "version", count=True),
    SeriesInfo("pending_predictions", "version", count=True),
    SeriesInfo("predictions_expired_total", "version", count=True),
    SeriesInfo("label_delay_seconds_mean", "version"),
    SeriesInfo("pending_labels", "model", count=True),
    SeriesInfo("labels_expired_total", "model", count=True),
)
SERIES_NAMES: Final = tuple(s.name for s in SERIES)
COUNT_SERIES: Final = frozenset(s.name for s in SERIES if s.count)


def series_bound(settings: Settings) -> int:
    """The most series one model can have: versions x (windows x per-window series +
    per-version series) + per-model series. A bound by construction (classes, features and
    traffic do not enter it), at the defaults 3 x (1 x 17 + 5) + 2 = 68.

    >>> series_bound(Settings())
    68
    """
    per: dict[Scope, int] = {"window": 0, "version": 0, "model": 0}
    for s in SERIES:
        per[s.scope] += s.per_scope
    versions = settings.limits.max_versions_per_model
    return versions * (len(settings.windows) * per["window"] + per["version"]) + per["model"]


def build_history(settings: Settings) -> History:
    """The history ``settings`` describe, bounded by the limits."""
    return History(
        resolution=settings.history.resolution,
        points=settings.history.points,
        max_models=settings.limits.max_models,
        max_series=series_bound(settings),
    )


def snapshot_rows(snapshot: ModelSnapshot, min_samples: int) -> list[Row]:
    """The values of a snapshot: quality, window counts, counters and the join's state.
    Those not defined (accuracy before ``min_samples`` labels, ...) are left out."""
    rows: list[Row] = []
    for v in snapshot.versions:
        version = (("model_version", v.name),)
        for counts in v.windows:
            key: Labels = (*version, ("window", counts.window))
            w = window_quality(counts, snapshot.positive_index, min_samples)
            rows.append(("predictions", key, w.predictions))
            rows.append(("labeled_predictions", key, w.labeled))
            s = w.scores
            if isinstance(s, ClassificationScores):
                rows.append(("accuracy", key, s.accuracy))
                for name, values in (("precision", s.precision), ("recall", s.recall)):
                    rows.extend((name, (*key, ("average", a)), x) for a, x in values.items())
                rows.extend(("f1_score", (*key, ("average", a)), x) for a, x in s.f1.items())
            elif isinstance(s, RegressionScores):
                rows.append(("mean_absolute_error", key, s.mean_absolute_error))
                rows.append(("root_mean_squared_error", key, s.root_mean_squared_error))
            q = w.probabilities
            if q is not None and q.roc_auc is not None:
                rows.append(("roc_auc", key, q.roc_auc.value))
            e = window_estimate(counts, min_samples)
            if e is not None and e.scores is not None:
                rows.append(("estimated_accuracy", key, e.scores.accuracy))
        c = v.counters
        rows.append(("predictions_total", version, c.predictions))
        rows.append(("labels_total", version, c.labels))
        rows.append(("pending_predictions", version, v.pending))
        rows.append(("predictions_expired_total", version, sum(c.expired.values())))
    rows.append(("pending_labels", (), snapshot.pending_labels))
    rows.append(("labels_expired_total", (), sum(snapshot.counters.labels_expired.values())))
    return rows


def drift_rows(windows: Sequence[WindowKey], results: Mapping[WindowKey, DriftResult]) -> list[Row]:
    """``features_drifted`` of each (version, window) with a cached drift result."""
    return [
        ("features_drifted", (("model_version", v), ("window", w)), r.scores.drifted)
        for v, w in windows
        if (r := results.get((v, w))) is not None
    ]


#: A version's label delays: (version uid, sum of delays, delays counted).
Delays = dict[str, tuple[int, float, int]]


def delay_rows(now: Delays, base: Delays) -> list[Row]:
    """``label_delay_seconds_mean`` of each version: the mean of the delays counted since
    ``base`` (zero for a version not in it, or another version of the same name).

    >>> for row in delay_rows({"v1": (1, 30.0, 4), "v2": (2, 5.0, 1)}, {"v1": (1, 10.0, 2)}):
    ...     print(row)
    ('label_delay_seconds_mean', (('model_version', 'v1'),), 10.0)
    ('label_delay_seconds_mean', (('model_version', 'v2'),), 5.0)
    """
    rows: list[Row] = []
    for version, (uid, total, count) in now.items():
        b_uid, b_total, b_count = base.get(version, (uid, 0.0, 0))
        if b_uid != uid:
            b_total, b_count = 0.0, 0
        if count > b_count:
            mean = max(total - b_total, 0.0) / (count - b_count)
            rows.append(("label_delay_seconds_mean", (("model_version", version),), mean))
    return rows


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the recorder recorded of a model last: from its snapshot (whose key it was), the
    slot, and the delay sums at the end of the previous slot (the current slot's base)."""

    uid: int
    key: tuple[object, ...]
    slot: int
    rows: tuple[Row, ...]
    windows: tuple[WindowKey, ...]
    versions: tuple[str, ...]
    delays: Delays
    base: Delays
    drift: tuple[tuple[str, str, int], ...]


class HistoryRecorder:
    """Records every model's summary values into ``history`` (see the module's docstring);
    :meth:`record` is called after each drift worker run, or by tests with their clock."""

    def __init__(self, store: Store, drift: DriftCache, history: History) -> None:
        self.history = history
        self._store = store
        self._drift = drift
        self._min_samples = store.settings.quality.min_samples
        self._lock = threading.Lock()  # one recording at a time: _seen is its state
        self._seen: dict[str, _Seen] = {}

    def record(self, now: float | None = None) -> None:
        """Record every model as of ``now`` (the store's clock by default)."""
        with self._lock, self.history.recording() as ticket:
            t = self._store.clock() if now is None else now
            models = self._store.models()
            for state in models:
                try:
                    self._record(state, t, ticket)
                except Exception:  # one bad model must not stop the others
                    log.exception("history recording failed for model=%s", state.name)
            names = {state.name for state in models}
            self.history.keep_models(names)
            for gone in [name for name in self._seen if name not in names]:
                del self._seen[gone]

    def _record(self, state: ModelState, t: float, ticket: int) -> None:
        seen = self._seen.get(state.name)
        snapshot = state.snapshot_if_changed(t, None if seen is None else seen.key)
        slot = self.history.slot(t)
        results = self._drift.results(state.name)
        if snapshot is None:
            assert seen is not None
            drift = _drift_serials(seen.windows, results)
            if slot == seen.slot and drift == seen.drift:
                return  # the slot holds these values already
            uid, key, rows = seen.uid, seen.key, seen.rows
            windows, versions, delays = seen.windows, seen.versions, seen.delays
        else:
            uid, key = snapshot.uid, snapshot.key
            rows = tuple(snapshot_rows(snapshot, self._min_samples))
            windows = tuple((v.name, c.window) for v in snapshot.versions for c in v.windows)
            versions = tuple(v.name for v in snapshot.versions)
            delays = {
                v.name: (v.uid, v.counters.delay_sum, int(v.counters.delay_counts.sum()))
                for v in snapshot.versions
            }
            drift = _drift_serials(windows, results)
        if seen is None or seen.uid != uid:
            base: Delays = {}
        else:
            base = seen.base if slot == seen.slot else seen.delays
        self.history.record(
            state.name,
            t,
            [*rows, *drift_rows(windows, results), *delay_rows(delays, base)],
            ticket,
        )
        if snapshot is not None:
            self.history.keep(state.name, versions)
        self._seen[state.name] = _Seen(uid, key, slot, rows, windows, versions, delays, base, drift)


def _drift_serials(
    windows: Sequence[WindowKey], results: Mapping[WindowKey, DriftResult]
) -> tuple[tuple[str, str, int], ...]:
    return tuple((v, w, r.serial) for v, w in windows if (r := results.get((v, w))) is not None)
