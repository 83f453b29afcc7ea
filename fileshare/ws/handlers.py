"""One async function per client payload type (PROTOCOL.md section 2).

Each handler takes the session and the decoded payload and returns the reply
(without ``seq``; the consumer adds it), or raises a FileshareError whose payload
becomes the reply. Handlers never close the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import IntegrityError, transaction

from fileshare import conf, protocol
from fileshare.exceptions import (
    BadRequest,
    FileshareError,
    Forbidden,
    InvalidService,
    IsDirectory,
    NotFound,
    NotPermitted,
    ProtocolError,
)
from fileshare.models import LiveClient, Service, Subscription
from fileshare.observe import metrics
from fileshare.presence import registry
from fileshare.presence.registry import db, service_info
from fileshare.protocol import JsonObject, field
from fileshare.pw import listing
from fileshare.ws import relay


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
    target = field(payload, "target", dict)
    kind = field(target, "type", str)
    if kind in TARGET_TYPES:
        metrics.RELAYED.labels(kind).inc()
    origin: dict[str, Any] = session.client.info()
    out: JsonObject = {"type": "MESSAGE", "target": target, "data": payload.get("data"), "origin": origin}
    if kind == "NAME":
        channel = await registry.channel_for_name(field(target, "name", str))
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "UUID":
        channel = await registry.channel_for_public_id(field(target, "uuid", str))
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "SERVICE":
        info, channels = await db(_service_route)(field(target, "service", str), session.client.pk)
        origin["service"] = info
        full = await relay.deliver_many(channels, out)
        if full:
            raise NotPermitted(
                f"{len(full)} of {len(channels)} receivers were not keeping up and did not get the message"
            )
    elif kind == "SERVICE_CLIENT_UUID":
        info = await db(_owned_service)(field(target, "service", str), session.client.pk)
        channel = await registry.channel_for_public_id(field(target, "uuid", str))
        origin["service"] = info
        return Later(await relay.start_delivery(channel, out), {"type": "OK"})
    elif kind == "ALL":
        await relay.broadcast(out)
    else:
        raise ProtocolError(f"MESSAGE: unknown target type {kind!r}")
    return {"type": "OK"}


# -- SELF_* ------------------------------------------------------------------------------


def _subscribe(client_id: int, name: str) -> tuple[bool, dict[str, Any], list[str]]:
    with transaction.atomic():
        service = Service.objects.select_related("owner").filter(name=name).first()
        if service is None:
            raise InvalidService(f"no service is named {name!r}", service=name)
        try:
            with transaction.atomic():
                Subscription.objects.create(service=service, client_id=client_id)
            created = True
        except IntegrityError:
            created = False
        return created, service_info(service), _subscriber_channels(service)


def _unsubscribe(client_id: int, name: str) -> tuple[bool, dict[str, Any], list[str]]:
    with transaction.atomic():
        service = Service.objects.select_related("owner").filter(name=name).first()
        if service is None:
            raise InvalidService(f"no service is named {name!r}", service=name)
        deleted, _ = Subscription.objects.filter(service=service, client_id=client_id).delete()
        return bool(deleted), service_info(service), _subscriber_channels(service)


def _subscriber_channels(service: Service) -> list[str]:
    return list(
        service.subscriptions.filter(client__left_at__isnull=True).values_list(
            "client__channel_name", flat=True
        )
    )


@handles("SELF_SUBSCRIBE")
async def self_subscribe(session: Session, payload: JsonObject) -> JsonObject:
    name = field(payload, "service", str)
    created, info, channels = await db(_subscribe)(session.client.pk, name)
    if created:
        event = {"type": "SERVICE_CLIENT_SUBSCRIBED", "client": session.client.info(), "service": info}
        await relay.deliver_many(channels, event)
        await relay.notify_dashboard("service_changed", service=name)
    return {"type": "SELF_SUBSCRIBE_RESULT", "successful": created, "service": info}


@handles("SELF_UNSUBSCRIBE")
async def self_unsubscribe(session: Session, payload: JsonObject) -> JsonObject:
    name = field(payload, "service", str)
    deleted, info, channels = await db(_unsubscribe)(session.client.pk, name)
    if deleted:
        event = {"type": "SERVICE_CLIENT_UNSUBSCRIBED", "client": session.client.info(), "service": info}
        await relay.deliver_many(channels, event)
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
    if seq < 0:
        raise ProtocolError('SELF_SET_SEQ: "seq" must not be negative')
    session.seq = seq + 1
    return {"type": "OK", "seq": seq}


# -- SERVICE_* ---------------------------------------------------------------------------


def _create_service(client_id: int, name: str, nickname: str | None) -> dict[str, Any] | None:
    try:
        with transaction.atomic():
            service = Service.objects.create(name=name, nickname=nickname, owner_id=client_id)
    except IntegrityError:
        return None
    return service_info(Service.objects.select_related("owner").get(pk=service.pk))


@handles("SERVICE_CREATE")
async def service_create(session: Session, payload: JsonObject) -> JsonObject:
    name = field(payload, "service", str)
    nickname = field(payload, "nickname", str, optional=True)
    if not protocol.is_valid_name(name, conf.max_name_length()):
        raise ProtocolError(
            f"SERVICE_CREATE: service names are 1-{conf.max_name_length()} letters, digits or '_'"
        )
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
    info = await db(_delete_service)(session.client.pk, field(payload, "service", str))
    reply = {"type": "SERVICE_DELETE_RESULT", "service": info}
    await relay.broadcast(reply)
    await relay.notify_dashboard("service_deleted", service=info["name"])
    return reply


@handles("SERVICE_FETCH")
async def service_fetch(session: Session, payload: JsonObject) -> JsonObject:
    service = await registry.service(field(payload, "service", str))
    return {"type": "SERVICE_FETCH_RESULT", "service": await db(service_info)(service)}


def _all_services() -> list[dict[str, Any]]:
    return [service_info(s) for s in Service.objects.select_related("owner")]


@handles("SERVICE_FETCH_ALL")
async def service_fetch_all(session: Session, payload: JsonObject) -> JsonObject:
    return {"type": "SERVICE_FETCH_ALL_RESULT", "services": await db(_all_services)()}


# -- CLIENT_* ----------------------------------------------------------------------------


@handles("CLIENT_FETCH")
async def client_fetch(session: Session, payload: JsonObject) -> JsonObject:
    client = await registry.by_public_id(field(payload, "uuid", str))
    return {
        "type": "CLIENT_FETCH_RESULT",
        "client": client.info(),
        "subscriptions": await registry.subscriptions_of(client.pk),
    }


@handles("CLIENT_FETCH_ALL")
async def client_fetch_all(session: Session, payload: JsonObject) -> JsonObject:
    return {"type": "CLIENT_FETCH_ALL_RESULT", "clients": await registry.all_clients()}


# -- FILE_* (pw_file, docs/pw_file.md) ------------------------------------------------------

FILE_LIST_CHUNK = 500
"""Entries per FILE_LIST_RESULT frame: an entry's path is one segment, so a frame stays far below 1 MiB."""


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
    chunks = [entries[i : i + FILE_LIST_CHUNK] for i in range(0, len(entries), FILE_LIST_CHUNK)] or [[]]
    for chunk in chunks[:-1]:
        await send_reply(session, {"type": "FILE_LIST_RESULT", "path": found.path, "entries": chunk, "done": False})
    return {"type": "FILE_LIST_RESULT", "path": found.path, "entries": chunks[-1], "done": True}


@handles("FILE_DELETE")
async def file_delete(session: Session, payload: JsonObject) -> JsonObject:
    path = field(payload, "path", str)
    try:
        deleted = await listing.delete_path(session.client, path)
    except (NotFound, BadRequest, Forbidden, IsDirectory) as exc:
        return _file_refusal(exc, path)
    return {"type": "FILE_DELETE_RESULT", "path": deleted}
