"""A consumer that daphne cancels (it outlived its socket by application_close_timeout)
still runs the client's leave. In-process: daphne's cancellation is reproduced by
cancelling the application task; consumer, registry, layer and database are real."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from fileshare.models import LiveClient
from fileshare.ws.consumers import ConciergeConsumer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_cancelled_consumer_still_removes_its_client() -> None:
    communicator = WebsocketCommunicator(ConciergeConsumer.as_asgi(), "/ws")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "IDENTIFY", "name": "cancelled", "version": "0.2.0"}))
    assert (await communicator.receive_json_from())["type"] == "HELLO"
    assert await LiveClient.objects.filter(name="cancelled").aexists()

    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    async with asyncio.timeout(10):
        while await LiveClient.objects.filter(name="cancelled").aexists():
            await asyncio.sleep(0.05)
