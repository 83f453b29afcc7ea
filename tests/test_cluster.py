"""Two daphne processes sharing PostgreSQL and Redis behave as one concierge."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import Cluster
from tests.support.clients import connect, identify_payload

pytestmark = pytest.mark.cluster


async def _identify(ws_url: str, name: str) -> tuple[str, int | None, websockets.ClientConnection]:
    ws = await websockets.connect(ws_url)
    await ws.send(json.dumps(identify_payload(name)))
    try:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        return reply["type"], None, ws
    except websockets.ConnectionClosed as exc:
        return "CLOSED", exc.rcvd.code if exc.rcvd else None, ws


async def test_two_identifies_with_one_name_at_once_on_two_processes_exactly_one_wins(
    cluster: Cluster, name: str
) -> None:
    a, b = cluster.processes
    for round_ in range(5):
        racer = f"{name}_{round_}"
        results = await asyncio.gather(*(_identify(p.ws_url, racer) for p in (a, b, a, b)))
        outcomes = sorted((kind, code) for kind, code, _ in results)
        assert outcomes == [("CLOSED", 4005)] * 3 + [("HELLO", None)], outcomes
        for _, _, ws in results:
            await ws.close()


async def test_a_key_issued_by_one_process_authorises_requests_served_by_the_other(cluster: Cluster, name: str) -> None:
    a, b = cluster.processes
    owner = await connect(a.ws_url, name)
    reader = await connect(b.ws_url, name + "_r")
    async with httpx.AsyncClient() as http:
        put = await http.put(f"{b.url}/fs/{name}/x.txt", content=b"via B", headers={"Authorization": owner.key})
        assert put.status_code == 201
        got = await http.get(f"{a.url}/fs/{name}/x.txt", headers={"Authorization": reader.key})
        assert (got.status_code, got.content) == (202, b"via B")
        await owner.close()
        await reader.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
        refused = await http.put(f"{b.url}/fs/{name}/x.txt", content=b"late", headers={"Authorization": owner.key})
        assert refused.status_code == 401
        assert (await http.get(f"{b.url}/fs/{name}/x.txt", headers={"Authorization": reader.key})).status_code == 404
    await reader.close()


async def test_a_name_taken_on_one_process_is_refused_on_the_other(cluster: Cluster, name: str) -> None:
    a, b = cluster.processes
    holder = await connect(a.ws_url, name)
    kind, code, ws = await _identify(b.ws_url, name)
    assert (kind, code) == ("CLOSED", 4005)
    await ws.close()
    await holder.close()


async def test_a_killed_process_is_cleaned_up_by_another_within_30_s(make_cluster, name: str) -> None:  # type: ignore[no-untyped-def]
    group: Cluster = make_cluster(FILESHARE_LEASE_SECONDS="6")
    a = group.start()
    b = group.start()
    doomed = await connect(a.ws_url, name)
    survivor = await connect(b.ws_url, name + "_s")
    async with httpx.AsyncClient() as http:
        put = await http.put(f"{a.url}/fs/{name}/f.bin", content=b"ghost data", headers={"Authorization": doomed.key})
        assert put.status_code == 201
        create = await doomed.request({"type": "SERVICE_CREATE", "service": f"svc_{name}"})
        assert create["successful"]
        await survivor.expect("SERVICE_CREATE_RESULT")
        folder = list(Path(group.root / "files").glob(f"{name}.*"))
        assert len(folder) == 1

        a.kill()
        deleted = await survivor.expect("SERVICE_DELETE_RESULT", timeout=30)
        left = await survivor.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name, timeout=30)
        assert deleted["service"]["name"] == f"svc_{name}"
        assert left["client"]["uuid"] == doomed.public_id
        assert not folder[0].exists()
        assert (await http.get(f"{b.url}/fs/{name}/f.bin", headers={"Authorization": survivor.key})).status_code == 404
        assert (await http.get(f"{b.url}/fs/{name}/f.bin", headers={"Authorization": doomed.key})).status_code == 401
    again = await connect(b.ws_url, name)  # the name is free
    await again.close()
    await survivor.close()


async def test_clients_on_different_processes_message_subscribe_and_fetch_each_other(
    cluster: Cluster, name: str
) -> None:
    a, b = cluster.processes
    on_a = await connect(a.ws_url, f"{name}_a")
    on_b = await connect(b.ws_url, f"{name}_b")
    joined = await on_a.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == on_b.name)
    assert joined["client"] == on_b.info

    await on_a.request({"type": "MESSAGE", "target": {"type": "NAME", "name": on_b.name}, "data": {"n": 1}})
    assert (await on_b.expect("MESSAGE"))["origin"] == on_a.info
    await on_b.request({"type": "MESSAGE", "target": {"type": "UUID", "uuid": on_a.public_id}, "data": 2})
    assert (await on_a.expect("MESSAGE"))["data"] == 2

    service = f"svc_{name}"
    await on_b.request({"type": "SERVICE_CREATE", "service": service})
    assert (await on_a.expect("SERVICE_CREATE_RESULT"))["service"]["name"] == service
    await on_b.request({"type": "SELF_SUBSCRIBE", "service": service})
    sub = await on_a.request({"type": "SELF_SUBSCRIBE", "service": service})
    assert sub["successful"] and sorted(sub["service"]["subscribers"]) == sorted([on_a.public_id, on_b.public_id])
    event = await on_b.expect(lambda p: p["type"] == "SERVICE_CLIENT_SUBSCRIBED" and p["client"]["name"] == on_a.name)
    assert event["service"]["name"] == service
    await on_a.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": "to owner"})
    assert (await on_b.expect("MESSAGE"))["data"] == "to owner"
    fetched = await on_a.request({"type": "CLIENT_FETCH", "uuid": on_b.public_id})
    assert fetched["client"] == on_b.info and fetched["subscriptions"] == [service]
    everyone = await on_b.request({"type": "CLIENT_FETCH_ALL"})
    assert {on_a.name, on_b.name} <= {c["name"] for c in everyone["clients"]}

    await on_a.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "all"})
    assert (await on_b.expect("MESSAGE"))["data"] == "all"
    await on_b.close()
    assert (await on_a.expect("SERVICE_DELETE_RESULT"))["service"]["name"] == service
    await on_a.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == on_b.name)
    await on_a.close()


async def test_a_route_to_a_client_on_another_process_ends_when_it_leaves_and_its_name_comes_back(
    cluster: Cluster, name: str
) -> None:
    """Processes keep routes to each other's clients; a leave ends them, a newcomer gets its own."""
    a, b = cluster.processes
    sender = await connect(a.ws_url, f"{name}_s")
    first = await connect(b.ws_url, name)
    to_name = {"type": "MESSAGE", "target": {"type": "NAME", "name": name}}
    to_uuid = {"type": "MESSAGE", "target": {"type": "UUID", "uuid": first.public_id}}
    for payload in (to_name, to_uuid):  # routes now known to A
        assert (await sender.request({**payload, "data": "hi"}))["type"] == "OK"
        assert (await first.expect("MESSAGE"))["data"] == "hi"
    await first.close()
    await sender.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
    assert (await sender.request({**to_name, "data": "late"}))["type"] == "INVALID_NAME"
    assert (await sender.request({**to_uuid, "data": "late"}))["type"] == "INVALID_UUID"

    for process in (b, a):  # the name again, on the other process and then on the sender's own
        again = await connect(process.ws_url, name)
        assert (await sender.request({**to_name, "data": process.url}))["type"] == "OK"
        assert (await again.expect("MESSAGE"))["data"] == process.url
        await again.close()
        await sender.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
    await sender.close()


