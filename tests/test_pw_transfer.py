"""pw.transfer.Transfer on /ws, driven by Pigweed's own transfer client (docs/pw_file.md, "pw_transfer")."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pw_file import file_pb2
from pw_rpc import ids
from pw_rpc.internal import packet_pb2
from pw_status import Status
from pw_transfer import Error, Manager, ProgressStats, ProtocolVersion, transfer_pb2

from bench.transfer_rss import RssSampler
from fileshare.pw import pw_transfer, transfer_chunk
from fileshare.pw.transfer_chunk import Chunk, ChunkType
from tests.support.pigweed import PigweedClient
from tests.support.pigweed import transfer_chunk as chunk_of
from tests.support.server import REPO, ServerProcess, base_env, manage, start_server
from tests.support.transfer_stream import READ, WRITE, StreamingTransfers, TransferFailed

MIB = 1024 * 1024
VERSIONS = [ProtocolVersion.VERSION_TWO, ProtocolVersion.LEGACY]
Type = transfer_pb2.Chunk.Type
PUBLISHED = os.urandom(100_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded defaults, one published file, and a short transfer timeout (quick retransmits)."""
    data_dir = tmp_path_factory.mktemp("server")
    notes = data_dir / "notes.bin"
    notes.write_bytes(PUBLISHED)
    env = base_env(data_dir, FILESHARE_PUBLISHED=f"notes.bin={notes}", FILESHARE_TRANSFER_TIMEOUT="1")
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


async def pigweed(server: ServerProcess, name: str, **options: Any) -> PigweedClient:
    return await asyncio.to_thread(PigweedClient, server.ws_url, name, **options)


@pytest.fixture
async def pw(server: ServerProcess, name: str) -> AsyncIterator[PigweedClient]:
    """The owner: a client speaking pw_rpc with Pigweed's modules."""
    client = await pigweed(server, name + "_own")
    yield client
    await asyncio.to_thread(client.close)


@pytest.fixture
async def reader(server: ServerProcess, name: str) -> AsyncIterator[PigweedClient]:
    """Another live client."""
    client = await pigweed(server, name + "_rd")
    yield client
    await asyncio.to_thread(client.close)


