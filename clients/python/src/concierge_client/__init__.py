"""The concierge's Python client: websocket messaging, files over HTTP, and the ``concierge`` CLI."""

from concierge_client.backoff import Backoff, should_retry
from concierge_client.client import PROTOCOL_VERSION, ConciergeClient, EventStream
from concierge_client.errors import (
    BadRequest,
    CannotConnect,
    ChecksumMismatch,
    ConciergeError,
    ConnectionClosed,
    FileNotFound,
    HttpError,
    InternalServerError,
    InvalidName,
    InvalidService,
    InvalidUuid,
    NotConnected,
    ProtocolViolation,
    ReplyError,
    RequestTimeout,
    TerminalClose,
    TransferAborted,
    UnexpectedReply,
    Unsupported,
)
from concierge_client.events import (
    ClientDetails,
    ClientInfo,
    ClientJoined,
    ClientLeft,
    Connected,
    Disconnected,
    Event,
    FileEntry,
    FileListing,
    Hello,
    Message,
    ServerNotice,
    ServiceClientSubscribed,
    ServiceClientUnsubscribed,
    ServiceCreated,
    ServiceDeleted,
    ServiceInfo,
    ServiceResult,
    Session,
)
from concierge_client.files import Downloaded, FileApi, Uploaded
from concierge_client.sync import SyncConciergeClient
from concierge_client.tus import UrlStore
from concierge_client.urls import Endpoints

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION", "Backoff", "BadRequest", "CannotConnect", "ChecksumMismatch", "ClientDetails",
    "ClientInfo", "ClientJoined", "ClientLeft", "ConciergeClient", "ConciergeError", "Connected",
    "ConnectionClosed", "Disconnected", "Downloaded", "Endpoints", "Event", "EventStream", "FileApi",
    "FileEntry", "FileListing", "FileNotFound", "Hello", "HttpError", "InternalServerError", "InvalidName",
    "InvalidService", "InvalidUuid", "Message", "NotConnected", "ProtocolViolation", "ReplyError",
    "RequestTimeout", "ServerNotice", "ServiceClientSubscribed", "ServiceClientUnsubscribed",
    "ServiceCreated", "ServiceDeleted", "ServiceInfo", "ServiceResult", "Session", "SyncConciergeClient",
    "TerminalClose", "TransferAborted", "UnexpectedReply", "Unsupported", "Uploaded", "UrlStore",
    "__version__", "should_retry",
]