async def test_a_crowd_identifying_at_once_on_one_process_all_get_hello_and_all_leave_when_dropped(
    cluster: Cluster, name: str
) -> None:
    """Twice as many clients at once as Redis connections in a default pool (100): each
    CLIENT_JOINED broadcast holds one, and redis-py's pool used to refuse the rest, which
    failed their handshakes. Then they all drop at once, like a network outage: the
    other process sees each of them gone, and every name is free again. (The watcher
    asks rather than counts events: broadcasts to a client holding its channel's
    capacity are best-effort, as in channels_redis.)"""
    a, b = cluster.processes
    watcher = await connect(b.ws_url, f"{name}_w")
    size = 200

    async def join(index: int) -> websockets.ClientConnection:
        ws = await websockets.connect(a.ws_url, max_queue=None, max_size=None)
        await ws.send(json.dumps(identify_payload(f"{name}_{index}")))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] != "HELLO":
            assert reply["type"] in {"CLIENT_JOINED", "CLIENT_LEFT"}, reply
        return ws

    async def present() -> set[str]:
        reply = await watcher.request({"type": "CLIENT_FETCH_ALL"}, timeout=30)
        return {client["name"] for client in reply["clients"]} & names

    names = {f"{name}_{i}" for i in range(size)}
    crowd = await asyncio.gather(*(join(i) for i in range(size)))
    assert await present() == names

    for ws in crowd:
        ws.transport.abort()
    deadline = time.monotonic() + 30
    while (still := await present()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert still == set()
    again = await connect(a.ws_url, f"{name}_0")
    await again.close()
    await watcher.close()
