"""The operator dashboard's read model: rows, pages and live deltas.

Everything here is synchronous ORM code that returns JSON-ready dicts; the
dashboard views and consumer (``dashboard_views``, ``dashboard_consumer``) reach
it through ``registry.db``. Rows are built from an explicit list of columns
(``.values(...)``): a client's secret key is never selected, so it cannot reach
the page, the JSON or a log.

Clients are paged and filtered in the database, so a page costs the same with
ten clients or ten thousand. A delta carries only what changed: the rows of the
clients, files and services named by the events, plus the totals.

Why this module is long: the dashboard's queries, paging, filters and per-event deltas for three tables belong together; split by table they would repeat the paging and filter code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import NotFound
from fileshare.models import LiveClient, ServerInstance, Service, StoredFile, Subscription

Row = dict[str, Any]

CLIENTS_PER_PAGE = 50
FILES_PER_PAGE = 100
SERVICES_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_FILTER_LENGTH = 100
SUBSCRIBERS_SHOWN = 20
"""A service row names at most this many subscribers; ``subscriber_count`` has them all."""

CLIENT_COLUMNS = (
    "pk",
    "name",
    "nickname",
    "tags",
    "version",
    "public_id",
    "connected_at",
    "held_until",
    "instance_id",
    "instance__hostname",
    "instance__pid",
)
FILE_COLUMNS = ("file_id", "path", "size", "content_type", "sha256", "modified_at")


@dataclass(frozen=True)
class View:
    """What one dashboard page shows: its filters and the client whose files are open."""

    clients_q: str = ""
    services_q: str = ""
    client: str | None = None
    files_q: str = ""

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> View:
        """Build a View from a page's ``view`` message; raises ValueError on a bad field."""
        client = payload.get("client")
        if client is not None and not isinstance(client, str):
            raise ValueError('"client" must be a client name or null')
        return cls(
            clients_q=clean_filter(payload.get("clients_q")),
            services_q=clean_filter(payload.get("services_q")),
            client=client or None,
            files_q=clean_filter(payload.get("files_q")),
        )


@dataclass
class Changes:
    """What the events since the last delta named."""

    clients: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    files: set[tuple[str, str]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.clients or self.services or self.files)

    def add(self, event: dict[str, Any]) -> None:
        """Record one ``fileshare.dashboard.state`` event (keys ``client``, ``path``, ``service``)."""
        client, path, service = event.get("client"), event.get("path"), event.get("service")
        if isinstance(client, str):
            self.clients.add(client)
            if isinstance(path, str):
                self.files.add((client, path))
        if isinstance(service, str):
            self.services.add(service)


def clean_filter(value: Any) -> str:
    """A filter string from a query parameter or message: trimmed, bounded, '' if absent."""
    if not isinstance(value, str):
        if value is None:
            return ""
        raise ValueError("a filter must be a string")
    return value.strip()[:MAX_FILTER_LENGTH]


def page_number(value: Any) -> int:
    """A 1-based page number from a query parameter; 1 when absent or malformed."""
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _page(queryset: QuerySet[Any], page: int, per_page: int) -> tuple[QuerySet[Any], dict[str, int]]:
    """Slice ``queryset`` to one page; the page is clamped to the last one."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    count = queryset.count()
    pages = max(1, math.ceil(count / per_page))
    page = min(page, pages)
    start = (page - 1) * per_page
    return queryset[start : start + per_page], {"page": page, "pages": pages, "per_page": per_page, "count": count}


# -- clients ---------------------------------------------------------------------------------


def live_clients() -> QuerySet[LiveClient]:
    """Clients that have not started to leave."""
    return LiveClient.objects.filter(left_at__isnull=True)


def _client_filter(q: str) -> Q:
    return Q(name__icontains=q) | Q(nickname__icontains=q) if q else Q()


def _client_values(queryset: QuerySet[LiveClient]) -> QuerySet[Any]:
    return (
        queryset.values(*CLIENT_COLUMNS)
        .annotate(file_count=Count("files"), byte_count=Sum("files__size"))
        .order_by("name")
    )


def _client_row(values: dict[str, Any]) -> Row:
    return {
        "id": str(values["public_id"]),
        "name": values["name"],
        "nickname": values["nickname"],
        "tags": list(values["tags"] or []),
        "version": values["version"],
        "connected_at": _iso(values["connected_at"]),
        # A held resumable session (docs/sessions.md): away until then, unless it resumes.
        "away_until": _iso(values["held_until"]),
        "server": f"{values['instance__hostname']}:{values['instance__pid']}",
        "server_id": str(values["instance_id"]),
        "files": values["file_count"],
        "bytes": values["byte_count"] or 0,
        # The client's quotas (docs/limits.md), shown against its use; None: no limit.
        "quota_files": conf.client_quota_files(),
        "quota_bytes": conf.client_quota_bytes(),
    }


def client_page(q: str = "", page: int = 1, per_page: int = CLIENTS_PER_PAGE) -> Row:
    """One page of live clients whose name or nickname contains ``q``, by name."""
    rows, meta = _page(_client_values(live_clients().filter(_client_filter(q))), page, per_page)
    return {**meta, "q": q, "results": [_client_row(v) for v in rows], "stats": stats()}


def client_detail(name: str) -> Row:
    """A live client's row plus the services it owns and has joined; raises NotFound."""
    values = _client_values(live_clients().filter(name=name)).first()
    if values is None:
        raise NotFound(f"no live client is named {name!r}")
    row = _client_row(values)
    row["owns"] = list(Service.objects.filter(owner_id=values["pk"]).values_list("name", flat=True))
    row["subscribed"] = list(
        Subscription.objects.filter(client_id=values["pk"])
        .order_by("service__name")
        .values_list("service__name", flat=True)
    )
    return row


