"""Scrapes first: a scrape renders while ingest waits at its next step.

Why: ``/metrics`` renders in a worker thread (never on the event loop), but ingest runs its
CPU-bound steps on the event loop, and both need the interpreter. Under sustained ingest the
render, ~3 ms of work with 10 models x 20 features cached, was time-sliced with ingest in 5 ms
GIL turns and took 12-25 ms, and its response then waited for the loop: ``/metrics`` p99 was
50-90 ms while the same render took 8 ms idle. Prometheus gives a scrape a timeout; a batch
of events can wait a few milliseconds. So while a scrape renders, ingest handlers wait before
their next CPU-bound step (the step already running finishes first), and the render has the
interpreter to itself. Ingest loses at most the render's time per scrape (a few ms every
scrape interval), and never more than :data:`MAX_WAIT` per step, so a slow (or stuck) render
cannot stall ingest; health checks and all I/O go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

#: The longest an ingest step waits for a rendering scrape before it goes ahead anyway.
MAX_WAIT = 0.05


class ScrapePriority:
    """Lets scrapes render without ingest competing for the interpreter.

    Used on the event loop only (the counter and the event are never touched by threads).
    """

    def __init__(self) -> None:
        self._scrapes = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def scrape(self, render: Callable[[], T]) -> T:
        """Run ``render`` in the thread pool while ingest waits."""
        self._scrapes += 1
        self._idle.clear()
        try:
            return await run_in_threadpool(render)
        finally:
            self._scrapes -= 1
            if not self._scrapes:
                self._idle.set()

    @property
    def rendering(self) -> bool:
        """A scrape is rendering now. Threads may read it (one attribute; a stale answer
        only makes a page wait a millisecond more or less)."""
        return not self._idle.is_set()

    def yield_to_scrapes(self) -> None:
        """For work in threads (the status pages): sleep, giving up the interpreter, while a
        scrape renders (at most MAX_WAIT), so that a page's long computation is not what a
        scrape waits behind."""
        deadline = time.monotonic() + MAX_WAIT
        while self.rendering and time.monotonic() < deadline:
            time.sleep(0.0005)

    async def ingest(self) -> None:
        """Wait until no scrape is rendering (at once when none is; at most MAX_WAIT)."""
        if not self._idle.is_set():
            # A slow render: after MAX_WAIT, ingest goes ahead alongside it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), MAX_WAIT)
