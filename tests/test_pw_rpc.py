"""pw.file.FileSystem over pw_rpc on /ws, driven by Pigweed's own Python client (docs/pw_file.md)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
import websockets.sync.client
from pw_file import file_pb2
from pw_rpc import callback_client, ids, packets
from pw_rpc.client import Client as RpcClient
from pw_rpc.descriptors import Channel, RpcIds
from pw_rpc.internal import packet_pb2
from pw_status import Status

from fileshare.pw import listing, pw_rpc
from tests.support.clients import Client, identify_payload
from tests.support.server import ServerProcess
from tests.test_listing import bulk_insert, put

CHANNEL = 1


class PwFileClient:
    """A concierge client that speaks pw_rpc: Pigweed's client, one RpcPacket per binary frame.

    The channel's output writes binary frames to the socket; a reader thread feeds
    every binary frame it receives to ``process_packet`` and queues text frames.
    """

    def __init__(self, ws_url: str, name: str) -> None:
        # A long-lived connection closed by close(), not a with-block: hence legacy=True.
        self.ws = websockets.sync.client.connect(ws_url, max_size=None, legacy=True)
        self.ws.send(json.dumps(identify_payload(name)))
        self.hello = json.loads(self.ws.recv(timeout=10))
        assert self.hello["type"] == "HELLO", self.hello
        self.texts: queue.Queue[dict[str, Any]] = queue.Queue()
        impl = callback_client.Impl(default_unary_timeout_s=10, default_stream_timeout_s=10)
        self.rpc = RpcClient.from_modules(impl, [Channel(CHANNEL, self.ws.send)], [file_pb2])
        self.fs = self.rpc.channel(CHANNEL).rpcs.pw.file.FileSystem
        self.packets_in = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def name(self) -> str:
        return str(self.hello["client"]["name"])

    @property
    def key(self) -> str:
        return str(self.hello["uuid"])

    def _read(self) -> None:
        try:
            for frame in self.ws:
                if isinstance(frame, bytes):
                    self.packets_in += 1
                    self.rpc.process_packet(frame)
                else:
                    self.texts.put(json.loads(frame))
        except websockets.ConnectionClosed:
            pass

    def text(self, match: str, timeout: float = 5) -> dict[str, Any]:
        """The next text payload of type ``match`` (others are dropped)."""
        while True:
            payload = self.texts.get(timeout=timeout)
            if payload["type"] == match:
                return payload

    def close(self) -> None:
        self.ws.close()
        self._reader.join(5)


@pytest.fixture
async def pw(server: ServerProcess, name: str) -> AsyncIterator[PwFileClient]:
    client = await asyncio.to_thread(PwFileClient, server.ws_url, name + "_pw")
    yield client
    await asyncio.to_thread(client.close)


async def call(method: Any, **request: Any) -> Any:
    """Run a blocking Pigweed call (its sync API) off the event loop."""
    return await asyncio.to_thread(method, **request)


def paths_of(responses: list[Any]) -> list[file_pb2.Path]:
    return [path for response in responses for path in response.paths]


# -- the wire format, against Pigweed's generated modules ---------------------------------------


def test_ids_are_pigweeds() -> None:
    assert ids.calculate("pw.file.FileSystem") == pw_rpc.SERVICE_ID
    assert ids.calculate("List") == pw_rpc.LIST_ID
    assert ids.calculate("Delete") == pw_rpc.DELETE_ID


def test_packets_round_trip_with_pigweeds_encoding() -> None:
    raw = packets.encode_request(
        RpcIds(CHANNEL, pw_rpc.SERVICE_ID, pw_rpc.LIST_ID, 77), file_pb2.ListRequest(path="/a/b")
    )
    packet = pw_rpc.Packet.decode(raw)
    assert (packet.type, packet.channel_id, packet.service_id, packet.method_id, packet.call_id) == (
        0,
        CHANNEL,
        pw_rpc.SERVICE_ID,
        pw_rpc.LIST_ID,
        77,
    )
    assert pw_rpc.request_path(packet.payload) == "/a/b"
    reply = packet_pb2.RpcPacket.FromString(packet.reply(pw_rpc.PacketType.RESPONSE, status=pw_rpc.Status.NOT_FOUND))
    assert (reply.type, reply.status, reply.call_id, reply.service_id, reply.method_id) == (
        packet_pb2.PacketType.RESPONSE,
        Status.NOT_FOUND.value,
        77,
        pw_rpc.SERVICE_ID,
        pw_rpc.LIST_ID,
    )
    # Unknown fields are skipped, as protobuf requires.
    extended = raw + b"\xa2\x06\x03abc" + b"\xf8\x06\x01"
    assert pw_rpc.Packet.decode(extended) == packet


def test_paths_encode_as_pw_file_path_with_sizes_clamped_to_uint32() -> None:
    entries = [
        listing.Entry(path="small.txt", kind="file", permissions=3, size=0, file_id=12),
        listing.Entry(path="huge.bin", kind="file", permissions=1, size=5 * 1024**3, file_id=0xF000_0001),
        listing.Entry(path="dir", kind="directory", permissions=1),
        listing.Entry(path="é", kind="file", permissions=1, size=1, file_id=2**40),
    ]
    (encoded,) = pw_rpc.list_responses(entries)
    decoded = file_pb2.ListResponse.FromString(encoded).paths
    assert decoded[0].path == "small.txt" and decoded[0].HasField("size_bytes") and decoded[0].size_bytes == 0
    assert decoded[0].permissions == file_pb2.Path.READ_AND_WRITE and decoded[0].file_id == 12
    assert decoded[1].size_bytes == 0xFFFF_FFFF and decoded[1].file_id == 0xF000_0001
    assert decoded[1].permissions == file_pb2.Path.READ
    assert not decoded[2].HasField("size_bytes") and not decoded[2].HasField("file_id")
    assert decoded[3].path == "é" and not decoded[3].HasField("file_id")


def test_long_listings_split_into_bounded_list_responses() -> None:
    entries = [listing.Entry(path=f"f{i:05d}", kind="file", permissions=1, size=i, file_id=i) for i in range(3000)]
    chunks = list(pw_rpc.list_responses(entries))
    assert len(chunks) > 1 and all(len(c) <= pw_rpc.MAX_STREAM_PAYLOAD for c in chunks)
    assert [p.path for c in chunks for p in file_pb2.ListResponse.FromString(c).paths] == [e.path for e in entries]


# -- Pigweed's client against the server ------------------------------------------------------


async def test_list_streams_a_folder_to_pigweeds_client(
    http: httpx.AsyncClient, owner: Client, pw: PwFileClient
) -> None:
    row = await put(http, owner, "docs/readme.txt", b"hello")
    await put(http, owner, "docs/sub/x.bin", b"x")
    status, responses = await call(pw.fs.List, path=f"/{owner.name}/docs")
    assert status is Status.OK
    found = {p.path: p for p in paths_of(responses)}
    assert set(found) == {"readme.txt", "sub"}
    assert found["readme.txt"].size_bytes == 5
    assert found["readme.txt"].file_id == row["file_id"]
    assert found["readme.txt"].permissions == file_pb2.Path.READ
    assert not found["sub"].HasField("size_bytes") and not found["sub"].HasField("file_id")

    status, responses = await call(pw.fs.List, path="")
    assert status is Status.OK
    root = {p.path: p.permissions for p in paths_of(responses)}
    assert root[owner.name] == file_pb2.Path.READ and root[pw.name] == file_pb2.Path.READ_AND_WRITE
    status, again = await call(pw.fs.List, path="/")
    assert {p.path for p in paths_of(again)} == set(root)


async def test_list_not_found_and_invalid_paths(owner: Client, pw: PwFileClient) -> None:
    for path in (f"/{owner.name}/nothing", "/nobody_at_all", f"/{owner.name.upper()}"):
        status, responses = await call(pw.fs.List, path=path)
        assert (status, responses) == (Status.NOT_FOUND, [])
    status, _ = await call(pw.fs.List, path=f"/{owner.name}/../etc")
    assert status is Status.INVALID_ARGUMENT


async def test_list_streams_thousands_of_entries_and_clamps_huge_sizes(server: ServerProcess, pw: PwFileClient) -> None:
    await asyncio.to_thread(bulk_insert, server, pw.name, 3000, "many", True)
    before = pw.packets_in
    status, responses = await call(pw.fs.List, path=f"/{pw.name}/many")
    assert status is Status.OK
    assert len(responses) > 1 and pw.packets_in - before == len(responses) + 1  # SERVER_STREAMs, then RESPONSE
    paths = paths_of(responses)
    assert [p.path for p in paths] == [f"f{i:05d}.txt" for i in range(3000)]
    assert all(p.permissions == file_pb2.Path.READ_AND_WRITE for p in paths)
    status, responses = await call(pw.fs.List, path=f"/{pw.name}/many-huge.bin")
    (huge,) = paths_of(responses)
    assert (huge.path, huge.size_bytes) == ("many-huge.bin", 0xFFFF_FFFF)


async def test_delete_through_pigweeds_client(http: httpx.AsyncClient, owner: Client, pw: PwFileClient) -> None:
    theirs = await put(http, owner, "theirs.txt")
    response = await http.put(f"/fs/{pw.name}/dir/mine.txt", content=b"m", headers={"Authorization": pw.key})
    assert response.status_code == 201

    status, _ = await call(pw.fs.Delete, path=f"/{owner.name}/theirs.txt")
    assert status is Status.PERMISSION_DENIED
    assert (await http.get(f"/fs/{owner.name}/theirs.txt", headers={"Authorization": owner.key})).status_code == 202
    assert theirs["file_id"]

    status, _ = await call(pw.fs.Delete, path=f"/{pw.name}/dir")
    assert status is Status.UNIMPLEMENTED
    status, _ = await call(pw.fs.Delete, path=f"/{pw.name}/DIR/mine.txt")
    assert status is Status.NOT_FOUND

    status, empty = await call(pw.fs.Delete, path=f"/{pw.name}/dir/mine.txt")
    assert status is Status.OK and empty.ByteSize() == 0
    assert (await http.get(f"/fs/{pw.name}/dir/mine.txt", headers={"Authorization": pw.key})).status_code == 404
    status, _ = await call(pw.fs.Delete, path=f"/{pw.name}/dir/mine.txt")
    assert status is Status.NOT_FOUND
    status, _ = await call(pw.fs.Delete, path="/")
    assert status is Status.UNIMPLEMENTED


async def test_binary_frames_do_not_count_toward_seq(pw: PwFileClient) -> None:
    for _ in range(3):
        assert (await call(pw.fs.List, path="/")).status is Status.OK
    await asyncio.to_thread(pw.ws.send, json.dumps({"type": "SELF_FETCH"}))
    reply = await asyncio.to_thread(pw.text, "SELF_FETCH_RESULT")
    assert reply["seq"] == 0


# -- raw packets: what Pigweed's client would never send -----------------------------------------


@pytest.fixture
async def raw(server: ServerProcess, name: str) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps(identify_payload(name + "_raw")))
        assert json.loads(await ws.recv())["type"] == "HELLO"
        yield ws


async def exchange(ws: websockets.ClientConnection, frame: bytes) -> Any:
    await ws.send(frame)
    while True:
        reply = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(reply, bytes):
            return packet_pb2.RpcPacket.FromString(reply)
        payload = json.loads(reply)
        if payload["type"] == "ERROR_PROTOCOL":
            return payload


def request(channel: int, service: int, method: int, call_id: int = 5, payload: bytes = b"") -> bytes:
    return packet_pb2.RpcPacket(
        type=packet_pb2.PacketType.REQUEST,
        channel_id=channel,
        service_id=service,
        method_id=method,
        call_id=call_id,
        payload=payload,
    ).SerializeToString()


async def test_unknown_service_or_method_is_server_error_not_found(raw: websockets.ClientConnection) -> None:
    for service, method in (
        (ids.calculate("pw.other.Service"), pw_rpc.LIST_ID),
        (pw_rpc.SERVICE_ID, ids.calculate("Stat")),
    ):
        reply = await exchange(raw, request(CHANNEL, service, method, call_id=9))
        assert (reply.type, reply.status, reply.call_id) == (
            packet_pb2.PacketType.SERVER_ERROR,
            Status.NOT_FOUND.value,
            9,
        )
        assert (reply.service_id, reply.method_id) == (service, method)


async def test_other_channels_and_stray_packets(raw: websockets.ClientConnection) -> None:
    reply = await exchange(raw, request(2, pw_rpc.SERVICE_ID, pw_rpc.LIST_ID))
    assert (reply.type, reply.channel_id, reply.status) == (
        packet_pb2.PacketType.SERVER_ERROR,
        2,
        Status.UNAVAILABLE.value,
    )
    stream = packet_pb2.RpcPacket(
        type=packet_pb2.PacketType.CLIENT_STREAM,
        channel_id=CHANNEL,
        service_id=pw_rpc.SERVICE_ID,
        method_id=pw_rpc.LIST_ID,
    ).SerializeToString()
    reply = await exchange(raw, stream)
    assert (reply.type, reply.status) == (packet_pb2.PacketType.SERVER_ERROR, Status.FAILED_PRECONDITION.value)
    # A bad request body is INVALID_ARGUMENT.
    reply = await exchange(raw, request(CHANNEL, pw_rpc.SERVICE_ID, pw_rpc.LIST_ID, payload=b"\x0a\x05ab"))
    assert (reply.type, reply.status) == (packet_pb2.PacketType.RESPONSE, Status.INVALID_ARGUMENT.value)
    # CLIENT_ERROR needs no answer: the next answer is the next request's.
    cancel = packets.encode_cancel(RpcIds(CHANNEL, pw_rpc.SERVICE_ID, pw_rpc.LIST_ID, 3))
    await raw.send(cancel)
    reply = await exchange(raw, request(CHANNEL, pw_rpc.SERVICE_ID, pw_rpc.LIST_ID, call_id=4, payload=b""))
    assert (reply.type, reply.call_id) == (packet_pb2.PacketType.SERVER_STREAM, 4)


async def test_a_frame_that_is_no_rpc_packet_gets_error_protocol_without_seq(raw: websockets.ClientConnection) -> None:
    reply = await exchange(raw, b"\x00not a packet")
    assert reply["type"] == "ERROR_PROTOCOL" and "seq" not in reply and reply["desc"]
    await raw.send(json.dumps({"type": "SELF_FETCH"}))
    while (payload := json.loads(await asyncio.wait_for(raw.recv(), 5)))["type"] != "SELF_FETCH_RESULT":
        pass  # events about other clients
    assert payload["seq"] == 0