@pytest.fixture
async def web(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        yield client


async def manager(client: PigweedClient, version: ProtocolVersion = ProtocolVersion.VERSION_TWO, **kw: Any) -> Manager:
    # Built off the event loop: a Manager sets the event loop of the thread that makes it.
    return await asyncio.to_thread(client.manager, version=version, **kw)


async def put(web: httpx.AsyncClient, owner: PigweedClient, path: str, data: bytes) -> int:
    """PUT a file as ``owner``; its pw_file id (the X-File-Id header, as docs/pw_file.md says)."""
    response = await web.put(f"/fs/{owner.name}/{path}", content=data, headers={"Authorization": owner.key})
    assert response.status_code == 201, response.text
    assert response.headers["X-File-Id"] == str(response.json()["file_id"])
    return int(response.headers["X-File-Id"])


async def get(web: httpx.AsyncClient, asker: PigweedClient, owner: str, path: str) -> httpx.Response:
    return await web.get(f"/fs/{owner}/{path}", headers={"Authorization": asker.key})


async def read(m: Manager, file_id: int, **kw: Any) -> bytes:
    kw.setdefault("max_window_size", MIB)
    data: bytes = await asyncio.to_thread(m.read, file_id, **kw)
    return data


async def write(m: Manager, file_id: int, data: bytes, **kw: Any) -> None:
    await asyncio.to_thread(m.write, file_id, data, **kw)


async def failure(call: Callable[..., Any], *args: Any, **kw: Any) -> Status:
    """The status a transfer that must fail fails with."""
    with pytest.raises(Error) as raised:
        await asyncio.to_thread(call, *args, **kw)
    status: Status = raised.value.status
    return status


def spools(server: ServerProcess) -> list[str]:
    """Files the server holds open in its storage root, where a write's spool lies: a file
    with no name, ``<root>/#<inode> (deleted)`` (which psutil's open_files leaves out)."""
    root = str(server.data_dir / "files")
    found = []
    for fd in os.listdir(f"/proc/{server.pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{server.pid}/fd/{fd}")
            if target.startswith(root):
                found.append(target)
    return found


async def no_spools(server: ServerProcess) -> None:
    for _ in range(100):
        if not spools(server):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still open: {spools(server)}")


# -- the wire format, against Pigweed's generated modules ---------------------------------------


def test_the_service_and_method_ids_are_pigweeds() -> None:
    assert ids.calculate("pw.transfer.Transfer") == pw_transfer.SERVICE_ID
    assert (ids.calculate("Read"), ids.calculate("Write")) == (pw_transfer.READ_ID, pw_transfer.WRITE_ID)


def test_chunks_encode_and_decode_as_pigweeds_transfer_pb2() -> None:
    ours = Chunk(type=ChunkType.DATA, session_id=7, offset=5 * 1024**3, data=b"abc", remaining_bytes=0)
    theirs = transfer_pb2.Chunk.FromString(ours.encode())
    assert theirs.HasField("type") and theirs.type == Type.DATA  # DATA is 0 and still sent
    assert (theirs.session_id, theirs.offset, theirs.data, theirs.remaining_bytes) == (7, 5 * 1024**3, b"abc", 0)
    assert theirs.HasField("remaining_bytes") and not theirs.HasField("status") and theirs.transfer_id == 0

    legacy = Chunk(
        type=ChunkType.PARAMETERS_RETRANSMIT, transfer_id=3, offset=10, window_end_offset=30, pending_bytes=20
    )
    theirs = transfer_pb2.Chunk.FromString(legacy.encode())
    assert (theirs.transfer_id, theirs.pending_bytes, theirs.window_end_offset) == (3, 20, 30)
    assert not theirs.HasField("session_id")

    start = transfer_pb2.Chunk(
        type=Type.START, desired_session_id=9, resource_id=4, transfer_id=4, protocol_version=2, initial_offset=12
    )
    decoded = Chunk.decode(start.SerializeToString())
    assert (decoded.type, decoded.desired_session_id, decoded.resource_id, decoded.initial_offset) == (1, 9, 4, 12)
    assert decoded.version == transfer_chunk.VERSION_TWO
    # A legacy chunk without a type: inferred as Pigweed's client infers it.
    assert Chunk.decode(transfer_pb2.Chunk(transfer_id=4, pending_bytes=8).SerializeToString()).type == ChunkType.START
    old = Chunk.decode(transfer_pb2.Chunk(transfer_id=4, offset=3, pending_bytes=8).SerializeToString())
    assert (old.type, old.version, old.window_end) == (ChunkType.PARAMETERS_RETRANSMIT, transfer_chunk.LEGACY, 11)


# -- reads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_reads_are_byte_exact_for_empty_one_byte_and_5_mib_plus_one_files(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient, version: ProtocolVersion
) -> None:
    m = await manager(reader, version)
    for size in (0, 1, 5 * MIB + 1):
        data = os.urandom(size)
        file_id = await put(web, pw, f"sized/{size}.bin", data)
        assert await read(m, file_id) == data  # any live client reads any live file


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_a_published_file_is_read_by_its_id_and_never_written(
    web: httpx.AsyncClient, pw: PigweedClient, version: ProtocolVersion
) -> None:
    status, responses = await asyncio.to_thread(pw.fs.List, path="/_published")
    assert status is Status.OK
    (entry,) = [p for r in responses for p in r.paths]
    assert entry.path == "notes.bin" and entry.permissions == file_pb2.Path.READ
    m = await manager(pw, version)
    assert await read(m, entry.file_id) == PUBLISHED
    assert await failure(m.write, entry.file_id, b"no") is Status.PERMISSION_DENIED


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_a_200_mib_read_is_byte_exact(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient, version: ProtocolVersion
) -> None:
    data = os.urandom(200 * MIB)
    file_id = await put(web, pw, "big.bin", data)
    m = await manager(reader, version, chunk=64 * 1024)
    got = await read(m, file_id, max_window_size=4 * MIB)
    assert len(got) == len(data) and hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_a_read_resumes_from_an_offset(web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient) -> None:
    data = os.urandom(300_001)
    file_id = await put(web, pw, "resume.bin", data)
    m = await manager(reader)
    for offset in (1, 65_536, 123_457, len(data) - 1, len(data)):
        assert await read(m, file_id, initial_offset=offset) == data[offset:]
    assert await failure(m.read, file_id, initial_offset=len(data) + 1) is Status.OUT_OF_RANGE


