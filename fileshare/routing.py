"""Websocket routes of the fileshare app."""

from __future__ import annotations

from django.urls import path

from fileshare.consumers import ConciergeConsumer

websocket_urlpatterns = [
    path("ws", ConciergeConsumer.as_asgi(), name="ws"),
]
