"""The live-client registry: an async API over the shared tables.

This is where the socket side crosses into the (synchronous) ORM. Callers in
async code await these functions and never touch the models directly. Lookups
raise the protocol's exceptions so that callers only have to let them bubble.

Why this module is long: the registry's async API, its batching writer and the database thread it runs on are one unit: splitting them would expose the thread's internals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, close_old_connections, connection, connections
from django.db.models import Field
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import DuplicateName, InvalidName, InvalidService, InvalidUuid, Unauthorized
from fileshare.models import LiveClient, Service, Subscription
from fileshare.presence import trips

DATABASE_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fileshare-db")
"""The thread that runs this process's ORM work: the socket side, the file API, the dashboard.

One thread, so one connection and one writer at a time (what SQLite wants; with
PostgreSQL the work of a process is a queue of short statements either way). The
ORM must not run on the event loop, and asgiref's thread-sensitive executor would do
the same job at about 40 us more per trip on this kind of machine (it copies the
context and shields the call); a handshake makes two trips.
"""


CHECK_AFTER_IDLE = 1.0
"""Seconds DATABASE_THREAD's connections may sit unused before a trip checks them first
(CONN_HEALTH_CHECKS; on PostgreSQL a ``SELECT 1``, a round trip of its own)."""

_last_trip_ended = -math.inf
"""When DATABASE_THREAD last finished a function (time.monotonic; that thread only)."""


def _connections_ready() -> None:
    """Django's start-of-request step, once per trip: replace connections that broke or
    expired (CONN_MAX_AGE), and health-check the others, but only after they sat idle.

    Django checks a connection once per request; a trip is far smaller than a request,
    and a check on every one cost a handshake two extra round trips on PostgreSQL.
    """
    close_old_connections()
    if time.monotonic() - _last_trip_ended < CHECK_AFTER_IDLE:
        for conn in connections.all(initialized_only=True):
            conn.health_check_done = True


def db(func: Any) -> Any:
    """Run an ORM function on DATABASE_THREAD; ``await db(f)(*args)``.

    Connections are persistent (CONN_MAX_AGE); like channels' database_sync_to_async,
    a broken or expired one is replaced before the function runs (``_connections_ready``).
    A caller that is cancelled stops waiting; a function already running finishes.
    """

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        global _last_trip_ended
        _connections_ready()
        try:
            return func(*args, **kwargs)
        finally:
            _last_trip_ended = time.monotonic()

    @functools.wraps(func)
    async def trip(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            DATABASE_THREAD, functools.partial(run, *args, **kwargs)
        )

    return trip


@dataclass(frozen=True)
class Identity:
    """What IDENTIFY asks for; validated by the consumer before it gets here."""

    name: str
    nickname: str | None
    version: str
    tags: list[str]
    resume: bool | str = False
    """IDENTIFY's ``resume``: True asks for a resumable session, a string resumes one."""


class LocalClients:
    """The live clients this process serves, by name and by public id.

    They are known exactly here (added after HELLO, removed when their leave
    starts), so messages between clients of one process need no database lookup.
    """

    def __init__(self) -> None:
        self.by_name: dict[str, LiveClient] = {}
        self.by_public_id: dict[str, LiveClient] = {}

    def add(self, client: LiveClient) -> None:
        self.by_name[client.name] = client
        self.by_public_id[str(client.public_id)] = client

    def remove(self, client: LiveClient) -> None:
        if self.by_name.get(client.name) is client:
            del self.by_name[client.name]
        if self.by_public_id.get(str(client.public_id)) is client:
            del self.by_public_id[str(client.public_id)]
        if not self.by_name:
            # No consumer here hears forgets any more (see RemoteRoutes).
            remote.clear()

    def channel_names(self) -> list[str]:
        return [client.channel_name for client in self.by_name.values()]


class RemoteRoutes:
    """Channel names of clients served by other processes, so that relaying to them
    costs no database trip per message.

    An entry goes when the client starts to leave: the leave sequence sends
    ``fileshare.forget`` to every client's channel, and each consumer that gets it
    calls ``forget`` (a process with no clients of its own hears nothing, so its
    routes are dropped when its last client goes). Entries also expire after
    ``ttl`` seconds, which bounds the staleness should a forget be lost. A lookup
    that raced a forget is not stored (``generation``).
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.generation = 0
        # Each entry: (monotonic time it expires, channel name).
        self._by_name: dict[str, tuple[float, str]] = {}
        self._by_public_id: dict[str, tuple[float, str]] = {}

    def _fresh(self, entry: tuple[float, str] | None) -> str | None:
        if entry is None or time.monotonic() > entry[0]:
            return None
        return entry[1]

    def channel_for_name(self, name: str) -> str | None:
        return self._fresh(self._by_name.get(name))

    def channel_for_public_id(self, public_id: str) -> str | None:
        return self._fresh(self._by_public_id.get(public_id))

    def remember(self, client: LiveClient, generation: int) -> None:
        """Store a route found in the database, unless a forget came in meanwhile."""
        if generation != self.generation:
            return
        entry = (time.monotonic() + self.ttl, client.channel_name)
        self._by_name[client.name] = entry
        self._by_public_id[str(client.public_id)] = entry

    def forget(self, name: str, public_id: str) -> None:
        self.generation += 1
        self._by_name.pop(name, None)
        self._by_public_id.pop(public_id, None)

    def clear(self) -> None:
        self.generation += 1
        self._by_name.clear()
        self._by_public_id.clear()


remote = RemoteRoutes()
"""Routes to other processes' clients (cached; see RemoteRoutes)."""


