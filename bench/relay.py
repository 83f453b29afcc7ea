"""Relayed MESSAGEs: throughput with a window of messages in flight, and one-message latency."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

from bench.wsclient import message_to, next_of, open_client


@dataclass
class Throughput:
    """Messages delivered per second; how many the sender was told were refused (BAD)."""

    msg_s: float
    delivered: int
    refused: int


async def throughput(
    sender_url: str, receiver_url: str, count: int, window: int = 50, patience: float = 120
) -> Throughput:
    """A sends ``count`` MESSAGEs to B, at most ``window`` unanswered at a time; B counts them.

    Raises TimeoutError if they are not all answered within ``patience`` seconds.
    """
    tag = uuid.uuid4().hex[:6]
    receiver = await open_client(receiver_url, f"rb{tag}")
    sender = await open_client(sender_url, f"ra{tag}")
    slots = asyncio.Semaphore(window)
    counts = {"ok": 0, "bad": 0, "delivered": 0}
    finished = asyncio.Event()

    def check() -> None:
        if counts["delivered"] + counts["bad"] >= count:
            finished.set()

    async def read_sender() -> None:
        async for frame in sender:
            kind = json.loads(frame).get("type")
            if kind in {"OK", "BAD"}:
                counts["ok" if kind == "OK" else "bad"] += 1
                slots.release()
                check()

    async def read_receiver() -> None:
        async for frame in receiver:
            if json.loads(frame).get("type") == "MESSAGE":
                counts["delivered"] += 1
                check()

    readers = [asyncio.create_task(read_sender()), asyncio.create_task(read_receiver())]
    try:
        started = time.perf_counter()
        for index in range(count):
            await slots.acquire()
            await sender.send(message_to(f"rb{tag}", {"i": index}))
        await asyncio.wait_for(finished.wait(), patience)
        elapsed = time.perf_counter() - started
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await sender.close()
        await receiver.close()
    return Throughput(counts["delivered"] / elapsed, counts["delivered"], counts["bad"])


@dataclass
class Latency:
    """Send-to-delivery time of one message at a time, in milliseconds."""

    p50_ms: float
    p99_ms: float


async def latency(sender_url: str, receiver_url: str, count: int) -> Latency:
    """A sends one MESSAGE, B receives it (timed), A gets its OK; ``count`` times."""
    tag = uuid.uuid4().hex[:6]
    receiver = await open_client(receiver_url, f"lb{tag}")
    sender = await open_client(sender_url, f"la{tag}")
    samples: list[float] = []
    try:
        async with asyncio.timeout(max(60, count * 0.1)):
            for index in range(count + 20):  # the first 20 warm up
                started = time.perf_counter()
                await sender.send(message_to(f"lb{tag}", {"i": index}))
                await next_of(receiver, "MESSAGE")
                if index >= 20:
                    samples.append((time.perf_counter() - started) * 1000)
                await next_of(sender, "OK")
    finally:
        await sender.close()
        await receiver.close()
    cuts = statistics.quantiles(samples, n=100)
    return Latency(statistics.median(samples), cuts[98])
