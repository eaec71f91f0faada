"""Process-level tuning applied by ``model-exporter serve`` (never by ``create_app``).

* glibc ``malloc``: by default it returns freed memory at the top of the heap to the kernel as
  soon as 128 KiB are free, and serves blocks above a (dynamic) threshold with ``mmap``. The
  drift computation allocates and frees arrays of a few hundred KiB per feature, so every
  allocation was paying page faults again: the merge step of the KS test took 640 us per
  feature instead of 170 us. Keeping freed memory (up to ``TRIM_THRESHOLD``) for reuse fixes it;
  memory stays bounded by the peak working set, which the limits already bound.
* ``gc.freeze()`` after start-up moves the ~80k objects of numpy, scipy and FastAPI out of the
  collector's reach: full collections over them (~40 ms, holding the GIL) were most of the
  ``/metrics`` p99.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger("exporter.runtime")

# mallopt() parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 * 2**20
MMAP_THRESHOLD = 32 * 2**20


def tune_malloc() -> bool:
    """Keep freed heap memory for reuse (glibc only); returns whether it applied."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    ok = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1) and ok
    if not ok:
        log.warning("mallopt refused the malloc tuning; drift computations will be slower")
    return ok


def freeze_startup_heap() -> None:
    """Exclude everything allocated so far from future garbage-collection passes."""
    gc.collect()
    gc.freeze()
