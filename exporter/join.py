"""Joining predictions and ground-truth labels that arrive at different times.

Both sides wait in bounded, insertion-ordered buffers with a time-to-live (:class:`PendingBuffer`):

* a prediction waits for its label for ``prediction_ttl`` seconds;
* a label that arrives before its prediction (a race between two senders) waits ``label_ttl``.

Entries leave by being joined, by expiring, or, when a buffer is full, by eviction of the oldest;
the caller counts every departure other than a join. Ids already joined are remembered in a
separate bounded buffer for the same TTL, so a repeated label or a retried prediction is recognised
as a duplicate rather than counted twice. Pure Python: no HTTP, no Prometheus.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class PendingBuffer(Generic[T]):
    """Insertion-ordered map ``id -> payload``, bounded in size and in age.

    Arrival times must not decrease (the caller passes a monotonic clock), so the oldest entry is
    always first and expiry costs O(expired). An ``OrderedDict``, not a ``dict``: finding the
    first entry of a plain dict after many deletions from its front scans the deleted slots
    (O(n) per eviction, which halved ingest throughput once the buffer was full).
    """

    def __init__(self, ttl: float, capacity: int) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.ttl = float(ttl)
        self.capacity = int(capacity)
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def add(self, key: str, arrival: float, payload: T) -> list[T]:
        """Insert or replace an entry; returns the payloads evicted to make room, oldest first."""
        evicted: list[T] = []
        entries = self._entries
        if key not in entries:
            while len(entries) >= self.capacity:
                evicted.append(entries.popitem(last=False)[1][1])
        entries[key] = (arrival, payload)
        return evicted

    def add_many(self, keys: Sequence[str], arrival: float, payloads: Sequence[T]) -> list[T]:
        """Insert new keys (not already present) in bulk; returns the evicted payloads."""
        entries = self._entries
        evicted = [
            entries.popitem(last=False)[1][1]
            for _ in range(min(len(entries), len(entries) + len(keys) - self.capacity))
        ]
        entries.update(zip(keys, ((arrival, p) for p in payloads), strict=True))
        while len(entries) > self.capacity:  # a batch larger than the whole buffer
            evicted.append(entries.popitem(last=False)[1][1])
        return evicted

    def known(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that are in the buffer."""
        return self._entries.keys() & keys

    def pop(self, key: str) -> T | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def expire(self, now: float) -> list[T]:
        """Drop entries that arrived ``ttl`` or more seconds before ``now``; returns them."""
        expired: list[T] = []
        limit = now - self.ttl
        entries = self._entries
        while entries:
            arrival, payload = entries[next(iter(entries))]
            if arrival > limit:
                break
            entries.popitem(last=False)
            expired.append(payload)
        return expired

    def items(self) -> Iterator[tuple[str, T]]:
        for key, (_, payload) in self._entries.items():
            yield key, payload
