"""pw.file.FileSystem over pw_rpc: one RpcPacket per binary websocket frame on ``/ws``.

docs/pw_file.md. After HELLO a client may send binary frames, each one encoded
``pw.rpc.internal.RpcPacket``; the answers come back the same way, one packet per
frame. Binary frames do not count toward ``seq``. The service is the seed's
``pw.file.FileSystem`` on channel ``CHANNEL_ID``:

- ``List`` (server streaming): SERVER_STREAM packets of ListResponse, then a
  RESPONSE with status OK; or a RESPONSE with an error status.
- ``Delete`` (unary): RESPONSE carrying ``pw.protobuf.Empty`` and a status.
- An unknown service or method: SERVER_ERROR NOT_FOUND; a REQUEST on another
  channel: SERVER_ERROR UNAVAILABLE. CLIENT_STREAM gets SERVER_ERROR
  FAILED_PRECONDITION (no call stays open); CLIENT_ERROR and
  CLIENT_REQUEST_COMPLETION are ignored, as is any server-to-client packet.
- A frame that is not an RpcPacket gets a text ERROR_PROTOCOL (without ``seq``).
- Packets of ``pw.transfer.Transfer``, whose calls stay open, go to the
  connection's ``fileshare.pw.pw_transfer.TransferService``.

The protobuf wire format is written by hand here (a few varint, fixed32 and
length-delimited fields) so that the server needs no protobuf runtime; the tests
check it against Pigweed's own client and generated modules.

Why this module is long: the pw_rpc packet codec (a hand-written protobuf subset, no generated code) and the FileSystem service that uses it; the codec is shared by pw_transfer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

from fileshare import protocol
from fileshare.exceptions import BadRequest, FileshareError, Forbidden, IsDirectory, NotFound
from fileshare.models import LiveClient
from fileshare.observe import metrics
from fileshare.pw import listing

logger = logging.getLogger(__name__)

CHANNEL_ID = 1
"""The one pw_rpc channel the server serves."""

MAX_STREAM_PAYLOAD = 8 * 1024
"""A ListResponse holds Paths until its encoding would pass this many bytes."""

UINT32_MAX = 0xFFFF_FFFF


class PacketType(enum.IntEnum):
    """``pw.rpc.internal.PacketType``: client-to-server packets are even."""

    REQUEST = 0
    RESPONSE = 1
    CLIENT_STREAM = 2
    CLIENT_ERROR = 4
    SERVER_ERROR = 5
    SERVER_STREAM = 7
    CLIENT_REQUEST_COMPLETION = 8


class Status(enum.IntEnum):
    """``pw::Status`` codes used here (the gRPC numbering)."""

    OK = 0
    CANCELLED = 1
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


def rpc_id(name: str) -> int:
    """pw_rpc's 32-bit id of a service or method name (``pw_rpc.ids.calculate``: hash 65599)."""
    value = len(name)
    coefficient = 65599
    for char in name:
        value = (value + coefficient * ord(char)) % 2**32
        coefficient = (coefficient * 65599) % 2**32
    return value


SERVICE_ID = rpc_id("pw.file.FileSystem")
LIST_ID = rpc_id("List")
DELETE_ID = rpc_id("Delete")


