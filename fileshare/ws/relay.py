"""Delivery over the channel layer: to one client, to everyone, to the dashboard.

Payloads are encoded once here and travel as ready text, so a broadcast to a
thousand clients costs one ``json.dumps``. Every consumer handles the event types
named here (``fileshare.frame``, ``fileshare.forget`` and ``fileshare.kick``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

from fileshare import conf
from fileshare.exceptions import MessageTooLarge, TargetBusy
from fileshare.protocol import JsonObject, encode, encoded_size

logger = logging.getLogger(__name__)

CLIENTS_GROUP = "fileshare.clients"
"""Every identified client's channel."""

DASHBOARD_GROUP = "fileshare.dashboard"
"""Every open dashboard page's channel."""

SEND_TEXT_NOW = "fileshare.send_text_now"
"""ASGI scope extension of a websocket (set by the run command's server): a function
that sends one text frame at once and returns True, or returns False (the socket is
not open, or has not drained) to leave it to the usual ``websocket.send``. The
consumer attaches it to its channel as a taker (``fileshare.layers.takers``), so that both
layers can hand it frames directly."""


def _layer() -> Any:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS has no default layer")
    return layer


FRAME = "fileshare.frame"
"""Layer message carrying one ready frame for a client (``_frame``)."""

MISSED = "fileshare.missed"
"""Layer message standing for ``count`` events a channel was owed and did not get
(its queue was full): the consumer sends EVENTS_MISSED. Both layers keep at most
one at the tail of a channel's queue, beyond its capacity, and add to its count."""


def missed_payload(count: int) -> JsonObject:
    """The EVENTS_MISSED event (docs/protocol-limits.md)."""
    return {
        "type": "EVENTS_MISSED",
        "count": count,
        "desc": f"{count} event(s) could not be delivered (this client was not keeping up); fetch to resynchronise",
    }


def _frame(payload: JsonObject) -> dict[str, Any]:
    """The layer message that carries ``payload`` to a consumer as ready text.

    Every frame fits FILESHARE_MAX_FRAME_BYTES: a MESSAGE that would not (measured
    with its ``origin``) raises MessageTooLarge, for its sender; an event that would
    not (possible only with caps set beyond the frame limit) goes as EVENTS_MISSED.
    """
    text = encode(payload)
    limit = conf.max_frame_bytes()
    if len(text) * 4 > limit and encoded_size(text) > limit:
        size = encoded_size(text)
        if payload.get("type") == "MESSAGE":
            raise MessageTooLarge(
                f"the message would be {size} bytes with its origin, over the frame limit of {limit} bytes;"
                " it was not delivered"
            )
        logger.warning(
            "a %s event of %d bytes is over the frame limit (%d); sent as EVENTS_MISSED",
            payload.get("type"),
            size,
            limit,
        )
        text = encode(missed_payload(1))
    return {"type": FRAME, "text": text}


def _busy() -> TargetBusy:
    return TargetBusy("the receiver is not keeping up: its queue is full and the message was not delivered")


async def deliver(channel_name: str, payload: JsonObject) -> None:
    """Send one payload to one client; raise TargetBusy when its queue is full."""
    try:
        await _layer().send(channel_name, _frame(payload))
    except ChannelFull:
        raise _busy() from None


async def start_delivery(channel_name: str, payload: JsonObject) -> asyncio.Future[None]:
    """Hand one payload to one client, in order, without waiting for the layer's answer.

    The payload's place behind this process's earlier sends is fixed when this
    returns; the future fails with TargetBusy if the receiver's queue was full.
    With a layer that cannot send in order (the in-memory one) the send is done
    here and TargetBusy raised at once.
    """
    layer = _layer()
    send_in_order = getattr(layer, "send_in_order", None)
    result: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if send_in_order is None:
        await deliver(channel_name, payload)
        result.set_result(None)
        return result
    queued: asyncio.Future[None] = send_in_order(channel_name, _frame(payload))

    def settle(done: asyncio.Future[None]) -> None:
        if result.done():
            return
        error = done.exception() if not done.cancelled() else ConnectionError("the delivery was cancelled")
        if isinstance(error, ChannelFull):
            error = _busy()
        if error is None:
            result.set_result(None)
        else:
            result.set_exception(error)

    queued.add_done_callback(settle)
    return result


async def deliver_many(channel_names: list[str], payload: JsonObject) -> list[str]:
    """Send one payload to several clients; returns the channels that were full."""
    layer = _layer()
    message = _frame(payload)
    full = []
    for name in channel_names:
        try:
            await layer.send(name, message)
        except ChannelFull:
            full.append(name)
    return full


async def deliver_event(channel_names: list[str], payload: JsonObject) -> None:
    """Send one event to several clients; a client whose queue is full is told it missed it."""
    layer = _layer()
    send_missed = getattr(layer, "send_missed", None)  # this project's layers have it
    for name in await deliver_many(channel_names, payload):
        if send_missed is None:
            logger.warning("a %s event was not delivered: the receiver's queue was full", payload.get("type"))
        else:
            await send_missed(name)


async def broadcast(payload: JsonObject) -> None:
    """Send one payload to every identified client."""
    await _layer().group_send(CLIENTS_GROUP, _frame(payload))


async def forget(info: JsonObject) -> None:
    """Tell every process to drop its cached route to a client that is leaving.

    Sent to every client's channel: each consumer that gets it updates its
    process's ``registry.remote`` (a process with clients has at least one). An
    in-memory layer serves one process, which has no routes to forget.
    """
    layer = _layer()
    if isinstance(layer, InMemoryChannelLayer):
        return
    await layer.group_send(CLIENTS_GROUP, {"type": "fileshare.forget", "name": info["name"], "public_id": info["uuid"]})


async def kick(channel_name: str, code: int, reason: str) -> None:
    """Ask the consumer behind ``channel_name`` to close its socket with ``code``."""
    # A full channel means the consumer is gone or stuck; the lease sweeper ends it either way.
    with contextlib.suppress(ChannelFull):
        await _layer().send(channel_name, {"type": "fileshare.kick", "code": code, "reason": reason})


async def join(channel_name: str) -> None:
    """Add a client's channel to the broadcast group."""
    await _layer().group_add(CLIENTS_GROUP, channel_name)


async def part(channel_name: str) -> None:
    """Remove a client's channel from the broadcast group."""
    await _layer().group_discard(CLIENTS_GROUP, channel_name)


async def notify_dashboard(event: str, **data: Any) -> None:
    """Tell open dashboards that something changed (``event`` names what)."""
    await _layer().group_send(DASHBOARD_GROUP, {"type": "fileshare.dashboard", "event": event, **data})
