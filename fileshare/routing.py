"""Websocket routes of the fileshare app."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from fileshare.dashboard.consumer import DashboardConsumer
from fileshare.ws.consumers import ConciergeConsumer

websocket_urlpatterns = [
    path("ws", ConciergeConsumer.as_asgi(), name="ws"),
    # Browsers, not programs, open the dashboard socket: check their Origin
    # against ALLOWED_HOSTS and read the login session from the cookie.
    path(
        "dashboard/ws",
        AllowedHostsOriginValidator(AuthMiddlewareStack(DashboardConsumer.as_asgi())),
        name="dashboard-ws",
    ),
]