local = LocalClients()
"""This process's own live clients."""


REGISTER_BATCH = 200
"""Most registrations written by one statement (SQLite allows 32,766 parameters; 12 a row)."""


@functools.cache
def _insert_fields() -> tuple[Field[Any, Any], ...]:
    return tuple(field for field in LiveClient._meta.concrete_fields if not field.primary_key)


@functools.cache
def _insert_sql(rows: int) -> str:
    """``INSERT`` of ``rows`` LiveClients, every column but the primary key written out; a
    row whose name (or any unique value) is taken is skipped, and the ones saved are
    returned as ``(id, channel_name)``."""
    table = LiveClient._meta.db_table
    columns = ", ".join(f'"{field.column}"' for field in _insert_fields())
    row = "(" + ", ".join("%s" for _ in _insert_fields()) + ")"
    values = ", ".join(row for _ in range(rows))
    return f'INSERT INTO "{table}" ({columns}) VALUES {values} ON CONFLICT DO NOTHING RETURNING "id", "channel_name"'


def _refusal(name: str) -> Exception:
    """Why a client row named ``name`` was not saved."""
    if LiveClient.objects.filter(name=name).exists():
        return DuplicateName(f"the name {name!r} is taken by a live client")
    return IntegrityError(f"the row of client {name!r} was not saved, and its name is free")


def _insert_many(clients: list[LiveClient]) -> list[Exception | None]:
    """Save new client rows; per client, None or the exception that refused it (DuplicateName).

    One statement and one commit for all of them where the database can skip a
    conflicting row and return the others (SQLite >= 3.35, PostgreSQL): the ORM would
    compile and commit an INSERT per client, and this is the hottest write of a
    handshake. Elsewhere, the ORM's save, one client at a time.
    """
    if not (connection.vendor in {"sqlite", "postgresql"} and connection.features.can_return_columns_from_insert):
        return [_save(client) for client in clients]
    params = [
        field.get_db_prep_save(getattr(client, field.attname), connection)
        for client in clients
        for field in _insert_fields()
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(len(clients)), params)
        saved = {channel_name: pk for pk, channel_name in cursor.fetchall()}
    outcomes: list[Exception | None] = []
    for client in clients:
        pk = saved.get(client.channel_name)
        if pk is None:
            outcomes.append(_refusal(client.name))
            continue
        client.pk = pk
        client._state.adding = False
        client._state.db = connection.alias
        outcomes.append(None)
    return outcomes


def _save(client: LiveClient) -> Exception | None:
    try:
        client.save(force_insert=True)
    except IntegrityError:
        return _refusal(client.name)
    return None


def _new_client(
    identity: Identity, channel_name: str, instance_id: uuid.UUID, session_hash: str | None = None
) -> LiveClient:
    """The unsaved row of a client that IDENTIFY asked for: new key, public id and folder."""
    key = uuid.uuid4()
    return LiveClient(
        name=identity.name,
        nickname=identity.nickname,
        version=identity.version,
        tags=identity.tags,
        key=key,
        public_id=key if conf.public_id_is_key() else uuid.uuid4(),
        channel_name=channel_name,
        folder=f"{identity.name}.{uuid.uuid4().hex[:16]}",
        instance_id=instance_id,
        connected_at=timezone.now(),
        session_hash=session_hash,
    )


def _register(identity: Identity, channel_name: str, instance_id: uuid.UUID) -> LiveClient:
    """Register one client, synchronously; raises DuplicateName."""
    client = _new_client(identity, channel_name, instance_id)
    refused = _insert_many([client])[0]
    if refused is not None:
        raise refused
    return client


