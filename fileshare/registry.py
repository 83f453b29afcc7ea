"""The live-client registry: an async API over the shared tables.

This is where the socket side crosses into the (synchronous) ORM. Callers in
async code await these functions and never touch the models directly. Lookups
raise the protocol's exceptions so that callers only have to let them bubble.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, close_old_connections, connection
from django.db.models import Field
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import DuplicateName, InvalidName, InvalidService, InvalidUuid, Unauthorized
from fileshare.models import LiveClient, Service, Subscription


def db(func: Any) -> Any:
    """Run an ORM function in Django's thread for database work (thread_sensitive).

    Connections are persistent (CONN_MAX_AGE); like channels' database_sync_to_async,
    a broken or expired one is replaced before the function runs.
    """

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        return func(*args, **kwargs)

    return sync_to_async(run, thread_sensitive=True)


@dataclass(frozen=True)
class Identity:
    """What IDENTIFY asks for; validated by the consumer before it gets here."""

    name: str
    nickname: str | None
    version: str
    tags: list[str]


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


@functools.cache
def _insert_sql() -> str:
    """``INSERT ... RETURNING id`` for a LiveClient: every column but the primary key, written out."""
    table = LiveClient._meta.db_table
    columns = ", ".join(f'"{field.column}"' for field in _insert_fields())
    values = ", ".join("%s" for _ in _insert_fields())
    return f'INSERT INTO "{table}" ({columns}) VALUES ({values}) RETURNING "id"'


@functools.cache
def _insert_fields() -> tuple[Field[Any, Any], ...]:
    return tuple(field for field in LiveClient._meta.concrete_fields if not field.primary_key)


def _insert(client: LiveClient) -> None:
    """Save a new client row in one statement, its own transaction.

    What ``client.save()`` does for this model at 60% of its cost (the ORM compiles the
    INSERT anew each time; this is the hottest write of a handshake).
    """
    if not connection.features.can_return_columns_from_insert:  # SQLite < 3.35
        client.save(force_insert=True)
        return
    params = [field.get_db_prep_save(getattr(client, field.attname), connection) for field in _insert_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), params)
        client.pk = cursor.fetchone()[0]
    client._state.adding = False
    client._state.db = connection.alias


def _register(identity: Identity, channel_name: str, instance_id: uuid.UUID) -> LiveClient:
    key = uuid.uuid4()
    client = LiveClient(
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
    )
    try:
        _insert(client)
    except IntegrityError:
        if LiveClient.objects.filter(name=identity.name).exists():
            raise DuplicateName(f"the name {identity.name!r} is taken by a live client") from None
        raise
    return client


register = db(_register)
"""``await register(identity, channel_name, instance_id)`` -> LiveClient; raises DuplicateName."""


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
        "subscribers": [
            str(s.client.public_id) for s in service.subscriptions.select_related("client")
        ],
    }


def _subscriptions_of(client_id: int) -> list[str]:
    return list(
        Subscription.objects.filter(client_id=client_id)
        .order_by("service__name")
        .values_list("service__name", flat=True)
    )


subscriptions_of = db(_subscriptions_of)
"""``await subscriptions_of(client_pk)`` -> names of the services a client has joined."""
