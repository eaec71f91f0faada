"""The snapshot file: a versioned header, then the state, msgpack-encoded and zlib-compressed.

Layout (docs/state-format.md)::

    b"MXSTATE\\n"           8 bytes: the magic (anything else is a foreign file)
    header length          4 bytes, big-endian unsigned
    header                 msgpack map (:class:`Header`)
    body                   zlib(msgpack(state)), ``header.body_bytes`` long, CRC-32 checked

Encoding writes the long lists of a state (:class:`~exporter.persist.plain.Rows`: the join's
buffers) a slice per call, so that no call holds the GIL for long. Decoding never runs code
(msgpack holds only numbers, strings, bytes, lists and maps) and refuses, with a
:class:`SnapshotRefused` saying why, a file that is foreign, truncated, corrupt, of another
format version, or written with settings that shape the state otherwise.
"""

from __future__ import annotations

import functools
import struct
import time
import zlib
from typing import Any, Final, Literal

import msgspec

from exporter.persist.plain import Deferred, Rows

MAGIC: Final = b"MXSTATE\n"
FORMAT: Final = "model-exporter-state"
#: Bumped whenever a snapshot of one version could be misread by another. (Version 1, never
#: released, held each buffer of the join as three lists: keys, arrivals, payloads.)
VERSION: Final = 2
_LENGTH = struct.Struct(">I")

#: Why a snapshot is refused.
Problem = Literal["foreign", "truncated", "corrupt", "older_format", "newer_format", "settings"]


class SnapshotRefused(Exception):
    """The file is not a snapshot this exporter can restore; ``problem`` says why."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem


class Header(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What a snapshot is, readable without decoding its body."""

    format: str
    version: int
    exporter_version: str
    written_at: float  # Unix time
    clean: bool  # written at shutdown, after the last request: provably the newest state
    settings: str  # digest of the settings that shape the state (persistence.settings_digest)
    body_bytes: int
    body_crc32: int


def encode(header: Header, body: bytes) -> bytes:
    """The file for a header and an already encoded body (:func:`encode_body`)."""
    return b"".join(encode_parts(header, [body]))


def encode_parts(header: Header, body: list[bytes]) -> list[bytes]:
    """The file as parts to write in order: the magic, the header, then the body's parts
    (as :func:`encode_compressed` gives them; never joined, so never copied)."""
    head = msgspec.msgpack.encode(header)
    return [MAGIC + _LENGTH.pack(len(head)) + head, *body]


def encode_body(state: dict[str, Any], level: int = 1) -> bytes:
    """The compressed body of a state: :func:`compress` of :func:`encode_state`."""
    return compress(encode_state(state), level)


def encode_state(state: dict[str, Any]) -> bytes:
    """A state, msgpack-encoded.

    msgpack holds the GIL while it encodes. The arrays are bytes (a copy), and
    :class:`~exporter.persist.plain.Rows` are encoded a slice per call, about a millisecond
    each, with a pause of :data:`PAUSE` after each, in which a thread waiting for the GIL (a
    scrape) takes it: without the pause it would wait a switch interval (5 ms) every time it
    gave the GIL up, and an encoding that keeps the GIL busy for ~15 ms tripled a concurrent
    scrape's time."""
    return msgspec.msgpack.encode(state, enc_hook=_rows)


def encode_compressed(state: dict[str, Any], level: int = 1) -> list[bytes]:
    """The compressed body of ``state``, in parts (joined, they decompress to
    ``encode_state(state)``, byte for byte), without ever holding the whole encoded state:
    maps are walked here, and each :class:`~exporter.persist.plain.Deferred` item is made,
    encoded and compressed in turn, so that the memory a snapshot needs is the compressed body
    and one item's copy and encoding (``bench/worst_case.py --snapshot`` reports the peak)."""
    stream = zlib.compressobj(level)
    parts: list[bytes] = []

    def put(raw: bytes) -> None:
        compressed = stream.compress(raw)
        if compressed:
            parts.append(compressed)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            put(_header(value, 0x80, 0xDE, 0xDF))
            for key, item in value.items():
                put(msgspec.msgpack.encode(key))
                walk(item)
        elif isinstance(value, Deferred):
            put(_header(value, 0x90, 0xDC, 0xDD))
            for item in value.items():
                walk(item)
                del item
        else:
            put(msgspec.msgpack.encode(value, enc_hook=_rows))

    walk(state)
    parts.append(stream.flush())
    return parts


