"""The bench's websocket client: what a concierge client sends, with nothing in between.

No compression (neither daphne nor the plain relay would use it), no subprotocol
book-keeping: the same code talks to the concierge and to bench/plain_relay.py.
"""

from __future__ import annotations

import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

Payload = dict[str, Any]


def identify(name: str) -> str:
    """An IDENTIFY frame for ``name``."""
    return json.dumps({"type": "IDENTIFY", "name": name, "version": "0.2.0", "tags": []})


def message_to(name: str, data: Any) -> str:
    """A MESSAGE frame for the client called ``name``."""
    return json.dumps({"type": "MESSAGE", "target": {"type": "NAME", "name": name}, "data": data})


async def open_client(ws_url: str, name: str) -> ClientConnection:
    """Connect, IDENTIFY as ``name`` and wait for HELLO (the first frame the server sends)."""
    ws = await websockets.connect(ws_url, compression=None, open_timeout=30, max_size=None)
    await ws.send(identify(name))
    hello = json.loads(await ws.recv())
    if hello.get("type") != "HELLO":
        await ws.close()
        raise RuntimeError(f"expected HELLO from {ws_url}, got {hello}")
    return ws


async def next_of(ws: ClientConnection, kind: str) -> Payload:
    """The next payload of type ``kind``; others (events) are skipped."""
    while True:
        payload: Payload = json.loads(await ws.recv())
        if payload.get("type") == kind:
            return payload
