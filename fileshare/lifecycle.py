"""The leave sequence, in PROTOCOL.md's order, idempotent.

Called from the consumer's disconnect, its error boundary, the lease sweeper (for
the clients of a dead process) and the dashboard's disconnect action. Whoever
calls it first does the work; a second call for the same client returns at once,
unless ``force`` is given (the sweeper, finishing a leave that a dead process
started).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from fileshare import files, relay
from fileshare.models import LiveClient, Service, Subscription
from fileshare.registry import db, mark_leaving, service_info

logger = logging.getLogger(__name__)


def _take_services(client_id: int) -> list[dict[str, Any]]:
    """Delete the client's services; return their info as it was."""
    with transaction.atomic():
        services = list(Service.objects.select_related("owner").filter(owner_id=client_id))
        infos = [service_info(s) for s in services]
        Service.objects.filter(pk__in=[s.pk for s in services]).delete()
    return infos


def _take_subscriptions(client_id: int) -> list[tuple[dict[str, Any], list[str]]]:
    """Unsubscribe the client; return (service info, channels to tell) per service."""
    out = []
    with transaction.atomic():
        subs = list(
            Subscription.objects.select_related("service__owner").filter(client_id=client_id)
        )
        Subscription.objects.filter(pk__in=[s.pk for s in subs]).delete()
        for sub in subs:
            service = sub.service
            # Told: the service's remaining subscribers (the owner only if subscribed).
            channels = list(
                service.subscriptions.filter(client__left_at__isnull=True).values_list(
                    "client__channel_name", flat=True
                )
            )
            out.append((service_info(service), channels))
    return out


def _client_snapshot(client_id: int) -> tuple[dict[str, Any], str, str] | None:
    client = LiveClient.objects.filter(pk=client_id).first()
    if client is None:
        return None
    return client.info(), client.channel_name, client.folder


async def leave(client_id: int, reason: str, *, force: bool = False) -> bool:
    """Remove a client and everything it holds; True if this call did the work.

    Order (PROTOCOL.md, "When a client leaves"): its services are deleted
    (SERVICE_DELETE_RESULT to everyone), it is unsubscribed from the services it
    had joined (SERVICE_CLIENT_UNSUBSCRIBED to those only), its files are deleted,
    its row goes (key refused, name free) and CLIENT_LEFT goes to everyone. The key
    is refused from the first step on.
    """
    first = await mark_leaving(client_id)
    if not first and not force:
        return False
    snapshot = await db(_client_snapshot)(client_id)
    if snapshot is None:
        return False
    info, channel_name, folder = snapshot
    logger.info("client %s leaving: %s", info["name"], reason)
    await relay.part(channel_name)

    for service in await db(_take_services)(client_id):
        await relay.broadcast({"type": "SERVICE_DELETE_RESULT", "service": service})
        await relay.notify_dashboard("service_deleted", service=service["name"])
    for service, channels in await db(_take_subscriptions)(client_id):
        event = {"type": "SERVICE_CLIENT_UNSUBSCRIBED", "client": info, "service": service}
        await relay.deliver_many(channels, event)
        await relay.notify_dashboard("service_changed", service=service["name"])

    await files.remove_folder(client_id, folder)
    await db(LiveClient.objects.filter(pk=client_id).delete)()
    await relay.broadcast({"type": "CLIENT_LEFT", "client": info})
    await relay.notify_dashboard("client_left", client=info["name"])
    return True
