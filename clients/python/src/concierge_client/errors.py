"""Every failure the client reports, as an exception class.

Replies the server sends in place of a result (``BAD``, ``INVALID_NAME``, ...) become
subclasses of :class:`ReplyError`; a refused or lost connection is
:class:`ConnectionClosed`; a refused HTTP request is :class:`HttpError`.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


class ConciergeError(Exception):
    """Base class of every error this package raises."""


# -- Replies by seq ------------------------------------------------------------------------


class ReplyError(ConciergeError):
    """The server answered a request with an error payload instead of its result."""

    reply_type = ""

    def __init__(self, payload: JsonObject) -> None:
        self.payload = payload
        desc = payload.get("desc")
        detail = next((payload[key] for key in ("name", "uuid", "service", "path") if key in payload), None)
        text = str(desc) if desc else (f"{detail}" if detail is not None else "")
        super().__init__(f"{payload.get('type', self.reply_type)}: {text}" if text else str(payload.get("type")))


class BadRequest(ReplyError):
    """``BAD``: the request is not allowed (not the owner, a full receiver, someone else's folder)."""

    reply_type = "BAD"


class InvalidName(ReplyError):
    """``INVALID_NAME``: no live client has that name."""

    reply_type = "INVALID_NAME"


class InvalidUuid(ReplyError):
    """``INVALID_UUID``: no live client has that public id."""

    reply_type = "INVALID_UUID"


class InvalidService(ReplyError):
    """``INVALID_SERVICE``: no service has that name."""

    reply_type = "INVALID_SERVICE"


class ProtocolViolation(ReplyError):
    """``ERROR_PROTOCOL``: the server could not read the request's fields."""

    reply_type = "ERROR_PROTOCOL"


class Unsupported(ReplyError):
    """``ERROR_UNSUPPORTED``: the server does not know this payload type."""

    reply_type = "ERROR_UNSUPPORTED"


class InternalServerError(ReplyError):
    """``ERROR_INTERNAL``: the server failed while answering."""

    reply_type = "ERROR_INTERNAL"


class FileNotFound(ReplyError):
    """``NOT_FOUND``: no file or folder has exactly that path (pw_file payloads)."""

    reply_type = "NOT_FOUND"


REPLY_ERRORS: dict[str, type[ReplyError]] = {
    cls.reply_type: cls
    for cls in (
        BadRequest,
        InvalidName,
        InvalidUuid,
        InvalidService,
        ProtocolViolation,
        Unsupported,
        InternalServerError,
        FileNotFound,
    )
}


def reply_error(payload: JsonObject) -> ReplyError | None:
    """The exception for an error reply, or None when ``payload`` is not one."""
    cls = REPLY_ERRORS.get(str(payload.get("type")))
    return None if cls is None else cls(payload)


class RequestTimeout(ConciergeError, TimeoutError):
    """No reply carrying the request's seq arrived in time."""


class UnexpectedReply(ConciergeError):
    """The reply carrying the request's seq is of a type the request cannot produce."""


# -- The connection ------------------------------------------------------------------------


class NotConnected(ConciergeError):
    """The client has no live connection (not connected yet, or closed for good)."""


class ConnectionClosed(ConciergeError):
    """The socket closed: during IDENTIFY (refused) or while a request waited for its reply."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        label = CLOSE_NAMES.get(code or 0, "")
        what = f"{code} {label}".strip() if code is not None else "without a close frame"
        super().__init__(f"connection closed ({what})" + (f": {reason}" if reason else ""))


class TerminalClose(ConnectionClosed):
    """A close code after which the client does not reconnect (the request was wrong, or an operator said no)."""


class CannotConnect(ConciergeError):
    """The server could not be reached (refused, unreachable, not a concierge)."""


CLOSE_NAMES: dict[int, str] = {
    1000: "NORMAL",
    1001: "GOING_AWAY",
    1006: "ABNORMAL",
    1009: "MESSAGE_TOO_BIG",
    1011: "SERVER_ERROR",
    1012: "SERVICE_RESTART",
    4000: "UNKNOWN",
    4002: "FATAL_DECODE",
    4003: "NO_AUTH",
    4004: "AUTH_FAILED",
    4005: "DUPLICATE_AUTH",
    4006: "BAD_SECRET",
    4007: "BAD_VERSION",
    4008: "BAD_AUTH",
    4009: "HB_FAILED",
    4010: "KICKED",
    4011: "SERVER_LEFT",
}

TERMINAL_CODES = frozenset({4002, 4003, 4005, 4006, 4007, 4008, 4010})
"""Close codes after which a client must not reconnect on its own."""


# -- Files over HTTP -------------------------------------------------------------------------


class HttpError(ConciergeError):
    """The file API refused a request: its status and the ``{"error", "detail"}`` body."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        super().__init__(f"HTTP {status} {error}: {detail}" if detail else f"HTTP {status} {error}")


class ChecksumMismatch(ConciergeError):
    """The bytes transferred do not have the SHA-256 the server (or the sender) announced."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}")


class TransferAborted(ConciergeError):
    """A transfer stopped before its end (the connection dropped, or a callback stopped it)."""
