from __future__ import annotations

import pytest

from exporter.join import PendingBuffer


def test_ttl_expiry_returns_only_old_entries_in_order() -> None:
    buf: PendingBuffer[str] = PendingBuffer(ttl=10.0, capacity=100)
    for i in range(5):
        buf.add(f"id{i}", float(i), f"p{i}")
    assert buf.expire(12.0) == ["p0", "p1", "p2"]  # arrived at 0, 1, 2: 10 s or more ago
    assert len(buf) == 2
    assert "id3" in buf and "id0" not in buf


def test_capacity_evicts_oldest_first() -> None:
    buf: PendingBuffer[int] = PendingBuffer(ttl=100.0, capacity=3)
    evicted = [buf.add(f"k{i}", float(i), i) for i in range(5)]
    assert evicted == [[], [], [], [0], [1]]
    assert list(buf) == ["k2", "k3", "k4"]


def test_pop_joins_once() -> None:
    buf: PendingBuffer[int] = PendingBuffer(ttl=100.0, capacity=3)
    buf.add("a", 0.0, 1)
    assert buf.pop("a") == 1
    assert buf.pop("a") is None
    assert len(buf) == 0


@pytest.mark.parametrize(("ttl", "capacity"), [(0, 1), (-1, 1), (1, 0)])
def test_invalid_parameters(ttl: float, capacity: int) -> None:
    with pytest.raises(ValueError):
        PendingBuffer(ttl=ttl, capacity=capacity)
