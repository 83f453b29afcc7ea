"""Service info (PROTOCOL.md's shape) for many services at once, in two queries.

``registry.service_info`` costs a query per service (its subscribers), and model
instances cost more than the queries: a listing of all services, or the leave of a
client owning thousands, took seconds of the database thread, holding up every other
client's work behind it. Here two ``values_list`` queries, whatever the number.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import QuerySet

from fileshare.models import Service, Subscription


def service_infos(services: QuerySet[Service]) -> list[dict[str, Any]]:
    """The info of each service in ``services``, in its order (call on the database thread)."""
    return list(service_infos_by_pk(services).values())


def service_infos_by_pk(services: QuerySet[Service]) -> dict[int, dict[str, Any]]:
    """The info of each service in ``services`` by primary key, in the queryset's order."""
    rows = list(services.values_list("pk", "name", "nickname", "owner__public_id"))
    subscribers: defaultdict[int, list[str]] = defaultdict(list)
    # Subscription's own ordering (created_at, id), as service_info lists them.
    for service_id, public_id in Subscription.objects.filter(service__in=services.values("pk")).values_list(
        "service_id", "client__public_id"
    ):
        subscribers[service_id].append(str(public_id))
    return {
        pk: {"name": name, "nickname": nickname, "owner_uuid": str(owner), "subscribers": subscribers.get(pk, [])}
        for pk, name, nickname, owner in rows
    }
