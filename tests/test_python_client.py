"""The Python client (clients/python, ``concierge_client``) against real servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from concierge_client import (
    Backoff,
    BadRequest,
    ChecksumMismatch,
    ClientJoined,
    ClientLeft,
    ConciergeClient,
    Connected,
    Disconnected,
    Event,
    FileApi,
    FileNotFound,
    HttpError,
    InternalServerError,
    InvalidName,
    InvalidService,
    InvalidUuid,
    Message,
    ProtocolViolation,
    RequestTimeout,
    ServiceCreated,
    SyncConciergeClient,
    TerminalClose,
    Unsupported,
    UrlStore,
    should_retry,
)
from concierge_client.errors import reply_error

from tests.conftest import Spawn
from tests.support.server import ServerProcess, restart_on_same_port, start_server

MiB = 1024 * 1024


@pytest.fixture
async def make(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    """Connect ConciergeClients to the module's server; all are closed after the test."""
    made: list[ConciergeClient] = []

    async def connect(name: str, **options: Any) -> ConciergeClient:
        client = ConciergeClient(server.url, name, **options)
        await client.connect()
        made.append(client)
        return client

    yield connect
    for client in made:
        await client.close()


async def next_event(stream: AsyncIterator[Event], kind: type[Event], timeout: float = 10) -> Any:
    async with asyncio.timeout(timeout):
        async for event in stream:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the stream ended before a {kind.__name__}")


# -- Messaging ---------------------------------------------------------------------------------


async def test_connect_returns_hello_with_the_key_and_public_identity(make: Any, name: str) -> None:
    client = await make(name, nickname="Nick", tags=["a", "b"])
    assert client.hello.version
    assert client.info.name == name and client.info.nickname == "Nick" and client.info.tags == ("a", "b")
    assert client.key != client.info.uuid  # the key is secret, the public id is not
    assert client.key not in repr(client.hello)  # kept out of logs and tracebacks


async def test_messages_by_name_uuid_and_broadcast_reach_handlers_and_iterators(make: Any, name: str) -> None:
    alice = await make(f"{name}_a", nickname="Alice")
    bob = await make(f"{name}_b")
    handled: list[Message] = []
    bob.on("MESSAGE", handled.append)
    stream = bob.events()
    await alice.send_to(f"{name}_b", {"n": 1})
    await alice.send_to(bob.info, [2])
    await alice.send_to_uuid(bob.info.uuid, "three")
    await alice.broadcast(None)
    got = [await next_event(stream, Message) for _ in range(4)]
    assert [m.data for m in got] == [{"n": 1}, [2], "three", None]
    assert all(m.origin.name == f"{name}_a" and m.origin.nickname == "Alice" for m in got)
    assert got[0].target == {"type": "NAME", "name": f"{name}_b"}
    await asyncio.sleep(0.2)
    assert [m.data for m in handled] == [m.data for m in got]


async def test_events_of_other_clients_arrive_typed(make: Any, name: str) -> None:
    watcher = await make(f"{name}_w")
    stream = watcher.events()
    other = await make(f"{name}_o")
    joined = await next_event(stream, ClientJoined)
    assert joined.client.name == f"{name}_o"
    created = (await other.create_service(f"{name}_svc")).service
    assert (await next_event(stream, ServiceCreated)).service == created
    await other.close()
    left = await next_event(stream, ClientLeft)
    assert left.client.uuid == other.info.uuid


