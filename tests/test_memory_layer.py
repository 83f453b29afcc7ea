"""fileshare.layers.memory_layer keeps channels' in-memory semantics at a lower cost."""

from __future__ import annotations

import pytest
from channels.exceptions import ChannelFull

from fileshare.layers import memory_layer
from fileshare.layers.memory_layer import ConciergeMemoryLayer


async def test_a_full_channel_refuses_a_send_and_a_group_send_skips_it() -> None:
    layer = ConciergeMemoryLayer(capacity=2)
    full, free = await layer.new_channel(), await layer.new_channel()
    for name in (full, free):
        await layer.group_add("everyone", name)
    await layer.send(full, {"type": "m", "i": 1})
    await layer.send(full, {"type": "m", "i": 2})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "m", "i": 3})
    await layer.group_send("everyone", {"type": "b"})
    assert [(await layer.receive(full))["i"] for _ in range(2)] == [1, 2]
    assert (await layer.receive(free))["type"] == "b"


async def test_each_receiver_gets_its_own_copy() -> None:
    layer = ConciergeMemoryLayer()
    one, two = await layer.new_channel(), await layer.new_channel()
    for name in (one, two):
        await layer.group_add("g", name)
    await layer.group_send("g", {"type": "b", "text": "hi"})
    first = await layer.receive(one)
    first["text"] = "changed"
    assert (await layer.receive(two))["text"] == "hi"


async def test_expired_messages_are_dropped_and_their_channel_leaves_its_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = ConciergeMemoryLayer(expiry=0)
    monkeypatch.setattr(memory_layer, "CLEAN_EVERY", 0.0)
    gone, alive = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", gone)
    await layer.group_add("g", alive)
    await layer.send(gone, {"type": "never read"})
    await layer.group_send("g", {"type": "b"})  # walks first: the expired message goes, and gone with it
    assert gone not in layer.groups["g"] and alive in layer.groups["g"]
