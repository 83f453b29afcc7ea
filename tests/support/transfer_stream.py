"""A lean pw_transfer version 2 client that streams: nothing is held in memory.

Pigweed's own client keeps a whole transfer in memory (its ``data``) and formats
every received chunk as text for a debug line, which bounds its reads to a few
MiB/s; the tests check the protocol with it. This one speaks the same protocol
(with Pigweed's generated ``transfer_pb2`` and ``packet_pb2``) from an iterator of
bytes or into a callback, so that 1 GiB can pass while the server's RSS is
measured, and the bench can show the server's own speed. It expects no loss
(loopback): a chunk out of order fails the transfer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import websockets
from pw_rpc import ids
from pw_rpc.internal import packet_pb2
from pw_transfer import transfer_pb2

CHANNEL = 1
SERVICE = ids.calculate("pw.transfer.Transfer")
READ = ids.calculate("Read")
WRITE = ids.calculate("Write")
Type = transfer_pb2.Chunk.Type


class TransferFailed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the transfer ended with status {status}")
        self.status = status


class StreamingTransfers:
    """One identified websocket connection running one transfer at a time."""

    def __init__(self, ws: websockets.ClientConnection, hello: dict[str, object]) -> None:
        self.ws = ws
        self.hello = hello
        self.key = str(hello["uuid"])
        self.call_id = 0
        self.session = 0

    @classmethod
    async def connect(cls, ws_url: str, name: str) -> StreamingTransfers:
        ws = await websockets.connect(ws_url, max_size=None, compression=None)
        await ws.send(json.dumps({"type": "IDENTIFY", "name": name, "version": "0.2.0"}))
        hello = json.loads(await ws.recv())
        assert hello["type"] == "HELLO", hello
        return cls(ws, hello)

    async def close(self) -> None:
        await self.ws.close()

    async def open(self, method: int) -> None:
        """Open a new call of ``method`` (READ or WRITE); chunks go to it from now on."""
        self.call_id += 1
        self.method = method
        request = packet_pb2.RpcPacket(
            type=packet_pb2.PacketType.REQUEST,
            channel_id=CHANNEL,
            service_id=SERVICE,
            method_id=method,
            call_id=self.call_id,
        )
        await self.ws.send(request.SerializeToString())

    async def send(self, **fields: object) -> None:
        """One chunk with ``fields`` on the open call."""
        packet = packet_pb2.RpcPacket(
            type=packet_pb2.PacketType.CLIENT_STREAM,
            channel_id=CHANNEL,
            service_id=SERVICE,
            method_id=self.method,
            call_id=self.call_id,
            payload=transfer_pb2.Chunk(**fields).SerializeToString(),
        )
        await self.ws.send(packet.SerializeToString())

    async def receive(self) -> transfer_pb2.Chunk:
        """The next chunk from the server; a packet that is no SERVER_STREAM raises TransferFailed
        with its status (text frames are skipped)."""
        while True:
            frame = await self.ws.recv()
            if isinstance(frame, bytes):
                packet = packet_pb2.RpcPacket.FromString(frame)
                if packet.type == packet_pb2.PacketType.SERVER_STREAM:
                    return transfer_pb2.Chunk.FromString(packet.payload)
                raise TransferFailed(packet.status)

    async def start(self, method: int, resource_id: int, **fields: object) -> transfer_pb2.Chunk:
        await self.open(method)
        self.session += 1
        await self.send(
            type=Type.START, desired_session_id=self.session, resource_id=resource_id, protocol_version=2, **fields
        )
        ack = await self.receive()
        if ack.HasField("status"):
            raise TransferFailed(ack.status)
        assert ack.type == Type.START_ACK, ack
        return ack

    async def read(self, resource_id: int, sink: Callable[[bytes], None], window: int, chunk: int) -> int:
        """Read the resource into ``sink``, ``window`` bytes asked at a time; returns the size."""
        params = {"window_end_offset": window, "max_chunk_size_bytes": chunk}
        await self.start(READ, resource_id, **params)
        await self.send(type=Type.START_ACK_CONFIRMATION, session_id=self.session, offset=0, **params)
        offset, window_end = 0, window
        while True:
            got = await self.receive()
            if got.HasField("status"):
                raise TransferFailed(got.status)
            if got.offset != offset:
                raise AssertionError(f"chunk at {got.offset}, expected {offset}")
            sink(got.data)
            offset += len(got.data)
            if got.HasField("remaining_bytes") and got.remaining_bytes == 0:
                break
            if window_end - offset <= window // 2:
                window_end = offset + window
                await self.send(
                    type=Type.PARAMETERS_CONTINUE,
                    session_id=self.session,
                    offset=offset,
                    window_end_offset=window_end,
                    max_chunk_size_bytes=chunk,
                )
        await self.send(type=Type.COMPLETION, session_id=self.session, status=0)
        ack = await self.receive()
        assert ack.type == Type.COMPLETION_ACK, ack
        return offset

    async def write(self, resource_id: int, blocks: Iterator[bytes], size: int) -> None:
        """Write ``size`` bytes, taken from ``blocks``, to the resource."""
        await self.start(WRITE, resource_id)
        await self.send(type=Type.START_ACK_CONFIRMATION, session_id=self.session, offset=0)
        params = await self.receive()
        assert params.type == Type.PARAMETERS_RETRANSMIT, params
        window_end, most = params.window_end_offset, params.max_chunk_size_bytes
        offset, pending, sent_all = 0, b"", False
        while True:
            while not sent_all and (offset < window_end or size == 0):
                if not pending:
                    pending = next(blocks, b"")
                take = min(most, window_end - offset)
                piece, pending = pending[:take], pending[take:]
                sent_all = offset + len(piece) >= size
                fields: dict[str, object] = {"type": Type.DATA, "session_id": self.session, "offset": offset}
                if piece:
                    fields["data"] = piece
                if sent_all:
                    fields["remaining_bytes"] = 0
                await self.send(**fields)
                offset += len(piece)
            got = await self.receive()
            if got.HasField("status"):
                await self.send(type=Type.COMPLETION_ACK, session_id=self.session)
                if got.status != 0:
                    raise TransferFailed(got.status)
                return
            if got.type == Type.PARAMETERS_RETRANSMIT and got.offset != offset:
                raise AssertionError(f"the server asked again from {got.offset}; this client never rewinds")
            window_end = max(window_end, got.window_end_offset)
