"""One async function per client payload type (PROTOCOL.md section 2).

Each handler takes the session and the decoded payload and returns the reply
(without ``seq``; the consumer adds it), or raises a FileshareError whose payload
becomes the reply. Handlers never close the socket.

Why this module is long: one function per payload type of the protocol (the dispatch table); each is short.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import IntegrityError, transaction

from fileshare import conf, protocol
from fileshare.exceptions import (
    BadRequest,
    FileshareError,
    Forbidden,
    InvalidName,
    InvalidService,
    InvalidUuid,
    IsDirectory,
    LimitReached,
    NotFound,
    NotPermitted,
    ProtocolError,
)
from fileshare.models import LiveClient, Service, Subscription
from fileshare.observe import metrics
from fileshare.presence import registry
from fileshare.presence.registry import db, service_info
from fileshare.presence.service_infos import service_infos
from fileshare.protocol import JsonObject, field
from fileshare.pw import listing
from fileshare.ws import paging, relay


class Session(Protocol):
    """What a handler may see of the consumer.

    The consumer numbers a text frame before it dispatches it, so while a handler
    runs, the frame it handles is number ``seq - 1``. A handler whose reply takes
    several frames sends all but the last through ``send_reply`` and returns the last.
    """

    client: LiveClient
    seq: int

    async def send_payload(self, payload: JsonObject) -> None: ...


@dataclass(frozen=True)
class Later:
    """A reply that is due once ``pending`` completes (or becomes the payload of its
    FileshareError). The consumer sends replies in frame order, so it can go on
    reading frames meanwhile: a sender does not wait a round trip per MESSAGE."""

    pending: asyncio.Future[None]
    reply: JsonObject


Handler = Callable[[Session, JsonObject], Awaitable[JsonObject | Later]]
HANDLERS: dict[str, Handler] = {}


def handles(kind: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


# -- Names and ids a client gives: checked before any lookup -------------------------------
# A value that no client or service can have is answered without a database trip (and
# so never reaches a query: PostgreSQL refuses NUL in text); descriptions quote at most
# a few dozen characters of it.


def _service_name(payload: JsonObject) -> str:
    """The ``service`` field; InvalidService if no service can have that name."""
    name: str = field(payload, "service", str)
    if not protocol.is_valid_name(name, conf.max_name_length()):
        raise InvalidService(f"no service is named {protocol.quote(name)}", service=name)
    return name


def _client_name(payload: JsonObject) -> str:
    """The ``name`` field; InvalidName if no client can have that name."""
    name: str = field(payload, "name", str)
    if not protocol.is_valid_name(name, conf.max_name_length()):
        raise InvalidName(f"no live client is named {protocol.quote(name)}", name=name)
    return name


def _public_id(payload: JsonObject) -> str:
    """The ``uuid`` field; InvalidUuid unless it is a UUID."""
    value: str = field(payload, "uuid", str)
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidUuid(f"{protocol.quote(value)} is not a UUID", uuid=value) from None
    return value


# -- MESSAGE ---------------------------------------------------------------------------


def _service_route(service_name: str, sender_id: int) -> tuple[dict[str, Any], list[str]]:
    service = Service.objects.select_related("owner").filter(name=service_name).first()
    if service is None:
        raise InvalidService(f"no service is named {service_name!r}", service=service_name)
    info = service_info(service)
    if service.owner_id == sender_id:
        channels = list(
            service.subscriptions.exclude(client_id=sender_id)
            .filter(client__left_at__isnull=True)
            .values_list("client__channel_name", flat=True)
        )
    elif service.subscriptions.filter(client_id=sender_id).exists():
        channels = [service.owner.channel_name]
    else:
        raise NotPermitted(f"only the owner and subscribers of {service_name!r} may message it")
    return info, channels


def _owned_service(service_name: str, sender_id: int) -> dict[str, Any]:
    service = Service.objects.select_related("owner").filter(name=service_name).first()
    if service is None:
        raise InvalidService(f"no service is named {service_name!r}", service=service_name)
    if service.owner_id != sender_id:
        raise NotPermitted(f"only the owner of {service_name!r} may message its clients directly")
    return service_info(service)


TARGET_TYPES = frozenset({"NAME", "UUID", "SERVICE", "SERVICE_CLIENT_UUID", "ALL"})
"""MESSAGE target types (the metrics' label values)."""


@handles("MESSAGE")
async def message(session: Session, payload: JsonObject) -> JsonObject | Later:
    reply = await _message(session, payload)
    # Counted once accepted for delivery: a target refused (INVALID_*, BAD) raised above.
    metrics.RELAYED.labels(payload["target"]["type"]).inc()
    return reply


async def _message(session: Session, payload: JsonObject) -> JsonObject | Later:
    target = field(payload, "target", dict)
    kind = field(target, "type", str)
    origin: dict[str, Any] = session.client.info()
    out: JsonObject = {"type": "MESSAGE", "target": target, "data": payload.get("data"), "origin": origin}
    if kind == "NAME":
        channel = await registry.channel_for_name(_client_name(target))
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "UUID":
        channel = await registry.channel_for_public_id(_public_id(target))
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "SERVICE":
        info, channels = await db(_service_route)(_service_name(target), session.client.pk)
        origin["service"] = info
        full = await relay.deliver_many(channels, out)
        if full:
            raise NotPermitted(
                f"{len(full)} of {len(channels)} receivers were not keeping up and did not get the message"
            )
    elif kind == "SERVICE_CLIENT_UUID":
        info = await db(_owned_service)(_service_name(target), session.client.pk)
        channel = await registry.channel_for_public_id(_public_id(target))
        origin["service"] = info
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "ALL":
        await relay.broadcast(out)
    else:
        raise ProtocolError(f"MESSAGE: unknown target type {protocol.quote(kind)}")
    return {"type": "OK"}


# -- SELF_* ------------------------------------------------------------------------------


def _subscribe(client_id: int, name: str) -> tuple[bool, dict[str, Any], list[str]]:
    with transaction.atomic():
        service = Service.objects.select_related("owner").filter(name=name).first()
        if service is None:
            raise InvalidService(f"no service is named {name!r}", service=name)
        created = False
        if not Subscription.objects.filter(service=service, client_id=client_id).exists():
            _check_subscription_caps(client_id, service)
            try:
                with transaction.atomic():
                    Subscription.objects.create(service=service, client_id=client_id)
                created = True
            except IntegrityError:
                pass
        return created, service_info(service), _subscriber_channels(service)


def _check_subscription_caps(client_id: int, service: Service) -> None:
    joined, most = Subscription.objects.filter(client_id=client_id).count(), conf.max_subscriptions_per_client()
    if joined >= most:
        raise LimitReached(
            f"this client has joined {joined} services, the most allowed (FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT)"
        )
    subscribers, most = service.subscriptions.count(), conf.max_subscribers_per_service()
    if subscribers >= most:
        raise LimitReached(
            f"the service {service.name!r} has {subscribers} subscribers, the most allowed (FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE)"
        )


def _unsubscribe(client_id: int, name: str) -> tuple[bool, dict[str, Any], list[str]]:
    with transaction.atomic():
        service = Service.objects.select_related("owner").filter(name=name).first()
        if service is None:
            raise InvalidService(f"no service is named {name!r}", service=name)
        deleted, _ = Subscription.objects.filter(service=service, client_id=client_id).delete()
        return bool(deleted), service_info(service), _subscriber_channels(service)


def _subscriber_channels(service: Service) -> list[str]:
    return list(
        service.subscriptions.filter(client__left_at__isnull=True).values_list("client__channel_name", flat=True)
    )


@handles("SELF_SUBSCRIBE")
async def self_subscribe(session: Session, payload: JsonObject) -> JsonObject:
    name = _service_name(payload)
    created, info, channels = await db(_subscribe)(session.client.pk, name)
    if created:
        event = {"type": "SERVICE_CLIENT_SUBSCRIBED", "client": session.client.info(), "service": info}
        await relay.deliver_event(channels, event)
        await relay.notify_dashboard("service_changed", service=name)
    return {"type": "SELF_SUBSCRIBE_RESULT", "successful": created, "service": info}


@handles("SELF_UNSUBSCRIBE")
async def self_unsubscribe(session: Session, payload: JsonObject) -> JsonObject:
    name = _service_name(payload)
    deleted, info, channels = await db(_unsubscribe)(session.client.pk, name)
    if deleted:
        event = {"type": "SERVICE_CLIENT_UNSUBSCRIBED", "client": session.client.info(), "service": info}
        await relay.deliver_event(channels, event)
        await relay.notify_dashboard("service_changed", service=name)
    return {"type": "SELF_UNSUBSCRIBE_RESULT", "successful": deleted, "service": info}


@handles("SELF_FETCH")
async def self_fetch(session: Session, payload: JsonObject) -> JsonObject:
    return {
        "type": "SELF_FETCH_RESULT",
        "client": session.client.info(),
        "subscriptions": await registry.subscriptions_of(session.client.pk),
    }


@handles("SELF_SET_SEQ")
async def self_set_seq(session: Session, payload: JsonObject) -> JsonObject:
    seq = field(payload, "seq", int)
    if not 0 <= seq <= protocol.MAX_SEQ:
        raise ProtocolError(f'SELF_SET_SEQ: "seq" must be from 0 to {protocol.MAX_SEQ} (2**53 - 1)')
    session.seq = seq + 1
    return {"type": "OK", "seq": seq}


# -- SERVICE_* ---------------------------------------------------------------------------


def _create_service(client_id: int, name: str, nickname: str | None) -> dict[str, Any] | None:
    if Service.objects.filter(name=name).exists():
        return None
    owned, most = Service.objects.filter(owner_id=client_id).count(), conf.max_services_per_client()
    if owned >= most:
        raise LimitReached(f"this client owns {owned} services, the most allowed (FILESHARE_MAX_SERVICES_PER_CLIENT)")
    try:
        with transaction.atomic():
            service = Service.objects.create(name=name, nickname=nickname, owner_id=client_id)
    except IntegrityError:
        return None
    return service_info(Service.objects.select_related("owner").get(pk=service.pk))


@handles("SERVICE_CREATE")
async def service_create(session: Session, payload: JsonObject) -> JsonObject:
    name = field(payload, "service", str)
    nickname = protocol.text_field(payload, "nickname", conf.max_nickname_length())
    if not protocol.is_valid_name(name, conf.max_name_length()):
        raise ProtocolError(f"SERVICE_CREATE: service names are 1-{conf.max_name_length()} letters, digits or '_'")
    info = await db(_create_service)(session.client.pk, name, nickname)
    if info is None:
        existing = await registry.service(name)
        return {"type": "SERVICE_CREATE_RESULT", "successful": False, "service": await db(service_info)(existing)}
    reply = {"type": "SERVICE_CREATE_RESULT", "successful": True, "service": info}
    await relay.broadcast(reply)
    await relay.notify_dashboard("service_created", service=name)
    return reply


def _delete_service(client_id: int, name: str) -> dict[str, Any]:
    with transaction.atomic():
        service = Service.objects.select_related("owner").filter(name=name).first()
        if service is None:
            raise InvalidService(f"no service is named {name!r}", service=name)
        if service.owner_id != client_id:
            raise NotPermitted(f"only the owner may delete the service {name!r}")
        info = service_info(service)
        service.delete()
        return info


@handles("SERVICE_DELETE")
async def service_delete(session: Session, payload: JsonObject) -> JsonObject:
    info = await db(_delete_service)(session.client.pk, _service_name(payload))
    reply = {"type": "SERVICE_DELETE_RESULT", "service": info}
    await relay.broadcast(reply)
    await relay.notify_dashboard("service_deleted", service=info["name"])
    return reply


@handles("SERVICE_FETCH")
async def service_fetch(session: Session, payload: JsonObject) -> JsonObject:
    service = await registry.service(_service_name(payload))
    return {"type": "SERVICE_FETCH_RESULT", "service": await db(service_info)(service)}


def _all_services() -> list[dict[str, Any]]:
    return service_infos(Service.objects.all())


async def paged(
    session: Session, envelope: JsonObject, key: str, items: list[Any], most: int | None = None
) -> JsonObject:
    """Send all but the last page of a long reply now (``paging.pages``); return the last."""
    frames = paging.pages(envelope, key, items, conf.max_frame_bytes(), most)
    for frame in frames[:-1]:
        await send_reply(session, frame)
    return frames[-1]


@handles("SERVICE_FETCH_ALL")
async def service_fetch_all(session: Session, payload: JsonObject) -> JsonObject:
    return await paged(session, {"type": "SERVICE_FETCH_ALL_RESULT"}, "services", await db(_all_services)())


# -- CLIENT_* ----------------------------------------------------------------------------


@handles("CLIENT_FETCH")
async def client_fetch(session: Session, payload: JsonObject) -> JsonObject:
    client = await registry.by_public_id(_public_id(payload))
    return {
        "type": "CLIENT_FETCH_RESULT",
        "client": client.info(),
        "subscriptions": await registry.subscriptions_of(client.pk),
    }


@handles("CLIENT_FETCH_ALL")
async def client_fetch_all(session: Session, payload: JsonObject) -> JsonObject:
    return await paged(session, {"type": "CLIENT_FETCH_ALL_RESULT"}, "clients", await registry.all_clients())


# -- FILE_* (pw_file, docs/pw_file.md) ------------------------------------------------------

FILE_LIST_CHUNK = 500
"""Entries per FILE_LIST_RESULT frame at most (fewer when they would not fit the frame limit)."""


async def send_reply(session: Session, payload: JsonObject) -> None:
    """Send one frame of a multi-frame reply now, numbered like the frame being handled."""
    await session.send_payload({**payload, "seq": session.seq - 1})


def _file_refusal(exc: FileshareError, path: str) -> JsonObject:
    kind = "NOT_FOUND" if isinstance(exc, NotFound) else "BAD"
    return {"type": kind, "path": path, "desc": exc.detail}


@handles("FILE_LIST")
async def file_list(session: Session, payload: JsonObject) -> JsonObject:
    path = field(payload, "path", str, optional=True) or ""
    try:
        found = await listing.list_path(session.client, path)
    except (NotFound, BadRequest) as exc:
        return _file_refusal(exc, path)
    entries = [entry.as_json() for entry in found.entries]
    return await paged(session, {"type": "FILE_LIST_RESULT", "path": found.path}, "entries", entries, FILE_LIST_CHUNK)


@handles("FILE_DELETE")
async def file_delete(session: Session, payload: JsonObject) -> JsonObject:
    path = field(payload, "path", str)
    try:
        deleted = await listing.delete_path(session.client, path)
    except (NotFound, BadRequest, Forbidden, IsDirectory) as exc:
        return _file_refusal(exc, path)
    return {"type": "FILE_DELETE_RESULT", "path": deleted}
