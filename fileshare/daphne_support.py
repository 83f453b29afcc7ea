"""Daphne integration: close reasons, close frames on protocol errors, a send cap.

``runconcierge`` installs ReasonedWebSocketProtocol in daphne's websocket factory:

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
  it; LazyBodyQueue (below) hands it over from Twisted's spooled file in chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from daphne import ws_protocol
from daphne.server import Server

from fileshare import conf

logger = logging.getLogger(__name__)


class ReasonedWebSocketProtocol(ws_protocol.WebSocketProtocol):
    def _connectionMade(self) -> None:
        super()._connectionMade()
        # Autobahn drops the TCP connection on a protocol failure (such as a frame
        # over the size limit) unless told to send the close frame: 1009 then
        # reaches the client with its reason.
        self.failByDrop = False
        self.max_outbound = conf.max_outbound_bytes()

    def outbound_bytes(self) -> int:
        """Bytes queued in the transport, not yet taken by the kernel."""
        transport = self.transport
        return len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0) + getattr(
            transport, "_tempDataLen", 0
        )

    def serverSend(self, content: str | bytes, binary: bool = False) -> None:
        super().serverSend(content, binary)
        if self.outbound_bytes() > self.max_outbound:
            logger.warning(
                "dropping a websocket client that is not reading: %d bytes wait to be sent (limit %d)",
                self.outbound_bytes(),
                self.max_outbound,
            )
            self.transport.abortConnection()

    def handle_reply(self, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            reason = str(message.get("reason") or "").encode()[:123].decode(errors="ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason or None)
            return
        super().handle_reply(message)


def install() -> None:
    """Make daphne's websocket factory build ReasonedWebSocketProtocol."""
    ws_protocol.WebSocketFactory.protocol = ReasonedWebSocketProtocol


# -- Flow control for daphne --------------------------------------------------------------
#
# Twisted spools a request body over 100 kB to a temporary file before daphne
# runs the application; daphne then reads the whole file into the application's
# input queue at once (the whole body in memory). LazyBodyQueue keeps only how
# much body there is and reads it from the spooled file as the application asks.
#
# Daphne's send() writes into Twisted's transport buffer and returns: a client
# reading slower than the application writes makes that buffer grow without
# bound. FlowControlServer.handle_reply waits after each body or websocket frame
# until the buffer is below HIGH_WATER, which gives the ASGI application the
# backpressure daphne lacks.

HIGH_WATER = 1024 * 1024


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
    return len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0) + getattr(
        transport, "_tempDataLen", 0
    )


class LazyBodyQueue(asyncio.Queue):  # type: ignore[type-arg]
    """An HTTP input queue that reads the request body from Twisted's spooled file on demand."""

    def __init__(self, request: Any) -> None:
        super().__init__()
        self.request = request
        self.body_length = 0
        self.body_complete = False
        self.position = 0
        self.final_sent = False

    def put_nowait(self, item: dict[str, Any]) -> None:
        if item.get("type") == "http.request":
            self.body_length += len(item.get("body", b""))
            self.body_complete = self.body_complete or not item.get("more_body", False)
            return
        super().put_nowait(item)

    async def get(self) -> dict[str, Any]:
        if self.final_sent or not (self.body_complete or self.body_length > self.position):
            return await super().get()
        content = getattr(self.request, "content", None)
        if content is None or content.closed:
            self.final_sent = True
            return {"type": "http.disconnect"}
        content.seek(self.position)
        chunk = content.read(min(conf.chunk_size(), self.body_length - self.position))
        self.position += len(chunk)
        more = not (self.body_complete and self.position >= self.body_length)
        self.final_sent = not more
        return {"type": "http.request", "body": chunk, "more_body": more}


class FlowControlServer(Server):
    """daphne's Server with bounded request bodies and backpressure on send."""

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> asyncio.Queue | None:  # type: ignore[type-arg]
        # daphne.server.Server.create_application, with LazyBodyQueue for HTTP.
        assert "application_instance" not in self.connections[protocol]
        input_queue: asyncio.Queue = LazyBodyQueue(protocol) if scope["type"] == "http" else asyncio.Queue()  # type: ignore[type-arg]
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

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        await super().handle_reply(protocol, message)
        if message.get("type") not in {"http.response.body", "websocket.send"}:
            return
        transport = transport_of(protocol)
        if buffered_bytes(transport) <= HIGH_WATER:
            return
        deadline = time.monotonic() + conf.send_timeout() if message["type"] == "websocket.send" else None
        delay = 0.001
        while buffered_bytes(transport) > HIGH_WATER:
            if protocol not in self.connections or self.connections[protocol].get("disconnected"):
                return
            if deadline is not None and time.monotonic() > deadline:
                logger.warning("dropping a websocket client that has not read for %.0f s", conf.send_timeout())
                transport.abortConnection()
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
