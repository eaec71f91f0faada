"""One model version's state: its windows, counters, references and first-events builders.

A :class:`VersionState` records what happened to its own predictions: rows into its sample
windows (by prediction time), joined outcomes into its quality windows and label samples (by
label time), and everything cumulative into its :class:`~exporter.counters.VersionCounters`.
It knows nothing of ids or of the join, which the model owns. Pure numpy.

An event older than every window (a replayed log) is accepted and counted like any other, but
no window holds it: the windows drop what is older than their oldest bucket on arrival. It is
counted in ``outside_windows``, so that a replay that misses the windows shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from exporter.concept_watch import ConceptWatch
from exporter.config import Settings
from exporter.counters import VersionCounters
from exporter.errors import Reason, RejectedInput
from exporter.estimate_window import EstimateCounts, EstimateWindow
from exporter.persist.plain import State
from exporter.probabilities import Score, decode_vector
from exporter.reference import Reference, ReferenceBuilder, TargetReference
from exporter.score_window import ScoreWindow, scored
from exporter.snapshot import ErrorSums, WindowCounts
from exporter.stats.concept_drift import ConceptDriftSettings
from exporter.typedefs import BoolArray, FloatArray, IntArray, Task
from exporter.window import QualityWindow, Reservoirs, SampleWindow, TimeBuckets


class VersionState:
    """Windows, references and counters of one model version.

    ``uid`` is unique within the model, for as long as the model lives: the join refers to
    versions by it, and drift results are keyed by it, so a version replaced by a new one of
    the same name never inherits the old one's results.
    """

    def __init__(
        self,
        uid: int,
        name: str,
        settings: Settings,
        *,
        task: Task | None,
        rolling: bool,
        now: float,
        concept: ConceptDriftSettings | None = None,
    ) -> None:
        self.uid = uid
        self.name = name
        self.created = now
        self.last_activity = now
        regression = task == "regression"
        history = 2 if rolling else 1
        size = settings.drift.sample_size
        windows = list(zip(settings.window_labels, settings.windows, strict=True))
        buckets = settings.window_buckets
        self.quality = {lbl: QualityWindow(w, buckets, regression=regression) for lbl, w in windows}
        #: Rows by prediction time: column 0 the prediction (class index or value), then features.
        self.samples = {
            lbl: SampleWindow(w, buckets, size, seed=i, history=history)
            for i, (lbl, w) in enumerate(windows)
        }
        #: Joined labels (class index or value) by label time.
        self.label_samples = {
            lbl: SampleWindow(w, buckets, size, seed=100 + i, history=history)
            for i, (lbl, w) in enumerate(windows)
        }
        self.first_rows = ReferenceBuilder(settings.drift.reference_size)
        self.first_labels = ReferenceBuilder(settings.drift.reference_size)
        self.uploaded: Reference | None = None  # a reference uploaded for this version
        self.first_events: Reference | None = None  # built from first_rows once complete
        self.first_label_reference: TargetReference | None = None  # from first_labels, likewise
        self.counters = VersionCounters()
        #: Longer label delays are kept out of the delay histogram (see count_delays).
        self.max_delay = settings.join.prediction_ttl
        #: Bumped by every change to the samples or the reference: the drift worker's cue.
        self.samples_revision = 0
        #: The concept-drift detector's settings (None: off), and its watch once outcomes come.
        self.concept_settings = concept
        self.concept: ConceptWatch | None = None
        #: Scored outcomes per window (exporter.score_window), from the first scored outcome.
        self.scores: dict[str, ScoreWindow] | None = None
        #: The label-free estimate's expected confusion per window, by prediction time, and
        #: (``estimate_checks``) of the labeled ones by label time, with their realised one.
        self.estimates: dict[str, EstimateWindow] | None = None
        self.estimate_checks: dict[str, EstimateWindow] | None = None
        self._windows = windows
        self._buckets = buckets
        self._quality_settings = settings.quality

    def to_state(self) -> State:
        """Copies of the windows, counters, builders and the version's own references."""
        first_labels = self.first_label_reference
        return {
            "uid": self.uid,
            "name": self.name,
            "created": self.created,
            "last_activity": self.last_activity,
            "quality": {label: w.to_state() for label, w in self.quality.items()},
            "samples": {label: w.to_state() for label, w in self.samples.items()},
            "label_samples": {label: w.to_state() for label, w in self.label_samples.items()},
            "first_rows": self.first_rows.to_state(),
            "first_labels": self.first_labels.to_state(),
            "uploaded": None if self.uploaded is None else self.uploaded.to_state(),
            "first_events": None if self.first_events is None else self.first_events.to_state(),
            "first_label_reference": None if first_labels is None else first_labels.to_state(),
            "counters": self.counters.to_state(),
            "samples_revision": self.samples_revision,
            "concept": None if self.concept is None else self.concept.to_state(),
            "scores": None if self.scores is None else self._scores_state(self.scores),
            "estimates": _windows_state(self.estimates),
            "estimate_checks": _windows_state(self.estimate_checks),
        }

    def _scores_state(self, scores: dict[str, ScoreWindow]) -> State:
        q = self._quality_settings
        return {
            "rank_bins": q.rank_bins,
            "calibration_bins": q.calibration_bins,
            "max_exact_scores": q.max_exact_scores,
            "windows": {label: w.to_state() for label, w in scores.items()},
        }

    def _load_scores(self, state: State | None) -> None:
        """Score windows as saved; saved with other bins than configured, they start afresh
        (like a concept-drift detector with other parameters)."""
        q = self._quality_settings
        if state is None or (state["rank_bins"], state["calibration_bins"]) != (
            q.rank_bins,
            q.calibration_bins,
        ):
            return
        windows = dict(self._windows)
        if set(state["windows"]) != set(windows):
            raise ValueError("saved score windows do not match the configured windows")
        self.scores = {
            label: ScoreWindow.from_state(
                state["windows"][label],
                seconds,
                self._buckets,
                rank_bins=q.rank_bins,
                calibration_bins=q.calibration_bins,
                exact_capacity=q.max_exact_scores,
            )
            for label, seconds in windows.items()
        }

    @classmethod
    def from_state(
        cls,
        state: State,
        settings: Settings,
        *,
        task: Task | None,
        rolling: bool,
        concept: ConceptDriftSettings | None = None,
    ) -> VersionState:
        """A version as saved; ``settings`` must shape its windows as they were saved. Its
        concept-drift detector is restored if it ran with ``concept``, else starts afresh."""
        v = cls(
            int(state["uid"]),
            state["name"],
            settings,
            task=task,
            rolling=rolling,
            now=float(state["created"]),
            concept=concept,
        )
        v.last_activity = float(state["last_activity"])
        history = 2 if rolling else 1
        size = settings.drift.sample_size
        buckets = settings.window_buckets
        windows = dict(zip(settings.window_labels, settings.windows, strict=True))
        if set(state["quality"]) != set(windows):
            raise ValueError(f"windows saved: {sorted(state['quality'])}, configured: {windows}")
        for label, seconds in windows.items():
            v.quality[label] = QualityWindow.from_state(state["quality"][label], seconds, buckets)
            for into, key in ((v.samples, "samples"), (v.label_samples, "label_samples")):
                into[label] = SampleWindow.from_state(
                    state[key][label], seconds, buckets, size, history=history
                )
        v.first_rows = ReferenceBuilder.from_state(state["first_rows"])
        v.first_labels = ReferenceBuilder.from_state(state["first_labels"])
        v.uploaded = _reference(state["uploaded"])
        v.first_events = _reference(state["first_events"])
        saved_labels = state["first_label_reference"]
        v.first_label_reference = (
            None if saved_labels is None else TargetReference.from_state(saved_labels)
        )
        v.counters = VersionCounters.from_state(state["counters"])
        v.samples_revision = int(state["samples_revision"])
        saved_concept = state.get("concept")
        if saved_concept is not None and concept is not None:
            v.concept = ConceptWatch.from_state(saved_concept, concept)
        v._load_scores(state.get("scores"))
        v.estimates = _windows_of(state.get("estimates"), windows, buckets)
        v.estimate_checks = _windows_of(state.get("estimate_checks"), windows, buckets)
        return v

    def set_task(self, task: Task) -> None:
        """The model's task became known (the version was created by a reference upload)."""
        for window in self.quality.values():
            window.regression = task == "regression"

    def record_predictions(
        self, times: FloatArray, rows: FloatArray, now: float, *, collect_first: bool
    ) -> None:
        """Rows of new (not duplicate) predictions; ``collect_first``: also feed the
        first-events builder."""
        for window in self.samples.values():
            window.add(times, rows, now)
        if collect_first:
            self.first_rows.add(rows)
        self.counters.predictions += rows.shape[0]
        outside = _outside(times, [w.time for w in self.samples.values()], now)
        self.counters.outside_windows["prediction"] += outside
        self.last_activity = now
        self.samples_revision += 1

    def record_outcomes(
        self,
        *,
        label_times: FloatArray,
        prediction_times: FloatArray,
        actual: FloatArray,
        predicted: FloatArray,
        task: Task,
        classes: int,
        now: float,
        scores: list[Score] | None = None,
        positive: int | None = None,
    ) -> None:
        """Joined (truth, prediction) pairs: quality windows, label samples and counters, and
        the score windows for those with a score (``positive``: a binary model's positive
        class index)."""
        counters = self.counters
        counters.labels += actual.shape[0]
        truth = actual.reshape(-1, 1)
        for sample in self.label_samples.values():
            sample.add(label_times, truth, now)
        self.first_labels.add(truth)
        counters.count_delays(label_times - prediction_times, self.max_delay)
        outside = _outside(label_times, [w.time for w in self.quality.values()], now)
        counters.outside_windows["label"] += outside
        if task == "regression":
            errors = predicted - actual
            counters.count_errors(errors)
            for window in self.quality.values():
                window.add_errors(label_times, errors, now)
            stream = np.abs(errors)
        else:
            true_idx = actual.astype(np.int64)
            pred_idx = predicted.astype(np.int64)
            counters.count_outcomes(true_idx, pred_idx, classes)
            for window in self.quality.values():
                window.add_outcomes(label_times, true_idx, pred_idx, now)
            stream = (true_idx != pred_idx).astype(np.float64)
            if scores is not None:
                self._record_scores(label_times, true_idx, scores, task, positive, now)
        watch = self._concept_watch(task)
        if watch is not None:
            watch.add(stream, label_times)
        self.last_activity = now
        self.samples_revision += 1

    def _record_scores(
        self,
        label_times: FloatArray,
        truth: IntArray,
        scores: list[Score],
        task: Task,
        positive: int | None,
        now: float,
    ) -> None:
        """Scored outcomes into the score windows. A binary model's scores are floats, a
        multiclass one's bytes; a float scored while the model was binary that joins after it
        turned multiclass (a third class came) has no probability for the other classes and
        is counted in ``counters.scores_unusable``."""
        binary = task == "binary"
        kind = float if binary else bytes
        rows = [i for i, score in enumerate(scores) if type(score) is kind]
        self.counters.scores_unusable += sum(1 for s in scores if s is not None) - len(rows)
        if not rows:
            return
        windows = self._score_windows(binary)
        picked = np.asarray(rows)
        if binary:
            matrix = np.array([scores[i] for i in rows], dtype=np.float64).reshape(-1, 1)
            truth = (truth[picked] == positive).astype(np.int64)
        else:
            blobs: list[bytes] = [scores[i] for i in rows]  # type: ignore[misc]
            size = len(blobs[0])
            if all(len(b) == size for b in blobs):  # the usual case: as many classes each
                matrix = np.frombuffer(b"".join(blobs)).reshape(len(rows), -1)
            else:  # classes appeared in between: narrower vectors get zeros
                vectors = [decode_vector(b) for b in blobs]
                matrix = np.zeros((len(rows), max(v.shape[0] for v in vectors)))
                for j, vector in enumerate(vectors):
                    matrix[j, : vector.shape[0]] = vector
            truth = truth[picked]
        times = label_times[picked]
        q = self._quality_settings
        outcomes = scored(
            matrix,
            truth,
            binary=binary,
            rank_bins=q.rank_bins,
            calibration_bins=q.calibration_bins,
        )
        for window in windows.values():
            window.add_scored(times, outcomes, now)
        self.counters.scored += len(rows)

    def record_estimates(
        self,
        times: FloatArray,
        probabilities: FloatArray,
        predicted: IntArray,
        now: float,
        *,
        binary: bool,
        truth: IntArray | None = None,
    ) -> None:
        """Calibrated predictions (exporter.estimation.Estimator.calibrated) into the estimate
        windows: by prediction time, or with ``truth`` (joined outcomes) by label time."""
        labeled = truth is not None
        windows = self.estimate_checks if labeled else self.estimates
        if windows is None or next(iter(windows.values())).binary != binary:
            windows = {
                label: EstimateWindow(seconds, self._buckets, binary=binary, labeled=labeled)
                for label, seconds in self._windows
            }
            if labeled:
                self.estimate_checks = windows
            else:
                self.estimates = windows
        for window in windows.values():
            window.add(times, probabilities, predicted, now, truth)

    def _score_windows(self, binary: bool) -> dict[str, ScoreWindow]:
        """The score windows, made at the first scored outcome, and made again (empty) if the
        model turned from binary to multiclass."""
        if self.scores is None or next(iter(self.scores.values())).binary != binary:
            q = self._quality_settings
            self.scores = {
                label: ScoreWindow(
                    seconds,
                    self._buckets,
                    binary=binary,
                    rank_bins=q.rank_bins,
                    calibration_bins=q.calibration_bins,
                    exact_capacity=q.max_exact_scores,
                )
                for label, seconds in self._windows
            }
        return self.scores

    def _concept_watch(self, task: Task) -> ConceptWatch | None:
        """The version's concept-drift watch, made at its first outcome (the task is known
        then). DDM takes 0/1 errors: on a regression (task inferred, so the configuration
        could not refuse it) there is none, and the log said so when the task was set."""
        settings = self.concept_settings
        if self.concept is None and settings is not None:
            if task == "regression" and settings.kind == "ddm":
                return None
            self.concept = ConceptWatch(settings)
        return self.concept

    def set_reference(self, reference: Reference | None) -> None:
        self.uploaded = reference
        self.samples_revision += 1

    def window_counts(self, now: float, task: Task | None) -> tuple[WindowCounts, ...]:
        out = []
        for label, quality in self.quality.items():
            predictions = self.samples[label].events(now)
            if task == "regression":
                count, abs_sum, sq_sum = quality.error_sums(now)
                out.append(
                    WindowCounts(label, predictions, count, None, ErrorSums(count, abs_sum, sq_sum))
                )
            else:
                confusion = quality.confusion(now)
                # Windows of the other kind (the model turned multiclass since) are stale:
                # they are made again at the next scored outcome, and not shown meanwhile.
                binary = task == "binary"
                scored = None
                if self.scores is not None and self.scores[label].binary == binary:
                    scored = self.scores[label].counts(now)
                estimate = _current(self.estimates, label, binary, now)
                check = _current(self.estimate_checks, label, binary, now)
                out.append(
                    WindowCounts(
                        label,
                        predictions,
                        int(confusion.sum()),
                        confusion,
                        None,
                        scored,
                        estimate,
                        check,
                    )
                )
        return tuple(out)

    def content_key(self, now: float) -> tuple[int, ...]:
        """What time alone can change of the windows: the live buckets holding data (without
        new data, a window's counts change exactly when one of them leaves)."""
        return tuple(
            n
            for label, quality in self.quality.items()
            for n in (self.samples[label].live_buckets(now), quality.live_buckets(now))
        )

    def drift_key(self, window: str, now: float) -> tuple[int, ...]:
        """Equal keys: the same sample and reference. A window's sample changes when events or
        labels arrive (the revision) and when a bucket holding events leaves it (its counts
        drop), so a quiet window is not recomputed at every bucket. With a rolling reference
        the window before it is the reference: its counts are part of the key too."""
        rows, labels = self.samples[window], self.label_samples[window]
        key: tuple[int, ...] = (
            self.uid,
            self.samples_revision,
            rows.events(now),
            labels.events(now),
        )
        if rows.history > 1:
            key += (rows.events(now, 1), labels.events(now, 1))
        return key

    def reservoirs(
        self, window: str, now: float, windows_back: int = 0
    ) -> tuple[Reservoirs, Reservoirs]:
        """Copies of a window's row and label reservoirs."""
        return (
            self.samples[window].snapshot(now, windows_back),
            self.label_samples[window].snapshot(now, windows_back),
        )


