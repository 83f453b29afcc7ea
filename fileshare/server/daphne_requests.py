"""daphne's HTTP request, made to take what the original ERT Concierge's clients send.

Any subprotocol offer connects
------------------------------
Autobahn's ``WebSocketServerProtocol.processHandshake`` refuses a handshake whose
``Sec-WebSocket-Protocol`` names an item twice (``400 duplicate protocol "e"``),
before daphne or the application see it. The original's Python services call
``websockets.connect(uri, subprotocols="ert-concierge")`` with a string, so the
client they were written for offers every character: ``e, r, t, -, c, o, n, c, i,
e, r, g, e``. The original server accepted that and selected nothing.

Autobahn has no hook before that check, and overriding ``processHandshake`` would
mean copying some 400 lines of it. But daphne hands the upgrade to autobahn by
writing the request's headers out again (``daphne.http_protocol.WebRequest.process``),
so ``TolerantOfferRequest`` merges the offer first: each item once, in the client's
order, empty items left out. The application then sees that list as
``scope["subprotocols"]`` and selects ``ert-concierge`` only when it is offered
whole. tests/test_ert_compat.py keeps a canary: it fails the day autobahn accepts
duplicates itself, and this class can go.

``runconcierge`` builds these requests (``daphne_support.SpoolingRequest`` is one),
and ``accept_any_subprotocol_offer()``, called when the app loads inside a plain
``daphne`` process, makes plain daphne build them too.

Refusals before the view
------------------------
A request line or header Twisted cannot parse (a space, NUL or a raw byte over 0x7f
in the target, a malformed header name) is answered by Twisted's ``HTTPChannel``
with a bare ``400`` and no body. ``json_bad_requests`` gives a channel the file
API's one-line JSON error instead. (daphne's own HTML refusals, ``basic_error``,
check the same things after Twisted and are not reached with Twisted 26.)
"""

from __future__ import annotations

import json
import sys
from typing import Any

from daphne import http_protocol

SUBPROTOCOL_HEADER = b"sec-websocket-protocol"


def merged_offer(values: list[bytes]) -> bytes:
    """The ``Sec-WebSocket-Protocol`` lines ``values`` as one offer: each item once, in
    the order first offered, without empty items (``b""`` when nothing is left)."""
    items: dict[bytes, None] = {}
    for value in values:
        for item in value.split(b","):
            if item := item.strip():
                items.setdefault(item, None)
    return b", ".join(items)


def json_error_bytes(status: int, reason: str, error: str, detail: str) -> bytes:
    """A complete HTTP/1.1 answer carrying the file API's one-line JSON error, closing the connection."""
    body = json.dumps({"error": error, "detail": detail}).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


MALFORMED_REQUEST = json_error_bytes(
    400,
    "Bad Request",
    "bad_request",
    "the request line or its headers are malformed (a space, NUL, control character or raw "
    "non-ASCII byte in the target, or headers too large): percent-encode the path",
)


class TolerantOfferRequest(http_protocol.WebRequest):
    """daphne's request; a websocket subprotocol offer is merged before autobahn reads it."""

    def process(self) -> Any:
        values = self.requestHeaders.getRawHeaders(SUBPROTOCOL_HEADER)
        if values is not None:
            merged = merged_offer(values)
            if merged:
                self.requestHeaders.setRawHeaders(SUBPROTOCOL_HEADER, [merged])
            else:
                self.requestHeaders.removeHeader(SUBPROTOCOL_HEADER)
        return super().process()


def json_bad_requests(channel: Any) -> Any:
    """Make Twisted's ``HTTPChannel`` answer a request it cannot parse with the JSON error.

    Twisted writes ``HTTP/1.1 400 Bad Request`` and nothing else from one method,
    ``_respondToBadRequestAndDisconnect`` (private, so this is guarded: a Twisted
    without it keeps its bare 400, and tests/test_ert_compat.py notices).
    """
    http11 = getattr(channel, "_channel", channel)  # Twisted's HTTP/1.1-or-2 wrapper holds the channel
    if callable(getattr(http11, "_respondToBadRequestAndDisconnect", None)):

        def respond() -> None:
            http11.transport.write(MALFORMED_REQUEST)
            http11.loseConnection()

        http11._respondToBadRequestAndDisconnect = respond
    return channel


class TolerantHTTPFactory(http_protocol.HTTPFactory):
    """daphne's HTTP factory, building ``request_class`` requests on channels that refuse in JSON."""

    request_class: type[http_protocol.WebRequest] = TolerantOfferRequest

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = self.request_class
        return json_bad_requests(protocol)


def accept_any_subprotocol_offer() -> bool:
    """Inside a plain ``daphne`` process, make its server build TolerantHTTPFactory.

    Does nothing where daphne's server is not loaded (``manage.py`` commands, other
    servers) or where its factory was already replaced (``runconcierge``). True if
    the factory is now tolerant.
    """
    server_module = sys.modules.get("daphne.server")
    if server_module is None:
        return False
    current = getattr(server_module, "HTTPFactory", None)
    if current is http_protocol.HTTPFactory:
        server_module.HTTPFactory = TolerantHTTPFactory  # type: ignore[attr-defined]
        return True
    return isinstance(current, type) and issubclass(current, TolerantHTTPFactory)
