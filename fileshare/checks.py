"""System checks that fail fast on a misconfigured concierge."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from fileshare import conf, origin_checks, upstream


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


@register()
def check_upstream_parts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """fileshare.E101/E102/W101: the dependency parts the concierge patches are as reviewed.

    E101: a part is gone; E102: its source changed since it was reviewed; W101: a guarded
    distribution is not the version the parts were reviewed with (fileshare/upstream.py).
    """
    messages: list[CheckMessage] = []
    for problem in upstream.problems():
        part = problem.part
        messages.append(
            Error(
                f"{part.name}: {problem.detail}. {part.where} relies on it ({part.how}).",
                hint=(
                    "Install the versions pinned in requirements.txt, or review the change against "
                    f"{part.where} (docs/patches.md), then update fileshare/upstream.py "
                    "(`python -m fileshare.upstream` prints the installed digests)."
                ),
                id="fileshare.E102" if problem.changed else "fileshare.E101",
            )
        )
    for distribution, version in upstream.installed_versions().items():
        if version is not None and version != upstream.TESTED_WITH[distribution]:
            messages.append(
                Warning(
                    f"{distribution} {version} is installed; the concierge's patches were reviewed with "
                    f"{upstream.TESTED_WITH[distribution]}.",
                    hint="The parts it relies on still check out (no fileshare.E101/E102); see docs/patches.md.",
                    id="fileshare.W101",
                )
            )
    return messages


def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """fileshare.E003: a default channel layer must be configured (messages travel over it)."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    if "default" not in layers:
        return [
            Error(
                "CHANNEL_LAYERS has no 'default' layer: every IDENTIFY would close with 4000.",
                hint=(
                    "For one process add CHANNEL_LAYERS = {'default': {'BACKEND': "
                    "'channels.layers.InMemoryChannelLayer'}}; for several, a channels_redis layer "
                    "(docs/install.md)."
                ),
                id="fileshare.E003",
            )
        ]
    return []


@register()
def check_ws_without_origin_validator(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """fileshare.E004: ``/ws`` must not sit behind an origin validator (programs send no Origin)."""
    application = origin_checks.load_asgi_application()
    if application is None or not origin_checks.concierge_behind_origin_validator(application):
        return []
    return [
        Error(
            "The concierge's websocket (fileshare.routing.websocket_urlpatterns) is wrapped in an "
            "OriginValidator (AllowedHostsOriginValidator): programs that send no Origin header get HTTP 403.",
            hint=(
                "Route fileshare.routing.websocket_urlpatterns outside the validator, e.g. "
                "URLRouter([*fileshare.routing.websocket_urlpatterns, "
                "path('yours/', AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(your_routes))))]) "
                "(docs/install.md). FILESHARE_SECRET admits clients instead."
            ),
            id="fileshare.E004",
        )
    ]
