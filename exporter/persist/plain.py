"""Plain values for the owners' ``to_state()``: numbers, strings, bytes, lists and dicts.

Nothing in a snapshot needs pickle: a numpy array is its dtype, its shape and its raw
little-endian bytes (:func:`pack`), read back by :func:`unpack`, which accepts only the dtypes
the exporter stores and checks that the bytes fit the shape. Any malformed value raises
:class:`StateError`, so a foreign or corrupt snapshot is refused, never half-read.

Pure numpy: no msgspec, no HTTP, no Prometheus.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

#: A snapshot's plain value (what msgpack can hold).
State = dict[str, Any]

#: The dtypes a snapshot may hold: little-endian, fixed size.
DTYPES = {"<f8": np.dtype("<f8"), "<i8": np.dtype("<i8")}


class StateError(ValueError):
    """A snapshot (or a part of it) is not what this version of the exporter writes."""


def pack(array: npt.NDArray[Any]) -> State:
    """An array as ``{"dtype", "shape", "data"}`` (raw little-endian bytes).

    >>> unpack(pack(np.arange(6.0).reshape(2, 3))).tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    kind = "<f8" if array.dtype.kind == "f" else "<i8"
    data = np.ascontiguousarray(array, dtype=DTYPES[kind])
    return {"dtype": kind, "shape": list(array.shape), "data": data.tobytes()}


def unpack(state: object) -> npt.NDArray[Any]:
    """The array :func:`pack` gave (a fresh, writable copy); :class:`StateError` if malformed."""
    if not isinstance(state, dict):
        raise StateError(f"expected an array, got {type(state).__name__}")
    dtype = DTYPES.get(state.get("dtype"))  # type: ignore[arg-type]  # checked: None if not str
    shape, data = state.get("shape"), state.get("data")
    if dtype is None or not isinstance(shape, list) or not isinstance(data, bytes):
        raise StateError("an array needs a known dtype, a shape and its bytes")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise StateError(f"bad array shape {shape!r}")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
        raise StateError(f"array of shape {shape} does not match its {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def ints(value: object) -> list[int]:
    """A list of ints; :class:`StateError` otherwise."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise StateError("expected a list of integers")
    return value


def str_ints(value: object) -> dict[str, int]:
    """A mapping of names to ints; :class:`StateError` otherwise."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise StateError("expected a mapping of names to integers")
    return dict(value)
