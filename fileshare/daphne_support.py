"""Daphne integration: close frames that carry their reason.

Daphne 4.2 drops the ``reason`` of an ASGI ``websocket.close`` and sends a bare
code. A refusal must say what was wrong, so ``runconcierge`` installs this
protocol class, which passes the reason (at most 123 bytes, as RFC 6455 allows)
to autobahn's ``sendClose``. Everything else is daphne's own behaviour.
"""

from __future__ import annotations

from typing import Any

from daphne import ws_protocol


class ReasonedWebSocketProtocol(ws_protocol.WebSocketProtocol):  # type: ignore[misc]
    def _connectionMade(self) -> None:
        super()._connectionMade()
        # Autobahn drops the TCP connection on a protocol failure (such as a frame
        # over the size limit) unless told to send the close frame: 1009 then
        # reaches the client with its reason.
        self.failByDrop = False

    def handle_reply(self, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            reason = str(message.get("reason") or "").encode()[:123].decode(errors="ignore")
            self.sendClose(code=message.get("code") or 1000, reason=reason or None)
            return
        super().handle_reply(message)


def install() -> None:
    """Make daphne's websocket factory build ReasonedWebSocketProtocol."""
    ws_protocol.WebSocketFactory.protocol = ReasonedWebSocketProtocol
