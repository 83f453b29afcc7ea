"""Read-only admin pages for the shared tables.

The rows belong to live sessions: the server creates and deletes them, so the
admin may look but never add, change or delete (an operator disconnects a
client from the dashboard, which runs the whole leave sequence). A client's
secret key is never shown: it is left out of every field list and search, and no
query string may filter on it (``?key__startswith=`` would give it away a character
at a time): every lookup that goes through a field named in ``SECRET_FIELDS``, on
the model or across a relation, is refused with 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import reverse_lazy

from fileshare.models import LiveClient, ResumableUpload, ServerInstance, Service, StoredFile, Subscription

SECRET_FIELDS = frozenset({"key"})
"""Fields no admin lookup may pass through: a client's secret key."""


def touches_secret(lookup: str) -> bool:
    """Whether the query-string lookup ``lookup`` (``owner__key__startswith``) goes through a secret field."""
    return any(part in SECRET_FIELDS for part in lookup.split(LOOKUP_SEP))


class ReadOnlyAdmin(admin.ModelAdmin):
    """View-only: every field read-only, no add, change or delete; no lookup on a secret."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Refuse (400) any lookup through a secret field; otherwise Django's rules."""
        if touches_secret(lookup):
            return False
        return bool(super().lookup_allowed(lookup, value, request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Every listed field, so nothing is editable even to a superuser."""
        return self.fields or ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are created by the server only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are changed by the server only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleting a row would skip the leave sequence; use the dashboard's Disconnect."""
        return False


@admin.register(ServerInstance)
class ServerInstanceAdmin(ReadOnlyAdmin):
    """Server processes and their leases."""

    fields = ("id", "hostname", "pid", "started_at", "heartbeat_at")
    list_display = ("__str__", "id", "started_at", "heartbeat_at")
    ordering = ("started_at",)


@admin.register(LiveClient)
class LiveClientAdmin(ReadOnlyAdmin):
    """Live clients, without their secret key."""

    # ``key`` is deliberately absent from every list here: it is a credential.
    fields = (
        "name",
        "nickname",
        "tags",
        "version",
        "public_id",
        "instance",
        "channel_name",
        "folder",
        "connected_at",
        "left_at",
    )
    exclude = ("key",)
    list_display = ("name", "nickname", "version", "instance", "connected_at", "left_at")
    list_filter = ("instance",)
    search_fields = ("name", "nickname")
    list_select_related = ("instance",)


@admin.register(Service)
class ServiceAdmin(ReadOnlyAdmin):
    """Services and their owners."""

    fields = ("name", "nickname", "owner", "created_at")
    list_display = ("name", "nickname", "owner", "created_at")
    search_fields = ("name", "nickname", "owner__name")
    list_select_related = ("owner",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Which client is subscribed to which service."""

    fields = ("service", "client", "created_at")
    list_display = ("service", "client", "created_at")
    search_fields = ("service__name", "client__name")
    list_select_related = ("service", "client")


@admin.register(StoredFile)
class StoredFileAdmin(ReadOnlyAdmin):
    """The file index."""

    fields = ("file_id", "owner", "path", "size", "content_type", "sha256", "blob", "created_at", "modified_at")
    list_display = ("path", "owner", "size", "content_type", "modified_at")
    search_fields = ("path", "owner__name")
    list_select_related = ("owner",)


admin.site.site_header = "Concierge administration"
admin.site.site_title = "Concierge admin"
admin.site.site_url = reverse_lazy("fileshare:dashboard")  # "View site" opens the dashboard


@admin.register(ResumableUpload)
class ResumableUploadAdmin(ReadOnlyAdmin):
    """tus uploads in progress (or finished and not yet expired)."""

    fields = ("id", "owner", "path", "length", "offset", "content_type", "created_at", "expires_at")
    list_display = ("path", "owner", "offset", "length", "expires_at")
    list_select_related = ("owner",)
    search_fields = ("path", "owner__name")
