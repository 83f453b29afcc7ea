"""Both channel layers: a client frame that does not fit a full queue becomes an EVENTS_MISSED
marker at its tail, counted, never a silent drop (docs/protocol-limits.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fileshare.layers.memory_layer import ConciergeMemoryLayer
from fileshare.layers.redis_layer import ConciergeRedisLayer
from fileshare.ws.relay import FRAME
from tests.support.server import REDIS, require


def frame(i: int) -> dict[str, Any]:
    return {"type": FRAME, "text": str(i)}


async def drain(layer: Any, channel: str, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        return [await layer.receive(channel) for _ in range(count)]


def summary(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] if m["type"] == FRAME else f"missed {m['count']}" for m in messages]


async def test_memory_layer_group_frames_beyond_capacity_become_one_counted_marker_after_the_queued_ones() -> None:
    layer = ConciergeMemoryLayer(capacity=3)
    slow = await layer.new_channel()
    await layer.group_add("clients", slow)
    for i in range(10):
        await layer.group_send("clients", frame(i))
    assert summary(await drain(layer, slow, 4)) == ["0", "1", "2", "missed 7"]
    await layer.group_send("clients", frame(10))  # room again: queued as usual
    assert summary(await drain(layer, slow, 1)) == ["10"]


async def test_memory_layer_send_missed_counts_into_the_marker_at_the_tail() -> None:
    layer = ConciergeMemoryLayer(capacity=2)
    slow = await layer.new_channel()
    await layer.group_add("clients", slow)
    for i in range(3):
        await layer.group_send("clients", frame(i))
    await layer.send_missed(slow)
    assert summary(await drain(layer, slow, 3)) == ["0", "1", "missed 2"]


async def test_memory_layer_other_group_messages_to_a_full_channel_stay_best_effort() -> None:
    layer = ConciergeMemoryLayer(capacity=1)
    slow = await layer.new_channel()
    await layer.group_add("dash", slow)
    await layer.group_send("dash", {"type": "fileshare.dashboard", "n": 1})
    await layer.group_send("dash", {"type": "fileshare.dashboard", "n": 2})
    assert [m["n"] for m in await drain(layer, slow, 1)] == [1]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await layer.receive(slow)


@pytest.fixture
async def redis_pair() -> AsyncIterator[tuple[ConciergeRedisLayer, ConciergeRedisLayer]]:
    """A sending and a receiving "process" sharing one Redis under a fresh prefix."""
    require(REDIS, "Redis")
    config = {
        "hosts": [{"address": f"redis://{REDIS[0]}:{REDIS[1]}/0", "socket_timeout": None}],
        "prefix": f"t{uuid.uuid4().hex[:8]}",
        "capacity": 3,
    }
    sender, receiver = ConciergeRedisLayer(**config), ConciergeRedisLayer(**config)
    yield sender, receiver
    await receiver.flush()
    await sender.close_pools()
    await receiver.close_pools()


@pytest.mark.cluster
async def test_redis_layer_group_frames_beyond_capacity_become_one_counted_marker(
    redis_pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = redis_pair
    slow = await receiver.new_channel()
    await receiver.group_add("clients", slow)
    first = await drain_after(receiver, slow, lambda: sender.group_send("clients", frame(0)))
    assert summary(first) == ["0"]  # the pump runs
    for i in range(1, 11):
        await sender.group_send("clients", frame(i))
    await handed_out(receiver, slow, lambda queue: queue[-1][1].get("count") == 7)
    assert summary(await drain(receiver, slow, 4)) == ["1", "2", "3", "missed 7"]


@pytest.mark.cluster
async def test_redis_layer_send_missed_to_another_process_reaches_its_consumer(
    redis_pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = redis_pair
    slow = await receiver.new_channel()
    await receiver.group_add("clients", slow)
    first = await drain_after(receiver, slow, lambda: sender.group_send("clients", frame(0)))
    assert summary(first) == ["0"]
    for i in range(1, 4):
        await sender.send(slow, frame(i))
    await sender.send_missed(slow)  # one place beyond the capacity
    await handed_out(receiver, slow, lambda queue: len(queue) == 4)
    assert summary(await drain(receiver, slow, 4)) == ["1", "2", "3", "missed 1"]


async def handed_out(layer: ConciergeRedisLayer, channel: str, done: Any) -> None:
    """Wait until the receiving process's pump has put what was sent into ``channel``'s local queue."""
    async with asyncio.timeout(10):
        while not ((queue := layer._queues.get(channel)) and done(queue)):
            await asyncio.sleep(0.02)


async def drain_after(layer: Any, channel: str, act: Any) -> list[dict[str, Any]]:
    """Start receiving on ``channel`` (which starts the process's pump), then ``act``."""
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)
    await act()
    async with asyncio.timeout(5):
        return [await receiving]