async def test_services_subscriptions_and_fetches(make: Any, name: str) -> None:
    owner = await make(f"{name}_owner")
    member = await make(f"{name}_member")
    service = f"{name}_svc"
    created = await owner.create_service(service, "Room")
    assert created.successful and created.service.nickname == "Room" and created.service.owner_uuid == owner.info.uuid
    assert (await member.create_service(service)).successful is False
    assert (await member.subscribe(service)).successful is True
    assert member.subscriptions == [service]
    assert (await owner.fetch_service(service)).subscribers == (member.info.uuid,)
    assert service in [s.name for s in await owner.fetch_services()]
    assert (await member.fetch_self()).subscriptions == (service,)
    details = await owner.fetch_client(member.info.uuid)
    assert details.client == member.info and details.subscriptions == (service,)
    assert {owner.info.uuid, member.info.uuid} <= {c.uuid for c in await owner.fetch_clients()}

    stream = member.events()
    await owner.send_to_service(service, "to subscribers")
    got = await next_event(stream, Message)
    assert got.data == "to subscribers" and got.service is not None and got.service.name == service
    await owner.send_to_service_client(service, member.info.uuid, "just you")
    assert (await next_event(stream, Message)).data == "just you"
    owner_stream = owner.events()
    await member.send_to_service(service, "to the owner")
    assert (await next_event(owner_stream, Message)).data == "to the owner"

    assert (await member.unsubscribe(service)).successful is True
    assert member.subscriptions == []
    assert (await member.unsubscribe(service)).successful is False
    assert (await owner.delete_service(service)).name == service
    with pytest.raises(InvalidService):
        await owner.fetch_service(service)


async def test_set_seq_renumbers_the_following_requests(make: Any, name: str) -> None:
    client = await make(name)
    await client.set_seq(1000)
    assert (await client.fetch_self()).client.name == name  # its reply carries seq 1001
    await client.set_seq(5)
    assert (await client.fetch_services()) is not None


