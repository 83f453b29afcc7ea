"""What the server sends, as typed objects.

Server events (``MESSAGE``, ``CLIENT_JOINED``, ...) are dataclasses with a ``type``
equal to the protocol's payload type; the client's own lifecycle is told by
:class:`Connected` and :class:`Disconnected` (types ``"connected"``, ``"disconnected"``).
Every event keeps the payload it was read from in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ClientInfo:
    """A client as others see it: its public id is ``uuid`` (never the secret key)."""

    name: str
    nickname: str | None
    uuid: str
    tags: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: JsonObject) -> ClientInfo:
        return cls(str(data["name"]), data.get("nickname"), str(data["uuid"]), tuple(data.get("tags") or ()))


@dataclass(frozen=True)
class ServiceInfo:
    """A service: its owner's public id and its subscribers' public ids."""

    name: str
    nickname: str | None
    owner_uuid: str
    subscribers: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: JsonObject) -> ServiceInfo:
        return cls(
            str(data["name"]),
            data.get("nickname"),
            str(data.get("owner_uuid", "")),
            tuple(data.get("subscribers") or ()),
        )


@dataclass(frozen=True)
class Session:
    """A resumable session offered in HELLO (``"session": {"token", "grace"}``)."""

    token: str
    grace: float


@dataclass(frozen=True)
class Hello:
    """The server's answer to IDENTIFY."""

    key: str
    """The secret key for the file API (HELLO's ``uuid``): never show it to anyone."""
    version: str
    client: ClientInfo | None
    session: Session | None = None
    resumed: bool = False
    missed: int = 0
    recovered: bool = True
    raw: JsonObject = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: JsonObject) -> Hello:
        client = data.get("client")
        session = data.get("session")
        return cls(
            key=str(data["uuid"]),
            version=str(data.get("version", "")),
            client=ClientInfo.from_json(client) if isinstance(client, dict) else None,
            session=(
                Session(str(session["token"]), float(session.get("grace", 0)))
                if isinstance(session, dict) and "token" in session
                else None
            ),
            resumed=bool(data.get("resumed", False)),
            missed=int(data.get("missed", 0) or 0),
            recovered=bool(data.get("recovered", True)),
            raw=data,
        )

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"Hello(version={self.version!r}, client={self.client!r}, resumed={self.resumed})"


@dataclass(frozen=True)
class Event:
    """Base class of everything delivered to handlers and iterators."""

    type: ClassVar[str] = ""


@dataclass(frozen=True)
class Message(Event):
    """A MESSAGE from another client: ``data`` verbatim, ``origin`` stamped by the server."""

    type: ClassVar[str] = "MESSAGE"
    data: Any
    origin: ClientInfo
    service: ServiceInfo | None
    """The service it was sent through, if the target was a service."""
    target: JsonObject
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ClientJoined(Event):
    type: ClassVar[str] = "CLIENT_JOINED"
    client: ClientInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ClientLeft(Event):
    type: ClassVar[str] = "CLIENT_LEFT"
    client: ClientInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ServiceClientSubscribed(Event):
    type: ClassVar[str] = "SERVICE_CLIENT_SUBSCRIBED"
    client: ClientInfo
    service: ServiceInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ServiceClientUnsubscribed(Event):
    type: ClassVar[str] = "SERVICE_CLIENT_UNSUBSCRIBED"
    client: ClientInfo
    service: ServiceInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ServiceCreated(Event):
    """The broadcast of a SERVICE_CREATE_RESULT (someone created a service)."""

    type: ClassVar[str] = "SERVICE_CREATE_RESULT"
    service: ServiceInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ServiceDeleted(Event):
    """The broadcast of a SERVICE_DELETE_RESULT (a service is gone)."""

    type: ClassVar[str] = "SERVICE_DELETE_RESULT"
    service: ServiceInfo
    raw: JsonObject = field(repr=False)


@dataclass(frozen=True)
class ServerNotice(Event):
    """Any other payload without a seq (an unsolicited ERROR_PROTOCOL, a type this client does not know)."""

    type: ClassVar[str] = "NOTICE"
    payload_type: str
    raw: JsonObject


