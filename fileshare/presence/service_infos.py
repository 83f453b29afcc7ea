"""Service info (PROTOCOL.md's shape) for many services at once, in two queries.

``registry.service_info`` costs a query per service (its subscribers); a listing of
all services, or the leave of a client owning thousands, would make thousands of
trips on the database thread, holding up every other client's work behind them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from fileshare.models import Service, Subscription


def service_infos(services: QuerySet[Service]) -> list[dict[str, Any]]:
    """The info of each service in ``services``, in its order (call on the database thread)."""
    rows = services.select_related("owner").prefetch_related(
        Prefetch(
            "subscriptions",
            queryset=Subscription.objects.select_related("client").only("service_id", "client__public_id"),
        )
    )
    return [
        {
            "name": service.name,
            "nickname": service.nickname,
            "owner_uuid": str(service.owner.public_id),
            "subscribers": [str(sub.client.public_id) for sub in service.subscriptions.all()],
        }
        for service in rows
    ]
