"""Every refusal the concierge makes, as an exception.

Code below the boundaries only *raises* these. Each class carries what the
boundaries need: ``http_status`` and ``error`` for the file API (mapped to a JSON
body in ``fileshare.fileapi.http``), ``close_code`` for the websocket handshake and
``payload_type`` for a reply on an open socket (both mapped in
``fileshare.ws.consumers``). The message of the exception is the human detail.

Why this module is long: every refusal the concierge makes is a class here, with its HTTP status and close code: one table, kept in one place on purpose.
"""

from __future__ import annotations

from typing import Any

from fileshare.protocol import CloseCode


class FileshareError(Exception):
    """Base class: an internal error unless a subclass says otherwise."""

    http_status: int = 500
    error: str = "internal_error"
    close_code: int = CloseCode.UNKNOWN
    payload_type: str = "ERROR_INTERNAL"

    def __init__(self, detail: str = "", **fields: Any) -> None:
        super().__init__(detail or self.__class__.__doc__ or self.error)
        self.detail = detail or (self.__class__.__doc__ or self.error).strip()
        self.fields = fields

    def payload(self) -> dict[str, Any]:
        """The reply payload for an open socket (without ``seq``)."""
        body: dict[str, Any] = {"type": self.payload_type}
        if self.payload_type in {"ERROR_INTERNAL", "ERROR_PROTOCOL", "BAD"}:
            body["desc"] = self.detail
        body.update(self.fields)
        return body


# -- Handshake: the socket closes with the class's close code. --------------------------


class HandshakeError(FileshareError):
    """IDENTIFY was refused; the socket closes."""


class FatalDecode(HandshakeError):
    """The frame is not a JSON object the server can read."""

    close_code = CloseCode.FATAL_DECODE


class NotIdentified(HandshakeError):
    """The first frame must be IDENTIFY (as a text frame)."""

    close_code = CloseCode.NO_AUTH


class IdentifyTimeout(HandshakeError):
    """No IDENTIFY arrived within the time limit."""

    close_code = CloseCode.AUTH_FAILED


class DuplicateName(HandshakeError):
    """That name is taken by a live client."""

    close_code = CloseCode.DUPLICATE_AUTH


class BadSecret(HandshakeError):
    """The secret does not match the server's."""

    close_code = CloseCode.BAD_SECRET


class BadVersion(HandshakeError):
    """The version is not semver compatible with ^0.2.0."""

    close_code = CloseCode.BAD_VERSION


class BadName(HandshakeError):
    """The name must be 1-64 letters, digits or underscores."""

    close_code = CloseCode.BAD_AUTH


# -- Replies on an open socket: the socket stays open. ------------------------------------


class ProtocolError(FileshareError):
    """The payload does not decode or has fields of the wrong shape."""

    payload_type = "ERROR_PROTOCOL"


class Unsupported(FileshareError):
    """The payload type is not one the server knows."""

    payload_type = "ERROR_UNSUPPORTED"


class InvalidName(FileshareError):
    """No live client has that name."""

    payload_type = "INVALID_NAME"


class InvalidUuid(FileshareError):
    """No live client has that public id."""

    payload_type = "INVALID_UUID"


class InvalidService(FileshareError):
    """No service has that name."""

    payload_type = "INVALID_SERVICE"


class NotPermitted(FileshareError):
    """The client may not do that."""

    payload_type = "BAD"


class TargetBusy(FileshareError):
    """The receiver's queue is full: the message was not delivered."""

    payload_type = "BAD"


class ChannelLayerDown(FileshareError):
    """The channel layer (Redis) cannot be reached: nothing was sent through it."""

    http_status = 503
    error = "channel_layer_unavailable"


class LimitReached(FileshareError):
    """A per-client cap is reached (services owned, subscriptions, subscribers of a service)."""

    payload_type = "BAD"


class MessageTooLarge(FileshareError):
    """The relayed message, with its ``origin``, would not fit in one frame: not delivered."""

    payload_type = "BAD"


# -- File API: the status code and a one-line JSON body. -------------------------------------


class BadRequest(FileshareError):
    """The request is malformed."""

    http_status = 400
    error = "bad_request"


class InvalidPath(BadRequest):
    """The path is not a plain relative path inside the folder."""

    error = "invalid_path"


class ChecksumMismatch(BadRequest):
    """The body does not match the checksum the request declared."""

    error = "checksum_mismatch"


class IsDirectory(FileshareError):
    """The path is a folder; folders are not deleted (delete their files one by one)."""

    http_status = 501
    error = "is_directory"
    payload_type = "BAD"


class Unauthorized(FileshareError):
    """No live client has that key."""

    http_status = 401
    error = "unauthorized"


class Forbidden(FileshareError):
    """Only a folder's owner may write or delete in it."""

    http_status = 403
    error = "forbidden"


class ReadOnly(Forbidden):
    """Only a folder's owner may delete in it, and published files are read-only."""

    payload_type = "BAD"


class NotFound(FileshareError):
    """No such file or client."""

    http_status = 404
    error = "not_found"
    payload_type = "NOT_FOUND"


class Conflict(FileshareError):
    """A path cannot be both a file and a folder."""

    http_status = 409
    error = "conflict"


class TooLarge(FileshareError):
    """The body is over the configured size limit."""

    http_status = 413
    error = "too_large"


class PreconditionFailed(FileshareError):
    """An If-Match or If-Unmodified-Since condition does not hold for the file."""

    http_status = 412
    error = "precondition_failed"


class RangeNotSatisfiable(FileshareError):
    """The requested range lies outside the file."""

    http_status = 416
    error = "range_not_satisfiable"


class OwnerLeft(FileshareError):
    """The folder's owner disconnected while the upload was streaming."""

    http_status = 410
    error = "owner_left"


# -- Refusals of resumable (tus) uploads: status codes from the tus 1.0 spec. -----------------


class OffsetMismatch(Conflict):
    """The PATCH's Upload-Offset is not the upload's current offset."""

    error = "offset_mismatch"


class UploadExpired(FileshareError):
    """The upload expired and was removed; start a new one."""

    http_status = 410
    error = "upload_expired"


class UploadLocked(FileshareError):
    """The upload's file is being assembled; retry shortly."""

    http_status = 423
    error = "upload_locked"


class ChunkChecksumMismatch(FileshareError):
    """The PATCH body does not match its Upload-Checksum; nothing was appended."""

    http_status = 460
    error = "checksum_mismatch"


class VersionMismatch(FileshareError):
    """The request does not speak tus 1.0.0 (``Tus-Resumable`` missing or different)."""

    http_status = 412
    error = "unsupported_version"


class UnsupportedMediaType(FileshareError):
    """A PATCH body must be sent as ``application/offset+octet-stream``."""

    http_status = 415
    error = "unsupported_media_type"


# -- Quotas and the disk (docs/limits.md). --------------------------------------------------


class QuotaExceeded(TooLarge):
    """The upload would take the client over its quota of bytes or files."""

    error = "quota_exceeded"


class InsufficientStorage(FileshareError):
    """The store is full (its configured quota, or the disk itself); nothing was stored."""

    http_status = 507
    error = "insufficient_storage"


class RequestTimeout(FileshareError):
    """The request's headers or body did not arrive in time."""

    http_status = 408
    error = "request_timeout"
