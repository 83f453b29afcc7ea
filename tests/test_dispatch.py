"""consumers.dispatch_each: events one at a time, per-source order, ends on the first error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.exceptions import StopConsumer

from fileshare.ws.consumers import dispatch_each


async def test_events_are_dispatched_one_at_a_time_in_order_until_dispatch_raises() -> None:
    socket: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    layer: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i in range(5):
        socket.put_nowait({"from": "socket", "i": i})
        layer.put_nowait({"from": "layer", "i": i})
    seen: list[tuple[str, int]] = []
    running = 0

    async def dispatch(event: dict[str, Any]) -> None:
        nonlocal running
        running += 1
        assert running == 1, "never two dispatches at once"
        assert turn.locked(), "the turn is held during a dispatch"
        await asyncio.sleep(0.001)
        seen.append((event["from"], event["i"]))
        running -= 1
        if len(seen) == 8:
            raise StopConsumer()

    turn = asyncio.Lock()
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_each([socket.get, layer.get], dispatch, turn), 5)
    assert not turn.locked()
    assert len(seen) == 8
    for source in ("socket", "layer"):
        order = [i for s, i in seen if s == source]
        assert order == sorted(order)
    # A reader holds at most the one event it could not dispatch: the rest stay queued.
    assert socket.qsize() + layer.qsize() >= 10 - 8 - 2