def _current(
    windows: dict[str, EstimateWindow] | None, label: str, binary: bool, now: float
) -> EstimateCounts | None:
    """The counts of one estimate window, if the windows are of the model's present kind."""
    if windows is None or windows[label].binary != binary:
        return None
    return windows[label].counts(now)


def _windows_state(windows: dict[str, EstimateWindow] | None) -> State | None:
    return None if windows is None else {label: w.to_state() for label, w in windows.items()}


def _windows_of(
    state: State | None, windows: dict[str, float], buckets: int
) -> dict[str, EstimateWindow] | None:
    if state is None:
        return None
    if set(state) != set(windows):
        raise ValueError("saved estimate windows do not match the configured windows")
    return {
        label: EstimateWindow.from_state(state[label], seconds, buckets)
        for label, seconds in windows.items()
    }


def _reference(state: State | None) -> Reference | None:
    return None if state is None else Reference.from_state(state)


def _outside(times: FloatArray, spans: list[TimeBuckets], now: float) -> int:
    """How many of ``times`` are older than the oldest bucket of every window at ``now`` (a
    time after ``now`` counts as ``now``, as in the windows: inside)."""
    if not times.shape[0] or any(_inside(times.min(keepdims=True), s, now)[0] for s in spans):
        return 0  # the usual case: the oldest event is in a window, so every event is
    inside = np.zeros(times.shape[0], dtype=np.bool_)
    for span in spans:
        inside |= _inside(times, span, now)
    return int(times.shape[0] - np.count_nonzero(inside))


