"""System checks that fail fast on a misconfigured concierge."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from fileshare import conf


@register()
def check_storage_alias(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """fileshare.E001: the storage alias for client files must exist in STORAGES."""
    alias = conf.storage_alias()
    if alias not in getattr(settings, "STORAGES", {}):
        return [
            Error(
                f"STORAGES has no {alias!r} entry for client files.",
                hint="Add it, or point FILESHARE_STORAGE_ALIAS at an existing alias.",
                id="fileshare.E001",
            )
        ]
    return []


@register()
def check_limits(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """fileshare.E002: timeouts and limits must be positive."""
    errors = []
    for name, value in [
        ("FILESHARE_IDENTIFY_TIMEOUT", conf.identify_timeout()),
        ("FILESHARE_MAX_UPLOAD_BYTES", conf.max_upload_bytes()),
        ("FILESHARE_MAX_FRAME_BYTES", conf.max_frame_bytes()),
        ("FILESHARE_PING_INTERVAL", conf.ping_interval()),
        ("FILESHARE_PING_TIMEOUT", conf.ping_timeout()),
        ("FILESHARE_LEASE_SECONDS", conf.lease_seconds()),
    ]:
        if value <= 0:
            errors.append(Error(f"{name} must be positive, not {value}.", id="fileshare.E002"))
    return errors