# -- writes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_a_write_replaces_the_file_under_the_same_id_and_reads_back(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient, version: ProtocolVersion
) -> None:
    file_id = await put(web, pw, "doc/new.bin", b"")  # an empty PUT creates the file and names its id
    m = await manager(pw, version)
    for data in (os.urandom(3 * MIB + 7), b"", b"x", os.urandom(100_000)):
        await write(m, file_id, data)
        assert await read(await manager(reader, version), file_id) == data
        got = await get(web, reader, pw.name, "doc/new.bin")
        assert got.status_code == 202 and got.content == data
    status, responses = await asyncio.to_thread(pw.fs.List, path=f"/{pw.name}/doc")
    (entry,) = [p for r in responses for p in r.paths]
    assert (entry.path, entry.file_id, entry.size_bytes) == ("new.bin", file_id, 100_000)


async def test_readers_see_the_old_file_until_a_write_completes(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient
) -> None:
    old, new = os.urandom(2 * MIB), os.urandom(6 * MIB)
    file_id = await put(web, pw, "swap.bin", old)
    paused, go_on = threading.Event(), threading.Event()

    def pause(stats: ProgressStats) -> None:
        if stats.bytes_sent > MIB and not paused.is_set():
            paused.set()
            go_on.wait(30)

    m = await manager(pw)
    writing = asyncio.ensure_future(write(m, file_id, new, progress_callback=pause))
    assert await asyncio.to_thread(paused.wait, 30)
    try:
        mid = await get(web, reader, pw.name, "swap.bin")
        assert mid.status_code == 202 and mid.content == old
    finally:
        go_on.set()
    await writing
    assert (await get(web, reader, pw.name, "swap.bin")).content == new


async def test_a_write_starting_past_zero_is_unimplemented(web: httpx.AsyncClient, pw: PigweedClient) -> None:
    file_id = await put(web, pw, "offset.bin", b"abc")
    m = await manager(pw)
    assert await failure(m.write, file_id, b"def", initial_offset=3) is Status.UNIMPLEMENTED
    assert (await get(web, pw, pw.name, "offset.bin")).content == b"abc"


# -- lost chunks ----------------------------------------------------------------------------------


