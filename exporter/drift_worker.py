"""The drift worker: recomputes drift off the request path and owns the results.

Every ``drift.refresh_interval`` the worker takes a :class:`~exporter.snapshot.DriftSnapshot`
of each model (copies of the samples of the windows whose content changed since it last
looked), scores them with a :class:`~exporter.detector.DriftDetector` outside any lock, and
stores the results in its :class:`DriftCache`, keyed by (model, version, window). Nothing is
written back into the models; readers (collectors, status API) read the cache. Neither ingest
nor a scrape ever waits for a drift computation. The store tells the cache of every model and
version it removes (:meth:`DriftCache.forget`); a run that took its snapshot before the removal
has its results for it discarded, so a computation in flight never brings a removed model back.

Each run is also a look for the sequential comparison statistics: the worker owns the
:class:`~exporter.sequential_tracker.SequentialTracker` as it owns the cache (one writer).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from exporter.config import DriftSettings
from exporter.detector import DetectorSettings, DriftDetector, DriftScores
from exporter.ranked_windows import RankedWindows
from exporter.reference import reference_from_rows, target_from_column
from exporter.sequential_tracker import (
    SequentialTracker,
    baseline_tolerances,
    look_at_models,
    sequential_settings,
)
from exporter.snapshot import DriftInput, DriftSnapshot
from exporter.store import Store

log = logging.getLogger("exporter.drift")

#: The worker never polls faster than this, even with drift.refresh_interval 0.
MIN_REFRESH_SECONDS = 0.05

WindowKey = tuple[str, str]  # (version, window)
#: Told about every run: windows computed, windows failed, seconds (the exporter's telemetry).
RunObserver = Callable[[int, int, float], None]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one window against its reference, as the worker computed it."""

    computed_at: float
    serial: int  # unique per computation: tells a cached exposition the result changed
    window_events: int  # exact events in the window when computed
    window_sample: int  # rows of the uniform sample the tests used
    label_sample: int  # joined labels in the label sample
    reference_source: str | None
    scores: DriftScores


class DriftCache:
    """The latest drift result of every (model, version, window), with the key of the input it
    was computed from. Written by the drift worker only; read by anyone.

    Removals are ordered against computations by one counter: a run draws a :meth:`ticket`
    before it takes its snapshots, :meth:`forget` draws one when a model or version goes, and
    :meth:`put` refuses a result whose run's ticket is older than a removal of its model or
    version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[WindowKey, tuple[tuple[int, ...], DriftResult]]] = {}
        self._serials = itertools.count(1)
        #: (model, version or None for the whole model) -> the serial drawn at its removal.
        self._removed: dict[tuple[str, str | None], int] = {}

    def results(self, model: str) -> dict[WindowKey, DriftResult]:
        """The model's results by (version, window): a copy, safe to read without a lock."""
        with self._lock:
            entries = self._entries.get(model, {})
            return {key: result for key, (_, result) in entries.items()}

    def known(self, model: str) -> dict[WindowKey, tuple[int, ...]]:
        with self._lock:
            entries = self._entries.get(model, {})
            return {key: input_key for key, (input_key, _) in entries.items()}

    def next_serial(self) -> int:
        with self._lock:
            return next(self._serials)

    def ticket(self) -> int:
        """Drawn by a run before it takes its snapshots; passed to :meth:`put`."""
        return self.next_serial()

    def put(
        self,
        model: str,
        window: WindowKey,
        key: tuple[int, ...],
        result: DriftResult,
        ticket: int,
    ) -> None:
        """Store a result, unless its model or version was removed after ``ticket``."""
        with self._lock:
            removed = self._removed
            if ticket < max(removed.get((model, None), 0), removed.get((model, window[0]), 0)):
                return
            self._entries.setdefault(model, {})[window] = (key, result)

    def forget(self, model: str, version: str | None) -> None:
        """A model (``version`` None) or one of its versions was removed: drop its results,
        and refuse those computed from a snapshot taken before now."""
        with self._lock:
            self._removed[(model, version)] = next(self._serials)
            if version is None:
                self._entries.pop(model, None)
                return
            entries = self._entries.get(model, {})
            for key in [k for k in entries if k[0] == version]:
                del entries[key]

    def keep(self, model: str, versions: Collection[str]) -> None:
        """Forget the results of the model's versions that no longer exist."""
        with self._lock:
            entries = self._entries.get(model)
            if entries:
                for key in [k for k in entries if k[0] not in versions]:
                    del entries[key]

    def keep_models(self, models: Collection[str], ticket: int) -> None:
        """Forget the results of models that no longer exist, and the removals before the run
        of ``ticket`` (no computation from before it is in flight any more)."""
        with self._lock:
            for model in [m for m in self._entries if m not in models]:
                del self._entries[model]
            for removal in [r for r, serial in self._removed.items() if serial < ticket]:
                del self._removed[removal]