class Registrar(trips.Batched[LiveClient, None]):
    """Registrations on their way to the database (``trips.Batched``).

    A crowd of clients connecting at once costs a statement and a commit per batch (at
    most REGISTER_BATCH), not per client, and their HELLOs, and so the CLIENT_JOINED
    frames of those already present, go out in the same loop turn. One client alone
    waits for nobody.
    """

    most = REGISTER_BATCH
    task_name = "fileshare-registrar"

    async def _trip(self, clients: list[LiveClient]) -> list[None | Exception]:
        outcomes: list[None | Exception] = await db(_insert_many)(clients)
        return outcomes

    async def register(
        self, identity: Identity, channel_name: str, instance_id: uuid.UUID, session_hash: str | None = None
    ) -> LiveClient:
        """Save the client's row; raises DuplicateName."""
        client = _new_client(identity, channel_name, instance_id, session_hash)
        await self.submit(client)
        return client


registrar = Registrar()


async def register(
    identity: Identity, channel_name: str, instance_id: uuid.UUID, session_hash: str | None = None
) -> LiveClient:
    """Save a new live client's row (batched with others arriving meanwhile); raises DuplicateName.

    ``session_hash``: the digest of its session token, for a resumable session (``sessions``)."""
    return await registrar.register(identity, channel_name, instance_id, session_hash)


def _by_key(key: str | uuid.UUID) -> LiveClient:
    try:
        value = key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
    except ValueError:
        raise Unauthorized("the key is not a UUID") from None
    client = LiveClient.objects.filter(key=value, left_at__isnull=True).first()
    if client is None:
        raise Unauthorized("no live client has that key")
    return client


by_key = db(_by_key)
"""``await by_key(key)`` -> the live client holding the secret key; raises Unauthorized."""


def _by_name(name: str) -> LiveClient:
    client = LiveClient.objects.filter(name=name, left_at__isnull=True).first()
    if client is None:
        raise InvalidName(f"no live client is named {name!r}", name=name)
    return client


def _by_public_id(public_id: str) -> LiveClient:
    try:
        value = uuid.UUID(public_id)
    except (ValueError, AttributeError, TypeError):
        raise InvalidUuid(f"{public_id!r} is not a UUID", uuid=public_id) from None
    client = LiveClient.objects.filter(public_id=value, left_at__isnull=True).first()
    if client is None:
        raise InvalidUuid(f"no live client has the id {public_id}", uuid=public_id)
    return client


async def _channel_of(
    key: str,
    here: dict[str, LiveClient],
    cached: Callable[[str], str | None],
    lookup: Callable[[str], LiveClient],
) -> str:
    """This process's own client first, then the route cache, then the database (remembered)."""
    client = here.get(key)
    if client is not None:
        return client.channel_name
    channel = cached(key)
    if channel is None:
        generation = remote.generation
        found = await db(lookup)(key)
        remote.remember(found, generation)
        channel = found.channel_name
    return channel


async def channel_for_name(name: str) -> str:
    """The channel of the live client named ``name``, for relaying; raises InvalidName."""
    return await _channel_of(name, local.by_name, remote.channel_for_name, _by_name)


async def channel_for_public_id(public_id: str) -> str:
    """The channel of the live client with that public id, for relaying; raises InvalidUuid."""
    return await _channel_of(public_id, local.by_public_id, remote.channel_for_public_id, _by_public_id)


async def by_public_id(public_id: str) -> LiveClient:
    """The live client with that public id: this process's own first, else the database.

    Raises InvalidUuid.
    """
    client = local.by_public_id.get(public_id)
    return client if client is not None else await db(_by_public_id)(public_id)


def _get(client_id: int) -> LiveClient | None:
    return LiveClient.objects.filter(pk=client_id).first()


get = db(_get)
"""``await get(pk)`` -> the client row or None (also while it is leaving)."""


def _all_clients() -> list[dict[str, Any]]:
    return [c.info() for c in LiveClient.objects.filter(left_at__isnull=True)]


all_clients = db(_all_clients)


def _service(name: str) -> Service:
    service = Service.objects.select_related("owner").filter(name=name).first()
    if service is None:
        raise InvalidService(f"no service is named {name!r}", service=name)
    return service


service = db(_service)
"""``await service(name)`` -> Service with its owner; raises InvalidService."""


def service_info(service: Service) -> dict[str, Any]:
    """Service info as PROTOCOL.md defines it. Call from a sync (database) context."""
    return {
        "name": service.name,
        "nickname": service.nickname,
        "owner_uuid": str(service.owner.public_id),
        "subscribers": [str(s.client.public_id) for s in service.subscriptions.select_related("client")],
    }


def _subscriptions_of(client_id: int) -> list[str]:
    return list(
        Subscription.objects.filter(client_id=client_id)
        .order_by("service__name")
        .values_list("service__name", flat=True)
    )


subscriptions_of = db(_subscriptions_of)
"""``await subscriptions_of(client_pk)`` -> names of the services a client has joined."""