class Loss:
    """Loses the DATA chunks at some offsets, the first time each passes."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.seen = 0
        self.lost: set[int] = set()
        self.retransmits = 0

    def __call__(self, frame: bytes) -> bool:
        chunk = chunk_of(frame)
        if chunk is None:
            return False
        if chunk.type == Type.PARAMETERS_RETRANSMIT:
            self.retransmits += 1
        if chunk.type != Type.DATA or not chunk.data or chunk.offset in self.lost:
            return False
        self.seen += 1
        if self.seen % self.every == 0:
            self.lost.add(chunk.offset)
            return True
        return False


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_chunks_lost_on_a_read_are_sent_again(
    server: ServerProcess, web: httpx.AsyncClient, pw: PigweedClient, name: str, version: ProtocolVersion
) -> None:
    data = os.urandom(2 * MIB + 3)
    file_id = await put(web, pw, "lossy-read.bin", data)
    loss = Loss(every=5)
    client = await pigweed(server, name + "_lossy", drop_in=loss)
    try:
        asked: list[int] = []
        client.drop_out = lambda frame: bool(
            (c := chunk_of(frame)) and c.type == Type.PARAMETERS_RETRANSMIT and asked.append(c.offset)
        )
        assert await read(await manager(client, version), file_id) == data
        assert len(loss.lost) >= 5 and asked  # the client asked again from each gap
    finally:
        await asyncio.to_thread(client.close)


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_chunks_lost_on_a_write_are_asked_for_again(
    server: ServerProcess, web: httpx.AsyncClient, name: str, version: ProtocolVersion
) -> None:
    loss = Loss(every=3)
    client = await pigweed(server, name + "_lossy", drop_out=loss)
    try:
        file_id = await put(web, client, "lossy-write.bin", b"")
        data = os.urandom(4 * MIB + 5)  # 17 chunks of 256 KiB
        retransmits: list[int] = []
        client.drop_in = lambda frame: bool(
            (c := chunk_of(frame)) and c.type == Type.PARAMETERS_RETRANSMIT and retransmits.append(c.offset)
        )
        await write(await manager(client, version), file_id, data)
        assert len(loss.lost) >= 5
        assert len(retransmits) > 1  # the first asks for the start; the rest for lost chunks
        assert set(retransmits[1:]) <= loss.lost
        assert (await get(web, client, client.name, "lossy-write.bin")).content == data
    finally:
        await asyncio.to_thread(client.close)


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_an_unknown_id_is_not_found(pw: PigweedClient, version: ProtocolVersion) -> None:
    m = await manager(pw, version)
    for unknown in (987_654, 0xF000_0005):  # no such file; a published position with no entry
        assert await failure(m.read, unknown) is Status.NOT_FOUND
        assert await failure(m.write, unknown, b"x") is Status.NOT_FOUND


@pytest.mark.parametrize("version", VERSIONS, ids=["v2", "legacy"])
async def test_writing_another_clients_file_is_permission_denied(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient, version: ProtocolVersion
) -> None:
    file_id = await put(web, pw, "mine.txt", b"mine")
    assert await failure((await manager(reader, version)).write, file_id, b"theirs") is Status.PERMISSION_DENIED
    assert (await get(web, pw, pw.name, "mine.txt")).content == b"mine"


async def test_a_write_over_the_limit_is_resource_exhausted_and_changes_nothing(tmp_path: Path, name: str) -> None:
    env = base_env(tmp_path, FILESHARE_MAX_UPLOAD_BYTES=str(MIB))
    manage(env, "migrate", "-v0")
    limited = start_server(env, tmp_path)
    try:
        client = await pigweed(limited, name)
        async with httpx.AsyncClient(base_url=limited.url) as web:
            file_id = await put(web, client, "capped.bin", b"before")
            m = await manager(client)
            assert await failure(m.write, file_id, os.urandom(MIB + 1)) is Status.RESOURCE_EXHAUSTED
            await write(m, file_id, b"y" * MIB)  # the limit itself is fine
            assert (await get(web, client, client.name, "capped.bin")).content == b"y" * MIB
            assert await failure(m.write, file_id, os.urandom(2 * MIB)) is Status.RESOURCE_EXHAUSTED
            assert (await get(web, client, client.name, "capped.bin")).content == b"y" * MIB
        await no_spools(limited)
        await asyncio.to_thread(client.close)
    finally:
        limited.stop()
    assert "Traceback" not in limited.log()


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that gives up on a silent client after 0.3 s x 3."""
    env = base_env(tmp_path, FILESHARE_TRANSFER_TIMEOUT="0.3", FILESHARE_TRANSFER_RETRIES="2")
    manage(env, "migrate", "-v0")
    process = start_server(env, tmp_path)
    yield process
    process.stop()
    assert "Traceback" not in process.log()