@dataclass
class RefreshStats:
    computed: int = 0
    failed: int = 0
    seconds: float = 0.0


def refresh(
    store: Store,
    cache: DriftCache,
    *,
    force: bool = False,
    executor: Executor | None = None,
    distributions: bool = True,
    ranked: RankedWindows | None = None,
) -> RefreshStats:
    """Recompute drift of every window whose sample or reference changed since the cache's
    result (every window with ``force``). ``ranked`` keeps the windows sampled whole sorted
    and ranked from one run to the next (:mod:`exporter.ranked_windows`)."""
    started = time.perf_counter()
    stats = RefreshStats()
    settings = store.settings.drift
    now = store.clock()
    ticket = cache.ticket()
    models = store.models()
    existing: set[tuple[str, str]] = set()  # (model, version)
    for state in models:
        snapshot = state.drift_snapshot(now, {} if force else cache.known(state.name))
        cache.keep(state.name, snapshot.versions)
        existing.update((state.name, version) for version in snapshot.versions)
        before = cache.results(state.name)
        for window in snapshot.windows:
            last = before.get((window.version, window.window))
            try:
                result = compute(
                    snapshot,
                    window,
                    settings,
                    now,
                    cache.next_serial(),
                    executor,
                    previous=last.scores if last is not None else None,
                    distributions=distributions,
                    ranked=ranked,
                )
            except Exception:  # one bad window must not stop the others
                log.exception(
                    "drift computation failed for model=%s version=%s window=%s",
                    snapshot.model,
                    window.version,
                    window.window,
                )
                stats.failed += 1
                continue
            cache.put(snapshot.model, (window.version, window.window), window.key, result, ticket)
            stats.computed += 1
    cache.keep_models({state.name for state in models}, ticket)
    if ranked is not None:
        ranked.keep(existing)
    stats.seconds = time.perf_counter() - started
    return stats