def _inside(times: FloatArray, span: TimeBuckets, now: float) -> BoolArray:
    return span.bucket_of(times) > span.current(now) - span.count


class Versions:
    """The versions of one model, by name and by uid, within ``limits.max_versions_per_model``.

    When the limit is reached, a new version replaces the one idle the longest, provided it
    has been idle for longer than the longest window and nothing of it waits in the join.
    A version named in :attr:`pinned` (by a comparison) is never replaced.
    """

    def __init__(self, limit: int, idle_after: float) -> None:
        self.limit = limit
        self.idle_after = idle_after
        self._by_name: dict[str, VersionState] = {}
        self._by_uid: dict[int, VersionState] = {}
        self._last_uid = 0
        #: Names of versions exempt from replacement, idle expiry and deletion.
        self.pinned: set[str] = set()

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[VersionState]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> VersionState | None:
        return self._by_name.get(name)

    def by_uid(self, uid: int) -> VersionState | None:
        return self._by_uid.get(uid)

    def names(self) -> list[str]:
        return list(self._by_name)

    def slot(self, name: str, now: float, pending: Callable[[int], int], model: str) -> str | None:
        """Check that ``name`` fits; returns the name of the idle version it would replace.

        Raises :class:`~exporter.errors.RejectedInput` (``too_many_versions``) when none can go.
        """
        if name in self._by_name or len(self._by_name) < self.limit:
            return None
        candidates = [v for v in self._by_name.values() if v.name not in self.pinned]
        oldest = min(candidates, key=lambda v: v.last_activity, default=None)
        if (
            oldest is not None
            and oldest.last_activity <= now - self.idle_after
            and pending(oldest.uid) == 0
        ):
            return oldest.name
        names = ", ".join(sorted(self._by_name))
        raise RejectedInput(
            Reason.TOO_MANY_VERSIONS,
            f"model {model!r} already has {len(self._by_name)} active versions ({names}); "
            f"limits.max_versions_per_model is {self.limit}. A version idle for longer than the "
            "longest window with no pending labels is replaced automatically",
            field="model_version",
            value=name,
        )

    def to_state(self) -> State:
        """The versions (in order), the last uid given and the pinned names."""
        return {
            "versions": [v.to_state() for v in self._by_name.values()],
            "last_uid": self._last_uid,
            "pinned": sorted(self.pinned),
        }

    def load_state(
        self,
        state: State,
        settings: Settings,
        *,
        task: Task | None,
        rolling: bool,
        concept: ConceptDriftSettings | None = None,
    ) -> None:
        """Replace the versions by those saved."""
        self._by_name.clear()
        self._by_uid.clear()
        for saved in state["versions"]:
            self.add(
                VersionState.from_state(
                    saved, settings, task=task, rolling=rolling, concept=concept
                )
            )
        self._last_uid = max([int(state["last_uid"]), *self._by_uid])
        self.pinned = set(state["pinned"])

    def add(self, version: VersionState) -> None:
        self._by_name[version.name] = version
        self._by_uid[version.uid] = version

    def next_uid(self) -> int:
        self._last_uid += 1
        return self._last_uid

    def retire(self, name: str) -> VersionState:
        version = self._by_name.pop(name)
        del self._by_uid[version.uid]
        return version
