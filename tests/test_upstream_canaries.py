"""Canaries: each workaround of an upstream bug has a test here that fails once upstream fixes it.

They run the unpatched library (stock daphne, no ``install()``), so when one fails, the
bug is gone upstream and the workaround named in the failure can go (docs/patches.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import websockets

from tests.support.server import REPO

Message = dict[str, Any]


async def close_with_reason(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """Accept a websocket, then close it with code 4008 and a reason."""
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4008, "reason": "name must be letters"})
        elif event["type"] == "websocket.disconnect":
            return


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def stock_daphne() -> Iterator[str]:
    """Stock daphne (none of fileshare/server/'s patches) serving close_with_reason."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            f"{__name__}:close_with_reason",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_stock_daphne_still_drops_the_close_reason(stock_daphne: str) -> None:
    async with websockets.connect(stock_daphne) as socket_:
        with pytest.raises(websockets.ConnectionClosed):
            await socket_.recv()
    assert socket_.close_code == 4008
    assert socket_.close_reason == "", (
        "daphne now passes an ASGI close's reason on: remove "
        "fileshare.server.daphne_support.ReasonedWebSocketProtocol.handle_reply and its entry in "
        "fileshare/upstream.py (docs/patches.md)"
    )