async def test_each_error_reply_raises_its_own_exception(make: Any, name: str) -> None:
    client = await make(name)
    other = await make(f"{name}_x")
    await other.create_service(f"{name}_theirs")
    with pytest.raises(InvalidName) as invalid_name:
        await client.send_to("nobody_by_that_name", 1)
    assert invalid_name.value.payload["type"] == "INVALID_NAME"
    with pytest.raises(InvalidUuid):
        await client.fetch_client("00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidService):
        await client.subscribe(f"{name}_no_such_service")
    with pytest.raises(BadRequest):
        await client.delete_service(f"{name}_theirs")  # not the owner
    with pytest.raises(BadRequest):
        await client.send_to_service(f"{name}_theirs", "neither owner nor subscriber")
    with pytest.raises(Unsupported):
        await client.call({"type": "NO_SUCH_PAYLOAD"})
    with pytest.raises(ProtocolViolation):
        await client.call({"type": "MESSAGE", "target": "not an object"})
    with pytest.raises(FileNotFound):
        await client.file_list(f"/{name}/no/such/folder")
    with pytest.raises(BadRequest):
        await client.file_delete(f"/{name}_x/something")  # someone else's folder
    # The socket stays usable after every refusal.
    assert (await client.fetch_self()).client.name == name


def test_error_internal_maps_to_its_exception() -> None:
    # ERROR_INTERNAL cannot be provoked from outside a healthy server: the mapping is checked alone.
    error = reply_error({"type": "ERROR_INTERNAL", "desc": "boom", "seq": 3})
    assert isinstance(error, InternalServerError) and "boom" in str(error)
    assert reply_error({"type": "OK"}) is None


async def test_a_reply_that_does_not_come_in_time_raises_request_timeout(make: Any, name: str) -> None:
    client = await make(name)
    with pytest.raises(RequestTimeout):
        await client.call({"type": "CLIENT_FETCH_ALL"}, timeout=1e-9)
    assert (await client.fetch_self()).client.name == name  # the late reply is dropped, the seq stays in step


async def test_file_list_and_file_delete_over_the_websocket(make: Any, name: str, tmp_path: Path) -> None:
    client = await make(name)
    for index in range(3):
        source = tmp_path / f"f{index}.txt"
        source.write_text(f"file {index}")
        await client.files.upload(source, f"docs/f{index}.txt")
    root = await client.file_list("")
    assert name in [e.path for e in root.entries]
    listing = await client.file_list(f"/{name}/docs")
    assert listing.path == f"/{name}/docs"
    assert [(e.path, e.size_bytes, e.permissions, e.is_dir) for e in listing.entries] == [
        (f"f{i}.txt", 6, 3, False) for i in range(3)
    ]
    assert await client.file_delete(f"/{name}/docs/f1.txt") == f"/{name}/docs/f1.txt"
    assert [e.path for e in (await client.file_list(f"/{name}/docs")).entries] == ["f0.txt", "f2.txt"]


async def test_file_list_joins_a_listing_sent_in_several_frames(make: Any, name: str, tmp_path: Path) -> None:
    client = await make(name)
    source = tmp_path / "x"
    source.write_bytes(b"x")
    uploads = [client.files.upload(source, f"many/{index:04d}") for index in range(501)]
    for batch in range(0, len(uploads), 50):
        await asyncio.gather(*uploads[batch : batch + 50])
    listing = await client.file_list(f"/{name}/many")
    assert [e.path for e in listing.entries] == [f"{index:04d}" for index in range(501)]


def test_the_synchronous_client_does_the_same(server: ServerProcess, name: str, tmp_path: Path) -> None:
    with (
        SyncConciergeClient(server.url, f"{name}_s") as sender,
        SyncConciergeClient(server.url, f"{name}_r") as receiver,
    ):
        events = receiver.events(timeout=10)
        sender.send_to(f"{name}_r", {"sync": True})
        message = next(event for event in events if isinstance(event, Message))
        assert message.data == {"sync": True} and message.origin.name == f"{name}_s"
        assert sender.create_service(f"{name}_svc").successful
        assert receiver.subscribe(f"{name}_svc").successful
        assert [s.name for s in sender.fetch_services() if s.name == f"{name}_svc"] == [f"{name}_svc"]
        with pytest.raises(InvalidName):
            sender.send_to("nobody_here", 1)
        source = tmp_path / "s.txt"
        source.write_text("sync upload")
        uploaded = sender.upload(source, "s.txt")
        got = receiver.download(f"{name}_s/s.txt", tmp_path / "got.txt")
        assert got.sha256 == uploaded.sha256 and got.verified
        assert [e.path for e in receiver.list(f"{name}_s").entries] == ["s.txt"]
        sender.delete("s.txt")
        assert sender.list(f"{name}_s").entries == ()
    with pytest.raises(TerminalClose), SyncConciergeClient(server.url, "bad name!"):
        pass  # 4008: the name is refused


# -- The close-code table and reconnection ----------------------------------------------------


def test_the_close_code_table() -> None:
    for code in (4002, 4003, 4005, 4006, 4007, 4008, 4010):
        assert not should_retry(code), code
    for code in (4000, 4009, 4011, 1006, 1001, None):
        assert should_retry(code), code
    backoff = Backoff(0.5, 20)
    assert all(0 <= backoff.delay(n) <= min(20, 0.5 * 2**n) for n in range(12) for _ in range(20))
    assert max(backoff.delay(30) for _ in range(200)) > 10  # capped at 20, not 0.5 * 2**30


async def test_a_duplicate_name_is_refused_with_a_terminal_close(make: Any, name: str, server: ServerProcess) -> None:
    await make(name)
    second = ConciergeClient(server.url, name)
    with pytest.raises(TerminalClose) as refused:
        await second.connect()
    assert refused.value.code == 4005


async def test_reconnects_after_the_server_restarts_and_restores_services_and_subscriptions(
    spawn: Spawn, name: str
) -> None:
    first = spawn(FILESHARE_LEASE_SECONDS="2")
    owner = ConciergeClient(first.url, f"{name}_owner", backoff=Backoff(0.1, 1.0))
    member = ConciergeClient(first.url, f"{name}_member", backoff=Backoff(0.1, 1.0))
    await owner.connect()
    await member.connect()
    service = f"{name}_room"
    await owner.create_service(service)
    await member.subscribe(service)
    lifecycle: list[Event] = []
    member.on(Connected, lifecycle.append)
    member.on(Disconnected, lifecycle.append)
    stream = member.events()
    old_key = member.key

    second = await asyncio.to_thread(restart_on_same_port, first)
    try:
        reconnected = await next_event(stream, Connected, timeout=60)
        assert reconnected.reconnected and not reconnected.resumed  # it asked for no resumable session
        async with asyncio.timeout(60):
            while not owner.connected:
                await asyncio.sleep(0.1)
        assert member.key != old_key  # a new session
        async with asyncio.timeout(30):  # subscribed again once the owner has created the service again
            while (await member.fetch_self()).subscriptions != (service,):
                await asyncio.sleep(0.1)
        assert (await owner.fetch_service(service)).owner_uuid == owner.info.uuid
        await owner.send_to_service(service, "after the restart")
        assert (await next_event(stream, Message)).data == "after the restart"
        assert any(isinstance(e, Disconnected) and e.retry_in is not None for e in lifecycle)
    finally:
        await owner.close()
        await member.close()
        second.stop()


async def test_a_terminal_code_on_reconnect_stops_retrying(spawn: Spawn, name: str) -> None:
    first = spawn(FILESHARE_LEASE_SECONDS="2")
    client = ConciergeClient(first.url, name, backoff=Backoff(0.1, 0.5))
    await client.connect()
    stream = client.events()
    first.stop()
    env = {**first.env, "FILESHARE_SECRET": "now-there-is-one"}
    second = await asyncio.to_thread(start_server, env, first.data_dir, "secret", "--port", str(first.port))
    try:
        async with asyncio.timeout(60):
            final = None
            async for event in stream:
                if isinstance(event, Disconnected) and event.retry_in is None:
                    final = event
        assert final is not None and final.code == 4006
        assert isinstance(client.close_error, TerminalClose) and client.close_error.code == 4006
        await client.wait_closed()
        assert not client.connected
        tries = sum(1 for line in second.log().splitlines() if "4006" in line or "secret" in line.lower())
        await asyncio.sleep(1.5)  # no further attempt after the terminal code
        assert sum(1 for line in second.log().splitlines() if "4006" in line or "secret" in line.lower()) == tries
    finally:
        await client.close()
        second.stop()


async def test_resume_continues_the_session_on_the_real_server_after_it_is_killed_and_restarted(
    spawn: Spawn, name: str
) -> None:
    # The server holds a killed process's resumable sessions for its successor (docs/sessions.md):
    # same key and public id, the folder kept; recovered is false (frames may have been lost).
    first = spawn(FILESHARE_LEASE_SECONDS="2")
    client = ConciergeClient(first.url, name, backoff=Backoff(0.1, 1.0), resume=True)
    hello = await client.connect()
    assert hello.session is not None and hello.session.grace > 0
    key, public_id = client.key, client.info.uuid
    stream = client.events()
    second = await asyncio.to_thread(restart_on_same_port, first)
    try:
        event = await next_event(stream, Connected, timeout=60)
        assert event.reconnected and event.resumed and not event.recovered
        assert client.key == key and client.info.uuid == public_id
    finally:
        await client.close()
        second.stop()


async def test_resume_sends_the_token_and_reports_the_recovery(tmp_path: Path) -> None:
    """A stand-in server says what the real one cannot be made to on demand: frames missed, then recovered."""
    seen: list[dict[str, Any]] = []

    async def handler(ws: websockets.ServerConnection) -> None:
        identify = json.loads(await ws.recv())
        seen.append(identify)
        if len(seen) == 1:
            await ws.send(
                json.dumps(
                    {
                        "type": "HELLO",
                        "uuid": "k1",
                        "version": "0.2.3",
                        "client": {"name": "r", "nickname": None, "uuid": "p1", "tags": []},
                        "session": {"token": "tok-1", "grace": 60},
                    }
                )
            )
            await asyncio.sleep(0.2)
            ws.transport.abort()  # a dropped connection, no close frame
            return
        await ws.send(
            json.dumps(
                {
                    "type": "HELLO",
                    "uuid": "k1",
                    "version": "0.2.3",
                    "resumed": True,
                    "missed": 1,
                    "recovered": True,
                    "client": {"name": "r", "nickname": None, "uuid": "p1", "tags": []},
                    "session": {"token": "tok-2", "grace": 60},
                }
            )
        )
        await ws.send(
            json.dumps(
                {
                    "type": "MESSAGE",
                    "data": "kept for you",
                    "target": {"type": "NAME", "name": "r"},
                    "origin": {"name": "s", "nickname": None, "uuid": "p2", "tags": []},
                }
            )
        )
        async for frame in ws:
            seen.append(json.loads(frame))

    async with websockets.serve(handler, "127.0.0.1", 0) as stand_in:
        port = stand_in.sockets[0].getsockname()[1]
        client = ConciergeClient(f"http://127.0.0.1:{port}", "r", resume=True, backoff=Backoff(0.05, 0.1))
        stream = client.events()
        await client.connect()
        event = await next_event(stream, Connected)
        assert not event.reconnected
        resumed = await next_event(stream, Connected)
        assert resumed.resumed and resumed.recovered and resumed.missed == 1
        assert (await next_event(stream, Message)).data == "kept for you"
        await client.close()
    assert seen[0]["resume"] is True
    assert seen[1]["resume"] == "tok-1" and seen[1]["name"] == "r"
    assert len(seen) == 2  # resumed: nothing re-subscribed or re-created


# -- Files ---------------------------------------------------------------------------------------


async def test_upload_download_list_and_delete_with_progress(make: Any, name: str, tmp_path: Path) -> None:
    owner = await make(name)
    reader = await make(f"{name}_r")
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(3 * MiB + 5))
    up: list[tuple[int, int | None]] = []
    uploaded = await owner.files.upload(source, "sub/data.bin", progress=lambda d, t: up.append((d, t)))
    assert uploaded.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert uploaded.url == f"{owner.endpoints.base}/fs/{name}/sub/data.bin" and not uploaded.resumable
    assert up[-1] == (source.stat().st_size, source.stat().st_size)
    assert [d for d, _ in up] == sorted(d for d, _ in up)

    down: list[tuple[int, int | None]] = []
    got = await reader.files.download(
        f"{name}/sub/data.bin", tmp_path / "out.bin", progress=lambda d, t: down.append((d, t))
    )
    assert got.verified and got.sha256 == uploaded.sha256 and got.size == source.stat().st_size
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert down[-1] == (got.size, got.size)
    assert not (tmp_path / "out.bin.part").exists() and not (tmp_path / "out.bin.part.json").exists()

    listing = await reader.files.list(f"{name}/sub")
    assert [(e.path, e.size_bytes, e.permissions) for e in listing.entries] == [("data.bin", got.size, 1)]
    with pytest.raises(HttpError) as forbidden:
        await reader.files.delete("sub/data.bin", name)
    assert forbidden.value.status == 403
    await owner.files.delete("sub/data.bin")
    with pytest.raises(HttpError) as missing:
        await reader.files.download(f"{name}/sub/data.bin", tmp_path / "again.bin")
    assert missing.value.status == 404 and missing.value.error == "not_found"