# -- protobuf wire format -------------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """The bytes are not a valid protobuf message of the expected shape."""


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _uint_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + varint(value)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _key(number, _LENGTH) + varint(len(value)) + value


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("truncated or over-long varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """``(field number, value)`` for each field of a message: ints, or bytes when length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        value: int | bytes
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == _FIXED32:
            if pos + 4 > len(data):
                raise DecodeError("truncated fixed32")
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        elif wire_type == _FIXED64:
            if pos + 8 > len(data):
                raise DecodeError("truncated fixed64")
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire_type == _LENGTH:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise DecodeError("truncated length-delimited field")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        yield number, value


@dataclass
class Packet:
    """``pw.rpc.internal.RpcPacket``."""

    type: int = 0
    channel_id: int = 0
    service_id: int = 0
    method_id: int = 0
    payload: bytes = b""
    status: int = 0
    call_id: int = 0

    @classmethod
    def decode(cls, data: bytes) -> Packet:
        """Parse an encoded RpcPacket; unknown fields are skipped. Raises DecodeError."""
        packet = cls()
        for number, value in fields(data):
            if number == 5:
                if not isinstance(value, bytes):
                    raise DecodeError("payload must be length-delimited")
                packet.payload = value
            elif number in _INT_FIELDS:
                if isinstance(value, bytes):
                    raise DecodeError(f"field {number} must not be length-delimited")
                setattr(packet, _INT_FIELDS[number], value & UINT32_MAX)
        return packet

    def encode(self) -> bytes:
        """Serialise; proto3 leaves zero values and an empty payload out."""
        out = bytearray()
        if self.type:
            out += _uint_field(1, self.type)
        if self.channel_id:
            out += _uint_field(2, self.channel_id)
        if self.service_id:  # fixed32
            out += _key(3, _FIXED32) + self.service_id.to_bytes(4, "little")
        if self.method_id:  # fixed32
            out += _key(4, _FIXED32) + self.method_id.to_bytes(4, "little")
        if self.payload:
            out += _bytes_field(5, self.payload)
        if self.status:
            out += _uint_field(6, self.status)
        if self.call_id:
            out += _uint_field(7, self.call_id)
        return bytes(out)

    def reply(self, kind: PacketType, payload: bytes = b"", status: Status = Status.OK) -> bytes:
        """An encoded server packet for the same call (channel, service, method, call id)."""
        return Packet(kind, self.channel_id, self.service_id, self.method_id, payload, status, self.call_id).encode()


_INT_FIELDS = {1: "type", 2: "channel_id", 3: "service_id", 4: "method_id", 6: "status", 7: "call_id"}


def request_path(payload: bytes) -> str:
    """The ``path`` (field 1) of a ListRequest or DeleteRequest. Raises DecodeError."""
    path = b""
    for number, value in fields(payload):
        if number == 1:
            if not isinstance(value, bytes):
                raise DecodeError("path must be a string")
            path = value
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("path is not UTF-8") from None


def encode_path(entry: listing.Entry) -> bytes:
    """A ``pw.file.Path``: sizes over 4 GiB - 1 are clamped to 0xFFFFFFFF; unrepresentable ids left out."""
    out = bytearray(_bytes_field(1, entry.path.encode("utf-8")))
    out += _uint_field(2, entry.permissions)
    if entry.size is not None:
        out += _uint_field(3, min(entry.size, UINT32_MAX))
    if entry.file_id is not None and 0 <= entry.file_id <= UINT32_MAX:
        out += _uint_field(4, entry.file_id)
    return bytes(out)


def list_responses(entries: list[listing.Entry]) -> Iterator[bytes]:
    """Encoded ``pw.file.ListResponse`` messages holding ``entries`` in order, each near MAX_STREAM_PAYLOAD."""
    chunk = bytearray()
    for entry in entries:
        item = _bytes_field(1, encode_path(entry))
        if chunk and len(chunk) + len(item) > MAX_STREAM_PAYLOAD:
            yield bytes(chunk)
            chunk = bytearray()
        chunk += item
    if chunk:
        yield bytes(chunk)


# -- the service ----------------------------------------------------------------------------


def status_of(exc: FileshareError) -> Status:
    """The pw_rpc status for a refusal from ``fileshare.pw.listing``."""
    if isinstance(exc, NotFound):
        return Status.NOT_FOUND
    if isinstance(exc, Forbidden):
        return Status.PERMISSION_DENIED
    if isinstance(exc, IsDirectory):
        return Status.UNIMPLEMENTED
    if isinstance(exc, BadRequest):
        return Status.INVALID_ARGUMENT
    return Status.INTERNAL


async def _list(client: LiveClient, packet: Packet) -> AsyncIterator[bytes]:
    found = await listing.list_path(client, request_path(packet.payload))
    for payload in list_responses(found.entries):
        yield packet.reply(PacketType.SERVER_STREAM, payload)
    yield packet.reply(PacketType.RESPONSE)


async def _delete(client: LiveClient, packet: Packet) -> AsyncIterator[bytes]:
    await listing.delete_path(client, request_path(packet.payload))
    yield packet.reply(PacketType.RESPONSE)  # pw.protobuf.Empty encodes to nothing


METHOD_NAMES = {LIST_ID: "pw.file.FileSystem.List", DELETE_ID: "pw.file.FileSystem.Delete"}
"""The metrics' method label; any other call is counted as ``unknown``."""


def _counted(packet: Packet, status: Status) -> Status:
    known = packet.service_id == SERVICE_ID and packet.method_id in METHOD_NAMES
    metrics.PW_RPC_CALLS.labels(METHOD_NAMES[packet.method_id] if known else "unknown", status.name).inc()
    return status


async def _call(client: LiveClient, packet: Packet) -> AsyncIterator[bytes]:
    if packet.channel_id != CHANNEL_ID:
        yield packet.reply(PacketType.SERVER_ERROR, status=_counted(packet, Status.UNAVAILABLE))
        return
    if packet.service_id != SERVICE_ID or packet.method_id not in (LIST_ID, DELETE_ID):
        yield packet.reply(PacketType.SERVER_ERROR, status=_counted(packet, Status.NOT_FOUND))
        return
    method = _list if packet.method_id == LIST_ID else _delete
    try:
        async for frame in method(client, packet):
            yield frame
    except DecodeError as exc:
        logger.info("pw_rpc request from %s does not decode: %s", client.name, exc)
        yield packet.reply(PacketType.RESPONSE, status=_counted(packet, Status.INVALID_ARGUMENT))
    except FileshareError as exc:
        yield packet.reply(PacketType.RESPONSE, status=_counted(packet, status_of(exc)))
    except Exception:
        logger.exception("pw_rpc call from %s failed", client.name)
        yield packet.reply(PacketType.SERVER_ERROR, status=_counted(packet, Status.INTERNAL))
    else:
        _counted(packet, Status.OK)


class StreamingService(Protocol):
    """A service whose calls stay open on one connection (``fileshare.pw.pw_transfer``)."""

    def owns(self, packet: Packet) -> bool: ...

    def handle(self, packet: Packet) -> AsyncIterator[bytes]: ...


async def answer(
    client: LiveClient, data: bytes, streaming: StreamingService | None = None
) -> AsyncIterator[bytes | str]:
    """The frames that answer one binary frame from ``client``: bytes are pw_rpc packets.

    Packets for ``streaming`` (the connection's pw.transfer.Transfer calls) go to it.
    A frame that is not an RpcPacket is answered with one text frame, ERROR_PROTOCOL.
    Errors never escape: every refusal is a packet (or that text frame).
    """
    try:
        packet = Packet.decode(data)
    except DecodeError as exc:
        yield protocol.encode({"type": "ERROR_PROTOCOL", "desc": f"binary frames are pw_rpc packets: {exc}"})
        return
    if streaming is not None and packet.type % 2 == 0 and streaming.owns(packet):
        async for frame in streaming.handle(packet):
            yield frame
        return
    if packet.type == PacketType.REQUEST:
        async for frame in _call(client, packet):
            yield frame
    elif packet.type == PacketType.CLIENT_STREAM and packet.channel_id == CHANNEL_ID:
        # Every call is finished before its REQUEST is answered: no stream is open.
        yield packet.reply(PacketType.SERVER_ERROR, status=Status.FAILED_PRECONDITION)
    # CLIENT_ERROR, CLIENT_REQUEST_COMPLETION and server packets need no answer.
