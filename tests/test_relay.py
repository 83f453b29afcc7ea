"""Slow and flooding clients: bounded memory, nobody else stalls, nothing lost silently."""

from __future__ import annotations

import asyncio
import socket

import psutil
import pytest

from tests.conftest import Cluster, Spawn
from tests.support.clients import connect
from tests.test_handshake import _raw_identify


async def test_a_client_that_stops_reading_is_dropped_senders_are_told_and_memory_stays_bounded(spawn: Spawn) -> None:
    process = spawn(FILESHARE_SEND_TIMEOUT="2", FILESHARE_PING_TIMEOUT="60")
    sender = await connect(process.ws_url, "flooder")
    bystander = await connect(process.ws_url, "bystander")
    stuck = await asyncio.to_thread(_raw_identify, process.host, process.port, "stuck")  # never reads again
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sender.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == "stuck")
    rss_before = psutil.Process(process.pid).memory_info().rss
    blob = "x" * 60_000
    outcomes: dict[str, int] = {}
    try:
        for _ in range(1500):  # 90 MB aimed at a client that reads nothing
            reply = await sender.request({"type": "MESSAGE", "target": {"type": "NAME", "name": "stuck"}, "data": blob})
            outcomes[reply["type"]] = outcomes.get(reply["type"], 0) + 1
            if reply["type"] == "BAD":
                assert "not keeping up" in reply["desc"]
                break
        assert outcomes.get("BAD") == 1, outcomes  # the sender is told, not cut off
        # The stuck client is dropped once it has not read for FILESHARE_SEND_TIMEOUT.
        await bystander.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == "stuck", 15)
        growth = psutil.Process(process.pid).memory_info().rss - rss_before
        assert growth < 64 * 1024 * 1024, f"server grew by {growth / 2**20:.0f} MiB"
        # Others were not stalled: a round trip still works, and the sender is connected.
        assert (await bystander.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"
        assert (await sender.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"
    finally:
        stuck.close()
    await sender.close()
    await bystander.close()


async def test_a_flood_into_one_client_loses_nothing_silently_and_keeps_senders_connected(spawn: Spawn) -> None:
    process = spawn(CONCIERGE_CHANNEL_CAPACITY="50")
    await _flood_loses_nothing_silently(process.ws_url, process.ws_url)


@pytest.mark.cluster
async def test_a_flood_across_processes_loses_nothing_silently_and_keeps_senders_connected(make_cluster) -> None:  # type: ignore[no-untyped-def]
    group: Cluster = make_cluster(CONCIERGE_CHANNEL_CAPACITY="50")
    a, b = group.start(), group.start()
    await _flood_loses_nothing_silently(b.ws_url, a.ws_url)


async def _flood_loses_nothing_silently(receiver_url: str, sender_url: str) -> None:
    """Five senders write 400 MESSAGEs each to one receiver without waiting for answers.

    Every MESSAGE is answered (OK or BAD, in frame order), every OK is delivered, in
    the order sent, and nobody is disconnected.
    """
    receiver = await connect(receiver_url, "sink")
    senders = [await connect(sender_url, f"src{i}") for i in range(5)]
    per_sender = 400
    got: dict[str, list[int]] = {s.name: [] for s in senders}
    acknowledged: dict[str, list[int]] = {s.name: [] for s in senders}

    async def flood(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
        counts = {"OK": 0, "BAD": 0}
        for i in range(per_sender):
            await client.send({"type": "MESSAGE", "target": {"type": "NAME", "name": "sink"}, "data": [client.name, i]})
        first = None
        for i in range(per_sender):
            reply = await client.expect(lambda p: "seq" in p, timeout=30)
            first = reply["seq"] - i if first is None else first
            assert reply["seq"] == first + i, "replies come in frame order"
            counts[reply["type"]] = counts.get(reply["type"], 0) + 1
            if reply["type"] == "OK":
                acknowledged[client.name].append(i)
        return counts

    async def drain() -> int:
        seen = 0
        try:
            while True:
                message = await receiver.expect("MESSAGE", timeout=3)
                sender, index = message["data"]
                got[sender].append(index)
                seen += 1
        except TimeoutError:
            return seen

    drained = asyncio.create_task(drain())
    results = await asyncio.gather(*(flood(s) for s in senders))
    delivered = await drained
    ok = sum(r["OK"] for r in results)
    refused = sum(r.get("BAD", 0) for r in results)
    assert ok + refused == per_sender * len(senders)
    assert delivered == ok, f"{ok} acknowledged but {delivered} delivered"
    assert got == acknowledged, "each sender's messages arrive in the order sent, exactly those answered OK"
    for sender in senders:  # nobody was disconnected
        assert (await sender.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"
        await sender.close()
    await receiver.close()
