"""A concierge 0.2 test client over a real websocket (the ``websockets`` library)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import websockets

Payload = dict[str, Any]


class Client:
    """An identified client: sends payloads, and waits for replies and events."""

    def __init__(self, ws: websockets.ClientConnection, hello: Payload) -> None:
        self.ws = ws
        self.hello = hello
        self.backlog: list[Payload] = []
        self.seq = 0

    @property
    def key(self) -> str:
        return str(self.hello["uuid"])

    @property
    def info(self) -> Payload:
        return dict(self.hello["client"])

    @property
    def public_id(self) -> str:
        return str(self.hello["client"]["uuid"])

    @property
    def name(self) -> str:
        return str(self.hello["client"]["name"])

    async def send(self, payload: Payload | str) -> int:
        """Send a payload (or raw text); returns the seq the server gives this frame."""
        await self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))
        number = self.seq
        self.seq += 1
        return number

    async def request(self, payload: Payload | str, timeout: float = 5) -> Payload:
        """Send a frame and wait for the reply that carries its seq."""
        number = await self.send(payload)
        return await self.expect(lambda p: p.get("seq") == number, timeout)

    async def expect(self, match: str | Callable[[Payload], bool], timeout: float = 5) -> Payload:
        """The next payload matching a ``type`` or predicate; others are kept for later."""
        predicate = (lambda p: p.get("type") == match) if isinstance(match, str) else match
        for index, payload in enumerate(self.backlog):
            if predicate(payload):
                return self.backlog.pop(index)
        async with asyncio.timeout(timeout):
            while True:
                payload = json.loads(await self.ws.recv())
                if predicate(payload):
                    return payload
                self.backlog.append(payload)

    async def quiet(self, match: str | Callable[[Payload], bool], wait: float = 0.5) -> None:
        """Assert that no payload matching ``match`` arrives within ``wait`` seconds."""
        try:
            found = await self.expect(match, wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected payload {found}")

    async def close(self) -> None:
        await self.ws.close()


def identify_payload(name: str, **fields: Any) -> Payload:
    payload: Payload = {"type": "IDENTIFY", "name": name, "version": "0.2.0", "tags": []}
    payload.update(fields)
    return payload


async def connect(ws_url: str, name: str, **fields: Any) -> Client:
    """Open ``/ws``, IDENTIFY as ``name`` and wait for HELLO."""
    ws = await websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("ert-concierge")], max_size=None)
    await ws.send(json.dumps(identify_payload(name, **fields)))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if hello.get("type") != "HELLO":
        raise AssertionError(f"expected HELLO, got {hello}")
    return Client(ws, hello)


async def refused(ws_url: str, *frames: str | bytes, wait: float = 10) -> tuple[int, str]:
    """Send raw frames on a fresh socket; return the close (code, reason) the server sends."""
    async with websockets.connect(ws_url) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            async with asyncio.timeout(wait):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None, "the server closed without a close frame"
            return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("the socket was not closed")


async def close_code(client: Client, wait: float = 5) -> int:
    """Wait (``wait`` s at most) for the server to close ``client``'s socket; return the close code."""
    try:
        async with asyncio.timeout(wait):
            while True:
                await client.ws.recv()
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    raise AssertionError("not closed")
