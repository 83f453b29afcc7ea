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

A held session's channel (``hold``, docs/sessions.md) keeps up to its own capacity,
and its messages do not expire before the grace ends; ``release`` says what was kept.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from fileshare.layers.takers import Takers
from fileshare.ws.relay import FRAME, MISSED

CLEAN_EVERY = 1.0
"""Seconds between walks for expired messages and group memberships."""


@dataclass
class Held:
    """A held session's channel: its capacity, when its grace ends, and what was refused."""

    capacity: int
    until: float
    """time.time() when the grace ends: its messages do not expire before."""
    refused: int = 0
    """Messages a send found no room for (the sender was told ChannelFull)."""


class ConciergeMemoryLayer(Takers, InMemoryChannelLayer):
    """channels' in-memory layer, at a cost per message that does not grow with the clients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned = 0.0
        self._held: dict[str, Held] = {}

    def get_capacity(self, channel: str) -> int:
        held = self._held.get(channel)
        return held.capacity if held is not None else int(super().get_capacity(channel))

    def hold(self, channel: str, capacity: int, seconds: float) -> Held:
        """Keep up to ``capacity`` messages for ``channel`` (a held session), none expiring
        within ``seconds``, until ``release``."""
        held = self._held[channel] = Held(capacity, time.time() + seconds)
        queue = self.channels.get(channel)
        if queue is not None:
            queue._maxsize = max(capacity, queue.qsize())
            entries = queue._queue
            for index in range(len(entries)):
                expires, message = entries[index]
                if expires < held.until:
                    entries[index] = (held.until, message)
        return held

    def drop_hold(self, channel: str, held: Held) -> None:
        """Forget ``held`` if it is still ``channel``'s hold (a session that ended without a
        resume here, e.g. left by an operator while held)."""
        if self._held.get(channel) is held:
            self.release(channel)

    def release(self, channel: str) -> tuple[int, bool]:
        """End ``channel``'s hold: (frames kept for it, whether nothing meant for it was lost).

        A channel this layer was not holding (its session was held by a process that died)
        kept nothing here, and what was meant for it is not known: not recovered."""
        held = self._held.pop(channel, None)
        queue = self.channels.get(channel)
        entries = list(queue._queue) if queue is not None else []
        kept = sum(1 for _, message in entries if message.get("type") == FRAME)
        marked = any(message.get("type") == MISSED for _, message in entries)
        if queue is not None:
            queue._maxsize = int(super().get_capacity(channel))
        return kept, held is not None and held.refused == 0 and not marked

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
        expires = time.time() + self.expiry
        held = self._held.get(channel) if self._held else None
        if held is not None:
            expires = max(expires, held.until)
        try:
            queue.put_nowait((expires, dict(message)))
        except asyncio.QueueFull:
            if held is not None:
                held.refused += 1
            raise ChannelFull(channel) from None

    def _mark_missed(self, channel: str, count: int = 1) -> None:
        """Note at the tail of ``channel``'s queue that ``count`` more messages were not delivered."""
        queue = self._queue(channel)
        entries = queue._queue  # type: ignore[attr-defined]  # asyncio.Queue's deque
        if entries and entries[-1][1].get("type") == MISSED:
            entries[-1][1]["count"] += count
            return
        held = self._held.get(channel)
        expires = max(time.time() + self.expiry, held.until if held is not None else 0.0)
        entry = (expires, {"type": MISSED, "count": count})
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


__all__ = ["ConciergeMemoryLayer", "Held"]
