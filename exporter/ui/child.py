"""The page renderer's process: :func:`main` with ``READ_FD WRITE_FD PARENT_PID``.

Started by :class:`exporter.ui.process.ProcessRenderer` as a fresh interpreter (not through
``multiprocessing``, which would import the server's ``__main__`` again: a user's own script
embedding the app, unguarded, would run twice). It receives pickled page jobs on ``READ_FD``
and answers ``(True, html)``, or ``(False, traceback)`` when rendering failed, on ``WRITE_FD``,
after a first ``(True, "ready")``. It exits when its pipe closes, and within a second when its
parent is gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

from exporter.ui.jobs import render

#: The child runs this much nicer than the server: a page can wait, a scrape should not.
NICENESS = 10


def serve(receive: Connection, send: Connection, parent: int) -> None:
    """Render each job received until the pipe closes or the parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    send.send((True, "ready"))
    while True:
        try:
            job = receive.recv()
        except (EOFError, OSError):
            return
        except Exception:  # a job that does not unpickle here: the pipe itself is fine
            answer = (False, traceback.format_exc())
        else:
            try:
                answer = (True, render(job))
            except Exception:
                answer = (False, traceback.format_exc())
        try:
            send.send(answer)
        except OSError:
            return


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    with contextlib.suppress(OSError):
        os.nice(NICENESS)  # where cores are few, the server's scrapes and ingest go first
    read_fd, write_fd, parent = (int(a) for a in argv)
    serve(Connection(read_fd, writable=False), Connection(write_fd, readable=False), parent)


if __name__ == "__main__":
    main(sys.argv[1:])