@dataclass(frozen=True)
class Connected(Event):
    """The client is identified: first connect (``reconnected`` False) or after a reconnect."""

    type: ClassVar[str] = "connected"
    hello: Hello
    reconnected: bool
    resumed: bool
    """The server resumed the previous session (same key, public id, folder, subscriptions)."""
    recovered: bool
    """Resumed, and no frame meant for this client was lost while it was away."""
    missed: int
    """Frames the server kept while the client was away (delivered right after)."""


@dataclass(frozen=True)
class Disconnected(Event):
    """The socket ended; ``retry_in`` is the backoff delay, None when the client will not reconnect."""

    type: ClassVar[str] = "disconnected"
    code: int | None
    reason: str
    retry_in: float | None


def parse_event(payload: JsonObject) -> Event:
    """The event for a payload that carries no seq."""
    kind = str(payload.get("type"))
    try:
        if kind == "MESSAGE":
            origin = dict(payload.get("origin") or {})
            service = origin.pop("service", None)
            return Message(
                data=payload.get("data"),
                origin=ClientInfo.from_json(origin),
                service=ServiceInfo.from_json(service) if isinstance(service, dict) else None,
                target=dict(payload.get("target") or {}),
                raw=payload,
            )
        if kind in ("CLIENT_JOINED", "CLIENT_LEFT"):
            cls = ClientJoined if kind == "CLIENT_JOINED" else ClientLeft
            return cls(ClientInfo.from_json(payload["client"]), payload)
        if kind in ("SERVICE_CLIENT_SUBSCRIBED", "SERVICE_CLIENT_UNSUBSCRIBED"):
            sub = ServiceClientSubscribed if kind == "SERVICE_CLIENT_SUBSCRIBED" else ServiceClientUnsubscribed
            return sub(ClientInfo.from_json(payload["client"]), ServiceInfo.from_json(payload["service"]), payload)
        if kind == "SERVICE_CREATE_RESULT":
            return ServiceCreated(ServiceInfo.from_json(payload["service"]), payload)
        if kind == "SERVICE_DELETE_RESULT":
            return ServiceDeleted(ServiceInfo.from_json(payload["service"]), payload)
    except (KeyError, TypeError, AttributeError):
        pass  # a payload of an unexpected shape is still told, as a notice
    return ServerNotice(kind, payload)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        Message,
        ClientJoined,
        ClientLeft,
        ServiceClientSubscribed,
        ServiceClientUnsubscribed,
        ServiceCreated,
        ServiceDeleted,
        ServerNotice,
        Connected,
        Disconnected,
    )
}


# -- Results of requests --------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceResult:
    """The result of SERVICE_CREATE, SELF_SUBSCRIBE or SELF_UNSUBSCRIBE."""

    successful: bool
    service: ServiceInfo


@dataclass(frozen=True)
class ClientDetails:
    """SELF_FETCH_RESULT or CLIENT_FETCH_RESULT: a client and the services it subscribed to."""

    client: ClientInfo
    subscriptions: tuple[str, ...]
    """The names of the services it subscribed to."""

    @classmethod
    def from_json(cls, data: JsonObject) -> ClientDetails:
        subscriptions = data.get("subscriptions") or ()
        names = (s.get("name") if isinstance(s, dict) else s for s in subscriptions)
        return cls(ClientInfo.from_json(data["client"]), tuple(str(n) for n in names))


@dataclass(frozen=True)
class FileEntry:
    """One entry of a pw_file listing."""

    path: str
    type: str
    """``"file"`` or ``"directory"``."""
    permissions: int
    """READ=1, WRITE=2, for the asking client."""
    size_bytes: int | None = None
    file_id: int | None = None
    content_type: str | None = None
    modified: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"

    @classmethod
    def from_json(cls, data: JsonObject) -> FileEntry:
        return cls(
            path=str(data["path"]),
            type=str(data.get("type") or ("file" if data.get("file_id") is not None else "directory")),
            permissions=int(data.get("permissions") or 0),
            size_bytes=data.get("size_bytes"),
            file_id=data.get("file_id"),
            content_type=data.get("content_type"),
            modified=data.get("modified"),
        )


@dataclass(frozen=True)
class FileListing:
    """A listed path (normalised by the server) and its entries."""

    path: str
    entries: tuple[FileEntry, ...]
