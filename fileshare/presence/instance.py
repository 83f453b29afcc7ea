"""This server process's lease, and the sweeper that removes dead processes' clients.

Channels does not promise that ``disconnect()`` runs (a SIGKILLed or frozen
process runs nothing), so liveness is a lease in the shared database:

* each process holds a ``ServerInstance`` row and renews ``heartbeat_at`` every
  ``FILESHARE_LEASE_SECONDS / 3`` seconds from a task on its event loop;
* on each beat it also looks for rows whose lease lapsed, claims one with a
  conditional update (so exactly one process sweeps it) and runs the leave
  sequence for each of its clients, then deletes the row;
* a process that finds its own row gone (it was frozen longer than the lease and
  swept) closes its sockets with 4011 and starts a new lease.

With the default 15 s lease, a dead process's clients are gone within 20 s.

Each beat also retries this process's leaves that failed part way (a Redis or
database outage: ``lifecycle.retries``) and finishes the leaves that another
process left unfinished and stopped retrying (``lifecycle.finish_stale``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from django.utils import timezone

from fileshare import conf
from fileshare.models import LiveClient, ServerInstance
from fileshare.observe import metrics
from fileshare.presence import lifecycle
from fileshare.presence.lifecycle import leave
from fileshare.presence.registry import db, local
from fileshare.protocol import CloseCode
from fileshare.ws import relay

logger = logging.getLogger(__name__)


class Instance:
    """The lease of the current process; one per process, started on first use."""

    def __init__(self) -> None:
        self.id = uuid.uuid4()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None

    async def ensure_started(self) -> uuid.UUID:
        """Create the lease row and start the heartbeat task if they are not running."""
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return self.id
        if self._lock is None or self._loop is not loop:
            self._lock = asyncio.Lock()
            self._loop = loop
        async with self._lock:
            if self._task is None or self._task.done() or self._loop is not loop:
                await db(self._renew_or_create)()
                self._task = loop.create_task(self._run(), name="fileshare-heartbeat")
        return self.id

    def _renew_or_create(self) -> bool:
        """Renew the lease; True if the row still existed."""
        now = timezone.now()
        if ServerInstance.objects.filter(pk=self.id).update(heartbeat_at=now):
            return True
        ServerInstance.objects.create(id=self.id, hostname=socket.gethostname(), pid=os.getpid(), heartbeat_at=now)
        return False

    async def _run(self) -> None:
        period = conf.lease_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self.beat()
            except lifecycle.OUTAGES as exc:  # one line: the outage is the news, not the stack
                logger.warning("heartbeat failed (%s: %s)", type(exc).__name__, exc)
            except Exception:  # keep beating: one failed beat must not end the lease
                logger.exception("heartbeat failed")
            # Apart from the beat: a database outage must not hold back what needs only Redis.
            await lifecycle.retries.run()

    async def beat(self) -> None:
        """Renew the lease and sweep lapsed ones (also called directly by tests)."""
        if not await db(self._renew_or_create)():
            logger.warning("this process's lease had lapsed and was swept; closing its sockets")
            for channel in local.channel_names():
                await relay.kick(channel, CloseCode.SERVER_LEFT, "server lease lapsed")
        await sweep(exclude=self.id)
        await lifecycle.finish_stale()


def _claim_expired(exclude: uuid.UUID | None) -> list[tuple[uuid.UUID, list[int]]]:
    now = timezone.now()
    cutoff = now - timedelta(seconds=conf.lease_seconds())
    claimed = []
    for row in ServerInstance.objects.filter(heartbeat_at__lt=cutoff).exclude(pk=exclude):
        # Pushing the heartbeat forward claims the row; if this sweeper dies too,
        # the claim lapses like any lease and another process takes over.
        if ServerInstance.objects.filter(pk=row.pk, heartbeat_at=row.heartbeat_at).update(heartbeat_at=now):
            # A client whose leave already started is another's to finish (lifecycle.finish_stale).
            # A resumable session (docs/sessions.md) is held for its grace, not left at once;
            # a held one stays until its grace ends, and a later sweep takes it.
            LiveClient.objects.filter(
                instance_id=row.pk, left_at__isnull=True, session_hash__isnull=False, held_until__isnull=True
            ).update(held_until=now + timedelta(seconds=conf.resume_grace()))
            clients = list(
                LiveClient.objects.filter(instance_id=row.pk, left_at__isnull=True)
                .exclude(held_until__gt=now)
                .values_list("pk", flat=True)
            )
            claimed.append((row.pk, clients))
    return claimed


def _forget(instance_id: uuid.UUID) -> None:
    if not LiveClient.objects.filter(instance_id=instance_id).exists():
        ServerInstance.objects.filter(pk=instance_id).delete()


async def sweep(exclude: uuid.UUID | None = None) -> int:
    """Remove the clients of every process whose lease lapsed; returns how many."""
    count = 0
    for instance_id, client_ids in await db(_claim_expired)(exclude):
        logger.warning(
            "server process %s stopped renewing its lease; removing its %d clients", instance_id, len(client_ids)
        )
        metrics.LEASE_SWEEPS.inc()
        for client_id in client_ids:
            if await leave(client_id, "its server process died", force=True):
                count += 1
        await db(_forget)(instance_id)
    return count


current = Instance()
"""This process's lease."""