async def test_a_download_that_does_not_match_the_servers_checksum_is_refused(
    make: Any, name: str, tmp_path: Path
) -> None:
    owner = await make(name)
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(2 * MiB))
    uploaded = await owner.files.upload(source, "data.bin")
    dest = tmp_path / "out.bin"
    # A partial file from an "earlier run" whose bytes are wrong: the resumed download cannot match.
    Path(f"{dest}.part").write_bytes(b"\0" * MiB)
    Path(f"{dest}.part.json").write_text(json.dumps({"url": uploaded.url, "etag": f'"{uploaded.sha256}"'}))
    with pytest.raises(ChecksumMismatch):
        await owner.files.download(f"{name}/data.bin", dest)
    assert not dest.exists() and not Path(f"{dest}.part").exists()
    assert (await owner.files.download(f"{name}/data.bin", dest)).sha256 == uploaded.sha256


async def test_a_stored_tus_url_that_is_gone_starts_a_new_upload(make: Any, name: str, tmp_path: Path) -> None:
    client = await make(name)
    source = tmp_path / "t.bin"
    source.write_bytes(os.urandom(MiB))
    store = UrlStore(tmp_path / "urls.json")
    folder = client.endpoints.tus_folder(name)
    from concierge_client.tus import fingerprint

    store.set(fingerprint(folder, source, "t.bin"), f"{folder}00000000-0000-4000-8000-000000000000")
    uploaded = await client.files.upload(source, "t.bin", resumable=True, chunk_size=256 * 1024, url_store=store)
    assert uploaded.resumable and uploaded.resumed_from == 0
    assert uploaded.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "urls.json").read_text()) == {}


