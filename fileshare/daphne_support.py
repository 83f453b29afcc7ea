"""Daphne integration: close reasons, close frames on protocol errors, a send cap.

``runconcierge`` installs ReasonedWebSocketProtocol in daphne's websocket factory:

* Daphne 4.2 drops the ``reason`` of an ASGI ``websocket.close``; a refusal must
  say what was wrong, so the reason (at most 123 bytes, RFC 6455) is passed on.
* Autobahn drops the TCP connection on a protocol error (such as a frame over the
  size limit); here it sends the close frame, so the client sees 1009.
* Daphne's ``send()`` has no backpressure: what the application sends to a client
  that stops reading piles up in the socket's buffer without limit. Once more than
  FILESHARE_MAX_OUTBOUND_BYTES wait to be sent to one client, the connection is
  aborted (the slow-consumer policy: the slow client is dropped, the others and
  the server's memory are not affected); the leave sequence then runs as usual.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne import ws_protocol

from fileshare import conf

logger = logging.getLogger(__name__)


class ReasonedWebSocketProtocol(ws_protocol.WebSocketProtocol):  # type: ignore[misc]
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
