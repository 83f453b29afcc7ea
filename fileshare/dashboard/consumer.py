"""The dashboard's websocket (``/dashboard/ws``): live deltas for one open page.

The route wraps this consumer in ``ExactOriginValidator`` (``fileshare.dashboard.origins``:
the page's own origin, port included) and ``AuthMiddlewareStack`` (``fileshare.routing``); ``connect`` lets only staff
users in. Each page tells the consumer what it shows (a ``view`` message: its
filters and the client whose files are open). Events from ``relay.notify_dashboard``,
sent by any server process through the channel layer, are gathered for
``FLUSH_DELAY`` seconds and answered with one ``delta`` frame holding only the
rows they touched, so a burst of a thousand joins costs a few queries, not a
thousand page reloads.

Frames to the page: ``{"type": "ready"}`` once admitted, ``{"type": "delta", ...}``
(see ``dashboard.delta``), ``{"type": "metrics", ...}`` (one process's counters, passed on
as they come: ``fileshare.dashboard.rates``) and ``{"type": "error", "detail"}`` for a bad message.
Logging out closes the user's open dashboard sockets with 4403 too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.http import HttpRequest

from fileshare.dashboard import rates
from fileshare.dashboard import state as dashboard
from fileshare.presence.registry import db
from fileshare.ws import relay

logger = logging.getLogger(__name__)

FORBIDDEN = 4403
"""Close code for a socket without a staff session (HTTP's 403 in the 4xxx range)."""

FLUSH_DELAY = 0.1
"""Seconds to gather events before sending one delta; well inside the 1 s promise."""


def user_group(user_id: Any) -> str:
    """The channel group of one operator's open dashboards."""
    return f"{relay.DASHBOARD_GROUP}.user.{user_id}"


def close_sockets_on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """A session that ends takes its live dashboards with it (LogoutView runs sync)."""
    layer = get_channel_layer()
    if user is None or layer is None:
        return
    message = {"type": "fileshare.kick", "code": FORBIDDEN, "reason": "logged out"}
    async_to_sync(layer.group_send)(user_group(user.pk), message)


user_logged_out.connect(close_sockets_on_logout, dispatch_uid="fileshare.dashboard.logout")


class DashboardConsumer(AsyncWebsocketConsumer):
    """One open dashboard page; staff only."""

    view: dashboard.View
    pending: dashboard.Changes

    async def connect(self) -> None:
        """Admit staff users; close anyone else with 4403 (after accepting, so the page sees the code)."""
        self.admitted = False
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            await self.close(code=FORBIDDEN, reason="operators only: log in as a staff user")
            return
        self.view = dashboard.View()
        self.pending = dashboard.Changes()
        self.groups_joined = [relay.DASHBOARD_GROUP, user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.admitted = True
        rates.current.ensure_started()  # already running under runconcierge
        await self.send_json({"type": "ready"})

    async def disconnect(self, code: int) -> None:
        """Leave the dashboard group and drop any delta still being gathered."""
        for task in list(self._tasks):
            task.cancel()
        if self.admitted:
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A ``view`` message from the page: what it shows from now on."""
        if not self.admitted:
            return
        try:
            message = json.loads(text_data) if text_data is not None else None
            if not isinstance(message, dict) or message.get("type") != "view":
                raise ValueError('expected {"type": "view", ...}')
            self.view = dashboard.View.from_payload(message)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            await self.send_json({"type": "error", "detail": str(exc)})

    # -- channel layer events -------------------------------------------------------------

    async def fileshare_dashboard(self, message: dict[str, Any]) -> None:
        """Something changed somewhere in the cluster: note it and schedule a delta."""
        if not self.admitted:
            return
        self.pending.add(message)
        if not self._scheduled:
            self._scheduled = True
            task = asyncio.create_task(self._send_delta())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def fileshare_metrics(self, message: dict[str, Any]) -> None:
        """One process's counters (``rates.Sampler``): passed on to the page, which draws the charts."""
        if not self.admitted:
            return
        await self.send_json(
            {
                "type": "metrics",
                "process": message.get("process"),
                "name": message.get("name"),
                "time": message.get("time"),
                "totals": message.get("totals"),
                "transfers": message.get("transfers"),
            }
        )

    async def fileshare_kick(self, message: dict[str, Any]) -> None:
        """Close the socket on request (relay.kick works for dashboards too)."""
        await self.close(code=int(message["code"]), reason=str(message.get("reason", "")))

    async def fileshare_frame(self, message: dict[str, Any]) -> None:
        """Client traffic is not for dashboards; ignore it."""

    # -- deltas ---------------------------------------------------------------------------

    async def _send_delta(self) -> None:
        await asyncio.sleep(FLUSH_DELAY)
        # The lock keeps deltas in order: one gathered during this query waits
        # for this one to be sent, and then carries the newer state.
        async with self._lock:
            changes, self.pending = self.pending, dashboard.Changes()
            self._scheduled = False
            if not changes:
                return
            try:
                body = await db(dashboard.delta)(self.view, changes)
            except Exception:
                logger.exception("dashboard delta failed; the page will catch up on the next event")
                return
            await self.send_json(body)

    async def send_json(self, content: dict[str, Any]) -> None:
        """Send one JSON frame."""
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
