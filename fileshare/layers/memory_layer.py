"""The in-memory channel layer for one process, without channels' per-message costs.

channels' ``InMemoryChannelLayer`` deep-copies every message, starts a task per
member for a group send, and walks every channel and group membership (to expire
old messages) on every receive and group send: the cost of a broadcast grows with
the square of the clients present. ``ConciergeMemoryLayer`` keeps its behaviour
(capacity, ``ChannelFull``, 60 s message expiry, best-effort group sends) with a
shallow copy per receiver, direct queue puts and the expiry walk at most once a
second. Messages are dicts of immutable values here; a receiver may change its own
copy's keys without touching anybody else's.

A receiver may attach a taker to its channel (``fileshare.layers.takers``).

Nothing owed is dropped silently: a client frame (``fileshare.frame``) that a group
send finds a channel too full for, or an event the relay could not queue
(``send_missed``), becomes a ``fileshare.missed``
marker at the tail of that channel's queue (one at most, beyond the capacity, its
count raised by each further miss), which the consumer turns into EVENTS_MISSED.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from fileshare.layers.takers import Takers
from fileshare.ws.relay import FRAME, MISSED

CLEAN_EVERY = 1.0
"""Seconds between walks for expired messages and group memberships."""


class ConciergeMemoryLayer(Takers, InMemoryChannelLayer):
    """channels' in-memory layer, at a cost per message that does not grow with the clients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned = 0.0

    def _clean_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._cleaned >= CLEAN_EVERY:
            self._cleaned = now
            self._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue[tuple[float, dict[str, Any]]]:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _put(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if (queue is None or queue.empty()) and self._taken_at_once(channel, message):
            return  # nothing was before it: taken at once, in order
        if queue is None:
            queue = self._queue(channel)
        try:
            queue.put_nowait((time.time() + self.expiry, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    def _mark_missed(self, channel: str, count: int = 1) -> None:
        """Note at the tail of ``channel``'s queue that ``count`` more messages were not delivered."""
        queue = self._queue(channel)
        entries = queue._queue  # type: ignore[attr-defined]  # asyncio.Queue's deque
        if entries and entries[-1][1].get("type") == MISSED:
            entries[-1][1]["count"] += count
            return
        entry = (time.time() + self.expiry, {"type": MISSED, "count": count})
        if queue.full():
            entries.append(entry)  # beyond the capacity, by this one marker; nobody waits on a full queue
        else:
            queue.put_nowait(entry)

    async def send_missed(self, channel: str) -> None:
        """Tell ``channel``'s consumer, after what is queued for it, that it missed a message."""
        self.require_valid_channel_name(channel)
        self._mark_missed(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        assert "__asgi_channel__" not in message
        self.require_valid_channel_name(channel)
        self._put(channel, message)

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_now_and_then()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
        return message

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_now_and_then()
        for channel in list(self.groups.get(group, ())):
            try:
                self._put(channel, message)
            except ChannelFull:
                if message.get("type") == FRAME:  # a client's event; other group messages stay best-effort
                    self._mark_missed(channel)


__all__ = ["ConciergeMemoryLayer"]
