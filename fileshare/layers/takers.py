"""Takers: a receiver's way to get its channel-layer messages in the sender's own call.

A consumer that can send a frame at once (``relay.SEND_TEXT_NOW``) attaches a taker
to its channel. Both of this project's layers offer a message to the taker first
whenever nothing waits in that channel's queue, so order is kept; the taker says
whether it took the message. A taken message spares the queue, a task wake-up and
a dispatch per receiver: for a broadcast, per client present.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

Taker = Callable[[dict[str, Any]], bool]
"""Takes a message at once (True), or leaves it to the queue (False). It must not change it."""


class Takers:
    """Channel layer mixin: the attached takers, by channel."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._takers: dict[str, Taker] = {}

    def attach(self, channel: str, take: Taker) -> None:
        """Offer ``channel``'s messages to ``take`` first, whenever its queue is empty."""
        self._takers[channel] = take

    def detach(self, channel: str, take: Taker | None = None) -> None:
        """Stop offering ``channel``'s messages to its taker (only if it is ``take``, when given:
        a resumed session's new consumer may have attached to it since)."""
        if take is None or self._takers.get(channel) == take:
            self._takers.pop(channel, None)

    def _taken_at_once(self, channel: str, message: dict[str, Any]) -> bool:
        """Whether ``channel``'s taker took ``message``; call only while its queue is empty.

        A taker that fails is logged and the message queued: a sender's broadcast
        must still reach the others.
        """
        take = self._takers.get(channel)
        if take is None:
            return False
        try:
            return take(message)
        except Exception:
            logger.exception("the taker of %s failed; the message is queued instead", channel)
            return False
