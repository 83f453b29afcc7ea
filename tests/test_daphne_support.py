"""The run command's file path (fileshare/server/daphne_support.py with fileshare/fileapi/offload.py).

A request body over 100 kB is written once, to a file with no name in the storage
root, hashed as it arrives, and a PUT gives that very file a name in storage; a
whole-file GET is sent by the server from the blob. Checked against a real server
(its open files seen in /proc) and in-process; never timed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fileshare.exceptions import TooLarge
from fileshare.fileapi import offload
from tests.support.clients import Client, connect
from tests.support.local_storage import local_file_storage
from tests.support.server import ServerProcess

MIB = 1024 * 1024


def storage_root(server: ServerProcess) -> Path:
    return Path(os.path.realpath(server.data_dir / "files"))


def stored_files(server: ServerProcess) -> set[Path]:
    """Every file in the server's storage root."""
    root = storage_root(server)
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def open_files(server: ServerProcess, match: Callable[[str], bool]) -> dict[str, int]:
    """The server's open files whose /proc link matches: link -> inode."""
    found: dict[str, int] = {}
    for fd in Path(f"/proc/{server.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            inode = os.stat(fd).st_ino
        except OSError:  # closed meanwhile
            continue
        if match(target):
            found[target] = inode
    return found


def spooled(server: ServerProcess) -> dict[str, int]:
    """Request bodies being spooled: open files with no name in the storage root."""
    root = str(storage_root(server))
    return open_files(server, lambda target: target.startswith(root + "/") and target.endswith("(deleted)"))


async def until(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it is truthy (10 s at most); returns its value."""
    for _ in range(500):
        if value := condition():
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


# -- Uploads through a real server -------------------------------------------------------------


async def test_a_put_body_is_spooled_in_storage_and_that_inode_is_the_stored_file(
    server: ServerProcess, owner: Client, http: httpx.AsyncClient
) -> None:
    first, rest = os.urandom(4 * MIB), os.urandom(2 * MIB + 7)
    seen: dict[str, int] = {}

    async def body() -> AsyncIterator[bytes]:
        yield first
        seen.update(await until(lambda: spooled(server), "a spooled body"))
        yield rest

    before = stored_files(server)
    put = await http.put(
        f"/fs/{owner.name}/big.bin",
        content=body(),
        headers={"Authorization": owner.key, "Content-Length": str(len(first) + len(rest))},
    )
    assert put.status_code == 201, put.text
    assert put.json()["sha256"] == hashlib.sha256(first + rest).hexdigest()
    assert len(seen) == 1
    (stored,) = stored_files(server) - before
    assert stored.stat().st_ino == next(iter(seen.values()))  # linked, not copied
    assert stored.stat().st_nlink == 1
    assert stat.S_IMODE(stored.stat().st_mode) == 0o644  # FILE_UPLOAD_PERMISSIONS, not the spool's 0600
    assert stored.read_bytes() == first + rest
    await until(lambda: not spooled(server), "the spool closed")


async def test_a_chunked_put_and_a_large_multipart_post_are_spooled_and_stored(
    owner: Client, http: httpx.AsyncClient
) -> None:
    pieces = [os.urandom(100_000) for _ in range(5)]

    async def chunked() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    put = await http.put(f"/fs/{owner.name}/chunked.bin", content=chunked(), headers={"Authorization": owner.key})
    assert put.status_code == 201, put.text
    assert (put.json()["size"], put.json()["sha256"]) == (500_000, hashlib.sha256(b"".join(pieces)).hexdigest())

    data = os.urandom(MIB + 3)
    post = await http.post(
        f"/fs/{owner.name}/posted.bin", files={"file": ("x.bin", data)}, headers={"Authorization": owner.key}
    )
    assert post.status_code == 201, post.text
    for path, expected in (("chunked.bin", b"".join(pieces)), ("posted.bin", data)):
        got = await http.get(f"/fs/{owner.name}/{path}", headers={"Authorization": owner.key})
        assert (got.status_code, got.content) == (202, expected)


async def test_a_large_multipart_post_is_stored_byte_exact_from_the_spooled_body(
    server: ServerProcess, owner: Client, http: httpx.AsyncClient
) -> None:
    """Twisted would read and parse a multipart POST whole in memory; daphne never uses that.
    (The server's memory during large transfers is measured by the bench: ``transfer_rss``.)"""
    data = os.urandom(MIB) * 96
    post = await http.post(
        f"/fs/{owner.name}/form.bin", files={"file": ("form.bin", data)}, headers={"Authorization": owner.key}
    )
    assert post.status_code == 201, post.text
    assert post.json()["sha256"] == hashlib.sha256(data).hexdigest()


async def test_an_aborted_upload_leaves_no_spool_and_no_file(server: ServerProcess, owner: Client) -> None:
    before = stored_files(server)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = (
        f"PUT /fs/{owner.name}/aborted.bin HTTP/1.1\r\nHost: test\r\nAuthorization: {owner.key}\r\n"
        f"Content-Length: {8 * MIB}\r\n\r\n"
    )
    writer.write(head.encode() + os.urandom(2 * MIB))
    await writer.drain()
    await until(lambda: spooled(server), "a spooled body")
    writer.transport.abort()
    await until(lambda: not spooled(server), "the spool of the aborted upload closed")
    assert stored_files(server) == before


async def test_refused_uploads_leave_no_spool_and_no_file(
    server: ServerProcess, owner: Client, http: httpx.AsyncClient, name: str
) -> None:
    before = stored_files(server)
    other = await connect(server.ws_url, name + "_o")
    try:
        body = os.urandom(MIB)
        forbidden = await http.put(f"/fs/{owner.name}/x.bin", content=body, headers={"Authorization": other.key})
        assert forbidden.status_code == 403
        wrong = await http.put(
            f"/fs/{owner.name}/y.bin", content=body, headers={"Authorization": owner.key, "X-Checksum-SHA256": "0" * 64}
        )
        assert (wrong.status_code, wrong.json()["error"]) == (400, "checksum_mismatch")
        invalid = await http.put(f"/fs/{owner.name}/a%5Cz.bin", content=body, headers={"Authorization": owner.key})
        assert (invalid.status_code, invalid.json()["error"]) == (400, "invalid_path")
    finally:
        await other.close()
    await until(lambda: not spooled(server), "the spools closed")
    assert stored_files(server) == before


# -- Downloads through a real server -------------------------------------------------------------


async def test_the_server_sends_a_whole_file_and_closes_it_when_the_client_leaves(
    server: ServerProcess, owner: Client, http: httpx.AsyncClient
) -> None:
    data = os.urandom(5 * MIB + 11)
    before = stored_files(server)
    url = f"/fs/{owner.name}/sent.bin"
    assert (await http.put(url, content=data, headers={"Authorization": owner.key})).status_code == 201
    (blob,) = stored_files(server) - before

    got = await http.get(url, headers={"Authorization": owner.key})
    assert got.status_code == 202 and got.content == data
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'

    # A client that reads a little and goes: the server stops and closes the blob.
    async with http.stream("GET", url, headers={"Authorization": owner.key}) as partial:
        assert partial.status_code == 202
        async for _ in partial.aiter_raw(64 * 1024):
            break
    await until(lambda: not open_files(server, lambda target: target == str(blob)), "the blob closed")
    again = await http.get(url, headers={"Authorization": owner.key})
    assert again.content == data


async def test_the_server_sends_ranges_of_several_blocks_byte_exact(
    server: ServerProcess, owner: Client, http: httpx.AsyncClient
) -> None:
    data = os.urandom(3 * MIB + 5)
    url = f"/fs/{owner.name}/ranged.bin"
    assert (await http.put(url, content=data, headers={"Authorization": owner.key})).status_code == 201

    for header, (start, end) in (
        (f"bytes={MIB - 7}-{3 * MIB - 1}", (MIB - 7, 3 * MIB)),  # crosses block boundaries
        ("bytes=-10", (len(data) - 10, len(data))),
        (f"bytes={2 * MIB}-", (2 * MIB, len(data))),
    ):
        got = await http.get(url, headers={"Authorization": owner.key, "Range": header})
        assert got.status_code == 206, header
        assert got.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
        assert got.content == data[start:end], header


# -- In-process: the spooled body and its adoption -----------------------------------------------


@pytest.fixture
def local_storage(tmp_path: Path) -> Iterator[Path]:
    with local_file_storage(tmp_path / "files") as root:
        yield root


def spool(data: bytes, directory: str | None) -> offload.SpooledBody:
    body = offload.SpooledBody(directory)
    for start in range(0, len(data), 65536):
        body.write(data[start : start + 65536])
    return body


def test_a_spooled_body_has_no_name_and_counts_and_hashes_what_is_written(local_storage: Path) -> None:
    data = os.urandom(300_001)
    with spool(data, offload.spool_directory()) as body:
        assert (body.size, body.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert os.readlink(f"/proc/self/fd/{body.fileno()}").endswith("(deleted)")
        assert list(local_storage.iterdir()) == []
        body.seek(0)
        assert body.read() == data


def test_adopting_a_spooled_body_links_its_inode_into_storage(local_storage: Path) -> None:
    data = os.urandom(MIB + 1)
    with spool(data, offload.spool_directory()) as body:
        adopted = offload.adopt_spooled("folder.x/sub/blob.bin", body, 10 * MIB, lambda: None)
        target = local_storage / "folder.x" / "sub" / "blob.bin"
        assert (adopted.size, adopted.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert target.stat().st_ino == os.fstat(body.fileno()).st_ino
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == data


def test_a_body_that_cannot_be_linked_is_copied(local_storage: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "O_TMPFILE")  # created and unlinked instead: it can have no name again
    data = os.urandom(MIB + 5)
    with spool(data, offload.spool_directory()) as body:
        adopted = offload.adopt_spooled("folder.x/blob.bin", body, 10 * MIB, lambda: None)
        target = local_storage / "folder.x" / "blob.bin"
        assert target.stat().st_ino != os.fstat(body.fileno()).st_ino
    assert (adopted.size, adopted.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data


def test_a_body_on_another_filesystem_is_copied(local_storage: Path) -> None:
    shm = Path("/dev/shm")
    local_storage.mkdir()
    if not shm.is_dir() or shm.stat().st_dev == local_storage.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    data = os.urandom(MIB)
    directory = tempfile.mkdtemp(dir=shm)
    try:
        with spool(data, directory) as body:
            adopted = offload.adopt_spooled("folder.x/blob.bin", body, 10 * MIB, lambda: None)
        assert adopted.sha256 == hashlib.sha256(data).hexdigest()
        assert (local_storage / "folder.x" / "blob.bin").read_bytes() == data
    finally:
        shutil.rmtree(directory)


def test_a_spooled_body_over_the_limit_is_refused_and_nothing_is_stored(local_storage: Path) -> None:
    with spool(b"x" * 1000, offload.spool_directory()) as body, pytest.raises(TooLarge):
        offload.adopt_spooled("folder.x/blob.bin", body, 999, lambda: None)
    assert [path for path in local_storage.rglob("*") if path.is_file()] == []


# -- In-process: the handover to the application -------------------------------------------------


async def test_django_takes_the_spooled_body_as_its_body_file(local_storage: Path) -> None:
    from fileshare.server import daphne_support
    from fileshare.server.asgi_handler import SpooledBodyHandler

    body = spool(b"y" * 200_000, offload.spool_directory())
    scope: dict[str, Any] = {"type": "http"}
    queue = daphne_support.LazyBodyQueue(scope, body)
    queue.put_nowait({"type": "http.request", "body": b"", "more_body": False})  # daphne's copy: ignored
    taken = await SpooledBodyHandler().read_body(queue.get)
    assert taken.raw is body and scope["extensions"][offload.SPOOLED_BODY] is body
    assert taken.read() == b"y" * 200_000
    queue.put_nowait({"type": "http.disconnect"})
    assert await queue.get() == {"type": "http.disconnect"}  # Django's listen_for_disconnect
    taken.close()
    assert body.closed
    with pytest.raises(ValueError):
        body.duplicate()  # a view's thread that comes too late gets an error, not another file


async def test_another_application_gets_the_spooled_body_in_chunks(local_storage: Path) -> None:
    from fileshare.server import daphne_support

    data = os.urandom(600_000)
    body = spool(data, offload.spool_directory())
    body.seek(0)
    queue = daphne_support.LazyBodyQueue({"type": "http"}, body)
    received = io.BytesIO()
    while True:
        message = await queue.get()
        assert message["type"] == "http.request"
        received.write(message["body"])
        if not message["more_body"]:
            break
    assert received.getvalue() == data
    assert body.closed


# -- In-process: the view's side of a server-sent file -------------------------------------------


def file_request(method: str = "GET", headers: dict[str, str] | None = None, server_sends: bool = True) -> Any:
    from django.core.handlers.asgi import ASGIRequest

    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": "/fs/owner/a.bin",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    if server_sends:
        scope["extensions"] = {offload.SEND_FILE: {}}
    return ASGIRequest(scope, io.BytesIO())


def stored_row(local_storage: Path, data: bytes) -> Any:
    from django.utils import timezone

    from fileshare.models import StoredFile

    (local_storage / "owner.x").mkdir(parents=True)
    (local_storage / "owner.x" / "blob.bin").write_bytes(data)
    return StoredFile(
        path="a.bin",
        blob="owner.x/blob.bin",
        size=len(data),
        content_type="application/octet-stream",
        sha256=hashlib.sha256(data).hexdigest(),
        modified_at=timezone.now(),
        owner_id=1,
    )


async def test_a_whole_file_get_names_the_open_blob_for_the_server(local_storage: Path) -> None:
    data = os.urandom(1000)
    row = stored_row(local_storage, data)
    request = file_request()
    response = await offload.server_sent_response(request, row)
    assert response is not None and response.status_code == 202
    assert response["Content-Length"] == "1000" and response["ETag"] == f'"{row.sha256}"'
    body = request.scope["extensions"][offload.SEND_FILE]["body"]
    assert body.count == 1000
    with body.file:
        assert body.file.read() == data


async def test_only_a_plain_whole_file_get_is_answered_before_the_view(local_storage: Path) -> None:
    row = stored_row(local_storage, b"abc")
    for request in (
        file_request(headers={"Range": "bytes=0-1"}),
        file_request(headers={"If-None-Match": '"x"'}),
        file_request(method="HEAD"),
        file_request(server_sends=False),
    ):
        assert await offload.server_sent_response(request, row) is None


async def test_a_range_decided_by_the_view_is_sent_by_the_server_from_its_first_byte(local_storage: Path) -> None:
    from fileshare.fileapi import downloads

    data = os.urandom(1000)
    row = stored_row(local_storage, data)
    request = file_request(headers={"Range": "bytes=100-299"})

    response = await downloads.respond(request, row, row.path)

    assert response.status_code == 206
    assert response["Content-Range"] == "bytes 100-299/1000" and response["Content-Length"] == "200"
    assert [chunk async for chunk in response] == []
    body = request.scope["extensions"][offload.SEND_FILE]["body"]
    assert body.count == 200
    with body.file:
        assert body.file.read(body.count) == data[100:300]


async def test_conditional_gets_that_send_the_file_hand_it_to_the_server_and_a_304_sends_nothing(
    local_storage: Path,
) -> None:
    from fileshare.fileapi import downloads

    row = stored_row(local_storage, b"abcdef")
    changed = file_request(headers={"If-None-Match": '"an-older-version"'})
    response = await downloads.respond(changed, row, row.path)
    assert response.status_code == 202 and response["Content-Length"] == "6"
    body = changed.scope["extensions"][offload.SEND_FILE]["body"]
    with body.file:
        assert (body.count, body.file.read()) == (6, b"abcdef")

    unchanged = file_request(headers={"If-None-Match": f'"{row.sha256}"'})
    assert (await downloads.respond(unchanged, row, row.path)).status_code == 304
    assert unchanged.scope["extensions"][offload.SEND_FILE] == {}


async def test_a_range_streams_through_the_view_where_the_server_cannot_send_files(local_storage: Path) -> None:
    from fileshare.fileapi import downloads

    row = stored_row(local_storage, b"abcdef")
    response = await downloads.respond(file_request(headers={"Range": "bytes=2-3"}, server_sends=False), row, row.path)
    assert response.status_code == 206
    assert b"".join([chunk async for chunk in response]) == b"cd"


async def test_a_missing_blob_is_a_404_before_anything_is_sent(local_storage: Path) -> None:
    from fileshare.exceptions import NotFound

    row = stored_row(local_storage, b"abc")
    (local_storage / row.blob).unlink()
    request = file_request()
    with pytest.raises(NotFound):
        await offload.server_sent_response(request, row)
    assert request.scope["extensions"][offload.SEND_FILE] == {}


def test_a_frame_on_a_wrapped_transport_goes_through_the_wrapper_never_to_the_raw_socket() -> None:
    """A TLS transport is a ProtocolWrapper, which answers ``.socket`` with the raw socket
    under it: write_now must not send there, or the frame would skip the encryption."""
    import socket

    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.testing import StringTransport
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

    from fileshare.server.daphne_support import write_now

    ours, peer = socket.socketpair()
    try:
        underneath = StringTransport()
        underneath.socket = ours  # what a wrapper's __getattr__ would hand out
        wrapper = ProtocolWrapper(WrappingFactory(Factory.forProtocol(Protocol)), Protocol())
        wrapper.makeConnection(underneath)
        assert wrapper.socket is ours

        write_now(wrapper, b"frame")

        assert underneath.value() == b"frame"
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(16)
    finally:
        ours.close()
        peer.close()


def test_autobahn_pretty_prints_its_per_connection_debug_text_only_when_a_line_is_written() -> None:
    import pprint

    from autobahn.websocket import protocol as autobahn_protocol

    from fileshare.server import daphne_support

    uninstall = daphne_support.install()
    try:
        _check_deferred_pformat(daphne_support, autobahn_protocol, pprint)
    finally:
        uninstall()
    assert autobahn_protocol.pformat is pprint.pformat  # put back


def test_install_is_undone_by_what_it_returns() -> None:
    from autobahn.websocket import protocol as autobahn_protocol
    from daphne import server as daphne_server

    from fileshare.server import daphne_support

    before = (daphne_server.WebSocketFactory, daphne_server.HTTPFactory, autobahn_protocol.pformat)
    uninstall = daphne_support.install()
    assert daphne_server.WebSocketFactory is daphne_support.ReasonedWebSocketFactory
    assert daphne_server.HTTPFactory is daphne_support.SpoolingHTTPFactory
    uninstall()
    assert (daphne_server.WebSocketFactory, daphne_server.HTTPFactory, autobahn_protocol.pformat) == before


def _check_deferred_pformat(daphne_support: Any, autobahn_protocol: Any, pprint: Any) -> None:
    options = [("openHandshakeTimeout", 5, "WebSocketFactory"), ("maxFramePayloadSize", 1 << 20, "WebSocketFactory")]

    deferred = autobahn_protocol.pformat(options)

    assert isinstance(deferred, daphne_support.FormattedWhenLogged)
    assert f"\n{deferred}" == "\n" + pprint.pformat(options)  # how txaio formats a log line
    assert str(deferred) == pprint.pformat(options)
    timings = autobahn_protocol.Timings()
    timings.track("onOpen")
    assert isinstance(str(timings), str)
    assert "onOpen" in str(timings)


async def test_the_first_frame_of_a_loop_turn_goes_out_at_once_and_the_rest_of_that_turn_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import collections
    from types import SimpleNamespace

    from fileshare.server import daphne_support
    from fileshare.server.daphne_support import ReasonedWebSocketProtocol

    direct: list[bytes] = []
    buffered: list[bytes] = []
    monkeypatch.setattr(daphne_support, "write_now", lambda transport, data: direct.append(data))
    protocol = ReasonedWebSocketProtocol.__new__(ReasonedWebSocketProtocol)
    protocol.send_queue = collections.deque()
    protocol.transport = SimpleNamespace(write=buffered.append)
    protocol.state = protocol.STATE_OPEN
    protocol.trafficStats = SimpleNamespace(outgoingOctetsWireLevel=0, preopenOutgoingOctetsWireLevel=0)

    for frame in (b"a", b"b", b"c"):
        protocol.sendData(frame)
    assert (direct, buffered) == ([b"a"], [b"b", b"c"])  # Twisted sends b and c in one send() next turn
    await asyncio.sleep(0)
    protocol.sendData(b"d")
    assert (direct, buffered) == ([b"a", b"d"], [b"b", b"c"])
    assert protocol.trafficStats.outgoingOctetsWireLevel == 4


def test_a_text_sent_at_once_to_many_connections_is_framed_once_and_refused_where_not_drained() -> None:
    from types import SimpleNamespace

    from fileshare.server.daphne_support import HIGH_WATER, FlowControlServer

    server = FlowControlServer.__new__(FlowControlServer)
    sent: list[tuple[str, object]] = []

    class Connection:  # what _send_text_now reads of daphne's websocket protocol
        STATE_OPEN = 1

        def __init__(self, name: str, unsent: int = 0, state: int = 1) -> None:
            self.name, self.state = name, state
            self.transport = SimpleNamespace(dataBuffer=b"x" * unsent, offset=0, _tempDataLen=0)

        def send_prepared(self, prepared: object) -> None:
            sent.append((self.name, prepared))

    connection = Connection

    a, b, full, closing = (
        connection("a"),
        connection("b"),
        connection("full", HIGH_WATER + 1),
        connection("closing", state=2),
    )
    server.connections = {p: {} for p in (a, b, full, closing)}
    text = '{"type": "CLIENT_JOINED"}'

    assert [server._send_text_now(p, text) for p in (a, b, full, closing)] == [True, True, False, False]
    assert [name for name, _ in sent] == ["a", "b"]
    assert sent[0][1] is sent[1][1]  # one frame for both
    assert sent[0][1].payloadHybi == b"\x81" + bytes([len(text)]) + text.encode()
    server._send_text_now(a, '{"type": "CLIENT_LEFT"}')
    assert sent[2][1] is not sent[0][1]