def compute(
    snapshot: DriftSnapshot,
    window: DriftInput,
    settings: DriftSettings,
    now: float,
    serial: int,
    executor: Executor | None = None,
    *,
    previous: DriftScores | None = None,
    distributions: bool = True,
    ranked: RankedWindows | None = None,
) -> DriftResult:
    """Drift of one window: a uniform sample of it, scored against its reference. ``previous``
    is the window's last result's verdict (what drifted then is held to ``release_alpha``);
    ``distributions`` False skips the status page's histograms; ``ranked`` (when the sample is
    the whole window) gives its numeric columns sorted and ranked from the run before."""
    # A seed from the window's key makes the sample, and so the exported value, reproducible
    # (crc32, not hash(): str hashes change from one process to the next).
    seed = zlib.crc32(repr((window.key, window.window)).encode())
    layout = snapshot.layout
    width = len(layout.names) + 1
    rows = window.rows.draw(settings.sample_size, width, seed=seed)
    labels = window.labels.draw(settings.sample_size, 1, seed=seed)
    reference, label_reference = window.reference, window.label_reference
    if window.previous is not None:  # a rolling reference: the window before this one
        previous_rows = window.previous[0].draw(settings.sample_size, width, seed=seed).rows
        previous_labels = window.previous[1].draw(settings.sample_size, 1, seed=seed).rows
        reference = (
            reference_from_rows(
                previous_rows,
                layout,
                source="previous_window",
                created=now,
                bins=settings.bins,
                max_categories=settings.max_categories,
            )
            if previous_rows.shape[0]
            else None
        )
        label_reference = (
            target_from_column(
                previous_labels[:, 0], layout.classes, settings.bins, settings.max_categories
            )
            if previous_labels.shape[0]
            else None
        )
    detector = DriftDetector(
        reference,
        layout,
        DetectorSettings.of(settings, distributions=distributions),
        label_reference=label_reference,
        executor=executor,
    )
    columns = None
    if ranked is not None:
        which = (snapshot.model, window.version, window.window)
        if window.previous is not None:  # a rolling reference: a new one at every look
            ranked.drop(which)
        else:
            names, values = detector.ranked_columns
            columns = ranked.ranked(which, window.rows, names, values, settings.sample_size)
        if columns is not None and columns.size != rows.rows.shape[0]:
            # Cannot happen while the versions tell the strata apart; if it ever did, this
            # look is computed in full and the window's ranked columns start afresh.
            log.warning("ranked columns of %s disagree with its sample: recomputed", which)
            ranked.drop(which)
            columns = None
    return DriftResult(
        computed_at=now,
        serial=serial,
        window_events=rows.events,
        window_sample=int(rows.rows.shape[0]),
        label_sample=int(labels.rows.shape[0]),
        reference_source=window.reference_source,
        scores=detector.score(rows.rows, labels.rows[:, 0], previous=previous, ranked=columns),
    )


class DriftWorker:
    """Background thread: recomputes drift of changed windows, expires join buffers, removes
    idle models (:meth:`~exporter.store.Store.expire_all`) and takes a look for the sequential
    comparison statistics (:func:`~exporter.sequential_tracker.look_at_models`).

    With ``drift.threads`` above 1 a small pool shares each computation (numpy's sorts release
    the GIL). The worker owns the :attr:`cache` of results and the :attr:`sequential` tracker.
    ``distributions`` False leaves out the status page's histograms (a backtest has no page).
    ``keep_ranked`` keeps windows sampled whole sorted and ranked between runs
    (:mod:`exporter.ranked_windows`): a backtest, which looks at every step, spends 7 ms a
    step on drift with it instead of 16 (``bench/backtest.py``); ``serve`` looks every
    ``drift.refresh_interval`` and saves the memory (up to four copies of a window's numeric
    columns) instead.
    """

    def __init__(
        self,
        store: Store,
        on_run: RunObserver | None = None,
        *,
        distributions: bool = True,
        keep_ranked: bool = False,
    ) -> None:
        settings = store.settings.drift
        self.cache = DriftCache()
        self.sequential = SequentialTracker(
            sequential_settings(store.settings.comparison.sequential),
            baseline_tolerances(store.settings.quality),
        )
        self._store = store
        self._on_run = on_run
        self._distributions = distributions
        self.ranked = RankedWindows() if keep_ranked else None
        #: Called after every run, in order, each on its own (the history recorder).
        self.after_run: list[Callable[[], None]] = []
        self._interval = max(settings.refresh_interval, MIN_REFRESH_SECONDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-worker", daemon=True)
        threads = settings.threads
        self._pool = (
            ThreadPoolExecutor(threads, thread_name_prefix="drift") if threads > 1 else None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run_once(self, *, force: bool = False) -> RefreshStats:
        self._store.expire_all()
        stats = refresh(
            self._store,
            self.cache,
            force=force,
            executor=self._pool,
            distributions=self._distributions,
            ranked=self.ranked,
        )
        look_at_models(self._store, self.sequential)
        for task in self.after_run:
            try:
                task()
            except Exception:  # the drift results stand; the failure is logged
                log.exception("%r after the drift run failed", task)
        if self._on_run is not None:
            self._on_run(stats.computed, stats.failed, stats.seconds)
        return stats

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:  # keep the worker alive; the failure is logged and counted
                log.exception("drift worker run failed")
                if self._on_run is not None:
                    self._on_run(0, 1, time.monotonic() - started)
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
