"""examples/chat_bot.py, written on the Python client, runs a chat room for two users."""

from __future__ import annotations

import asyncio
import sys

from tests.support.clients import connect
from tests.support.server import REPO, ServerProcess


async def test_two_users_chat_through_the_bot(server: ServerProcess, name: str) -> None:
    service = f"room_{name}"
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "chat_bot.py"),
        server.url,
        service,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert bot.stdout is not None
        line = await asyncio.wait_for(bot.stdout.readline(), 15)
        assert service in line.decode()
        ann = await connect(server.ws_url, f"{name}_ann", nickname="Ann")
        bob = await connect(server.ws_url, f"{name}_bob", nickname="Bob")
        for user in (ann, bob):
            for _ in range(50):
                reply = await user.request({"type": "SELF_SUBSCRIBE", "service": service})
                if reply["type"] == "SELF_SUBSCRIBE_RESULT":
                    break
                await asyncio.sleep(0.1)  # the bot may still be creating the room
            assert reply["successful"] is True
        await ann.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": "hello Bob"})
        for user in (ann, bob):
            got = await user.expect("MESSAGE")
            assert got["data"] == {"from": "Ann", "text": "hello Bob"}
            assert got["origin"]["name"] == "chat_bot" and got["origin"]["service"]["name"] == service
        await bob.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": "hi Ann"})
        assert (await ann.expect("MESSAGE"))["data"] == {"from": "Bob", "text": "hi Ann"}
        await ann.close()
        await bob.close()
    finally:
        bot.kill()
        await bot.wait()
