"""``pw.transfer.Transfer`` on the pw_rpc channel of ``/ws``: the server's side of pw_transfer.

docs/pw_file.md, "pw_transfer". ``Read`` and ``Write`` are bidirectional streams
of ``Chunk``s. A client opens each stream once (a REQUEST) and runs any number of
transfers over it, each named by a session id (version 2) or by its resource id
(legacy). Every transfer is an asyncio task with an inbox: the consumer only
routes chunks into inboxes and never waits on a transfer, so a stalled transfer
holds up nothing else on the socket.

- Read (the server transmits): it sends DATA chunks up to the receiver's
  ``window_end_offset``, each at most ``max_chunk_size_bytes`` (and
  ``FILESHARE_TRANSFER_CHUNK_BYTES``), reading the file a block at a time;
  PARAMETERS_RETRANSMIT rewinds to its offset, PARAMETERS_CONTINUE only extends
  the window. The last chunk says ``remaining_bytes = 0``.
- Write (the server receives): it asks for ``FILESHARE_TRANSFER_WINDOW_BYTES`` at a
  time in chunks of ``FILESHARE_TRANSFER_CHUNK_BYTES``, extends the window (CONTINUE)
  when half of it has arrived, and asks again from the first missing byte
  (RETRANSMIT) when a chunk is lost or out of order. The file is replaced only when
  the last byte has arrived (``transfer_files.Spool``).
- Version 2 opens with START / START_ACK / START_ACK_CONFIRMATION and ends with
  COMPLETION / COMPLETION_ACK; legacy starts at once and ends with a status chunk.
- Every wait lasts ``FILESHARE_TRANSFER_TIMEOUT`` seconds; the last chunk is sent
  again up to ``FILESHARE_TRANSFER_RETRIES`` times, then the transfer ends with
  DEADLINE_EXCEEDED and frees its file. A cancelled stream or a closed socket ends
  its transfers at once; a write then stores nothing.

Why this module is long: the pw_transfer state machines for both protocol versions, reads and writes, with windowing and retransmission: one protocol, one module.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fileshare import conf
from fileshare.exceptions import FileshareError, Forbidden, NotFound, OwnerLeft, TooLarge
from fileshare.models import LiveClient
from fileshare.pw import transfer_files
from fileshare.pw.pw_rpc import CHANNEL_ID, DecodeError, Packet, PacketType, Status, rpc_id
from fileshare.pw.transfer_chunk import LEGACY, VERSION_TWO, Chunk, ChunkType
from fileshare.ws import relay

logger = logging.getLogger(__name__)

SERVICE_ID = rpc_id("pw.transfer.Transfer")
READ_ID = rpc_id("Read")
WRITE_ID = rpc_id("Write")

MAX_TRANSFERS = 8
"""Transfers one stream may run at once; the next START gets RESOURCE_EXHAUSTED."""

CHECK_EVERY = 0.5
"""Seconds between checks, during a read, that the file still exists."""

_PARAMETERS = (ChunkType.PARAMETERS_RETRANSMIT, ChunkType.START_ACK_CONFIRMATION, ChunkType.START)

Send = Callable[[bytes], Awaitable[None]]


class Finish(Exception):
    """Ends a transfer with ``status``; ``detail`` goes to the log."""

    def __init__(self, status: Status, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ClientEnded(Exception):
    """The client ended the transfer with a status chunk (OK after a read)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the client ended the transfer with status {status}")
        self.status = status


def status_of(exc: FileshareError) -> Status:
    """The transfer status for a refusal."""
    if isinstance(exc, NotFound):
        return Status.NOT_FOUND
    if isinstance(exc, Forbidden):
        return Status.PERMISSION_DENIED
    if isinstance(exc, TooLarge):
        return Status.RESOURCE_EXHAUSTED
    if isinstance(exc, OwnerLeft):
        return Status.ABORTED
    return Status.INTERNAL


def chunk_limit() -> int:
    """Largest data per chunk either way: the setting, kept inside an inbound frame."""
    return max(1, min(conf.transfer_chunk_bytes(), conf.max_frame_bytes() - 256))


