"""Who renders the status pages: a child process (the default), or the server's own threads.

Why a process: a page is 20-60 ms of Python (charts, templates), and threads share one
interpreter lock. Rendered in the server's threads, even with no lock held and giving way to
rendering scrapes between charts, a page reloaded back to back took ``/metrics`` p99 from 12 to
41-96 ms (bench/ui.py); a 1 ms GIL switch interval did not help. In a child process the server
only takes the page's snapshots and pickles them (a few ms); the rendering holds the child's
interpreter, not the server's.

:class:`ProcessRenderer` owns one child (:mod:`exporter.ui.child`), started by the first page
as a fresh interpreter: nothing inherited from the server's threads, and the server's
``__main__`` not imported again. Pages are rendered one at a time; at most
:data:`MAX_WAITING` wait for their turn (the rest are refused as busy: every waiting page
holds a thread of the server's pool, which scrapes need). A child that dies is replaced
and the page tried once more; one that takes longer than ``ui.render_timeout`` is killed and
replaced, and the page fails. The child exits when the server closes its pipe, and within a
second of the server's death otherwise (it watches its parent). It runs at a lower scheduling
priority (nice +10): on a machine with few cores, a page reloaded back to back would otherwise
take a core the server's scrapes want. :class:`InlineRenderer` renders in the calling thread
(``ui.render_process: false``), yielding to scrapes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Protocol

from exporter.errors import ExporterError
from exporter.ui.jobs import PageJob, render

log = logging.getLogger("exporter.ui")

#: Pages waiting for the child at most; more are refused (:class:`PagesBusy`).
MAX_WAITING = 8
#: How long a new child may take to start (import numpy, SciPy, Jinja2) before it is killed.
START_TIMEOUT = 60.0
#: The directory holding this ``exporter`` package: the child imports the same one.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: The child's first lines: this package importable (a source checkout, say) without putting a
#: directory already on the path (site-packages) ahead of the standard library.
_BOOT = (
    "import sys\n"
    "root = sys.argv[1]\n"
    "if root not in sys.path:\n"
    "    sys.path.insert(0, root)\n"
    "from exporter.ui.child import main\n"
    "main(sys.argv[2:])\n"
)


class PagesBusy(ExporterError):
    """:data:`MAX_WAITING` pages are already waiting to be rendered."""

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} pages are already waiting to be rendered")
        self.waiting = waiting


class PageFailed(ExporterError):
    """The page could not be rendered: the renderer raised (``cause`` its traceback), took
    longer than the timeout, or died twice."""

    def __init__(self, why: str, cause: str | None = None) -> None:
        super().__init__(why if cause is None else f"{why}\n{cause}")
        self.why = why
        self.cause = cause


class PageRenderer(Protocol):
    def start(self) -> None: ...

    def render(self, job: PageJob) -> str: ...

    def close(self) -> None: ...


class InlineRenderer:
    """Renders in the calling thread; ``pause`` is called between charts and chunks."""

    def __init__(self, pause: Callable[[], None] | None = None) -> None:
        self._pause = pause

    def render(self, job: PageJob) -> str:
        return render(job, self._pause)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class _ChildGone(Exception):
    """The child died, or could not be reached."""


class _Child:
    """One rendering process (exporter/ui/child.py) and the server's ends of its two pipes."""

    def __init__(self) -> None:
        theirs_in, to_child = os.pipe()
        from_child, theirs_out = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-P",  # not the working directory first on the child's path
                    "-c",
                    _BOOT,
                    str(_PACKAGE_ROOT),
                    str(theirs_in),
                    str(theirs_out),
                    str(os.getpid()),
                ],
                pass_fds=(theirs_in, theirs_out),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            for fd in (to_child, theirs_in, theirs_out, from_child):
                os.close(fd)
            raise _ChildGone(f"the page renderer could not start ({exc!r})") from None
        os.close(theirs_in)
        os.close(theirs_out)
        self.send = Connection(to_child, readable=False)
        self.receive = Connection(from_child, writable=False)
        if not self.receive.poll(START_TIMEOUT):
            self.stop()
            raise _ChildGone(f"the page renderer did not start within {START_TIMEOUT:.0f} s")
        try:
            self._answer()  # "ready"
        except _ChildGone:  # it died starting (its error is on the server's stderr)
            self.stop()
            raise

    def _answer(self) -> tuple[bool, str]:
        try:
            ok, payload = self.receive.recv()
        except (EOFError, OSError) as exc:
            raise _ChildGone(f"the page renderer exited ({exc!r})") from None
        return bool(ok), str(payload)

    def render(self, job: PageJob, timeout: float) -> str:
        try:
            self.send.send(job)
        except OSError as exc:
            raise _ChildGone(f"the page renderer is gone ({exc!r})") from None
        try:
            answered = self.receive.poll(timeout)
        except OSError as exc:  # closed by close(), from another thread
            raise _ChildGone(f"the page renderer is gone ({exc!r})") from None
        if not answered:
            self.kill()
            raise PageFailed(f"the page took longer than ui.render_timeout ({timeout:g} s)")
        ok, payload = self._answer()
        if not ok:
            raise PageFailed("rendering the page failed", payload)
        return payload

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Close the pipes (the child exits on its own), killing it if it does not."""
        self.send.close()
        self.receive.close()
        try:
            self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5.0)

    def kill(self) -> None:
        """End it now (it may be busy, and would not see its pipe close)."""
        self.process.kill()
        self.process.wait()
        self.send.close()
        self.receive.close()

    @property
    def pid(self) -> int:
        return self.process.pid


class ProcessRenderer:
    """Renders the pages in one child process (see the module's docstring)."""

    def __init__(self, timeout: float, *, max_waiting: int = MAX_WAITING) -> None:
        self._timeout = timeout
        self._max_waiting = max_waiting
        self._turn = threading.Lock()  # one page in the child at a time
        self._slots = threading.BoundedSemaphore(max_waiting + 1)  # + the one rendering
        self._child: _Child | None = None
        self._closed = False

    def start(self) -> None:
        """Take pages again after :meth:`close` (an app's lifespan may start again, as in
        tests); the child itself starts with the first page."""
        self._closed = False

    def render(self, job: PageJob) -> str:
        if not self._slots.acquire(blocking=False):
            raise PagesBusy(self._max_waiting)
        try:
            # A page waits for its turn no longer than it may render.
            if not self._turn.acquire(timeout=self._timeout):
                raise PagesBusy(self._max_waiting)
            try:
                return self._render(job)
            finally:
                self._turn.release()
        finally:
            self._slots.release()

    def _render(self, job: PageJob) -> str:
        for attempt in (1, 2):
            if self._closed:
                raise PageFailed("the exporter is stopping")
            try:
                if self._child is None:
                    self._child = _Child()
                return self._child.render(job, self._timeout)
            except _ChildGone as exc:
                self._drop()
                if attempt == 2:
                    raise PageFailed(str(exc)) from None
                log.warning("%s; starting another", exc)
            except PageFailed:
                if self._child is not None and not self._child.alive:
                    self._drop()
                raise
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.stop()

    @property
    def child_pid(self) -> int | None:
        """The child's process id, None before the first page (for tests and logs)."""
        child = self._child
        return None if child is None else child.pid

    def close(self) -> None:
        """End the child at once, without waiting for the page it may be rendering (which
        then fails, as do the pages waiting): the server is stopping, and its shutdown
        snapshot must not wait behind pages. Pages fail until :meth:`start`."""
        self._closed = True
        child, self._child = self._child, None
        if child is not None:
            child.kill()