class Interrupt(Exception):
    """Raised by a progress callback to cut a transfer off."""


def cut_after(limit: int, seen: list[int]) -> Callable[[int, int | None], None]:
    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        if done >= limit:
            raise Interrupt(f"cut at {done}")

    return progress


@pytest.mark.slow
async def test_a_large_file_survives_an_interrupted_upload_and_download(make: Any, name: str, tmp_path: Path) -> None:
    owner = await make(name)
    reader = await make(f"{name}_r")
    source = tmp_path / "big.bin"
    with source.open("wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(MiB))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    store_path = tmp_path / "state" / "tus-urls.json"

    first: list[int] = []
    with pytest.raises(Interrupt):
        await owner.files.upload(
            source, "big.bin", chunk_size=8 * MiB, url_store=UrlStore(store_path), progress=cut_after(20 * MiB, first)
        )
    assert json.loads(store_path.read_text())  # the upload URL is remembered on disk
    # A new FileApi reading the same store, as a new process would.
    again = FileApi(owner.endpoints, key=owner.key, owner=name)
    second: list[int] = []
    try:
        uploaded = await again.upload(
            source,
            "big.bin",
            chunk_size=8 * MiB,
            url_store=UrlStore(store_path),
            progress=lambda d, t: second.append(d),
        )
    finally:
        await again.aclose()
    assert uploaded.resumable and uploaded.resumed_from >= 16 * MiB and second[0] == uploaded.resumed_from
    assert uploaded.sha256 == expected
    assert json.loads(store_path.read_text()) == {}

    dest = tmp_path / "down" / "big.bin"
    cut: list[int] = []
    with pytest.raises(Interrupt):
        await reader.files.download(f"{name}/big.bin", dest, progress=cut_after(24 * MiB, cut))
    assert Path(f"{dest}.part").stat().st_size >= 24 * MiB and not dest.exists()
    got = await reader.files.download(f"{name}/big.bin", dest)
    assert got.resumed_from >= 24 * MiB and got.verified and got.sha256 == expected
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == expected


UPLOADER = """
import asyncio, os, signal, sys
from concierge_client import Endpoints, FileApi, UrlStore

url, key, owner, source, store, kill_at = sys.argv[1:7]

def progress(done, total):
    if int(kill_at) and done >= int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-upload, without any cleanup

async def main():
    api = FileApi(Endpoints.from_url(url), key=key, owner=owner)
    up = await api.upload(source, "restarted.bin", chunk_size=4 * 2**20, url_store=UrlStore(store), progress=progress)
    print(up.resumed_from, up.sha256)
    await api.aclose()

asyncio.run(main())
"""


@pytest.mark.slow
async def test_a_tus_upload_killed_with_its_process_resumes_in_a_new_process(
    make: Any, name: str, server: ServerProcess, tmp_path: Path
) -> None:
    owner = await make(name)  # the folder lives with this connection; the uploader processes use its key
    source = tmp_path / "restarted.bin"
    source.write_bytes(os.urandom(24 * MiB))
    store = tmp_path / "urls.json"
    args = [server.url, owner.key, name, str(source), str(store)]
    killed = await asyncio.create_subprocess_exec(sys.executable, "-c", UPLOADER, *args, str(10 * MiB))
    assert await killed.wait() == -signal.SIGKILL
    assert json.loads(store.read_text())  # the URL outlived the process
    resumed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", UPLOADER, *args, "0", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await resumed.communicate()
    assert resumed.returncode == 0
    resumed_from, sha256 = out.decode().split()
    assert int(resumed_from) >= 8 * MiB  # the chunks stored before the kill were not sent again
    assert sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    got = await owner.files.download(f"{name}/restarted.bin", tmp_path / "back.bin")
    assert got.verified and got.sha256 == sha256
