"""A chat bot on the concierge's Python client (``pip install ./clients/python``).

It identifies (with a nickname and tags), creates a service, subscribes to it, and
re-broadcasts every message a subscriber sends to the service, so that all
subscribers see the chat. If the connection drops, the client reconnects with backoff
and creates and joins the room again by itself.

    python examples/chat_bot.py http://127.0.0.1:64209 chat
"""

from __future__ import annotations

import asyncio
import sys

from concierge_client import ConciergeClient, Message


async def run(url: str, service: str, name: str = "chat_bot") -> None:
    async with ConciergeClient(url, name, nickname="Chat bot", tags=["bot", "chat"]) as bot:
        await bot.create_service(service, nickname="Chat room")
        await bot.subscribe(service)
        print(f"{name} serving {service}", flush=True)
        async for event in bot.events():
            if not isinstance(event, Message) or event.service is None or event.service.name != service:
                continue
            author = event.origin.nickname or event.origin.name
            await bot.send_to_service(service, {"from": author, "text": event.data})


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "chat"))
