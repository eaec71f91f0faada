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

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class PendingBuffer(Generic[T]):
    """Insertion-ordered map ``id -> payload``, bounded in size and in age.

    Arrival times must not decrease (the caller passes a monotonic clock), so the oldest entry is
    always first and expiry costs O(expired).
    """

    def __init__(self, ttl: float, capacity: int) -> None:
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.ttl = float(ttl)
        self.capacity = int(capacity)
        self._entries: dict[str, tuple[float, T]] = {}

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
                evicted.append(entries.pop(next(iter(entries)))[1])
        entries[key] = (arrival, payload)
        return evicted

    def pop(self, key: str) -> T | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def expire(self, now: float) -> list[T]:
        """Drop entries that arrived ``ttl`` or more seconds before ``now``; returns them."""
        expired: list[T] = []
        limit = now - self.ttl
        entries = self._entries
        while entries:
            key = next(iter(entries))
            arrival, payload = entries[key]
            if arrival > limit:
                break
            del entries[key]
            expired.append(payload)
        return expired

    def items(self) -> Iterator[tuple[str, T]]:
        for key, (_, payload) in self._entries.items():
            yield key, payload
