"""The consumer's error boundary: an unexpected failure becomes ERROR_INTERNAL, never a traceback.

No real part fails on demand, so a handler is replaced by one that raises; everything
else (consumer, registry, channel layer, database) is real, in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from channels.testing import WebsocketCommunicator

from fileshare.ws import handlers
from fileshare.ws.consumers import ConciergeConsumer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broken_self_fetch() -> Iterator[None]:
    original = handlers.HANDLERS["SELF_FETCH"]

    async def explode(session: handlers.Session, payload: dict[str, object]) -> dict[str, object]:
        raise RuntimeError("secret internals /etc/passwd")

    handlers.HANDLERS["SELF_FETCH"] = explode
    yield
    handlers.HANDLERS["SELF_FETCH"] = original


async def test_an_unexpected_handler_failure_answers_error_internal_and_keeps_the_socket(
    broken_self_fetch: None,
) -> None:
    communicator = WebsocketCommunicator(ConciergeConsumer.as_asgi(), "/ws")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "IDENTIFY", "name": "boom", "version": "0.2.0"}))
    assert (await communicator.receive_json_from())["type"] == "HELLO"
    await communicator.send_to(text_data=json.dumps({"type": "SELF_FETCH"}))
    reply = await communicator.receive_json_from()
    assert reply["type"] == "ERROR_INTERNAL" and reply["seq"] == 0
    assert "secret" not in reply["desc"] and "Traceback" not in reply["desc"]
    await communicator.send_to(text_data=json.dumps({"type": "CLIENT_FETCH_ALL"}))
    assert (await communicator.receive_json_from())["seq"] == 1  # still open, still counting
    await communicator.disconnect()


async def test_a_consumer_that_breaks_after_hello_closes_its_socket_with_4000_and_its_client_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure outside any handler (here the channel layer, broadcasting CLIENT_JOINED)
    must not leave a registration behind with no socket: the name would stay taken and
    the key valid."""
    from fileshare.models import LiveClient
    from fileshare.ws import relay

    broadcast = relay.broadcast

    async def layer_down(payload: dict[str, object]) -> None:
        if payload["type"] == "CLIENT_JOINED":
            raise ConnectionError("the channel layer is gone")
        await broadcast(payload)

    monkeypatch.setattr(relay, "broadcast", layer_down)
    communicator = WebsocketCommunicator(ConciergeConsumer.as_asgi(), "/ws")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "IDENTIFY", "name": "broken", "version": "0.2.0"}))
    assert (await communicator.receive_json_from())["type"] == "HELLO"

    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4000, "reason": "internal error"}
    # The socket is closed first, then the leave runs (in a task of its own): wait for it.
    for _ in range(100):
        if not await LiveClient.objects.filter(name="broken").aexists():
            break
        await asyncio.sleep(0.05)
    assert not await LiveClient.objects.filter(name="broken").aexists()
    await communicator.wait(timeout=5)