async def test_a_silent_client_gets_deadline_exceeded_and_the_write_is_freed(
    impatient: ServerProcess, name: str
) -> None:
    raw = await StreamingTransfers.connect(impatient.ws_url, name)
    async with httpx.AsyncClient(base_url=impatient.url) as web:
        response = await web.put(f"/fs/{name}/quiet.bin", content=b"old", headers={"Authorization": raw.key})
        file_id = int(response.headers["X-File-Id"])
        ack = await raw.start(WRITE, file_id)
        assert ack.type == Type.START_ACK and ack.session_id == raw.session and ack.resource_id == file_id
        await raw.send(type=Type.START_ACK_CONFIRMATION, session_id=raw.session)
        asked = await raw.receive()
        assert asked.type == Type.PARAMETERS_RETRANSMIT and asked.window_end_offset > 0
        await raw.send(type=Type.DATA, session_id=raw.session, offset=0, data=b"half of it")
        assert spools(impatient)  # the write holds its spool
        seen = []
        while not (chunk := await asyncio.wait_for(raw.receive(), 10)).HasField("status"):
            seen.append(chunk.type)  # asked again at each timeout
        assert chunk.type == Type.COMPLETION and chunk.status == Status.DEADLINE_EXCEEDED.value
        assert seen.count(Type.PARAMETERS_RETRANSMIT) == 2
        await no_spools(impatient)
        assert (await web.get(f"/fs/{name}/quiet.bin", headers={"Authorization": raw.key})).content == b"old"
    # A read left unanswered after its handshake ends the same way.
    ack = await raw.start(READ, file_id, window_end_offset=1, max_chunk_size_bytes=1)
    while not (chunk := await asyncio.wait_for(raw.receive(), 10)).HasField("status"):
        assert chunk.type == Type.START_ACK  # sent again: the client never confirmed
    assert chunk.status == Status.DEADLINE_EXCEEDED.value
    await raw.close()


async def test_a_cancelled_write_stores_nothing_and_frees_its_spool(
    server: ServerProcess, web: httpx.AsyncClient, name: str
) -> None:
    raw = await StreamingTransfers.connect(server.ws_url, name)
    response = await web.put(f"/fs/{name}/kept.bin", content=b"kept", headers={"Authorization": raw.key})
    file_id = int(response.headers["X-File-Id"])
    await raw.start(WRITE, file_id)
    await raw.send(type=Type.START_ACK_CONFIRMATION, session_id=raw.session)
    await raw.receive()
    await raw.send(type=Type.DATA, session_id=raw.session, offset=0, data=b"partial")
    await asyncio.sleep(0.2)
    assert spools(server)
    cancel = packet_pb2.RpcPacket(
        type=packet_pb2.PacketType.CLIENT_ERROR,
        channel_id=1,
        service_id=pw_transfer.SERVICE_ID,
        method_id=WRITE,
        call_id=raw.call_id,
        status=Status.CANCELLED.value,
    )
    await raw.ws.send(cancel.SerializeToString())
    await no_spools(server)
    assert (await web.get(f"/fs/{name}/kept.bin", headers={"Authorization": raw.key})).content == b"kept"
    # The stream is gone: a chunk on it is refused as pw_rpc refuses a call that is not open.
    await raw.send(type=Type.DATA, session_id=raw.session, offset=7, data=b"more")
    with pytest.raises(TransferFailed) as refused:
        await asyncio.wait_for(raw.receive(), 10)
    assert refused.value.status == Status.FAILED_PRECONDITION.value
    await raw.close()


async def test_a_read_of_a_file_deleted_meanwhile_is_aborted(
    web: httpx.AsyncClient, pw: PigweedClient, reader: PigweedClient
) -> None:
    file_id = await put(web, pw, "going.bin", os.urandom(4 * MIB))
    paused, go_on = threading.Event(), threading.Event()

    def pause(stats: ProgressStats) -> None:
        if not paused.is_set():
            paused.set()
            go_on.wait(30)

    m = await manager(reader, chunk=8 * 1024)
    reading = asyncio.ensure_future(failure(m.read, file_id, progress_callback=pause, max_window_size=64 * 1024))
    assert await asyncio.to_thread(paused.wait, 30)
    try:
        deleted = await web.delete(f"/fs/{pw.name}/going.bin", headers={"Authorization": pw.key})
        assert deleted.status_code == 200
        await asyncio.sleep(pw_transfer.CHECK_EVERY + 0.2)
    finally:
        go_on.set()
    assert await reading is Status.ABORTED


