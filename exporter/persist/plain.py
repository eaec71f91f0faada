"""Plain values for the owners' ``to_state()``: numbers, strings, bytes, lists and dicts.

Nothing in a snapshot needs pickle: a numpy array is its dtype, its shape and its raw
little-endian bytes (:func:`pack`), read back by :func:`unpack`, which accepts only the dtypes
the exporter stores and checks that the bytes fit the shape. Any malformed value raises
:class:`StateError`, so a foreign or corrupt snapshot is refused, never half-read.

Big buffers of small immutable values (the join's waiting predictions and joined ids, 100,000
entries each by default) are :class:`Rows`: their owner copies them under its lock as a list
of references to its entries (C speed, ~1 ms per 100,000), and the snapshot's encoder, outside
every lock, writes them :data:`SLICE` rows per call, giving the GIL up between two. Encoding
holds the GIL, so a buffer is never encoded in one call (~10 ms for a full join): a scrape
running meanwhile gets its turn every millisecond or so. They are saved as a list of slices,
read back by :func:`rows`. The models of a store are :class:`Deferred`: each is copied
only when the encoder reaches it.

Pure numpy: no msgspec, no HTTP, no Prometheus.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: A snapshot's plain value (what msgpack can hold).
State = dict[str, Any]

#: The dtypes a snapshot may hold: little-endian, fixed size.
DTYPES = {"<f8": np.dtype("<f8"), "<i8": np.dtype("<i8")}

#: Rows encoded per call (:class:`Rows`): ~0.5 ms for 16,384 waiting predictions.
SLICE = 16_384


class StateError(ValueError):
    """A snapshot (or a part of it) is not what this version of the exporter writes."""


class Rows:
    """A long sequence of plain values in a state (numbers, strings, tuples of them), to be
    encoded a slice at a time; saved as a list of lists (the slices, tuples as lists).

    The sequence is the owner's copy, taken under its lock, of values that never change
    (tuples, numbers, strings): it may be encoded later, outside the lock.
    """

    __slots__ = ("items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def slices(self) -> Iterator[Sequence[Any]]:
        """The values, :data:`SLICE` at a time."""
        items = self.items
        return (items[start : start + SLICE] for start in range(0, len(items), SLICE))


class Deferred:
    """A list in a state whose items are made one at a time, when the encoder reaches them:
    the snapshot of each model, copied under its lock just before it is encoded and dropped
    after, so that a snapshot never holds the copies of every model at once; and, restoring,
    the models decoded one at a time as the store rebuilds them. An item may be None (a model
    removed meanwhile): readers skip those. Saved as a plain list; iterating makes the items."""

    __slots__ = ("makers",)

    def __init__(self, makers: Sequence[Callable[[], Any]]) -> None:
        self.makers = makers

    def __len__(self) -> int:
        return len(self.makers)

    def items(self) -> Iterator[Any]:
        return (make() for make in self.makers)

    def __iter__(self) -> Iterator[Any]:
        return self.items()


def rows(value: object, count: int) -> list[Any]:
    """The ``count`` values saved as :class:`Rows`, in order (decoded, tuples are lists; or the
    rows themselves, for a state copied in memory); :class:`StateError` otherwise."""
    if isinstance(value, Rows):
        value = [list(value.items)]
    if not isinstance(value, list) or not all(isinstance(part, list) for part in value):
        raise StateError("expected rows: a list of slices")
    out = list(itertools.chain.from_iterable(value))
    if len(out) != count:
        raise StateError(f"{len(out)} rows saved where {count} belong")
    return out


def settle(value: Any) -> Any:
    """``value`` as the encoder writes it, in memory: every :class:`Rows` becomes its list of
    slices (dicts and lists copied on the way down, the rest as it is).

    >>> settle({"a": [Rows([(1, 2.0), (2, 0.5)])]})
    {'a': [[[(1, 2.0), (2, 0.5)]]]}
    """
    if isinstance(value, Rows):
        return [list(part) for part in value.slices()]
    if isinstance(value, Deferred):
        return [settle(item) for item in value.items()]
    if isinstance(value, dict):
        return {k: settle(v) for k, v in value.items()}
    if isinstance(value, list):
        return [settle(v) for v in value]
    return value


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
