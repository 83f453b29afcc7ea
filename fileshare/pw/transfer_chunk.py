"""``pw.transfer.Chunk``, the one message of pw_transfer, encoded and decoded by hand.

docs/pw_file.md, "pw_transfer". Like ``fileshare.pw.pw_rpc`` this needs no protobuf
runtime; the tests check it against Pigweed's generated ``transfer_pb2``. Field
numbers are those of ``pw_transfer/transfer.proto``; ``offset``,
``remaining_bytes`` and ``initial_offset`` are uint64, the rest uint32 (so a
window cannot end past 4 GiB - 1, which bounds what pw_transfer can move).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fileshare.pw.pw_rpc import DecodeError, fields, varint

UINT32_MAX = 0xFFFF_FFFF


class ChunkType(enum.IntEnum):
    """``pw.transfer.Chunk.Type``."""

    DATA = 0
    START = 1
    PARAMETERS_RETRANSMIT = 2
    PARAMETERS_CONTINUE = 3
    COMPLETION = 4
    COMPLETION_ACK = 5
    START_ACK = 6
    START_ACK_CONFIRMATION = 7


LEGACY = 1
"""The first protocol: no handshake, the resource id doubles as the transfer id."""
VERSION_TWO = 2
"""START / START_ACK / START_ACK_CONFIRMATION, session ids, COMPLETION / COMPLETION_ACK."""

_NUMBERS = {
    1: "transfer_id",
    2: "pending_bytes",
    3: "max_chunk_size_bytes",
    4: "min_delay_microseconds",
    5: "offset",
    7: "remaining_bytes",
    8: "status",
    9: "window_end_offset",
    10: "type",
    11: "resource_id",
    12: "session_id",
    13: "protocol_version",
    14: "desired_session_id",
    15: "initial_offset",
}
_UINT64 = {"offset", "remaining_bytes", "initial_offset"}


@dataclass
class Chunk:
    """One chunk. ``None`` is an absent optional field (proto3 ``optional``: presence counts)."""

    type: int | None = None
    transfer_id: int = 0
    pending_bytes: int | None = None
    max_chunk_size_bytes: int | None = None
    min_delay_microseconds: int | None = None
    offset: int = 0
    data: bytes = b""
    remaining_bytes: int | None = None
    status: int | None = None
    window_end_offset: int = 0
    resource_id: int | None = None
    session_id: int | None = None
    protocol_version: int | None = None
    desired_session_id: int | None = None
    initial_offset: int = 0

    @classmethod
    def decode(cls, payload: bytes) -> Chunk:
        """Parse an encoded Chunk, inferring the type of a legacy chunk without one
        (as Pigweed's client does). Raises DecodeError."""
        chunk = cls()
        for number, value in fields(payload):
            if number == 6:
                if not isinstance(value, bytes):
                    raise DecodeError("data must be length-delimited")
                chunk.data = value
            elif number in _NUMBERS:
                if isinstance(value, bytes):
                    raise DecodeError(f"chunk field {number} must be a number")
                name = _NUMBERS[number]
                setattr(chunk, name, value if name in _UINT64 else value & UINT32_MAX)
        if chunk.type is None:
            if chunk.offset == 0 and not chunk.data and chunk.status is None:
                chunk.type = ChunkType.START
            elif chunk.data:
                chunk.type = ChunkType.DATA
            else:
                chunk.type = ChunkType.PARAMETERS_RETRANSMIT
        return chunk

    @property
    def version(self) -> int:
        """The protocol the chunk speaks: an explicit ``protocol_version``, else version 2
        when it carries a session id, else legacy."""
        if self.protocol_version is not None and self.protocol_version > 0:
            return self.protocol_version
        if self.session_id is not None or self.desired_session_id is not None:
            return VERSION_TWO
        return LEGACY

    @property
    def window_end(self) -> int:
        """The window end: ``window_end_offset``, or ``offset + pending_bytes`` from a legacy sender."""
        if self.window_end_offset:
            return self.window_end_offset
        if self.pending_bytes is not None:
            return self.offset + self.pending_bytes
        return 0

    def encode(self) -> bytes:
        """Serialise: zero scalars left out, except the optional fields that are set
        (``type`` DATA is 0 and still sent)."""
        out = bytearray()
        for number, name in _NUMBERS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if value == 0 and name in ("transfer_id", "offset", "window_end_offset", "initial_offset"):
                continue
            out += varint(number << 3) + varint(int(value))
        if self.data:
            out += varint(6 << 3 | 2) + varint(len(self.data)) + self.data
        return bytes(out)
