"""IDENTIFY -> HELLO handshakes per second: one after another, and many at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import websockets

from bench.wsclient import identify


async def _hello(ws: websockets.ClientConnection) -> None:
    """Wait for HELLO (events that may race ahead of it are skipped); raise on anything else."""
    async with asyncio.timeout(60):
        while True:
            payload = json.loads(await ws.recv())
            if payload.get("type") == "HELLO":
                return
            if payload.get("type") not in {"CLIENT_JOINED", "CLIENT_LEFT"}:
                raise RuntimeError(f"expected HELLO, got {payload}")


async def _handshake(ws_url: str, name: str) -> None:
    async with websockets.connect(ws_url, compression=None, open_timeout=60) as ws:
        await ws.send(identify(name))
        await _hello(ws)


async def sequential(ws_url: str, count: int) -> float:
    """Handshakes per second, each connection opened, identified and closed in turn."""
    prefix = f"hs{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    for index in range(count):
        await _handshake(ws_url, f"{prefix}_{index}")
    return count / (time.perf_counter() - started)


async def burst(ws_url: str, count: int) -> tuple[float, int]:
    """``count`` clients connecting and identifying at once: (handshakes per second, how many got HELLO).

    The clock stops when the last HELLO arrives; the sockets close afterwards.
    """
    prefix = f"hb{uuid.uuid4().hex[:6]}"
    sockets: list[websockets.ClientConnection] = []

    async def one(index: int) -> None:
        ws = await websockets.connect(ws_url, compression=None, open_timeout=60, max_size=None)
        sockets.append(ws)
        await ws.send(identify(f"{prefix}_{index}"))
        await _hello(ws)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    succeeded = sum(1 for result in results if not isinstance(result, BaseException))

    async def close(ws: websockets.ClientConnection) -> None:
        with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):
            await asyncio.wait_for(ws.close(), 10)

    # Clients leaving one by one make the server broadcast CLIENT_LEFT to the rest: close them together.
    await asyncio.gather(*(close(ws) for ws in sockets))
    return succeeded / elapsed, succeeded
