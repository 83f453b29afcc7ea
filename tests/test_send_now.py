"""Frames sent at once: a layer offers a message to its receiver's taker when nothing is
queued before it, and a consumer takes a frame only when it is next in order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from fileshare.layers.memory_layer import ConciergeMemoryLayer
from fileshare.ws import relay
from fileshare.ws.consumers import ConciergeConsumer


async def test_a_taker_gets_messages_at_once_only_while_nothing_waits_before_them() -> None:
    layer = ConciergeMemoryLayer()
    channel = await layer.new_channel()
    taken: list[int] = []
    accepting = True

    def take(message: dict[str, Any]) -> bool:
        if accepting:
            taken.append(message["i"])
        return accepting

    layer.attach(channel, take)
    await layer.send(channel, {"type": "m", "i": 1})
    accepting = False
    await layer.send(channel, {"type": "m", "i": 2})  # refused: queued
    accepting = True
    await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "m", "i": 3})  # 2 waits before it: queued, not taken
    assert taken == [1]
    assert [(await layer.receive(channel))["i"] for _ in range(2)] == [2, 3]
    await layer.group_send("g", {"type": "m", "i": 4})
    assert taken == [1, 4]
    layer.detach(channel)
    await layer.send(channel, {"type": "m", "i": 5})
    assert taken == [1, 4] and (await layer.receive(channel))["i"] == 5


def _identify(name: str) -> str:
    return json.dumps({"type": "IDENTIFY", "name": name, "version": "0.2.0"})


async def _client(name: str, send_now: Any = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ConciergeConsumer.as_asgi(), "/ws")
    if send_now is not None:
        communicator.scope["extensions"] = {relay.SEND_TEXT_NOW: send_now}
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=_identify(name))
    assert (await communicator.receive_json_from())["type"] == "HELLO"
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_a_broadcast_reaches_an_idle_client_through_its_send_now_and_a_refused_one_the_usual_way() -> None:
    sent_now: list[dict[str, Any]] = []
    accepting = True

    def send_now(text: str) -> bool:
        if accepting:
            sent_now.append(json.loads(text))
        return accepting

    watcher = await _client("watcher", send_now)
    first = await _client("first")
    assert [(p["type"], p["client"]["name"]) for p in sent_now] == [("CLIENT_JOINED", "first")]
    assert await watcher.receive_nothing(0.05)  # not sent twice
    accepting = False
    second = await _client("second")
    joined = await watcher.receive_json_from()
    assert (joined["type"], joined["client"]["name"]) == ("CLIENT_JOINED", "second")
    assert len(sent_now) == 1
    for communicator in (watcher, first, second):
        await communicator.disconnect()


async def test_a_consumer_leaves_a_frame_to_the_queue_while_it_dispatches_an_event() -> None:
    calls: list[str] = []
    consumer = ConciergeConsumer()
    consumer._send_now = lambda text: calls.append(text) or True
    consumer.identified = True
    frame = {"type": "fileshare.frame", "text": "{}"}
    async with consumer._turn:
        assert not consumer._take_frame(frame)
    assert not consumer._take_frame({"type": "fileshare.kick", "code": 4000})
    consumer.closing = True
    assert not consumer._take_frame(frame)
    consumer.closing = False
    assert consumer._take_frame(frame) and calls == ["{}"]


async def test_a_failing_taker_is_logged_and_its_message_queued_and_the_broadcast_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = ConciergeMemoryLayer()
    broken, fine = await layer.new_channel(), await layer.new_channel()
    taken: list[dict[str, Any]] = []

    def fail(message: dict[str, Any]) -> bool:
        raise RuntimeError("socket gone")

    layer.attach(broken, fail)
    layer.attach(fine, lambda message: taken.append(message) or True)
    for name in (broken, fine):
        await layer.group_add("g", name)
    await layer.group_send("g", {"type": "b"})
    assert taken == [{"type": "b"}]
    assert (await layer.receive(broken))["type"] == "b"
    assert "the taker of" in caplog.text
