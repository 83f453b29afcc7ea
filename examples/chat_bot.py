"""A chat bot written as any concierge 0.2 client would be.

It identifies (version 0.2.0, with tags), creates a service, subscribes to it,
and re-broadcasts every message a subscriber sends to the service, so that all
subscribers see the chat.

    python examples/chat_bot.py ws://127.0.0.1:64209/ws chat
"""

from __future__ import annotations

import asyncio
import json
import sys

import websockets


async def run(url: str, service: str, name: str = "chat_bot") -> None:
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("ert-concierge")]) as ws:
        await ws.send(json.dumps({"type": "IDENTIFY", "name": name, "nickname": "Chat bot", "version": "0.2.0", "tags": ["bot", "chat"]}))
        hello = json.loads(await ws.recv())
        assert hello["type"] == "HELLO", hello
        await ws.send(json.dumps({"type": "SERVICE_CREATE", "service": service, "nickname": "Chat room"}))
        await ws.send(json.dumps({"type": "SELF_SUBSCRIBE", "service": service}))
        print(f"{name} serving {service}", flush=True)
        async for frame in ws:
            payload = json.loads(frame)
            if payload["type"] != "MESSAGE" or payload["origin"].get("service", {}).get("name") != service:
                continue
            author = payload["origin"]["nickname"] or payload["origin"]["name"]
            await ws.send(json.dumps({
                "type": "MESSAGE",
                "target": {"type": "SERVICE", "service": service},
                "data": {"from": author, "text": payload["data"]},
            }))


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "chat"))