def _header(value: dict[str, Any] | Deferred, fix: int, short: int, long: int) -> bytes:
    """A msgpack map or array header (``fix``: the 4-bit form's tag, then the 16- and
    32-bit ones), as msgspec writes it."""
    n = len(value)
    if n < 16:
        return bytes([fix | n])
    if n < 2**16:
        return bytes([short]) + n.to_bytes(2, "big")
    return bytes([long]) + n.to_bytes(4, "big")


def compress(raw: bytes, level: int = 1) -> bytes:
    """zlib at ``level`` (1: most of the gain at a fraction of the cost); releases the GIL."""
    return zlib.compress(raw, level)


#: Seconds the encoder sleeps after each slice of rows (:func:`encode_state`).
PAUSE: Final = 0.0002


def _rows(value: Any) -> Any:
    """Rows as a list of their slices, each encoded by a call of its own (the encoder calls
    this for a value it cannot hold itself), and a Deferred list as its items; nothing else
    that msgpack cannot hold."""
    if isinstance(value, Deferred):
        return list(value.items())
    if not isinstance(value, Rows):
        raise TypeError(f"a state holds a {type(value).__name__}, which a snapshot cannot")
    parts = []
    for part in value.slices():
        parts.append(msgspec.Raw(msgspec.msgpack.encode(part)))
        time.sleep(PAUSE)
    return parts


def decode_header(data: bytes) -> tuple[Header, int]:
    """The header and the offset of the body; :class:`SnapshotRefused` if it is not one."""
    if not data.startswith(MAGIC):
        kind: Problem = "truncated" if MAGIC.startswith(data) else "foreign"
        raise SnapshotRefused(kind, "the file does not start as a model-exporter snapshot")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise SnapshotRefused("truncated", "the file ends inside its header")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if len(data) < start + length:
        raise SnapshotRefused("truncated", "the file ends inside its header")
    try:
        header = msgspec.msgpack.decode(data[start : start + length], type=Header)
    except msgspec.DecodeError as exc:
        raise SnapshotRefused("corrupt", f"its header does not decode ({exc})") from None
    if header.format != FORMAT:
        raise SnapshotRefused("foreign", f"its format is {header.format!r}, not {FORMAT!r}")
    if header.version != VERSION:
        problem: Problem = "older_format" if header.version < VERSION else "newer_format"
        raise SnapshotRefused(
            problem, f"it is format version {header.version}; this exporter reads {VERSION}"
        )
    return header, start + length


def decode(data: bytes, settings: str) -> tuple[Header, dict[str, Any]]:
    """Header and state of a snapshot written with the settings of digest ``settings``; the
    store's models are a :class:`~exporter.persist.plain.Deferred` list, each decoded when it
    is reached (their msgpack structure is checked here already, their values by the store)."""
    header, offset = decode_header(data)
    body = memoryview(data)[offset:]  # no copy of the body
    if len(body) < header.body_bytes:
        raise SnapshotRefused("truncated", f"its body has {len(body)} of {header.body_bytes} bytes")
    if len(body) > header.body_bytes or zlib.crc32(body) != header.body_crc32:
        raise SnapshotRefused("corrupt", "its body does not match its checksum")
    if header.settings != settings:
        raise SnapshotRefused(
            "settings",
            "it was written with other windows, buckets, sample, reference or join settings",
        )
    try:
        raw = zlib.decompress(body)
        del body
        parts = msgspec.msgpack.decode(raw, type=_Body)
    except (zlib.error, msgspec.DecodeError) as exc:
        raise SnapshotRefused("corrupt", f"its body does not decode ({exc})") from None
    store = parts.store
    state = {
        "store": {
            "models": Deferred([functools.partial(_decode_model, m) for m in store.models]),
            "last_uid": store.last_uid,
            "removals": store.removals,
        },
        "telemetry": parts.telemetry,
        "sequential": parts.sequential,
    }
    return header, state


class _StoreBody(msgspec.Struct):
    """The store's part of a body, each model left encoded (a view of the decoded bytes)."""

    models: list[msgspec.Raw]
    last_uid: int
    removals: dict[str, Any]


class _Body(msgspec.Struct):
    """A body's top level (:func:`decode`): models are decoded one at a time, as the store
    rebuilds them, so that a restore never holds every model's decoded values at once."""

    store: _StoreBody
    telemetry: dict[str, Any]
    sequential: dict[str, Any]


def _decode_model(raw: msgspec.Raw) -> Any:
    try:
        return msgspec.msgpack.decode(raw)
    except msgspec.DecodeError as exc:
        raise SnapshotRefused("corrupt", f"a model does not decode ({exc})") from None
