"""Crowds: many idle clients on one process, a join into a crowd, broadcasts to a crowd.

Each measurement runs the same client code against the concierge and against the plain
``websockets`` server (bench/plain_relay.py with ``--announce``: it tells everyone of a
join and relays MESSAGEs to ALL, the work the concierge does for a crowd), in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from bench.wsclient import identify

BATCH = 100
"""Clients that connect at once while a crowd gathers."""


def raise_file_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@dataclass
class Member:
    """One client of a crowd, draining its socket and noting when each client joined."""

    name: str
    ws: ClientConnection
    joined_at: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    left: int = 0
    closed: bool = False
    reader: asyncio.Task[None] | None = None
    replies: asyncio.Queue[dict[str, object]] = field(default_factory=asyncio.Queue)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self) -> None:
        try:
            async for frame in self.ws:
                kind = _type_of(frame)
                if kind == "CLIENT_JOINED":
                    name = json.loads(frame)["client"]["name"]
                    self.joined_at[name] = time.perf_counter()
                    self.arrived.set()
                elif kind == "MESSAGE":
                    self.messages += 1
                    self.arrived.set()
                elif kind == "CLIENT_LEFT":
                    self.left += 1
                elif kind is not None and kind != "SERVICE_CLIENT_SUBSCRIBED":
                    self.replies.put_nowait(json.loads(frame))
        except websockets.WebSocketException:
            pass
        finally:
            self.closed = True


def _type_of(frame: str | bytes) -> str | None:
    """The payload type of a frame, read without decoding it all (the type comes first)."""
    text = frame if isinstance(frame, str) else frame.decode()
    start = text.find('"type"')
    if start < 0:
        return None
    value = text.find('"', text.find(":", start) + 1) + 1
    return text[value : text.find('"', value)]


async def join(ws_url: str, name: str) -> Member:
    ws = await websockets.connect(ws_url, compression=None, open_timeout=120, max_size=None, max_queue=None)
    await ws.send(identify(name))
    async with asyncio.timeout(120):
        while True:
            hello = json.loads(await ws.recv())
            if hello.get("type") == "HELLO":
                break
    member = Member(name, ws)
    member.reader = asyncio.ensure_future(member.drain())
    return member


async def gather_crowd(ws_url: str, count: int, prefix: str) -> list[Member]:
    """``count`` identified clients, joining ``BATCH`` at a time."""
    crowd: list[Member] = []
    for start in range(0, count, BATCH):
        crowd += await asyncio.gather(*(join(ws_url, f"{prefix}_{i}") for i in range(start, min(count, start + BATCH))))
    return crowd


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def settled(crowd: list[Member], timeout: float = 600) -> None:
    """Wait until every member has heard of every client that joined after it."""
    pairs = len(crowd) * (len(crowd) - 1) // 2
    if not await until(lambda: sum(len(m.joined_at) for m in crowd) >= pairs, timeout):
        heard = sum(len(m.joined_at) for m in crowd)
        raise RuntimeError(f"the crowd heard {heard} of {pairs} CLIENT_JOINED events within {timeout:g} s")


async def disperse(crowd: list[Member]) -> None:
    async def close(member: Member) -> None:
        with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):
            await asyncio.wait_for(member.ws.close(), 30)
        if member.reader is not None:
            member.reader.cancel()

    await asyncio.gather(*(close(m) for m in crowd))


async def request(member: Member, payload: dict[str, object], timeout: float = 60) -> dict[str, object]:
    await member.ws.send(json.dumps(payload))
    async with asyncio.timeout(timeout):
        return await member.replies.get()


# -- the figures ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrowdResult:
    clients: int
    held: int
    rss_per_client_kib: float
    join_seconds: float
    listed: int


async def crowd(ws_url: str, pid: int, count: int) -> CrowdResult:
    """``count`` idle, identified clients on one process: memory per client, and whether all stay."""
    prefix = f"crowd{uuid.uuid4().hex[:5]}"
    idle = rss_bytes(pid)
    started = time.perf_counter()
    members = await gather_crowd(ws_url, count, prefix)
    await settled(members)
    join_seconds = time.perf_counter() - started
    await asyncio.sleep(1)
    held_rss = rss_bytes(pid)
    held = sum(1 for m in members if not m.closed)
    listed = await _listed(members[0])
    await disperse(members)
    return CrowdResult(count, held, (held_rss - idle) / count / 1024, join_seconds, listed)


async def _listed(member: Member) -> int:
    """How many clients CLIENT_FETCH_ALL names (following its pages, if it is paged)."""
    reply = await request(member, {"type": "CLIENT_FETCH_ALL"})
    clients = list(reply.get("clients", []))  # type: ignore[call-overload]
    while reply.get("more"):
        async with asyncio.timeout(60):
            reply = await member.replies.get()
        clients += list(reply.get("clients", []))  # type: ignore[call-overload]
    return len(clients)


async def join_latency(ws_url: str, crowd_size: int, joins: int) -> list[float]:
    """Milliseconds from a newcomer's HELLO until the last of ``crowd_size`` heard CLIENT_JOINED."""
    prefix = f"join{uuid.uuid4().hex[:5]}"
    members = await gather_crowd(ws_url, crowd_size, prefix)
    await settled(members)
    latencies = []
    try:
        for index in range(joins):
            name = f"{prefix}_new{index}"
            newcomer = await join(ws_url, name)
            hello_at = time.perf_counter()
            if not await until(lambda n=name: all(n in m.joined_at for m in members), 60):
                raise RuntimeError(f"not every client heard of {name} within 60 s")
            latencies.append((max(m.joined_at[name] for m in members) - hello_at) * 1000)
            await disperse([newcomer])
            await asyncio.sleep(0.05)
    finally:
        await disperse(members)
    return latencies


