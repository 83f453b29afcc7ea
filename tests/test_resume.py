"""Resumable sessions (docs/sessions.md) against real server processes (in-memory layer):
a dropped socket is held for the grace, a resume gets what was kept for it, in order,
exactly once; a client that did not ask for it leaves at once, as before."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fileshare.layers.memory_layer import ConciergeMemoryLayer
from fileshare.protocol import CloseCode
from fileshare.ws.relay import FRAME
from tests.support.clients import Client, connect, identify_payload, refused
from tests.support.server import ServerProcess, base_env, manage, start_server


def _start(root: Path, **overrides: str) -> ServerProcess:
    env = base_env(root, **overrides)
    manage(env, "migrate", "-v0")
    return start_server(env, root)


@pytest.fixture(scope="module")
def held_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A grace long enough to send hundreds of messages meanwhile; the default buffer (1,000)."""
    process = _start(tmp_path_factory.mktemp("resume"), FILESHARE_RESUME_GRACE="60")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def small_buffer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = _start(tmp_path_factory.mktemp("buffer"), FILESHARE_RESUME_GRACE="60", FILESHARE_RESUME_BUFFER="50")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def short_grace_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = _start(tmp_path_factory.mktemp("grace"), FILESHARE_RESUME_GRACE="2")
    yield process
    process.stop()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def wait_for_log(server: ServerProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the server log:\n{server.log()[-3000:]}")
        await asyncio.sleep(0.05)


async def cut(server: ServerProcess, client: Client) -> None:
    """Cut the client's TCP connection (no close frame) and wait until its session is held."""
    client.ws.transport.abort()
    await wait_for_log(server, f"client {client.name} dropped; its session is held")


def left(name: str) -> Any:
    return lambda p: p.get("type") == "CLIENT_LEFT" and p["client"]["name"] == name


def joined(name: str) -> Any:
    return lambda p: p.get("type") == "CLIENT_JOINED" and p["client"]["name"] == name


def message(target: str, data: Any) -> dict[str, Any]:
    return {"type": "MESSAGE", "target": {"type": "NAME", "name": target}, "data": data}


async def send_all(sender: Client, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every payload at once, then collect their replies (in seq order)."""
    numbers = [await sender.send(payload) for payload in payloads]
    return [await sender.expect(lambda p, n=n: p.get("seq") == n, 30) for n in numbers]


async def test_hello_gives_a_session_token_and_its_grace_only_to_a_client_that_asks(held_server: ServerProcess) -> None:
    asking = await connect(held_server.ws_url, unique("asks"), resume=True)
    plain = await connect(held_server.ws_url, unique("plain"))
    try:
        session = asking.hello["session"]
        assert isinstance(session["token"], str) and len(session["token"]) >= 32
        assert session["grace"] == 60
        assert "resumed" not in asking.hello
        assert "session" not in plain.hello and "resumed" not in plain.hello
        assert session["token"] not in held_server.log()
    finally:
        await asking.close()
        await plain.close()


async def test_a_resume_after_a_cut_connection_gets_all_500_messages_in_order_once_with_its_state_intact(
    held_server: ServerProcess,
) -> None:
    name = unique("headset")
    dropped = await connect(held_server.ws_url, name, resume=True)
    sender = await connect(held_server.ws_url, unique("sender"))
    service = unique("svc")
    async with httpx.AsyncClient(base_url=held_server.url) as http:
        put = await http.put(f"/fs/{name}/scan.bin", content=b"scan", headers={"Authorization": dropped.key})
        assert put.status_code == 201
        assert (await dropped.request({"type": "SERVICE_CREATE", "service": service}))["successful"] is True
        assert (await dropped.request({"type": "SELF_SUBSCRIBE", "service": service}))["successful"] is True
        await sender.expect("SERVICE_CREATE_RESULT")

        await cut(held_server, dropped)
        # The folder stays readable by others while the session is held.
        read = await http.get(f"/fs/{name}/scan.bin", headers={"Authorization": sender.key})
        assert read.status_code == 202 and read.content == b"scan"
        replies = await send_all(sender, [message(name, i) for i in range(500)])
        assert [r["type"] for r in replies] == ["OK"] * 500

        resumed = await connect(held_server.ws_url, name, resume=dropped.hello["session"]["token"])
        try:
            hello = resumed.hello
            assert hello["resumed"] is True and hello["recovered"] is True and hello["missed"] == 500
            assert hello["uuid"] == dropped.key and hello["client"]["uuid"] == dropped.public_id
            assert hello["session"]["token"] != dropped.hello["session"]["token"]
            got = [await resumed.expect("MESSAGE", 15) for _ in range(500)]
            assert [m["data"] for m in got] == list(range(500))
            assert all(m["origin"]["name"] == sender.name for m in got)
            await resumed.quiet("MESSAGE", 0.5)  # nothing twice
            # seq counts from 0 on the new socket; services and subscriptions are as they were.
            fetched = await resumed.request({"type": "SERVICE_FETCH", "service": service})
            assert fetched["seq"] == 0
            assert fetched["service"]["owner_uuid"] == dropped.public_id
            assert fetched["service"]["subscribers"] == [dropped.public_id]
            again = await http.get(f"/fs/{name}/scan.bin", headers={"Authorization": resumed.key})
            assert again.status_code == 202 and again.content == b"scan"
            # Live again: messages arrive as usual.
            assert (await sender.request(message(name, "after")))["type"] == "OK"
            assert (await resumed.expect("MESSAGE"))["data"] == "after"
            await sender.quiet(left(name), 0.3)
            await sender.quiet(joined(name), 0.3)
        finally:
            await resumed.close()
            await sender.close()


async def test_messages_past_the_buffer_are_refused_and_the_resume_says_not_recovered(
    small_buffer_server: ServerProcess,
) -> None:
    name = unique("lossy")
    dropped = await connect(small_buffer_server.ws_url, name, resume=True)
    sender = await connect(small_buffer_server.ws_url, unique("sender"))
    await cut(small_buffer_server, dropped)
    replies = await send_all(sender, [message(name, i) for i in range(80)])
    assert [r["type"] for r in replies] == ["OK"] * 50 + ["BAD"] * 30
    resumed = await connect(small_buffer_server.ws_url, name, resume=dropped.hello["session"]["token"])
    try:
        assert resumed.hello["resumed"] is True and resumed.hello["recovered"] is False
        assert resumed.hello["missed"] == 50
        got = [await resumed.expect("MESSAGE", 10) for _ in range(50)]
        assert [m["data"] for m in got] == list(range(50))
    finally:
        await resumed.close()
        await sender.close()


async def test_without_a_resume_the_leave_runs_when_the_grace_ends_and_the_files_go(
    short_grace_server: ServerProcess,
) -> None:
    name = unique("gone")
    dropped = await connect(short_grace_server.ws_url, name, resume=True)
    watcher = await connect(short_grace_server.ws_url, unique("watcher"))
    async with httpx.AsyncClient(base_url=short_grace_server.url) as http:
        put = await http.put(f"/fs/{name}/f.txt", content=b"x", headers={"Authorization": dropped.key})
        assert put.status_code == 201
        await cut(short_grace_server, dropped)
        await watcher.quiet(left(name), 0.5)  # held: nobody is told yet
        assert (await watcher.request(message(name, "kept"))).get("type") == "OK"
        await watcher.expect(left(name), 15)
        gone = await http.get(f"/fs/{name}/f.txt", headers={"Authorization": watcher.key})
        assert gone.status_code == 404
        assert (await http.get(f"/fs/{name}/f.txt", headers={"Authorization": dropped.key})).status_code == 401
    # The token is expired and the name free: a fresh session.
    fresh = await connect(short_grace_server.ws_url, name, resume=dropped.hello["session"]["token"])
    try:
        assert fresh.hello["resumed"] is False and fresh.hello["uuid"] != dropped.key
        assert "token" in fresh.hello["session"]
        await fresh.quiet("MESSAGE", 0.3)
    finally:
        await fresh.close()
        await watcher.close()


async def test_a_client_that_did_not_ask_for_resume_leaves_at_once_when_its_connection_is_cut(
    held_server: ServerProcess,
) -> None:
    name = unique("old")
    plain = await connect(held_server.ws_url, name)
    watcher = await connect(held_server.ws_url, unique("watcher"))
    try:
        plain.ws.transport.abort()
        await watcher.expect(left(name), 10)
        assert (await watcher.request(message(name, 1)))["type"] == "INVALID_NAME"
    finally:
        await watcher.close()


async def test_a_close_with_1000_ends_a_resumable_session_at_once(held_server: ServerProcess) -> None:
    name = unique("polite")
    client = await connect(held_server.ws_url, name, resume=True)
    watcher = await connect(held_server.ws_url, unique("watcher"))
    try:
        await client.close()
        await watcher.expect(left(name), 10)
        again = await connect(held_server.ws_url, name, resume=client.hello["session"]["token"])
        assert again.hello["resumed"] is False
        await again.close()
    finally:
        await watcher.close()


async def test_a_wrong_token_for_a_held_or_live_name_is_refused_with_4005(held_server: ServerProcess) -> None:
    live = await connect(held_server.ws_url, unique("live"), resume=True)
    held = await connect(held_server.ws_url, unique("held"), resume=True)
    try:
        await cut(held_server, held)
        for name in (live.name, held.name):
            code, reason = await refused(held_server.ws_url, json.dumps(identify_payload(name, resume="not-the-token")))
            assert code == 4005, reason
        # The held session is untouched by the refusal.
        back = await connect(held_server.ws_url, held.name, resume=held.hello["session"]["token"])
        assert back.hello["resumed"] is True
        await back.close()
    finally:
        await live.close()


async def test_a_malformed_resume_field_is_refused_with_a_reason(held_server: ServerProcess) -> None:
    code, reason = await refused(held_server.ws_url, json.dumps(identify_payload(unique("odd"), resume=42)))
    assert code == int(CloseCode.FATAL_DECODE)
    assert "resume" in reason


async def test_memory_layer_keeps_a_held_channels_frames_past_its_capacity_and_expiry() -> None:
    layer = ConciergeMemoryLayer(capacity=2, expiry=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": FRAME, "text": "0"})
    layer.hold(channel, 5, seconds=30)
    for i in range(1, 5):
        await layer.send(channel, {"type": FRAME, "text": str(i)})
    layer._cleaned = 0.0
    layer._clean_expired()
    assert layer.channels[channel]._queue[0][0] > time.time() + 20  # the earlier frame outlives the grace too
    kept, recovered = layer.release(channel)
    assert (kept, recovered) == (5, True)
    assert [(await layer.receive(channel))["text"] for _ in range(5)] == ["0", "1", "2", "3", "4"]


async def test_memory_layer_a_send_refused_while_held_makes_the_release_unrecovered() -> None:
    from channels.exceptions import ChannelFull

    layer = ConciergeMemoryLayer(capacity=2)
    channel = await layer.new_channel()
    layer.hold(channel, 1, seconds=30)
    await layer.send(channel, {"type": FRAME, "text": "0"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": FRAME, "text": "1"})
    assert layer.release(channel) == (1, False)


async def test_memory_layer_a_channel_it_was_not_holding_is_not_recovered() -> None:
    layer = ConciergeMemoryLayer()
    channel = await layer.new_channel()
    assert layer.release(channel) == (0, False)


async def test_a_session_of_a_killed_server_process_is_held_and_resumes_on_its_successor(tmp_path: Path) -> None:
    first = _start(tmp_path, FILESHARE_RESUME_GRACE="60", FILESHARE_LEASE_SECONDS="1")
    name = unique("survivor")
    client = await connect(first.ws_url, name, resume=True)
    async with httpx.AsyncClient(base_url=first.url) as http:
        assert (
            await http.put(f"/fs/{name}/kept.txt", content=b"kept", headers={"Authorization": client.key})
        ).status_code == 201
    first.kill()
    second = start_server(first.env, first.data_dir, "second", "--port", str(first.port))
    try:
        # Its row is live until the successor's sweeper finds the lapsed lease and holds it: 4005 until then.
        token = client.hello["session"]["token"]
        deadline = time.monotonic() + 20
        while True:
            try:
                resumed = await connect(second.ws_url, name, resume=token)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert resumed.hello["resumed"] is True and resumed.hello["uuid"] == client.key
        assert resumed.hello["recovered"] is False  # what was in flight died with the process
        async with httpx.AsyncClient(base_url=second.url) as http:
            got = await http.get(f"/fs/{name}/kept.txt", headers={"Authorization": resumed.key})
            assert got.status_code == 202 and got.content == b"kept"
        newcomer = await connect(second.ws_url, unique("newcomer"))
        assert (await resumed.expect(joined(newcomer.name)))["client"]["uuid"] == newcomer.public_id
        await newcomer.close()
        await resumed.close()
    finally:
        second.stop()


async def test_an_operators_kick_ends_a_resumable_session_at_once_live_or_held(held_server: ServerProcess) -> None:
    from tests.conftest import create_account, operator_session
    from tests.support.clients import close_code

    account = create_account(held_server, unique("op"), staff=True)
    http = await operator_session(held_server, account)
    watcher = await connect(held_server.ws_url, unique("watcher"))
    try:
        csrf = {"X-CSRFToken": http.cookies["csrftoken"]}
        live = await connect(held_server.ws_url, unique("kicked"), resume=True)
        held = await connect(held_server.ws_url, unique("kickheld"), resume=True)
        await cut(held_server, held)
        for client in (live, held):
            done = await http.post("/dashboard/actions/disconnect", data={"client": client.public_id}, headers=csrf)
            assert done.status_code == 200 and done.json()["disconnected"] is True
            await watcher.expect(left(client.name), 10)
        assert await close_code(live) == 4010
        for client in (live, held):
            again = await connect(held_server.ws_url, client.name, resume=client.hello["session"]["token"])
            assert again.hello["resumed"] is False and again.hello["uuid"] != client.key
            await again.close()
    finally:
        await watcher.close()
        await http.aclose()


async def test_events_meant_for_a_held_session_are_kept_in_order_with_its_messages(held_server: ServerProcess) -> None:
    name = unique("evented")
    dropped = await connect(held_server.ws_url, name, resume=True)
    sender = await connect(held_server.ws_url, unique("sender"))
    await cut(held_server, dropped)
    assert (await sender.request(message(name, "before")))["type"] == "OK"
    newcomer = await connect(held_server.ws_url, unique("newcomer"))
    assert (await sender.request(message(name, "after")))["type"] == "OK"
    resumed = await connect(held_server.ws_url, name, resume=dropped.hello["session"]["token"])
    try:
        assert resumed.hello["missed"] == 3 and resumed.hello["recovered"] is True
        frames = [json.loads(await asyncio.wait_for(resumed.ws.recv(), 10)) for _ in range(3)]
        assert [(f["type"], f.get("data") or f["client"]["name"]) for f in frames] == [
            ("MESSAGE", "before"),
            ("CLIENT_JOINED", newcomer.name),
            ("MESSAGE", "after"),
        ]
    finally:
        await resumed.close()
        await newcomer.close()
        await sender.close()


async def test_the_dashboard_shows_a_held_client_as_away_until_its_grace_ends(held_server: ServerProcess) -> None:
    from tests.conftest import create_account, operator_session

    http = await operator_session(held_server, create_account(held_server, unique("op"), staff=True))
    name = unique("away")
    try:
        client = await connect(held_server.ws_url, name, resume=True)

        async def away_until() -> Any:
            (row,) = (await http.get("/dashboard/api/clients", params={"q": name})).json()["results"]
            return row["away_until"]

        assert await away_until() is None
        await cut(held_server, client)
        assert await away_until() is not None
        back = await connect(held_server.ws_url, name, resume=client.hello["session"]["token"])
        assert await away_until() is None
        await back.close()
    finally:
        await http.aclose()


async def test_a_tus_upload_interrupted_by_the_drop_continues_after_the_resume_with_the_same_key(
    held_server: ServerProcess,
) -> None:
    from tests.test_resumable import create, offset_of, patch

    name = unique("uploader")
    client = await connect(held_server.ws_url, name, resume=True)
    async with httpx.AsyncClient(base_url=held_server.url) as http:
        url = await create(http, client, "big.bin", 10)
        assert (await patch(http, client, url, 0, b"01234")).status_code == 204
        await cut(held_server, client)
        resumed = await connect(held_server.ws_url, name, resume=client.hello["session"]["token"])
        try:
            assert resumed.key == client.key
            assert await offset_of(http, resumed, url) == 5
            assert (await patch(http, resumed, url, 5, b"56789")).status_code == 204
            got = await http.get(f"/fs/{name}/big.bin", headers={"Authorization": resumed.key})
            assert got.status_code == 202 and got.content == b"0123456789"
        finally:
            await resumed.close()