async def test_the_owner_leaving_mid_write_ends_it_with_no_partial_file(
    server: ServerProcess, web: httpx.AsyncClient, reader: PigweedClient, name: str
) -> None:
    owner = await pigweed(server, name + "_leaving")
    file_id = await put(web, owner, "draft.bin", b"first draft")
    folder = next(p for p in (server.data_dir / "files").iterdir() if p.name.startswith(owner.name))
    halfway = threading.Event()

    def note(stats: ProgressStats) -> None:
        if stats.bytes_sent > 2 * MIB:
            halfway.set()

    m = await manager(owner, timeout=0.5, retries=2)
    writing = asyncio.ensure_future(failure(m.write, file_id, os.urandom(20 * MIB), progress_callback=note))
    assert await asyncio.to_thread(halfway.wait, 60)
    await asyncio.to_thread(owner.close)  # the owner leaves mid-write
    assert await writing in (Status.DEADLINE_EXCEEDED, Status.INTERNAL, Status.ABORTED)
    await no_spools(server)
    for _ in range(50):
        if not folder.exists() or not any(folder.rglob("*")):
            break
        await asyncio.sleep(0.1)
    assert not folder.exists() or not any(folder.rglob("*")), list(folder.rglob("*"))
    assert (await get(web, reader, owner.name, "draft.bin")).status_code == 404
    status, _ = await asyncio.to_thread(reader.fs.List, path=f"/{owner.name}")
    assert status is Status.NOT_FOUND
    assert "Traceback" not in server.log()


# -- 1 GiB each way: the server's memory stays bounded ----------------------------------------------

GIB = 1024 * MIB
RSS_LIMIT_MIB = 150  # the bound the HTTP transfers keep (tests/test_deploy.py)


@pytest.mark.slow
async def test_one_gib_each_way_over_pw_transfer_keeps_the_server_small(server: ServerProcess, name: str) -> None:
    raw = await StreamingTransfers.connect(server.ws_url, name)
    async with httpx.AsyncClient(base_url=server.url) as web:
        response = await web.put(f"/fs/{name}/gib.bin", content=b"", headers={"Authorization": raw.key})
        file_id = int(response.headers["X-File-Id"])
    block = os.urandom(MIB)
    sent = hashlib.sha256()

    def blocks() -> Iterator[bytes]:
        for index in range(GIB // MIB):
            piece = block[index % 251 :] + block[: index % 251]  # not one block repeated
            sent.update(piece)
            yield piece

    with RssSampler(server.pid) as writing:
        await raw.write(file_id, blocks(), GIB)
    received = hashlib.sha256()
    with RssSampler(server.pid) as reading:
        size = await raw.read(file_id, received.update, 8 * MIB, 64 * 1024)
    await raw.close()
    assert size == GIB and received.hexdigest() == sent.hexdigest()
    assert writing.peak / MIB <= RSS_LIMIT_MIB, writing.peak / MIB
    assert reading.peak / MIB <= RSS_LIMIT_MIB, reading.peak / MIB


# -- the docs ---------------------------------------------------------------------------------------


def session_in_docs() -> tuple[str, list[str]]:
    """The Python session of docs/pw_file.md and the lines it says it prints."""
    text = (REPO / "docs" / "pw_file.md").read_text()
    match = re.search(
        r"<!-- session: pw_transfer -->\n```python\n(.*?)```\n\nIt prints:\n\n```text\n(.*?)```", text, re.S
    )
    assert match, "docs/pw_file.md has no pw_transfer session"
    return match.group(1), match.group(2).splitlines()


def test_the_python_session_in_the_docs_runs_against_a_live_server(spawn: Any, tmp_path: Path) -> None:
    live = spawn()
    code, prints = session_in_docs()
    script = tmp_path / "session.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "CONCIERGE_URL": live.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == prints
    assert "Traceback" not in live.log()


# -- the bench ------------------------------------------------------------------------------------


def test_the_bench_section_reports_pw_transfer_beside_http(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--size-mib", "8", "--only", "pw_transfer", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failed"] == {}
    moved = ("http_put", "http_get", "write", "read", "pigweed_write", "pigweed_read")
    expected = {f"pw_transfer.{name}_{unit}" for name in moved for unit in ("mib_s", "peak_rss_mib")}
    assert set(report["figures"]) == expected
    assert all(report["figures"][key]["median"] > 0 for key in expected)
    assert report["figures"]["pw_transfer.read_mib_s"]["ceiling"] == "pw_transfer.http_get_mib_s"