async def broadcast(ws_url: str, crowd_size: int, messages: int, window: int = 20) -> float:
    """MESSAGEs to ALL, counted where they arrive: deliveries per second."""
    prefix = f"bc{uuid.uuid4().hex[:5]}"
    members = await gather_crowd(ws_url, crowd_size, prefix)
    await settled(members)
    sender = members[0]
    frame = json.dumps({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "x" * 64})
    expected = messages * len(members)
    try:
        started = time.perf_counter()
        in_flight = 0
        for _ in range(messages):
            await sender.ws.send(frame)
            in_flight += 1
            if in_flight >= window:
                async with asyncio.timeout(120):
                    await sender.replies.get()
                in_flight -= 1
        if not await until(lambda: sum(m.messages for m in members) >= expected, 300):
            raise RuntimeError(f"{sum(m.messages for m in members)} of {expected} deliveries arrived")
        return expected / (time.perf_counter() - started)
    finally:
        await disperse(members)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


@dataclass(frozen=True)
class LeaveStorm:
    seconds: float
    announced: int
    relay_p99_ms: float


async def leave_storm(ws_url: str, size: int) -> LeaveStorm:
    """``size`` clients drop at once without a close frame (their TCP connections aborted,
    as in a partition or a dead process): seconds until a bystander heard every CLIENT_LEFT,
    and the relay latency between two other clients meanwhile."""
    prefix = f"storm{uuid.uuid4().hex[:5]}"
    ping, pong = await join(ws_url, f"{prefix}_ping"), await join(ws_url, f"{prefix}_pong")
    crowd = await gather_crowd(ws_url, size, prefix)
    await until(lambda: len(ping.joined_at) >= size + 1, 300)
    latencies: list[float] = []
    stop = asyncio.Event()

    async def relay_while() -> None:
        frame = json.dumps({"type": "MESSAGE", "target": {"type": "NAME", "name": pong.name}, "data": "t"})
        while not stop.is_set():
            pong.arrived.clear()
            before = pong.messages
            sent_at = time.perf_counter()
            await ping.ws.send(frame)
            await until(lambda before=before: pong.messages > before, 30)
            latencies.append((time.perf_counter() - sent_at) * 1000)
            await ping.replies.get()
            await asyncio.sleep(0.005)

    measuring = asyncio.ensure_future(relay_while())
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    for member in crowd:
        member.ws.transport.abort()
    announced = await until(lambda: ping.left >= size, 120)
    seconds = time.perf_counter() - started
    stop.set()
    await measuring
    await disperse([ping, pong, *crowd])
    return LeaveStorm(seconds if announced else float("nan"), ping.left, p99(latencies))