# -- files ----------------------------------------------------------------------------------


def _file_row(client_name: str, values: dict[str, Any]) -> Row:
    return {
        "id": values["file_id"],
        "path": values["path"],
        "size": values["size"],
        "type": values["content_type"],
        "sha256": values["sha256"],
        "modified_at": _iso(values["modified_at"]),
        "download": reverse("fileshare:dashboard-download", args=[client_name, values["path"]]),
    }


def _client_files(name: str, q: str) -> QuerySet[StoredFile]:
    files = StoredFile.objects.filter(owner__name=name, owner__left_at__isnull=True)
    return files.filter(path__icontains=q) if q else files


def file_page(name: str, q: str = "", page: int = 1, per_page: int = FILES_PER_PAGE) -> Row:
    """One page of a live client's files (path contains ``q``), by path; raises NotFound."""
    client = client_detail(name)
    rows, meta = _page(_client_files(name, q).values(*FILE_COLUMNS).order_by("path"), page, per_page)
    return {**meta, "q": q, "client": client, "results": [_file_row(name, v) for v in rows]}


# -- services --------------------------------------------------------------------------------


def _with_subscribers(queryset: QuerySet[Service]) -> QuerySet[Service]:
    # A sliced Prefetch (Django 4.2+) names the first subscribers of every service
    # on the page in one query, however many subscribers each has.
    shown = Subscription.objects.select_related("client").order_by("client__name")[:SUBSCRIBERS_SHOWN]
    return (
        queryset.select_related("owner")
        .annotate(subscriber_count=Count("subscriptions"))
        .prefetch_related(Prefetch("subscriptions", queryset=shown, to_attr="shown"))
        .order_by("name")
    )


def _service_row(service: Any) -> Row:
    return {
        "name": service.name,
        "nickname": service.nickname,
        "owner": service.owner.name,
        "owner_id": str(service.owner.public_id),
        "subscribers": [sub.client.name for sub in service.shown],
        "subscriber_count": service.subscriber_count,
        "created_at": _iso(service.created_at),
    }


def _service_filter(q: str) -> Q:
    return Q(name__icontains=q) | Q(nickname__icontains=q) | Q(owner__name__icontains=q) if q else Q()


def service_page(q: str = "", page: int = 1, per_page: int = SERVICES_PER_PAGE) -> Row:
    """One page of services whose name, nickname or owner contains ``q``, by name."""
    services, meta = _page(_with_subscribers(Service.objects.filter(_service_filter(q))), page, per_page)
    return {**meta, "q": q, "results": [_service_row(s) for s in services]}


# -- totals and deltas -----------------------------------------------------------------------


def stats() -> Row:
    """Totals over the whole concierge, and each server process with its client count."""
    files = StoredFile.objects.filter(owner__left_at__isnull=True).aggregate(n=Count("file_id"), size=Sum("size"))
    fresh = timezone.now() - timedelta(seconds=conf.lease_seconds())
    servers = (
        ServerInstance.objects.annotate(live=Count("clients", filter=Q(clients__left_at__isnull=True)))
        .values("id", "hostname", "pid", "started_at", "heartbeat_at", "live")
        .order_by("started_at")
    )
    return {
        "clients": live_clients().count(),
        "files": files["n"],
        "bytes": files["size"] or 0,
        "quota_bytes": conf.store_quota_bytes(),
        "services": Service.objects.count(),
        "servers": [
            {
                "id": str(s["id"]),
                "name": f"{s['hostname']}:{s['pid']}",
                "clients": s["live"],
                "started_at": _iso(s["started_at"]),
                "alive": s["heartbeat_at"] >= fresh,
            }
            for s in servers
        ],
    }


def delta(view: View, changes: Changes) -> Row:
    """The rows ``changes`` touched, as ``view`` shows them, and the new totals.

    ``upsert`` holds rows that match the view's filter (the page places them);
    ``remove`` names rows that no longer exist. Rows that exist but do not match
    the filter are left out: a name never changes, so they never show.
    """
    out: Row = {"type": "delta", "stats": stats()}
    if changes.clients:
        matching = live_clients().filter(_client_filter(view.clients_q))
        rows = [_client_row(v) for v in _client_values(matching.filter(name__in=changes.clients))]
        live = set(live_clients().filter(name__in=changes.clients).values_list("name", flat=True))
        out["clients"] = {
            "count": matching.count(),
            "upsert": rows,
            "remove": sorted(changes.clients - live),
        }
    if changes.services:
        matching_services = Service.objects.filter(_service_filter(view.services_q))
        existing = set(Service.objects.filter(name__in=changes.services).values_list("name", flat=True))
        out["services"] = {
            "count": matching_services.count(),
            "upsert": [_service_row(s) for s in _with_subscribers(matching_services.filter(name__in=changes.services))],
            "remove": sorted(changes.services - existing),
        }
    if view.client is not None and view.client in changes.clients:
        out["files"] = _files_delta(view, {p for c, p in changes.files if c == view.client})
    return out


def _files_delta(view: View, paths: set[str]) -> Row:
    name = view.client
    assert name is not None
    try:
        client = client_detail(name)
    except NotFound:
        return {"client": name, "detail": None, "count": 0, "upsert": [], "remove": sorted(paths)}
    matching = _client_files(name, view.files_q)
    present = set(_client_files(name, "").filter(path__in=paths).values_list("path", flat=True))
    return {
        "client": name,
        "detail": client,
        "count": matching.count(),
        "upsert": [_file_row(name, v) for v in matching.filter(path__in=paths).values(*FILE_COLUMNS).order_by("path")],
        "remove": sorted(paths - present),
    }
