"""The dashboard's charts: each server process samples its own counters once a second.

A sample holds this process's running totals of a few Prometheus metrics
(``fileshare.observe.metrics``) and its connected-clients gauge, read in-process from
the metric objects (this process's values, in multiprocess mode too). It goes to the
dashboard group over the channel layer (``fileshare.metrics``), so every open dashboard,
whichever process serves it, hears every process. The page turns consecutive samples
of one process into rates (the difference over the time between them) and adds the
processes up. Totals rather than deltas: a sample that is lost or late makes one rate
span a longer interval instead of losing counts.

A process sends a sample when a total moved, the second after one moved (so the page
sees the rate fall to zero), and otherwise every ``HEARTBEAT`` seconds (so the page
knows the process is there and how many clients it serves). An idle cluster costs one
channel-layer message per process every few seconds.

A sample also carries the process's transfers in flight and those that ended since the
last one (``fileshare.dashboard.transfers``); a process with a transfer in flight sends
every second.

The sampler starts with the run command (``runconcierge``) and, under any other ASGI
server, when the first dashboard opens in the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from channels.layers import get_channel_layer
from prometheus_client.metrics import MetricWrapperBase

from fileshare.dashboard import transfers
from fileshare.observe import metrics
from fileshare.presence import instance
from fileshare.ws.relay import DASHBOARD_GROUP

logger = logging.getLogger(__name__)

PERIOD = 1.0
"""Seconds between two readings of the counters."""

HEARTBEAT = 5.0
"""Longest silence, in seconds, of a process whose totals do not move."""

METRICS_EVENT = "fileshare.metrics"
"""The channel-layer message type of a sample (``DashboardConsumer.fileshare_metrics``)."""

Totals = dict[str, float]

SOURCES: dict[str, MetricWrapperBase] = {
    "messages": metrics.RELAYED,
    "refused": metrics.REFUSED,
    "frames_in": metrics.FRAMES_IN,
    "frames_out": metrics.FRAMES_OUT,
    "ws_bytes_in": metrics.BYTES_IN,
    "ws_bytes_out": metrics.BYTES_OUT,
    "clients": metrics.CLIENTS,
    "uploads": metrics.UPLOADS_IN_PROGRESS,
}
"""What a sample holds: running totals (counters, summed over their labels) and two gauges."""


def value(metric: MetricWrapperBase) -> float:
    """This process's value of ``metric``, summed over its labels (``_created`` samples left out)."""
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                total += sample.value
    return total


def read_totals() -> Totals:
    """This process's current values of every metric in ``SOURCES``, and its HTTP body bytes.

    ``http_bytes_in``/``out``: the bytes of HTTP bodies as they move, counted by the run
    command's server (``transfers.Tracker``); under another ASGI server, the files'
    bytes as the file API counts them (stored, and sent).
    """
    totals = {key: value(metric) for key, metric in SOURCES.items()}
    tracker = transfers.current
    if tracker.wire:
        totals["http_bytes_in"] = float(tracker.body_bytes_in)
        totals["http_bytes_out"] = float(tracker.body_bytes_out)
    else:
        totals["http_bytes_in"] = value(metrics.UPLOADED)
        totals["http_bytes_out"] = value(metrics.DOWNLOADED)
    return totals


def process_name() -> str:
    """``host:pid``, as the dashboard's list of server processes names this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Sampler:
    """This process's sampling task; one per process (``current``), started on first use."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: Totals | None = None
        self._moved = False
        self._sent_at = 0.0
        self._failing = False

    def ensure_started(self) -> None:
        """Start sampling on the running event loop, unless it already does."""
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._task = loop.create_task(self._run(), name="fileshare-dashboard-sampler")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PERIOD)
            try:
                await self.tick()
                self._failing = False
            except Exception as exc:  # a layer outage: say so once, keep sampling
                if not self._failing:
                    logger.warning("dashboard sample not sent (%s: %s)", type(exc).__name__, exc)
                self._failing = True

    def sample(self, now: float) -> dict[str, Any] | None:
        """The sample to send at ``now`` (``time.time()``), or None when there is nothing to tell."""
        totals = read_totals()
        moving = transfers.current.snapshot(now)
        moved = totals != self._last
        due = moved or self._moved or moving is not None or now - self._sent_at >= HEARTBEAT
        self._last, self._moved = totals, moved
        if not due:
            return None
        self._sent_at = now
        return {
            "type": METRICS_EVENT,
            "process": str(instance.current.id),
            "name": process_name(),
            "time": now,
            "totals": totals,
            "transfers": moving or {"active": [], "ended": []},
        }

    async def tick(self) -> None:
        """Read the counters and send a sample to the dashboards if one is due."""
        message = self.sample(time.time())
        layer = get_channel_layer()
        if message is not None and layer is not None:
            await layer.group_send(DASHBOARD_GROUP, message)


current = Sampler()
"""This process's sampler."""
