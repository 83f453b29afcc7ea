"""IDENTIFY/HELLO and every handshake close code, against a real daphne process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from pathlib import Path

import pytest
import websockets

from tests.conftest import Spawn
from tests.support.clients import connect, identify_payload, refused
from tests.support.server import ServerProcess


async def test_hello_gives_a_secret_key_distinct_from_the_public_id(server: ServerProcess, name: str) -> None:
    client = await connect(server.ws_url, name, nickname="Nick", tags=["vr", "lab"])
    hello = client.hello
    assert set(hello) == {"type", "uuid", "version", "client"}
    assert hello["version"].startswith("0.2.")
    assert hello["client"] == {"name": name, "nickname": "Nick", "uuid": client.public_id, "tags": ["vr", "lab"]}
    assert client.key != client.public_id
    await client.close()


async def test_subprotocol_is_selected_only_when_offered(server: ServerProcess, name: str) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[websockets.Subprotocol("ert-concierge")]) as ws:
        assert ws.subprotocol == "ert-concierge"
    async with websockets.connect(server.ws_url) as ws:
        assert ws.subprotocol is None
        await ws.send(json.dumps(identify_payload(name)))
        assert json.loads(await ws.recv())["type"] == "HELLO"
    async with websockets.connect(server.ws_url, subprotocols=[websockets.Subprotocol("other")]) as ws:
        assert ws.subprotocol is None


async def test_others_hear_client_joined_with_the_public_id_never_the_key(server: ServerProcess, name: str) -> None:
    watcher = await connect(server.ws_url, name + "_w")
    newcomer = await connect(server.ws_url, name)
    joined = await watcher.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == name)
    assert joined == {"type": "CLIENT_JOINED", "client": newcomer.info}
    assert newcomer.key not in json.dumps(joined)
    await newcomer.quiet("CLIENT_JOINED")
    await newcomer.close()
    left = await watcher.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
    assert left["client"]["uuid"] == newcomer.public_id
    await watcher.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (["not json"], 4002),
        (["[1, 2]"], 4002),
        (['{"no": "type"}'], 4002),
        ([json.dumps({"type": "IDENTIFY", "name": "ok_name", "version": "0.2.0", "tags": "notalist"})], 4002),
        ([json.dumps({"type": "MESSAGE", "target": {"type": "ALL"}})], 4003),
        ([b"\x00binary"], 4003),
        ([json.dumps({"type": "IDENTIFY", "name": "v_bad", "version": "0.3.0"})], 4007),
        ([json.dumps({"type": "IDENTIFY", "name": "v_bad", "version": "zero"})], 4007),
        ([json.dumps({"type": "IDENTIFY", "name": "v_bad"})], 4007),
        ([json.dumps({"type": "IDENTIFY", "name": "", "version": "0.2.0"})], 4008),
        ([json.dumps({"type": "IDENTIFY", "name": "has space", "version": "0.2.0"})], 4008),
        ([json.dumps({"type": "IDENTIFY", "name": "x" * 65, "version": "0.2.0"})], 4008),
        ([json.dumps({"type": "IDENTIFY", "version": "0.2.0"})], 4008),
    ],
)
async def test_a_bad_first_frame_closes_with_its_code_and_a_reason(
    server: ServerProcess, frames: list[str | bytes], code: int
) -> None:
    got, reason = await refused(server.ws_url, *frames)
    assert got == code
    assert reason, "the close frame must say what was wrong"


async def test_a_taken_name_closes_with_4005(server: ServerProcess, name: str) -> None:
    first = await connect(server.ws_url, name)
    code, reason = await refused(server.ws_url, json.dumps(identify_payload(name)))
    assert (code, name in reason) == (4005, True)
    await first.close()


async def test_a_name_is_free_again_once_its_client_left(server: ServerProcess, name: str) -> None:
    first = await connect(server.ws_url, name)
    await first.close()
    for _ in range(50):
        try:
            second = await connect(server.ws_url, name)
            break
        except (AssertionError, websockets.ConnectionClosed):
            await asyncio.sleep(0.1)
    else:
        pytest.fail("the name never became free")
    assert second.key != first.key
    await second.close()


async def test_wrong_or_missing_secret_closes_with_4006(spawn: Spawn) -> None:
    process = spawn(FILESHARE_SECRET="sesame")
    for extra in ({"secret": "wrong"}, {}, {"secret": None}):
        code, _ = await refused(process.ws_url, json.dumps(identify_payload("s_client", **extra)))
        assert code == 4006
    client = await connect(process.ws_url, "s_client", secret="sesame")
    await client.close()


async def test_no_identify_in_time_closes_with_4004(spawn: Spawn) -> None:
    process = spawn(FILESHARE_IDENTIFY_TIMEOUT="0.5")
    code, reason = await refused(process.ws_url, wait=5)
    assert code == 4004
    assert "IDENTIFY" in reason


async def test_a_frame_over_the_size_limit_closes_with_1009(spawn: Spawn) -> None:
    process = spawn(FILESHARE_MAX_FRAME_BYTES="2048")
    client = await connect(process.ws_url, "big_sender")
    await client.ws.send(json.dumps({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "x" * 4096}))
    with pytest.raises(websockets.ConnectionClosed) as info:
        await client.expect("never", timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def _raw_identify(host: str, port: int, name: str) -> socket.socket:
    """A websocket client that never answers pings: a bare socket after the handshake."""
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in sock.recv(4096)
    body = json.dumps(identify_payload(name)).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(body)) + mask + masked)
    return sock


async def test_a_client_that_stops_answering_pings_is_dropped_and_cleaned_up(spawn: Spawn) -> None:
    process = spawn(FILESHARE_PING_INTERVAL="0.5", FILESHARE_PING_TIMEOUT="1")
    watcher = await connect(process.ws_url, "hb_watcher")
    silent = await asyncio.to_thread(_raw_identify, process.host, process.port, "hb_silent")
    try:
        await watcher.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == "hb_silent")
        left = await watcher.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == "hb_silent", 15)
        assert left["client"]["name"] == "hb_silent"
    finally:
        silent.close()
    # The watcher answers pings (websockets does it for us) and stays connected.
    await asyncio.sleep(2)
    reply = await watcher.request({"type": "SELF_FETCH"})
    assert reply["type"] == "SELF_FETCH_RESULT"
    await watcher.close()


KERNEL_BACKLOG_CAP = int(Path("/proc/sys/net/core/somaxconn").read_text())


async def test_connections_arriving_while_the_server_is_busy_wait_in_a_deep_backlog(spawn: Spawn) -> None:
    """Twisted listens with a backlog of 50; runconcierge asks for 1024. With the server
    stopped (SIGSTOP), the kernel completes connections only while the backlog has room:
    all 200 here (unless the kernel caps backlogs lower), where the default would have
    taken 51 and dropped the rest."""
    import signal

    process = spawn()
    address = ("127.0.0.1", process.port)
    sockets: list[socket.socket] = []
    os.kill(process.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            sockets.append(sock)
        await asyncio.sleep(0.5)
        connected = sum(1 for sock in sockets if _established(sock))
    finally:
        os.kill(process.proc.pid, signal.SIGCONT)
        for sock in sockets:
            sock.close()
    assert connected >= min(200, KERNEL_BACKLOG_CAP)
    client = await connect(process.ws_url, "after_the_burst")
    await client.close()


def _established(sock: socket.socket) -> bool:
    """Whether the handshake finished (a peer address), for a non-blocking connect."""
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def test_runconcierge_puts_the_startup_heap_out_of_the_collectors_reach_before_it_serves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Full collections would otherwise rescan everything startup built, a pause of tens
    of milliseconds every few hundred handshakes (docs/performance.md)."""
    import gc

    from django.core.management import call_command

    from fileshare.server import daphne_support

    frozen_when_serving: list[int] = []
    monkeypatch.setattr(daphne_support, "install", lambda: None)
    monkeypatch.setattr(
        daphne_support.FlowControlServer, "run", lambda server: frozen_when_serving.append(gc.get_freeze_count())
    )
    gc.unfreeze()
    try:
        call_command("runconcierge", "--port", "0", "--no-self-check")
    finally:
        gc.unfreeze()
    assert frozen_when_serving and frozen_when_serving[0] > 10_000
