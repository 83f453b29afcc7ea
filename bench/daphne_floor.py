"""A reference for handshakes: the least an application served by daphne can do.

    python -m daphne -v 0 -b 127.0.0.1 -p PORT bench.daphne_floor:application

It accepts a websocket, answers its first frame with a HELLO-shaped frame and
does nothing else: no registry, no channel layer, no CLIENT_JOINED to others.
The bench measures it next to the plain ``websockets`` ceiling so that the
report shows how much of the handshake budget daphne itself takes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]


async def application(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            hello = {"type": "HELLO", "uuid": str(uuid.uuid4()), "version": "0.2.3", "client": {"name": "floor"}}
            await send({"type": "websocket.send", "text": json.dumps(hello)})
        elif event["type"] == "websocket.disconnect":
            return
