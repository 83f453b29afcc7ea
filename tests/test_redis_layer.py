"""fileshare.layers.redis_layer against a real Redis: two layer objects stand for two processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from channels.exceptions import ChannelFull

from fileshare.layers.redis_layer import ConciergeRedisLayer
from tests.support.server import REDIS, require

pytestmark = pytest.mark.cluster

URL = f"redis://{REDIS[0]}:{REDIS[1]}/0"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[ConciergeRedisLayer, ConciergeRedisLayer]]:
    """A sending and a receiving "process" sharing one Redis under a fresh prefix."""
    require(REDIS, "Redis")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    config = {"hosts": [{"address": URL, "socket_timeout": None}], "prefix": prefix, "capacity": 5}
    sender, receiver = ConciergeRedisLayer(**config), ConciergeRedisLayer(**config)
    yield sender, receiver
    await receiver.flush()
    await sender.close_pools()


async def _counters(prefix: str) -> list[bytes]:
    client = aioredis.from_url(URL)
    try:
        return [key async for key in client.scan_iter(f"{prefix}depth:*")]
    finally:
        await client.aclose()


async def test_capacity_counts_one_channel_not_its_whole_process(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    slow, other = await receiver.new_channel(), await receiver.new_channel()
    for i in range(5):
        await sender.send(slow, {"type": "m", "i": i})
    with pytest.raises(ChannelFull):
        await sender.send(slow, {"type": "m", "i": 5})
    await sender.send(other, {"type": "m", "i": 0})  # same process, its own room
    assert (await receiver.receive(other))["i"] == 0
    assert [(await receiver.receive(slow))["i"] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_taking_messages_makes_room_again(pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer]) -> None:
    sender, receiver = pair
    channel = await receiver.new_channel()
    sent = 0
    for _ in range(40):
        try:
            await sender.send(channel, {"type": "m", "i": sent})
            sent += 1
        except ChannelFull:
            await receiver.receive(channel)
            await asyncio.sleep(0.05)
    assert sent > 5


async def test_messages_handed_over_without_waiting_arrive_in_order_exactly_those_accepted(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    channel = await receiver.new_channel()
    count = 2000
    received: list[int] = []

    async def read() -> None:
        while True:
            received.append((await receiver.receive(channel))["i"])

    reader = asyncio.create_task(read())
    futures = []
    for i in range(count):
        futures.append(sender.send_in_order(channel, {"type": "m", "i": i}))
        if i % 10 == 0:
            await asyncio.sleep(0)  # let the reader and the outbox run now and then
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    accepted = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert all(isinstance(o, ChannelFull) for o in outcomes if o is not None)
    for _ in range(100):
        if len(received) >= len(accepted):
            break
        await asyncio.sleep(0.05)
    reader.cancel()
    assert received == accepted, "every accepted message arrives once, in the order sent; no other does"
    assert len(accepted) >= 5


async def test_a_full_channel_refuses_a_message_sent_without_waiting(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    channel = await receiver.new_channel()
    futures = [sender.send_in_order(channel, {"type": "m", "i": i}) for i in range(8)]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert outcomes[:5] == [None] * 5
    assert all(isinstance(o, ChannelFull) for o in outcomes[5:])
    assert [(await receiver.receive(channel))["i"] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_a_broadcast_reaches_every_member_after_the_messages_sent_before_it(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    one, two = await receiver.new_channel(), await receiver.new_channel()
    await sender.group_add("everyone", one)
    await sender.group_add("everyone", two)
    sender.send_in_order(one, {"type": "m", "i": 1})
    await sender.group_send("everyone", {"type": "b"})
    assert [(await receiver.receive(one))["type"] for _ in range(2)] == ["m", "b"]
    assert (await receiver.receive(two))["type"] == "b"


async def test_messages_for_an_ended_consumer_are_dropped_and_release_their_count(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    channel = await receiver.new_channel()
    waiting = asyncio.create_task(receiver.receive(channel))
    await asyncio.sleep(0.1)
    waiting.cancel()  # the consumer ends, as channels does when a socket closes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for i in range(3):
        await sender.send(channel, {"type": "m", "i": i})
    for _ in range(50):
        await asyncio.sleep(0.05)
        if not await _counters(receiver.prefix):
            break
    assert await _counters(receiver.prefix) == [], "the counter is gone once the dropped messages are counted out"


async def test_a_taker_gets_what_arrives_while_nothing_waits_and_each_taken_message_frees_its_room(
    pair: tuple[ConciergeRedisLayer, ConciergeRedisLayer],
) -> None:
    sender, receiver = pair
    channel = await receiver.new_channel()
    taken: list[int] = []
    accepting = True

    def take(message: dict[str, object]) -> bool:
        if accepting:
            taken.append(int(message["i"]))  # type: ignore[call-overload]
        return accepting

    receiver.attach(channel, take)
    waiting = asyncio.create_task(receiver.receive(channel))  # a consumer waits, which starts the pump
    deadline = asyncio.get_running_loop().time() + 10
    for i in range(12):  # over the capacity of 5: only taken messages can make room
        while True:
            try:
                await sender.send(channel, {"type": "m", "i": i})
                break
            except ChannelFull:
                assert asyncio.get_running_loop().time() < deadline, f"no room after {taken}"
                await asyncio.sleep(0.01)
    while len(taken) < 12 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert taken == list(range(12)) and not waiting.done()
    accepting = False
    await sender.send(channel, {"type": "m", "i": 12})
    assert (await asyncio.wait_for(waiting, 5))["i"] == 12  # refused: the queue, as before
    receiver.detach(channel)
