"""Daphne integration: close reasons, close frames on protocol errors, flow control, file bytes.

``runconcierge`` calls install() and serves with FlowControlServer:

* Daphne 4.2 drops the ``reason`` of an ASGI ``websocket.close``; a refusal must
  say what was wrong, so the reason (at most 123 bytes, RFC 6455) is passed on.
* Autobahn drops the TCP connection on a protocol error (such as a frame over the
  size limit); here it sends the close frame, so the client sees 1009.
* Daphne's ``send()`` has no backpressure, so FlowControlServer (below) waits
  after each response body chunk or websocket frame until the socket buffer is
  under 1 MiB. A websocket client that has not drained it within
  FILESHARE_SEND_TIMEOUT is dropped; as a last resort the protocol also aborts a
  connection with more than FILESHARE_MAX_OUTBOUND_BYTES unsent.
* Daphne reads the whole request body into memory before the application sees
  it, and Django copies it to a file of its own. Here a body over 100 kB is written
  once, to a SpooledBody (``fileshare.fileapi.offload``) in the storage root that counts and
  hashes it as it arrives, and Django takes that file as the body itself: a PUT
  links it into storage without another copy.
* Every HTTP connection is a ``fileshare.server.http_channel.GuardedHTTPChannel``: a request
  with a body is judged on its headers (key, owner, declared size, quotas) before the
  body is read, a body is cut at what was admitted (a full disk answers 507), and
  slow headers, stalled bodies and idle connections time out (docs/limits.md).
* A whole-file download is sent by the server itself (``fileshare.fileapi.offload.FileBody``):
  1 MiB blocks read in a worker thread, each written when the socket has drained.
* A websocket frame is written to the socket at once if it is the first of its loop
  turn for that connection; the rest of the turn's frames are sent together.
* Any websocket subprotocol offer connects (duplicates included), and a request
  Twisted cannot parse is refused with the file API's JSON error: the requests and
  the factory below are ``fileshare.server.daphne_requests``' ones.
* Autobahn pretty-prints its options for a debug line on every websocket
  connection, debug logging on or off; the text is now made only if the line is
  written (FormattedWhenLogged).

Why this module is long: the run command's server (flow control, spooled bodies, server-sent files, frames written at once) is one FlowControlServer and the protocol classes it builds; the parts call each other.
"""

from __future__ import annotations

import asyncio
import io
import logging
import pprint
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

from autobahn.websocket import protocol as autobahn_protocol
from daphne import server as daphne_server
from daphne import ws_protocol
from daphne.server import Server
from twisted.internet import tcp
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from fileshare import conf
from fileshare.dashboard import transfers
from fileshare.exceptions import FileshareError, InsufficientStorage
from fileshare.fileapi import gate, offload
from fileshare.server import http_channel
from fileshare.server.daphne_requests import TolerantHTTPFactory, TolerantOfferRequest
from fileshare.store import storage
from fileshare.ws import relay

logger = logging.getLogger(__name__)


class ReasonedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    factory: ReasonedWebSocketFactory

    def outbound_bytes(self) -> int:
        """Bytes queued in the transport, not yet taken by the kernel."""
        return buffered_bytes(self.transport)

    def serverSend(self, content: str | bytes, binary: bool = False) -> None:
        super().serverSend(content, binary)
        self._check_outbound()

    def send_prepared(self, prepared: autobahn_protocol.PreparedMessage) -> None:
        """Send a message framed once for many connections (autobahn's broadcast helper)."""
        self.sendPreparedMessage(prepared)
        self._check_outbound()

    def _check_outbound(self) -> None:
        unsent = self.outbound_bytes()
        if unsent > self.factory.max_outbound:
            logger.warning(
                "dropping a websocket client that is not reading: %d bytes wait to be sent (limit %d)",
                unsent,
                self.factory.max_outbound,
            )
            self.transport.abortConnection()

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Autobahn's sendData formats a debug line for every frame, logging on or off;
        # Twisted's write() buffers every frame until the next loop turn (two epoll_ctl
        # calls and a send). The first frame of a loop turn (nothing chopped or queued)
        # is written now, for a reply's latency; the others of that turn go to Twisted,
        # which sends them together: a crowd's CLIENT_JOINED frames cost a send() per
        # client and turn, not per frame.
        if chopsize or sync or self.send_queue:
            super().sendData(data, sync, chopsize)
            return
        if self._wrote_this_turn:
            self.transport.write(data)
        else:
            write_now(self.transport, data)
            self._wrote_this_turn = True
            asyncio.get_running_loop().call_soon(self._next_turn)
        if self.state == self.STATE_OPEN:
            self.trafficStats.outgoingOctetsWireLevel += len(data)
        elif self.state in (self.STATE_CONNECTING, self.STATE_PROXY_CONNECTING):
            self.trafficStats.preopenOutgoingOctetsWireLevel += len(data)

    _wrote_this_turn = False

    def _next_turn(self) -> None:
        self._wrote_this_turn = False

    def handle_reply(self, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            reason = str(message.get("reason") or "").encode()[:123].decode(errors="ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason or None)
            return
        super().handle_reply(message)


def write_now(transport: Any, data: bytes) -> None:
    """Give ``data`` to the kernel at once if nothing waits before it in ``transport``'s
    buffer; what the socket does not take, and everything on another kind of transport
    (TLS, a wrapper, a closing connection), goes through ``transport.write``, in order,
    as usual.

    Only a plain TCP or Unix connection qualifies: a wrapper such as TLS answers
    ``.socket`` with the raw socket underneath (``ProtocolWrapper.__getattr__``), and
    writing there would skip the encryption.
    """
    sock = transport.socket if isinstance(transport, tcp.Connection) and not transport.TLS else None
    if (
        sock is not None
        and data
        and transport.connected
        and not transport.disconnecting
        and not transport._tempDataBuffer
        and len(transport.dataBuffer) == transport.offset
    ):
        try:
            sent = sock.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error Twisted's own write path will meet and report
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


class FormattedWhenLogged:
    """``pprint.pformat(value)``, computed only when a log line is written with it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return pprint.pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class ReasonedWebSocketFactory(ws_protocol.WebSocketFactory):
    """daphne's websocket factory, building ReasonedWebSocketProtocols.

    Autobahn drops the TCP connection on a protocol failure (such as a frame over the
    size limit) unless told to send the close frame (its public option ``failByDrop``):
    1009 then reaches the client with its reason.
    """

    protocol = ReasonedWebSocketProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(failByDrop=False)
        self.max_outbound = conf.max_outbound_bytes()


def install() -> Callable[[], None]:
    """Make daphne's server build the factories above (FlowControlServer relies on it;
    ``runconcierge`` calls it first). Returns a function that puts back what it replaced
    (tests undo it).
    """
    replaced = [
        (daphne_server, "WebSocketFactory", ReasonedWebSocketFactory),  # what Server.run() builds
        (daphne_server, "HTTPFactory", SpoolingHTTPFactory),
        # Autobahn pretty-prints some 40 options for a debug line on every connection,
        # debug logging on or off: a fifth of daphne's cost for a websocket handshake.
        # The text is now made only if the line is written (Timings.__str__, the one
        # other caller, must return a str and keeps the real pformat).
        (autobahn_protocol, "pformat", FormattedWhenLogged),
        (autobahn_protocol.Timings, "__str__", lambda self: pprint.pformat(self._timings)),
        (transfers.current, "wire", True),  # the dashboard's bytes chart counts bodies as they move
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replaced]
    for owner, name, value in replaced:
        setattr(owner, name, value)

    def uninstall() -> None:
        for owner, name, value in originals:
            setattr(owner, name, value)

    return uninstall


# -- Request bodies ----------------------------------------------------------------------
#
# Twisted writes a request body over 100 kB to a temporary file before daphne runs the
# application; daphne then reads that file on the event loop into the application's
# input queue (the whole body in memory), and Django's handler copies it to a file of
# its own before the view runs. SpoolingRequest has Twisted write it to a SpooledBody
# instead (hashed as it arrives, in the storage root), FlowControlServer takes that
# file from daphne, and Django gets it as its body file: the body is written once.

SPOOL_FROM = 100_000
"""Bodies at least this large, or of unknown length, are spooled to disk (Twisted's threshold)."""
SPOOL_READ = 1024 * 1024
"""Bytes per socket read while a body is spooled."""


UPLOAD_METHODS = frozenset({"PUT", "POST", "PATCH"})
"""Methods whose spooled body the dashboard shows as an upload (under /fs/ and /tus/ only)."""


class SpoolingRequest(TolerantOfferRequest):
    """daphne's request (tolerant of any subprotocol offer), with a large body spooled to a SpooledBody.

    A GuardedHTTPChannel admits the body on the headers first (``admitted``, a
    ``gate.Admission``): a body that grows past its admitted size is refused as it
    arrives, and a full disk while it is spooled answers 507 (logged).
    """

    admitted: gate.Admission | None = None
    received = 0
    transfer: transfers.Transfer | None = None
    """The upload as the dashboard shows it (``fileshare.dashboard.transfers``), if tracked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Twisted would parse a multipart POST in memory into request.args, which daphne never reads.
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def handleContentChunk(self, data: bytes) -> None:
        channel = self.channel
        if not isinstance(channel, http_channel.GuardedHTTPChannel):
            super().handleContentChunk(data)
            return
        if channel.refused:
            return
        self.received += len(data)
        if self.admitted is not None and self.received > self.admitted.limit:
            self._refuse(channel, self.admitted.over)
            return
        try:
            super().handleContentChunk(data)
        except OSError as exc:
            if not storage.is_full_disk(exc):
                raise
            logger.error("the disk is full: a request body could not be spooled (%s)", exc.strerror)
            self._refuse(channel, InsufficientStorage("the server's disk is full; nothing was stored"))
            return
        transfers.current.body_bytes_in += len(data)
        if self.transfer is not None:
            self.transfer.done = self.received

    def _refuse(self, channel: http_channel.GuardedHTTPChannel, exc: FileshareError) -> None:
        self._end_transfer("failed", f"{exc.http_status}: {exc.detail}")
        channel.refuse(exc)

    def _end_transfer(self, outcome: str, detail: str) -> None:
        if self.transfer is not None:
            transfers.current.end(self.transfer, outcome, detail)

    def finish(self) -> None:
        code = int(getattr(self, "code", 200))
        self._end_transfer("finished" if code < 400 else "failed", f"HTTP {code}")
        super().finish()

    def connectionLost(self, reason: Any) -> None:
        self._end_transfer("failed", "the connection was lost")
        super().connectionLost(reason)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length < SPOOL_FROM:
            super().gotLength(length)  # kept in memory
            return
        transport = getattr(self.channel, "transport", None)
        if transport is not None and hasattr(transport, "bufferSize"):
            # Up to 1 MiB per recv() (Twisted reads 64 KiB): much less CPU per byte received.
            # Twisted then also pauses a response's producer only above 1 MiB unsent on this
            # connection, which is FlowControlServer's HIGH_WATER anyway.
            transport.bufferSize = SPOOL_READ
        try:
            self.content = offload.SpooledBody(offload.spool_directory())
        except OSError:
            logger.exception("cannot spool a request body in the storage root; using the temporary folder")
            self.content = offload.SpooledBody()
        method = bytes(getattr(self.channel, "_command", b"")).decode("latin-1").upper()
        if method in UPLOAD_METHODS:
            target = bytes(getattr(self.channel, "_path", b""))
            self.transfer = transfers.current.start("upload", method, target, length)


class SpoolingHTTPFactory(TolerantHTTPFactory):
    """daphne's HTTP factory, building SpoolingRequests on GuardedHTTPChannels
    (``fileshare.server.http_channel``: requests judged on their headers, and timeouts)
    that refuse what they cannot parse in JSON (``fileshare.server.daphne_requests``)."""

    protocol = http_channel.guarded_channel_protocol

    request_class = SpoolingRequest


class LazyBodyQueue(asyncio.Queue):  # type: ignore[type-arg]
    """An HTTP input queue that hands a spooled request body over as a file, not through memory.

    Django takes the whole SpooledBody as its body file (``fileshare.server.asgi_handler``), and the scope
    names it under ``offload.SPOOLED_BODY``. Another ASGI application gets it in chunks,
    read in a worker thread as it asks. A small body, which Twisted keeps in memory,
    comes in daphne's messages as usual.
    """

    def __init__(self, scope: dict[str, Any], body: offload.SpooledBody | None) -> None:
        super().__init__()
        self.scope = scope
        self.body = body
        self.spooled = body is not None
        self.position = 0

    def put_nowait(self, item: dict[str, Any]) -> None:
        if self.spooled and item.get("type") == "http.request":
            return  # daphne's own copy of the body: it comes from self.body instead
        super().put_nowait(item)

    def take_body(self) -> io.BufferedReader | None:
        """The whole spooled body, once, for an application that reads it as a file and closes it.

        Buffered: its close waits for a read in progress in another thread.
        """
        body, self.body = self.body, None
        if body is None:
            return None
        body.seek(0)
        self.scope.setdefault("extensions", {})[offload.SPOOLED_BODY] = body
        return io.BufferedReader(body)

    async def get(self) -> dict[str, Any]:
        body = self.body
        if body is None:
            return await super().get()
        chunk = await asyncio.get_running_loop().run_in_executor(_FILE_IO, body.read, conf.chunk_size())
        self.position += len(chunk)
        more = bool(chunk) and self.position < body.size
        if not more:
            self.body = None
            body.close()
        return {"type": "http.request", "body": chunk, "more_body": more}


# -- Flow control and response files -----------------------------------------------------
#
# Daphne's send() writes into Twisted's transport buffer and returns: a client
# reading slower than the application writes makes that buffer grow without
# bound. FlowControlServer.handle_reply waits after each body or websocket frame
# until the buffer is below HIGH_WATER, which gives the ASGI application the
# backpressure daphne lacks. For HTTP a push producer registered on the response
# wakes it when Twisted's buffer has drained; websocket frames poll.

HIGH_WATER = 1024 * 1024
FILE_BLOCK = 1024 * 1024
"""Bytes per read and write when the server sends a file (offload.FileBody)."""

_FILE_IO = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fileshare-file-io")
"""Reads of spooled bodies and response files: never on the event loop."""


def transport_of(protocol: Any) -> Any:
    """The TCP transport under a daphne HTTP request or websocket protocol."""
    transport = getattr(protocol, "transport", None)
    if transport is None:
        transport = getattr(getattr(protocol, "channel", None), "transport", None)
    return transport


def buffered_bytes(transport: Any) -> int:
    """Bytes a Twisted transport holds that the kernel has not taken yet."""
    if transport is None:
        return 0
    return (
        len(getattr(transport, "dataBuffer", b""))
        - getattr(transport, "offset", 0)
        + getattr(transport, "_tempDataLen", 0)
    )


@implementer(IPushProducer)
class Drain:
    """A push producer on an HTTP response: Twisted pauses it when the connection's send
    buffer fills and resumes it when the buffer is empty, which sets ``flowing``."""

    def __init__(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()

    def pauseProducing(self) -> None:
        self.flowing.clear()

    def resumeProducing(self) -> None:
        self.flowing.set()

    def stopProducing(self) -> None:  # the connection is gone
        self.flowing.set()


class FlowControlServer(Server):
    """daphne's Server with spooled request bodies, backpressure on send and server-sent files."""

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> asyncio.Queue | None:  # type: ignore[type-arg]
        # daphne.server.Server.create_application, with LazyBodyQueue and the SEND_FILE slot for HTTP.
        assert "application_instance" not in self.connections[protocol]
        input_queue: asyncio.Queue  # type: ignore[type-arg]
        if scope["type"] == "http":
            input_queue = LazyBodyQueue(scope, self._take_spooled_body(protocol))
            slot: dict[str, Any] = {}
            scope.setdefault("extensions", {})[offload.SEND_FILE] = slot
            self.connections[protocol]["send_file"] = slot
        else:
            input_queue = asyncio.Queue()
            scope.setdefault("extensions", {})[relay.SEND_TEXT_NOW] = partial(self._send_text_now, protocol)
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return input_queue

    @staticmethod
    def _take_spooled_body(protocol: Any) -> offload.SpooledBody | None:
        content = getattr(protocol, "content", None)
        if not isinstance(content, offload.SpooledBody):
            return None
        protocol.content = io.BytesIO()  # daphne copies nothing into the queue; the application owns the file
        return content

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "http.response.body":
            transfers.current.body_bytes_out += len(message.get("body") or b"")
        if kind == "http.response.body" and not message.get("more_body", False):
            body = self.connections.get(protocol, {}).get("send_file", {}).pop("body", None)
            try:
                if body is not None:
                    await self._send_file(protocol, body, message)
            finally:
                self._unwatch(protocol)
        await super().handle_reply(protocol, message)
        if kind == "http.response.start":
            self._watch(protocol)
        elif kind == "websocket.send" or (kind == "http.response.body" and message.get("more_body", False)):
            await self._drained(protocol, kind)

    _prepared: tuple[str, autobahn_protocol.PreparedMessage] | None = None

    def _send_text_now(self, protocol: Any, text: str) -> bool:
        """``websocket.send`` of ``text``, done now; False if the socket is not open or holds
        over HIGH_WATER unsent (the application then sends it the usual way, which waits).

        The frame is built once for all the connections a broadcast hands the same text to.
        """
        if (
            not self._open(protocol)
            or protocol.state != protocol.STATE_OPEN
            or buffered_bytes(transport_of(protocol)) > HIGH_WATER
        ):
            return False
        prepared = self._prepared
        if prepared is None or prepared[0] is not text:
            prepared = self._prepared = (text, autobahn_protocol.PreparedMessage(text.encode(), False, False, False))
        protocol.send_prepared(prepared[1])
        return True

    def _open(self, protocol: Any) -> bool:
        return protocol in self.connections and not self.connections[protocol].get("disconnected")

    def _watch(self, protocol: Any) -> None:
        """Register a Drain on the response, to be woken when its connection drains."""
        if not self._open(protocol) or getattr(protocol, "producer", True) is not None:
            return  # not a Twisted request, or one with a producer already: _drained polls
        drain = Drain()
        try:
            protocol.registerProducer(drain, True)
        except (RuntimeError, ValueError):  # the connection has another producer
            return
        self.connections[protocol]["drain"] = drain

    def _unwatch(self, protocol: Any) -> None:
        drain = self.connections.get(protocol, {}).pop("drain", None)
        if drain is not None and protocol.producer is drain and protocol.channel is not None:
            protocol.unregisterProducer()  # before the response finishes: Twisted insists

    async def _drained(self, protocol: Any, kind: str) -> None:
        """Wait until the connection holds at most HIGH_WATER unsent (or is gone).

        Woken by the response's Drain where there is one; else polls. A websocket
        client that does not drain within FILESHARE_SEND_TIMEOUT is dropped.
        """
        transport = transport_of(protocol)
        if buffered_bytes(transport) <= HIGH_WATER:
            return
        drain: Drain | None = self.connections.get(protocol, {}).get("drain")
        deadline = time.monotonic() + conf.send_timeout() if kind == "websocket.send" else None
        delay = 0.001
        while buffered_bytes(transport) > HIGH_WATER:
            if not self._open(protocol):
                return
            if deadline is not None and time.monotonic() > deadline:
                logger.warning("dropping a websocket client that has not read for %.0f s", conf.send_timeout())
                transport.abortConnection()
                return
            if drain is not None and not drain.flowing.is_set():
                await drain.flowing.wait()
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)

    async def _send_file(self, protocol: Any, body: offload.FileBody, final: dict[str, Any]) -> None:
        """Send ``body`` before the response's ``final`` message: FILE_BLOCK reads in a worker
        thread, the next one while the last is being sent. Closes the file."""
        file = body.file
        reading: Future[bytes] | None = None
        transfer: transfers.Transfer | None = None
        try:
            if final.get("body") or getattr(protocol, "sentLength", 0):
                logger.error("a response with a body of its own also named a file to send; the file is not sent")
                return
            remaining = body.count
            target = bytes(getattr(protocol, "uri", b"") or b"")
            method = bytes(getattr(protocol, "method", b"GET") or b"GET").decode("latin-1")
            transfer = transfers.current.start("download", method, target, body.count)
            outcome, detail = "failed", "the connection was lost"
            if remaining > 0:
                reading = _FILE_IO.submit(file.read, min(FILE_BLOCK, remaining))
            while reading is not None:
                chunk = await asyncio.wrap_future(reading)
                reading = None
                if not chunk:
                    logger.error("a file ended %d bytes short of its Content-Length; connection aborted", remaining)
                    detail = "the file ended short of its size"
                    if (transport := transport_of(protocol)) is not None:
                        transport.abortConnection()
                    return
                remaining -= len(chunk)
                if remaining > 0:
                    reading = _FILE_IO.submit(file.read, min(FILE_BLOCK, remaining))
                if not self._open(protocol):
                    return
                await super().handle_reply(protocol, {"type": "http.response.body", "body": chunk, "more_body": True})
                transfers.current.body_bytes_out += len(chunk)
                if transfer is not None:
                    transfer.done = body.count - remaining
                await self._drained(protocol, "http.response.body")
            outcome, detail = "finished", "sent"
        finally:
            if transfer is not None:
                transfers.current.end(transfer, outcome, detail)
            if reading is None:
                _FILE_IO.submit(file.close)
            else:  # close once the read in flight is done, never under it
                reading.add_done_callback(lambda _: file.close())
