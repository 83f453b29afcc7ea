"""Fan-in flood: many senders as fast as they can to one receiver.

Each sender writes all its MESSAGEs without waiting, then collects the answers:
OK (the server says delivered) or BAD (refused, the receiver is full). A message
answered OK that never reaches the receiver is *silently lost*; a sender whose
socket the server closes is *disconnected*. Both should be 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

import websockets

from bench.wsclient import message_to, open_client


@dataclass
class FloodResult:
    sent: int = 0
    acknowledged: int = 0
    refused: int = 0
    unanswered: int = 0
    delivered: int = 0
    silently_lost: int = 0
    senders_disconnected: int = 0
    receiver_disconnected: bool = False
    seconds: float = 0.0
    close_codes: list[int] = field(default_factory=list)


async def flood(
    sender_urls: list[str], receiver_url: str, senders: int = 10, total: int = 20_000, patience: float = 120
) -> FloodResult:
    """``senders`` clients send ``total`` MESSAGEs together to one receiver (sender i on ``sender_urls[i % n]``).

    Waits at most ``patience`` seconds for the answers, and then for the deliveries.
    """
    tag = uuid.uuid4().hex[:6]
    target = f"fr{tag}"
    per_sender = total // senders
    result = FloodResult()
    received: set[tuple[int, int]] = set()
    receiver = await open_client(receiver_url, target)
    clients = [await open_client(sender_urls[i % len(sender_urls)], f"fs{tag}_{i}") for i in range(senders)]
    last_delivery = [time.monotonic()]

    async def receive() -> None:
        try:
            async for frame in receiver:
                payload = json.loads(frame)
                if payload.get("type") == "MESSAGE":
                    data = payload.get("data") or {}
                    received.add((int(data["s"]), int(data["n"])))
                    last_delivery[0] = time.monotonic()
        except websockets.ConnectionClosed:
            result.receiver_disconnected = True

    acknowledged: set[tuple[int, int]] = set()

    async def send(index: int, ws: websockets.ClientConnection) -> None:
        answers: dict[int, str] = {}
        disconnected = False

        async def read() -> None:
            nonlocal disconnected
            try:
                async for frame in ws:
                    payload = json.loads(frame)
                    if "seq" in payload:
                        answers[int(payload["seq"])] = str(payload.get("type"))
                        if len(answers) >= per_sender:
                            return
            except websockets.ConnectionClosed as exc:
                disconnected = True
                if exc.rcvd is not None:
                    result.close_codes.append(exc.rcvd.code)

        reader = asyncio.create_task(read())
        try:
            for number in range(per_sender):
                await ws.send(message_to(target, {"s": index, "n": number}))
                result.sent += 1
        except websockets.ConnectionClosed:
            disconnected = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader, patience)
        result.senders_disconnected += int(disconnected)
        for seq, kind in answers.items():
            if kind == "OK":
                acknowledged.add((index, seq))
            elif kind == "BAD":
                result.refused += 1
        result.unanswered += per_sender - len(answers)

    receiving = asyncio.create_task(receive())
    started = time.monotonic()
    await asyncio.gather(*(send(i, ws) for i, ws in enumerate(clients)))
    # Deliveries may trail the last OK: wait until everything acknowledged arrived,
    # or nothing has arrived for 3 s (bounded by ``timeout``).
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and not acknowledged <= received:
        if time.monotonic() - last_delivery[0] > 3:
            break
        await asyncio.sleep(0.05)
    result.seconds = round(time.monotonic() - started, 2)
    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)
    for ws in [receiver, *clients]:
        with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):
            await asyncio.wait_for(ws.close(), 5)
    result.acknowledged = len(acknowledged)
    result.delivered = len(received)
    result.silently_lost = len(acknowledged - received)
    return result
