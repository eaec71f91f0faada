"""State that survives restarts: periodic and shutdown snapshots, restored at start.

With ``state.path`` set, a :class:`StateKeeper` saves the whole state every ``state.interval``
from a background thread (never the event loop), and once more at shutdown (the app's
lifespan end, after the server stopped taking requests); at start, before the app is ready, it
restores the newest snapshot. Each model is copied under its own lock as one consistent
picture (:meth:`~exporter.model.ModelState.to_state`: plain values, byte copies of the arrays,
and the join's buffers as arrays of references to their immutable entries), then encoded and
written outside every lock: ingest and scrapes wait at most for one model's copy (~10 ms for
a full join at 100,000 waiting predictions; 110 ms when its buffers were copied as lists of
plain values). Encoding holds the GIL, but in pieces of about a millisecond (the buffers are
encoded a slice at a time, :class:`~exporter.persist.plain.Rows`), and zlib, the write and
the fsync release it, so a scrape that runs meanwhile is barely slowed
(``python -m bench.state`` measures it). The file is written atomically
(:mod:`exporter.persist.files`) in the format of :mod:`exporter.persist.fileformat`
(docs/state-format.md).

What a snapshot holds: per model its schema, versions (windows, counters, samples, first-event
and first-label references), join buffers, references and comparison with its pairs; the
store's removal counts; the exporter's event counters; the sequential tracker's states. The
drift results are not saved: they are a pure function of the samples and references (the
worker seeds its draws from the window's key, which is restored), so the worker's first run
recomputes the same values.

Counters after a restart:

* the snapshot is *clean* (written at shutdown, after the last request): it is provably the
  newest state, and everything carries on, counters included;
* otherwise (the newest snapshot is a periodic one: the process was killed or crashed), the
  scrapes since it may have seen higher counts, and a counter that goes down reads as a reset
  anyway; so windows, joins, references and gauges are restored, and every counter restarts
  from zero (so do the counts since a comparison or a holdout reference started, and the
  sequential tests, which are fed them).

Right after a restore a periodic (not clean) snapshot is written, so that a crash before the
next one does not restore the clean snapshot's counters a second time.

A file that cannot be restored (foreign, truncated, corrupt, another format version, written
with settings that shape the state otherwise, or refused by an owner) is renamed
``<path>.corrupt-<time>``, logged as an error and counted, and the exporter starts clean.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from exporter import __version__
from exporter.config import Settings
from exporter.persist import fileformat
from exporter.persist.fileformat import Header, SnapshotRefused
from exporter.persist.files import move_aside, write_atomic
from exporter.sequential_tracker import SequentialTracker
from exporter.store import Store
from exporter.telemetry import Telemetry

log = logging.getLogger("exporter.state")

#: The file's name when ``state.path`` is a folder.
FILE_NAME = "state.mxs"


def state_file(path: Path) -> Path:
    """The snapshot file of ``state.path``: the path, or ``state.mxs`` in it if a folder."""
    return path / FILE_NAME if path.is_dir() else path


def settings_digest(settings: Settings) -> str:
    """What a snapshot must agree with to be restored: the settings that shape the state
    (windows and buckets, sample and reference sizes, the join's limits, the versions per
    model, the drift reference policies)."""
    shape = {
        "windows": settings.windows,
        "window_buckets": settings.window_buckets,
        "sample_size": settings.drift.sample_size,
        "reference_size": settings.drift.reference_size,
        "reference": settings.drift.reference,
        "join": settings.join.model_dump(),
        "max_versions_per_model": settings.limits.max_versions_per_model,
        "model_references": {name: spec.reference for name, spec in settings.models.items()},
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


_pause_lock = threading.Lock()
_pauses = 0  # collector_paused() blocks running now
_was_enabled = True  # whether the collector ran before the first of them


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile, and as it was after the last of such blocks
    running at once (the snapshot thread's and the restore's may overlap).

    Why: a snapshot copies the join's buffers as lists of 100,000 references, and a young
    list is walked element by element by every collection that runs while it lives, in
    whichever thread allocates (a scrape, ingest): ~15 ms of collections per snapshot of a
    full join, 40 ms a second with snapshots every 0.4 s. With the collector off from the
    copy until the lists are encoded and dropped, nothing walks them. At a restore, decoding
    creates a few small lists per join entry, and the collections they set off were 80 % of
    the decoding time of a full join (217 of 264 ms). Nothing either creates is garbage in a
    cycle; the collections deferred meanwhile run after."""
    global _pauses, _was_enabled
    with _pause_lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()


