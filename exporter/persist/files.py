"""Writing a snapshot file atomically, and moving a bad one out of the way.

:func:`write_atomic` writes a temporary file in the same folder, fsyncs it, renames it over
the target and fsyncs the folder: a reader (the next start) sees the old file or the new
one, whole, never a mix, even after a crash or a power cut.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path


def write_atomic(path: Path, data: bytes | Sequence[bytes]) -> None:
    """Replace ``path`` by a file holding ``data`` (or its parts, in order, never joined in
    memory), atomically and durably."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as out:
            for part in [data] if isinstance(data, bytes) else data:
                out.write(part)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_aside(path: Path, now: float | None = None) -> Path:
    """Rename ``path`` to ``<path>.corrupt-<UTC time>`` (kept for a post-mortem, never read
    again); returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    serial = 1
    while target.exists():
        serial += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{serial}")
    os.replace(path, target)
    sync_folder(path.parent)
    return target
