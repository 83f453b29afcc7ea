"""The run command's HTTP connections: requests judged on their headers, and timeouts.

Twisted's HTTPChannel (under daphne) reads a request's whole body before anything
looks at the request. GuardedHTTPChannel changes two things (docs/limits.md):

* **Headers first.** When the headers of a request with a body have arrived, the
  connection stops reading and asks ``fileshare.fileapi.gate.admit`` (the key, the owner,
  the declared size against the limits and quotas; the database is asked on the
  registry's own thread, never on the event loop). Admitted, the body is read
  (spooled as before), ``Expect: 100-continue`` is answered ``100 Continue``, and
  at most the admitted number of bytes are taken. Refused, the answer is the file
  API's JSON error, sent at once with ``Connection: close``; the body is never
  stored. Then, like nginx's lingering close, the connection discards what the
  client is still sending for a moment (at most LINGER_BYTES, LINGER_SECONDS), so
  that a client busy writing its body still reads the answer, and is closed.
* **Timeouts** (FILESHARE_HTTP_HEADER_TIMEOUT, _BODY_TIMEOUT, _KEEPALIVE_TIMEOUT):
  a request's headers must be complete within the header timeout of their first
  byte, however they trickle (a slowloris is cut with 408); a body may not stall
  longer than the body timeout between two reads (408); an idle connection between
  requests is closed after the keep-alive timeout. Twisted's single idle timer
  (reset by any byte) did all three before, so a trickle kept a connection forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

from twisted.web import http

from fileshare import conf
from fileshare.exceptions import FileshareError, InsufficientStorage, RequestTimeout
from fileshare.fileapi import gate
from fileshare.observe import metrics

logger = logging.getLogger(__name__)

LINGER_BYTES = 4 * 1024 * 1024
"""After a refusal, at most this many more bytes of the body are read (and dropped)."""
LINGER_SECONDS = 2.0
"""After a refusal, the connection is closed at the latest this long after the answer."""


def refusal_bytes(exc: FileshareError, *, tus: bool = False) -> bytes:
    """A complete HTTP/1.1 response carrying ``exc`` as the file API's JSON error; closes."""
    metrics.count_refusal(exc)
    body = json.dumps({"error": exc.error, "detail": exc.detail}).encode()
    try:
        reason = HTTPStatus(exc.http_status).phrase
    except ValueError:
        reason = "Error"
    lines = [
        f"HTTP/1.1 {exc.http_status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
    ]
    if exc.http_status == 401:
        lines.append('WWW-Authenticate: Bearer realm="concierge"')
    if tus:
        lines.append("Tus-Resumable: 1.0.0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_HTTPChannel: Any = http.HTTPChannel
"""Twisted's HTTPChannel, as Any: most of its methods carry no annotations."""


class GuardedHTTPChannel(_HTTPChannel):
    """Twisted's HTTPChannel, deciding on a request's headers and timing out slow peers."""

    _phase = "header"
    """``header`` (reading a request's headers: a fixed deadline), ``gate`` (waiting for the
    verdict), ``body``, ``busy`` (the application has the request), ``idle`` (between
    requests), ``refused`` (answered with a refusal; lingering before the close)."""
    _held: list[bytes]
    _verdict: asyncio.Future[gate.Admission] | None = None
    _lingered = 0

    def connectionMade(self) -> None:
        self._held = []
        self.timeOut = conf.http_header_timeout()
        super().connectionMade()

    # -- Timeouts ----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._phase == "refused":
            self._linger(data)
            return
        if self._phase == "idle":
            self._phase = "header"
            self.setTimeout(conf.http_header_timeout())  # from the request's first byte
        super().dataReceived(data)

    def resetTimeout(self) -> None:
        if self._phase in {"header", "gate"}:
            return  # a deadline, not an idle timer: a trickle does not move it
        super().resetTimeout()

    def requestDone(self, request: Any) -> None:
        self._phase = "idle"
        self._savedTimeOut = conf.http_keepalive_timeout()  # what Twisted restores between requests
        super().requestDone(request)

    def allContentReceived(self) -> None:
        if self._phase == "refused":
            return  # answered already: the body is not the application's
        self._phase = "busy"
        super().allContentReceived()

    def timeoutConnection(self) -> None:
        if self._phase in {"header", "body"} and self.transport is not None:
            what = "headers" if self._phase == "header" else "body"
            limit = conf.http_header_timeout() if self._phase == "header" else conf.http_body_timeout()
            logger.info("closing an HTTP connection whose request %s did not arrive in time (%.0f s)", what, limit)
            self._answer_and_close(RequestTimeout(f"the request's {what} did not arrive within {limit:g} seconds"))
            return
        super().timeoutConnection()

    # -- Headers first -------------------------------------------------------------------

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        if self.length == 0:  # no body: nothing to protect; the application answers
            self._phase = "busy"
            super().allHeadersReceived()
            return
        request.parseCookies()
        self.persistent = self.checkPersistence(request, self._version)
        self._phase = "gate"
        self.setTimeout(None)  # the headers are in; the body's timer starts once admitted
        self._networkProducer.pauseProducing()  # read nothing more until the verdict

        def header_of(name: str) -> str | None:
            values = request.requestHeaders.getRawHeaders(name.encode("latin-1"))
            return values[0].decode("latin-1") if values else None

        head = gate.Head(self._command.decode("latin-1"), self._path, header_of, self.length)
        self._verdict = asyncio.ensure_future(gate.admit(head))
        self._verdict.add_done_callback(lambda verdict: self._judged(request, verdict))

    def rawDataReceived(self, data: bytes) -> None:
        if self._phase == "gate":
            self._held.append(data)  # what came with the headers: kept until the verdict
            return
        if self._phase == "refused":
            self._linger(data)
            return
        super().rawDataReceived(data)

    def _judged(self, request: Any, verdict: asyncio.Future[gate.Admission]) -> None:
        self._verdict = None
        if verdict.cancelled() or self.transport is None or self._phase != "gate" or request not in self.requests:
            return
        exc = verdict.exception()
        if exc is not None:
            if not isinstance(exc, FileshareError) or exc.http_status >= 500 and exc.http_status != 507:
                logger.error("judging a request on its headers failed", exc_info=exc)
                exc = FileshareError("internal error while checking the request; nothing was stored")
            self.refuse(exc)
            return
        admission = verdict.result()
        self._phase = "body"
        self.setTimeout(conf.http_body_timeout())
        request.admitted = admission
        request.gotLength(self.length)
        expect = request.requestHeaders.getRawHeaders(b"Expect")
        if expect and expect[0].lower() == b"100-continue" and self._version == b"HTTP/1.1":
            self._send100Continue()
        held, self._held = b"".join(self._held), []
        self._networkProducer.resumeProducing()
        if held:
            super().rawDataReceived(held)

    @property
    def refused(self) -> bool:
        """Whether the request being read was refused (its body is dropped)."""
        return self._phase == "refused"

    def refuse(self, exc: FileshareError) -> None:
        """Answer the request being read with ``exc`` (JSON), drop its body, and close."""
        if self._phase == "refused" or self.transport is None:
            return
        if isinstance(exc, InsufficientStorage):
            logger.warning("refused a request body: %s", exc.detail)
        self._answer_and_close(exc)

    def _answer_and_close(self, exc: FileshareError) -> None:
        request = self.requests[-1] if self.requests else None
        target = getattr(self, "_path", b"") or b""
        self._phase = "refused"
        self._held = []
        self.setTimeout(None)
        if request is not None:
            content = getattr(request, "content", None)
            if content is not None and hasattr(content, "close"):
                content.close()  # a spooled body has no name: closing it frees its bytes
        self.transport.write(refusal_bytes(exc, tus=gate.is_tus(target)))
        self.persistent = False
        self.transport.loseWriteConnection()
        self._networkProducer.resumeProducing()  # read (and drop) what the client still sends
        self.callLater(LINGER_SECONDS, self._end)

    def _linger(self, data: bytes) -> None:
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self._end()

    def _end(self) -> None:
        if self.transport is not None and self.transport.connected:
            self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if self._verdict is not None:
            self._verdict.cancel()
            self._verdict = None
        super().connectionLost(reason)


def guarded_channel_protocol(factory: Any) -> Any:
    """An HTTPFactory's ``protocol``: Twisted's HTTP/1.1-or-2 wrapper around a GuardedHTTPChannel."""
    return http._GenericHTTPChannelProtocol(GuardedHTTPChannel())  # noqa: SLF001 (Twisted builds it so)