class StateKeeper:
    """Saves the state to ``settings.state.path`` and restores it from there."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        telemetry: Telemetry,
        tracker: SequentialTracker,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path = settings.state.path
        if path is None:
            raise ValueError("state.path is not set")
        self.path = state_file(path)
        self.interval = settings.state.interval
        self._digest = settings_digest(settings)
        self._store = store
        self._telemetry = telemetry
        self._tracker = tracker
        self._clock = clock
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- restore --------------------------------------------------------------------------------

    def restore(self) -> str:
        """Restore the snapshot, if there is one (see the module's docstring); returns the
        outcome, which is counted. Never raises: at worst the exporter starts clean."""
        outcome = self._restore()
        self._telemetry.count_restore(outcome)
        if outcome in ("restored", "restored_without_counters"):
            self.save(clean=False)
        return outcome

    def _restore(self) -> str:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.info("no state snapshot at %s: starting empty", self.path)
            return "none"
        except OSError as exc:
            log.error("cannot read the state snapshot %s (%s): starting empty", self.path, exc)
            return "failed"
        try:
            with collector_paused():
                header, state = fileformat.decode(data, self._digest)
                models = self._apply(header, state)
        except Exception as exc:  # a bad file must never stop the start: move it aside
            return self._move_aside(exc)
        age = self._clock() - header.written_at
        if header.clean:
            log.info(
                "restored %d models from the shutdown snapshot %s (%.0f s old)",
                len(models),
                self.path,
                age,
            )
            return "restored"
        log.warning(
            "restored %d models from the periodic snapshot %s (%.0f s old): the last stop was "
            "not clean, so counters restart from zero (windows, joins and references restored)",
            len(models),
            self.path,
            age,
        )
        return "restored_without_counters"

    def _apply(self, header: Header, state: dict[str, object]) -> list[str]:
        """Restore a decoded state; raises (changing nothing of the store) if it is malformed."""
        store_state, telemetry, tracker = state["store"], state["telemetry"], state["sequential"]
        assert isinstance(store_state, dict)
        assert isinstance(telemetry, dict)
        assert isinstance(tracker, dict)
        models = self._store.load_state(store_state, counters=header.clean)
        if header.clean:
            self._telemetry.load_state(telemetry)
            self._tracker.load_state(tracker)
        return models

    def _move_aside(self, exc: Exception) -> str:
        why = str(exc) if isinstance(exc, SnapshotRefused) else f"{type(exc).__name__}: {exc}"
        try:
            moved = move_aside(self.path, self._clock())
        except OSError as error:
            log.error(
                "the state snapshot %s cannot be restored (%s) nor moved aside (%s): starting "
                "empty; it will be overwritten by the next snapshot",
                self.path,
                why,
                error,
            )
            return "failed"
        log.error(
            "the state snapshot %s cannot be restored (%s): moved aside to %s; starting empty",
            self.path,
            why,
            moved.name,
        )
        return "moved_aside"

    # -- save -----------------------------------------------------------------------------------

    def save(self, *, clean: bool) -> bool:
        """Write a snapshot now (``clean``: at shutdown, after the last request); returns
        whether it was written. A failure is logged and counted, never raised."""
        with self._write_lock:  # one writer at a time: the periodic thread or the shutdown
            started = time.perf_counter()
            try:
                written_at = self._clock()
                with collector_paused():  # until the copies are encoded and dropped
                    state = {
                        "store": self._store.to_state(deferred=True),
                        "telemetry": self._telemetry.to_state(),
                        "sequential": self._tracker.to_state(),
                    }
                    body = fileformat.encode_compressed(state)
                    del state
                header = Header(
                    format=fileformat.FORMAT,
                    version=fileformat.VERSION,
                    exporter_version=__version__,
                    written_at=written_at,
                    clean=clean,
                    settings=self._digest,
                    body_bytes=sum(len(part) for part in body),
                    body_crc32=functools.reduce(lambda crc, part: zlib.crc32(part, crc), body, 0),
                )
                data = fileformat.encode_parts(header, body)
                del body
                write_atomic(self.path, data)
            except Exception:
                log.exception("writing the state snapshot %s failed", self.path)
                self._telemetry.count_snapshot_failure()
                return False
            duration = time.perf_counter() - started
            size = sum(len(part) for part in data)
            self._telemetry.count_snapshot(size, duration, written_at)
            log.debug("state snapshot: %d bytes in %.3f s", size, duration)
            return True

    # -- background -----------------------------------------------------------------------------

    def start(self) -> None:
        """Save every ``interval`` seconds from a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="state-snapshots", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then write the shutdown (clean) snapshot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.save(clean=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save(clean=False)
