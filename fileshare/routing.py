"""Websocket routes of the fileshare app."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path

from fileshare.dashboard.consumer import DashboardConsumer
from fileshare.dashboard.origins import ExactOriginValidator
from fileshare.ws.consumers import ConciergeConsumer

websocket_urlpatterns = [
    path("ws", ConciergeConsumer.as_asgi(), name="ws"),
    # Browsers, not programs, open the dashboard socket: its Origin must be the
    # page's own, port included (fileshare.dashboard.origins), and the session comes from the cookie.
    path(
        "dashboard/ws",
        ExactOriginValidator(AuthMiddlewareStack(DashboardConsumer.as_asgi())),
        name="dashboard-ws",
    ),
]
