"""Pigweed's own Python clients (``pw_rpc``, ``pw_file``, ``pw_transfer``) on the concierge's ``/ws``.

One RpcPacket per binary websocket frame, both ways (docs/pw_file.md). A reader
thread feeds every binary frame to ``rpc.process_packet`` and queues text frames.
``drop_out`` and ``drop_in`` decide, per packet, to lose it on the way out or in:
the tests lose transfer chunks on purpose with them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable
from typing import Any

import websockets
import websockets.sync.client
from pw_file import file_pb2
from pw_rpc import callback_client, ids
from pw_rpc.client import Client as RpcClient
from pw_rpc.descriptors import Channel
from pw_rpc.internal import packet_pb2
from pw_transfer import Manager, ProtocolVersion, transfer_pb2

CHANNEL = 1
TRANSFER_SERVICE_ID = ids.calculate("pw.transfer.Transfer")

Drop = Callable[[bytes], bool]


def identify(name: str) -> str:
    return json.dumps({"type": "IDENTIFY", "name": name, "version": "0.2.0"})


def transfer_chunk(frame: bytes) -> Any:
    """The pw_transfer Chunk a frame carries, or None for any other packet."""
    packet = packet_pb2.RpcPacket.FromString(frame)
    if packet.type not in (packet_pb2.PacketType.CLIENT_STREAM, packet_pb2.PacketType.SERVER_STREAM):
        return None
    if packet.service_id & 0xFFFF_FFFF != TRANSFER_SERVICE_ID:
        return None
    return transfer_pb2.Chunk.FromString(packet.payload)


class PigweedClient:
    """An identified concierge client whose binary frames are Pigweed's pw_rpc packets."""

    def __init__(self, ws_url: str, name: str, *, drop_out: Drop | None = None, drop_in: Drop | None = None) -> None:
        self.ws = websockets.sync.client.connect(ws_url, max_size=None, compression=None, legacy=True)
        self.ws.send(identify(name))
        self.hello = json.loads(self.ws.recv(timeout=10))
        assert self.hello["type"] == "HELLO", self.hello
        self.drop_out = drop_out
        self.drop_in = drop_in
        self.texts: queue.Queue[dict[str, Any]] = queue.Queue()
        impl = callback_client.Impl(default_unary_timeout_s=30, default_stream_timeout_s=30)
        self.rpc = RpcClient.from_modules(impl, [Channel(CHANNEL, self._output)], [file_pb2, transfer_pb2])
        rpcs = self.rpc.channel(CHANNEL).rpcs
        self.fs = rpcs.pw.file.FileSystem
        self.transfer_service = rpcs.pw.transfer.Transfer
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def name(self) -> str:
        return str(self.hello["client"]["name"])

    @property
    def key(self) -> str:
        return str(self.hello["uuid"])

    def manager(
        self,
        *,
        version: ProtocolVersion = ProtocolVersion.VERSION_TWO,
        chunk: int = 32 * 1024,
        timeout: float = 1.0,
        retries: int = 5,
    ) -> Manager:
        """Pigweed's transfer Manager on this connection's ``pw.transfer.Transfer``."""
        return Manager(
            self.transfer_service,
            default_response_timeout_s=timeout,
            initial_response_timeout_s=max(timeout, 2.0),
            max_retries=retries,
            max_chunk_size_bytes=chunk,
            default_protocol_version=version,
        )

    def _output(self, frame: bytes) -> None:
        if self.drop_out is not None and self.drop_out(frame):
            return
        with contextlib.suppress(websockets.ConnectionClosed):
            self.ws.send(frame)

    def _read(self) -> None:
        try:
            for frame in self.ws:
                if isinstance(frame, bytes):
                    if self.drop_in is not None and self.drop_in(frame):
                        continue
                    self.rpc.process_packet(frame)
                else:
                    self.texts.put(json.loads(frame))
        except websockets.ConnectionClosed:
            pass

    def close(self) -> None:
        self.ws.close()
        self._reader.join(5)