class Transfer(abc.ABC):
    """One transfer: its task, its inbox and the chunks it sends."""

    def __init__(self, stream: Stream, start: Chunk) -> None:
        self.stream = stream
        self.version = VERSION_TWO if start.version >= VERSION_TWO else LEGACY
        self.resource_id = start.resource_id if start.resource_id is not None else start.transfer_id
        self.session_id = (start.desired_session_id or 0) if self.version == VERSION_TWO else self.resource_id
        self.confirmed = self.version == LEGACY  # version 2: after START_ACK_CONFIRMATION
        self.inbox: asyncio.Queue[Chunk] = asyncio.Queue()
        self.inbox_bytes = 0
        self.task = asyncio.ensure_future(self._run(start))

    @property
    def key(self) -> tuple[int, int]:
        return self.version, self.session_id

    # -- chunks in and out ------------------------------------------------------------------

    def offer(self, chunk: Chunk) -> None:
        """Queue a chunk from the client. Data past a bound is dropped, as a lost chunk would
        be: the protocol asks for it again."""
        if chunk.data and self.inbox_bytes > conf.transfer_window_bytes() + chunk_limit():
            return
        self.inbox_bytes += len(chunk.data)
        self.inbox.put_nowait(chunk)

    def out(self, kind: ChunkType, **values: Any) -> Chunk:
        """A chunk of this transfer, addressed as its protocol version wants."""
        if self.version == VERSION_TWO:
            return Chunk(type=kind, session_id=self.session_id, **values)
        return Chunk(type=kind, transfer_id=self.resource_id, **values)

    async def send(self, chunk: Chunk) -> None:
        await self.stream.send(chunk)

    async def receive(self, again: Callable[[], Chunk | None]) -> Chunk:
        """The next chunk from the client. Each silent FILESHARE_TRANSFER_TIMEOUT sends
        ``again()`` (if any) once more; after FILESHARE_TRANSFER_RETRIES of them: Finish
        DEADLINE_EXCEEDED. A status chunk raises ClientEnded (acknowledged in version 2)."""
        retries = 0
        while True:
            try:
                if self.inbox.empty():
                    chunk = await asyncio.wait_for(self.inbox.get(), conf.transfer_timeout())
                else:
                    chunk = self.inbox.get_nowait()
            except TimeoutError:
                retries += 1
                if retries > conf.transfer_retries():
                    raise Finish(Status.DEADLINE_EXCEEDED, "the client sent nothing in time") from None
                resend = again()
                if resend is not None:
                    await self.send(resend)
                continue
            self.inbox_bytes -= len(chunk.data)
            if chunk.status is not None and chunk.type != ChunkType.COMPLETION_ACK:
                if self.version == VERSION_TWO:
                    await self.send(self.out(ChunkType.COMPLETION_ACK))
                raise ClientEnded(chunk.status)
            return chunk

    # -- the life of a transfer -----------------------------------------------------------------

    async def _run(self, start: Chunk) -> None:
        try:
            status = await self._outcome(start)
            if status is not None:
                await self.terminate(status)
        finally:
            self.stream.forget(self)

    async def _outcome(self, start: Chunk) -> Status | None:
        """Serve the transfer, then free its file; the status to end it with (None: it has
        ended already, or the client ended it)."""
        try:
            await self.serve(start)
        except ClientEnded as ended:
            if ended.status != Status.OK:
                logger.info("pw_transfer %s of %d: the client ended it (%d)", self.kind, self.resource_id, ended.status)
        except Finish as finish:
            logger.info("pw_transfer %s of %d: %s (%s)", self.kind, self.resource_id, finish.detail, finish.status.name)
            return finish.status
        except FileshareError as exc:
            logger.info("pw_transfer %s of %d refused: %s", self.kind, self.resource_id, exc.detail)
            return status_of(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("pw_transfer %s of %d failed", self.kind, self.resource_id)
            return Status.INTERNAL
        finally:
            await self.release()  # before any goodbye: a client that went silent holds nothing
        return None

    kind = "transfer"

    @abc.abstractmethod
    async def serve(self, start: Chunk) -> None:
        """Run the transfer to its end; raise Finish or a FileshareError to end it with a status."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Free what the transfer holds (its file); runs however it ends, and may run twice."""

    async def handshake(self, start: Chunk) -> Chunk:
        """Version 2: START_ACK (sent again while the client repeats START or stays silent)
        until START_ACK_CONFIRMATION, which is returned."""
        ack = self.out(
            ChunkType.START_ACK,
            resource_id=self.resource_id,
            protocol_version=VERSION_TWO,
            initial_offset=start.initial_offset,
        )
        await self.send(ack)
        while True:
            chunk = await self.receive(lambda: ack)
            if chunk.type == ChunkType.START_ACK_CONFIRMATION:
                self.confirmed = True
                return chunk
            if chunk.type == ChunkType.START:
                await self.send(ack)

    async def terminate(self, status: Status) -> None:
        """End with ``status``: a status chunk; in version 2, after the handshake, wait for
        COMPLETION_ACK (sending COMPLETION again while the client asks for anything else)."""
        completion = self.out(ChunkType.COMPLETION, status=int(status))
        await self.send(completion)
        if self.version != VERSION_TWO or not self.confirmed:
            return
        with contextlib.suppress(Finish, ClientEnded):
            while True:
                chunk = await self.receive(lambda: completion)
                if chunk.type == ChunkType.COMPLETION_ACK:
                    return
                if chunk.type != ChunkType.DATA:
                    await self.send(completion)


class ReadTransfer(Transfer):
    """The server sends a file."""

    kind = "read"
    reader: transfer_files.BlockReader | None = None

    async def serve(self, start: Chunk) -> None:
        source = await transfer_files.readable(self.resource_id)
        if source.size > transfer_files.WINDOW_LIMIT:
            raise Finish(Status.OUT_OF_RANGE, f"{source.size} bytes is past pw_transfer's 4 GiB - 1")
        if start.initial_offset > source.size:
            raise Finish(Status.OUT_OF_RANGE, f"offset {start.initial_offset} is past the end ({source.size})")
        params = await self.handshake(start) if self.version == VERSION_TWO else start
        self.reader = transfer_files.BlockReader(source)
        await Sender(self, source).run(params)

    async def release(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            await reader.close()


class Sender:
    """A read's transmitter: the window, the offset, and the chunks in flight."""

    def __init__(self, transfer: ReadTransfer, source: transfer_files.Readable) -> None:
        self.transfer = transfer
        self.source = source
        self.offset = 0
        self.window_end = 0
        self.max_chunk = chunk_limit()
        self.final_sent = False
        self.last: Chunk | None = None
        self.checked = time.monotonic()

    def apply(self, chunk: Chunk) -> None:
        """Take a parameters chunk: rewind and set the window, or only extend it."""
        if chunk.max_chunk_size_bytes:
            self.max_chunk = max(1, min(chunk.max_chunk_size_bytes, chunk_limit()))
        if chunk.type in _PARAMETERS:
            if chunk.offset > self.source.size:
                raise Finish(Status.OUT_OF_RANGE, f"offset {chunk.offset} is past the end ({self.source.size})")
            self.offset = chunk.offset
            self.window_end = chunk.window_end
            self.final_sent = False
        elif chunk.type == ChunkType.PARAMETERS_CONTINUE:
            self.window_end = max(self.window_end, chunk.window_end)

    def ready(self) -> bool:
        return not self.final_sent and (self.offset < self.window_end or self.offset >= self.source.size)

    async def send_next(self) -> None:
        assert self.transfer.reader is not None
        size = self.source.size
        data = b""
        if self.offset < size:
            most = min(self.max_chunk, self.window_end - self.offset, size - self.offset)
            try:
                data = await self.transfer.reader.read(self.offset, most)
            except (OSError, EOFError) as exc:  # deleted or replaced under a storage that cannot keep it
                raise Finish(Status.ABORTED, f"the file can no longer be read: {exc}") from None
        remaining = size - self.offset - len(data)
        chunk = self.transfer.out(ChunkType.DATA, offset=self.offset, data=data, remaining_bytes=remaining)
        await self.transfer.send(chunk)
        self.last = chunk
        self.offset += len(data)
        self.final_sent = remaining == 0

    async def check_file(self) -> None:
        if time.monotonic() - self.checked < CHECK_EVERY:
            return
        self.checked = time.monotonic()
        if not await transfer_files.still_there(self.source):
            raise Finish(Status.ABORTED, "the file was deleted, or its owner left, during the read")

    async def run(self, params: Chunk) -> None:
        self.apply(params)
        inbox = self.transfer.inbox
        while True:
            while self.ready():
                await self.send_next()
                while not inbox.empty():
                    await self.handle(await self.transfer.receive(lambda: None))
            await self.handle(await self.transfer.receive(lambda: self.last))

    async def handle(self, chunk: Chunk) -> None:
        if chunk.type in _PARAMETERS or chunk.type == ChunkType.PARAMETERS_CONTINUE:
            await self.check_file()
            self.apply(chunk)


class WriteTransfer(Transfer):
    """The server receives a file and replaces the owner's."""

    kind = "write"
    spool: transfer_files.Spool | None = None

    async def serve(self, start: Chunk) -> None:
        target = await transfer_files.writable(self.stream.service.client, self.resource_id)
        if start.initial_offset:
            raise Finish(Status.UNIMPLEMENTED, "a write starts at offset 0: it replaces the whole file")
        self.spool = await transfer_files.Spool.create()
        if self.version == VERSION_TWO:
            await self.handshake(start)
        await Receiver(self, self.spool).run()
        await self.spool.commit(target)
        await self.release()
        await relay.notify_dashboard("file_changed", client=target.owner_name, path=target.path)
        await self.terminate(Status.OK)

    async def release(self) -> None:
        spool, self.spool = self.spool, None
        if spool is not None:
            await spool.discard()


class Receiver:
    """A write's receiver: the expected offset and the window it has asked for."""

    def __init__(self, transfer: WriteTransfer, spool: transfer_files.Spool) -> None:
        self.transfer = transfer
        self.spool = spool
        self.offset = 0
        self.window = max(1, conf.transfer_window_bytes())
        self.window_end = 0
        self.limit = transfer_files.upload_limit()
        self.recovering = False

    def parameters(self, kind: ChunkType) -> Chunk:
        self.window_end = self.offset + self.window
        values: dict[str, Any] = {
            "offset": self.offset,
            "window_end_offset": self.window_end,
            "max_chunk_size_bytes": chunk_limit(),
        }
        if self.transfer.version == LEGACY:
            values["pending_bytes"] = self.window
        return self.transfer.out(kind, **values)

    async def run(self) -> None:
        """Receive until the last byte; returns with the spool complete."""
        ask = self.parameters(ChunkType.PARAMETERS_RETRANSMIT)
        await self.transfer.send(ask)
        while True:
            chunk = await self.transfer.receive(lambda: self.parameters(ChunkType.PARAMETERS_RETRANSMIT))
            if chunk.type == ChunkType.START_ACK_CONFIRMATION or (
                chunk.type == ChunkType.START and self.transfer.version == LEGACY
            ):
                await self.transfer.send(self.parameters(ChunkType.PARAMETERS_RETRANSMIT))
                continue
            if chunk.type != ChunkType.DATA:
                continue
            if chunk.offset != self.offset:
                if not self.recovering:  # once per loss: the chunks already in flight are dropped
                    self.recovering = True
                    await self.transfer.send(self.parameters(ChunkType.PARAMETERS_RETRANSMIT))
                continue
            self.recovering = False
            if self.offset + len(chunk.data) > self.limit:
                raise TooLarge(f"the file would pass the limit of {self.limit} bytes")
            await self.spool.append(chunk.data)
            self.offset += len(chunk.data)
            if chunk.remaining_bytes == 0:
                return
            if self.window_end - self.offset <= self.window // 2:
                await self.transfer.send(self.parameters(ChunkType.PARAMETERS_CONTINUE))


class Stream:
    """One open Read or Write call: its transfers by (version, session id)."""

    def __init__(self, service: TransferService, packet: Packet) -> None:
        self.service = service
        self.packet = packet
        self.transfers: dict[tuple[int, int], Transfer] = {}
        self.make: type[Transfer] = ReadTransfer if packet.method_id == READ_ID else WriteTransfer

    async def send(self, chunk: Chunk) -> None:
        await self.service.send(self.packet.reply(PacketType.SERVER_STREAM, chunk.encode()))

    def forget(self, transfer: Transfer) -> None:
        if self.transfers.get(transfer.key) is transfer:
            del self.transfers[transfer.key]

    def receive(self, payload: bytes) -> Chunk | None:
        """Route one chunk; returns a chunk to answer at once, if any."""
        try:
            chunk = Chunk.decode(payload)
        except DecodeError as exc:
            logger.info("pw_transfer chunk from %s does not decode: %s", self.service.client.name, exc)
            return None
        version = VERSION_TWO if chunk.version >= VERSION_TWO else LEGACY
        if version == VERSION_TWO:
            key = (version, (chunk.desired_session_id if chunk.type == ChunkType.START else chunk.session_id) or 0)
        else:
            key = (version, chunk.transfer_id)
        current = self.transfers.get(key)
        starts = chunk.type == ChunkType.START or (
            # A legacy read retried before its START arrived: parameters from offset 0.
            version == LEGACY
            and current is None
            and self.make is ReadTransfer
            and chunk.type == ChunkType.PARAMETERS_RETRANSMIT
            and chunk.offset == 0
        )
        if current is not None and not (starts and current.confirmed):
            current.offer(chunk)  # a START during the handshake is a retry: answered there
            return None
        if starts:
            if current is not None:
                current.task.cancel()  # a new START for a running transfer restarts it
                self.forget(current)
            if len(self.transfers) >= MAX_TRANSFERS:
                return _refusal(chunk, version, Status.RESOURCE_EXHAUSTED)
            transfer = self.make(self, chunk)
            self.transfers[transfer.key] = transfer
            return None
        if chunk.status is not None and version == VERSION_TWO and chunk.type == ChunkType.COMPLETION:
            # Our COMPLETION_ACK was lost and the transfer is gone: acknowledge again.
            return Chunk(type=ChunkType.COMPLETION_ACK, session_id=key[1])
        return None

    def cancel(self) -> None:
        for transfer in list(self.transfers.values()):
            transfer.task.cancel()
        self.transfers.clear()

    def tasks(self) -> list[asyncio.Future[None]]:
        return [transfer.task for transfer in self.transfers.values()]


def _refusal(start: Chunk, version: int, status: Status) -> Chunk:
    if version == VERSION_TWO:
        return Chunk(type=ChunkType.COMPLETION, session_id=start.desired_session_id or 0, status=int(status))
    return Chunk(type=ChunkType.COMPLETION, transfer_id=start.transfer_id, status=int(status))


class TransferService:
    """The pw.transfer.Transfer calls of one websocket connection."""

    def __init__(self, client: LiveClient, send: Send) -> None:
        self.client = client
        self.send = send
        self.streams: dict[int, Stream] = {}

    @staticmethod
    def owns(packet: Packet) -> bool:
        """True for a packet of this service on the served channel."""
        return packet.service_id == SERVICE_ID and packet.channel_id == CHANNEL_ID

    async def handle(self, packet: Packet) -> AsyncIterator[bytes]:
        """The frames that answer a client packet of this service (usually none)."""
        kind = packet.type
        if kind == PacketType.REQUEST:
            if packet.method_id not in (READ_ID, WRITE_ID):
                yield packet.reply(PacketType.SERVER_ERROR, status=Status.NOT_FOUND)
                return
            old = self.streams.pop(packet.method_id, None)
            if old is not None:
                old.cancel()  # a new call to the same method replaces the open one
            self.streams[packet.method_id] = Stream(self, packet)
            return
        stream = self.streams.get(packet.method_id)
        current = stream is not None and stream.packet.call_id == packet.call_id
        if kind == PacketType.CLIENT_STREAM:
            if stream is None or not current:
                yield packet.reply(PacketType.SERVER_ERROR, status=Status.FAILED_PRECONDITION)
                return
            answer = stream.receive(packet.payload)
            if answer is not None:
                yield packet.reply(PacketType.SERVER_STREAM, answer.encode())
        elif kind == PacketType.CLIENT_ERROR and stream is not None and current:
            # The client cancelled the call: its transfers end, a write stores nothing.
            stream.cancel()
            del self.streams[packet.method_id]
        # CLIENT_REQUEST_COMPLETION: the client sends no more; running transfers finish.

    async def close(self) -> None:
        """The socket is gone: end every transfer now and wait until their files are freed."""
        tasks = [task for stream in self.streams.values() for task in stream.tasks()]
        for stream in self.streams.values():
            stream.cancel()
        self.streams.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
