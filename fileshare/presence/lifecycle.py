"""The leave sequence, in PROTOCOL.md's order, idempotent.

Called from the consumer's disconnect, its error boundary, the lease sweeper (for
the clients of a dead process) and the dashboard's disconnect action. Whoever
calls it first does the work; a second call for the same client returns at once,
unless ``force`` is given (the sweeper, finishing a leave that a dead process
started).

A leave that fails part way (Redis or the database unreachable) is not dropped: it
is kept in ``retries`` with the steps still to do and tried again on every heartbeat
of this process (``fileshare.presence.instance``) until it completes. While it waits, its row
(if it still has one) carries ``left_at``, which every retry renews: a row whose
``left_at`` has not been renewed for ``FILESHARE_LEAVE_RETRY_SECONDS`` has lost its
retrier (its process died) and any process's sweeper finishes it (``claim_stale``).

Why this module is long: the leave sequence in the protocol's order, its batching (Departures), folder sweeping and retries of failed leaves: the steps share Departure's state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import ChannelLayerDown
from fileshare.models import LiveClient, ResumableUpload, Service, StoredFile, Subscription, UploadPart
from fileshare.observe import metrics
from fileshare.presence import trips
from fileshare.presence.registry import db
from fileshare.presence.service_infos import service_infos, service_infos_by_pk
from fileshare.store import storage
from fileshare.ws import relay

logger = logging.getLogger(__name__)


@dataclass
class Departure:
    """What a leaving client held, taken from the tables in one transaction."""

    info: dict[str, Any]
    channel_name: str
    folder: str
    services: list[dict[str, Any]]
    """Info of the services it owned (now deleted)."""
    subscriptions: list[tuple[dict[str, Any], list[str]]]
    """Per service it had joined (now left): its info and the channels to tell."""
    released: bool = False
    """The client held nothing (no service, subscription, file or upload), so its row
    went with the claim, in one statement: ``_release`` has nothing left to do."""
    parted: bool = False
    """Progress of ``_finish``: its channel left the broadcast group and routes to it were forgotten."""
    stored_gone: bool = False
    """Progress of ``_finish``: its folder is deleted (or queued for the sweeper) and its row released."""


COLUMNS = '"id", "name", "nickname", "public_id", "tags", "channel_name", "folder"'
"""The columns of a leaving client's row that the leave needs (see _leaver)."""


CLIENTS = LiveClient._meta.db_table


def _has(model: type[Any], column: str) -> str:
    """SQL: the client row at hand has a row in ``model`` (``column`` naming it)."""
    return f'EXISTS(SELECT 1 FROM "{model._meta.db_table}" WHERE "{column}" = "{CLIENTS}"."id")'


@functools.cache
def _depart_sql() -> tuple[str, str, str]:
    """The quick leave, the claim and the read of ``_depart``, written out (the ORM took
    0.55 ms to build the last two)."""
    owns, joined = _has(Service, "owner_id"), _has(Subscription, "client_id")
    quick = _quick_sql(1)
    claim = f'UPDATE "{CLIENTS}" SET "left_at" = %s WHERE "id" = %s AND "left_at" IS NULL'
    read = f'SELECT {COLUMNS}, {owns} AS "owns", {joined} AS "joined" FROM "{CLIENTS}" WHERE "id" = %s'
    return quick, claim, read


@functools.cache
def _quick_sql(rows: int) -> str:
    """The quick leave of ``rows`` clients: those of them that hold nothing are claimed
    and released by one DELETE, which returns their rows."""
    holds = " OR ".join(
        (
            _has(Service, "owner_id"),
            _has(Subscription, "client_id"),
            _has(StoredFile, "owner_id"),
            _has(ResumableUpload, "owner_id"),
        )
    )
    ids = ", ".join("%s" for _ in range(rows))
    # A relation to LiveClient not named here fails this DELETE on its foreign key, and
    # the leave takes the long way (whose _release then fails loudly on it too).
    return f'DELETE FROM "{CLIENTS}" WHERE "id" IN ({ids}) AND "left_at" IS NULL AND NOT ({holds}) RETURNING {COLUMNS}'


def _leaver(row: tuple[Any, ...]) -> LiveClient:
    """The client whose row ``_depart_sql``'s statements returned (their first seven columns).

    Built by hand from the few columns the leave needs: a RawQuerySet took 90 us of the
    database thread to do it, more than the statement itself.
    """
    pk, name, nickname, public_id, tags, channel_name, folder = row[:7]
    return LiveClient(
        pk=pk,
        name=name,
        nickname=nickname,
        public_id=public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(public_id),
        tags=_TAGS.from_db_value(tags, None, connection),
        channel_name=channel_name,
        folder=folder,
    )


_TAGS = LiveClient._meta.get_field("tags")


def _fetch_all(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """The rows a statement returns, every one of them: SQLite commits an autocommit
    statement (and checks its deferred foreign keys) only once it has run to the end,
    and an error there must raise here."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def _fetch_one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    rows = _fetch_all(sql, params)
    return rows[0] if rows else None


def _released(row: tuple[Any, ...]) -> Departure:
    """The departure of a client that held nothing, whose row the quick leave returned."""
    gone = _leaver(row)
    return Departure(gone.info(), gone.channel_name, gone.folder, [], [], released=True)


def _depart(client_id: int, force: bool) -> Departure | None:
    """Claim the leave (the key is refused from here on) and take services and subscriptions.

    ``None`` if the client is gone, or if another caller claimed the leave first and
    ``force`` is not given. A live client that holds nothing (no service, subscription,
    file or upload: most of them) is claimed and released by one statement.
    """
    quick, claim, read = _depart_sql()
    if connection.features.can_return_columns_from_insert:  # SQLite >= 3.35, PostgreSQL: DELETE ... RETURNING too
        try:  # one statement, its own transaction
            row = _fetch_one(quick, [client_id])
        except IntegrityError:
            # A row naming the client arrived meanwhile (foreign keys are checked at
            # commit): nothing was deleted. The long way.
            row = None
        if row is not None:
            return _released(row)
    return _depart_long(client_id, force)


def _depart_long(client_id: int, force: bool) -> Departure | None:
    """``_depart`` for a client that holds something (or is gone, or claimed already)."""
    _, claim, read = _depart_sql()
    left_at = LiveClient._meta.get_field("left_at").get_db_prep_save(timezone.now(), connection)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(claim, [left_at, client_id])
            claimed = cursor.rowcount
        # Most clients that get here own no service and joined none: one query tells.
        row = _fetch_one(read, [client_id])
        if row is None or not (claimed or force):
            return None
        client, owns, joined_any = _leaver(row), row[7], row[8]
        services: list[dict[str, Any]] = []
        if owns:
            # Two queries for all of them (a client may own thousands), then two DELETEs
            # (Django's cascade would first load every row it deletes).
            services = service_infos(Service.objects.filter(owner_id=client_id))
            _delete_owned_services(client_id)
        subscriptions: list[tuple[dict[str, Any], list[str]]] = []
        if joined_any:
            subscriptions = _leave_services(client_id)
        return Departure(client.info(), client.channel_name, client.folder, services, subscriptions)


def _leave_services(client_id: int) -> list[tuple[dict[str, Any], list[str]]]:
    """Unsubscribe ``client_id`` from every service it joined; per service (in the order
    joined), its info without the client and the channels of its remaining subscribers
    (the owner only if subscribed), who are told. Three queries and a DELETE, however many."""
    joined = list(Subscription.objects.filter(client_id=client_id).values_list("pk", "service_id"))
    Subscription.objects.filter(pk__in=[pk for pk, _ in joined]).delete()
    service_ids = [service_id for _, service_id in joined]
    by_id = service_infos_by_pk(Service.objects.filter(pk__in=service_ids))
    channels: dict[int, list[str]] = {service_id: [] for service_id in service_ids}
    for service_id, channel in Subscription.objects.filter(
        service_id__in=service_ids, client__left_at__isnull=True
    ).values_list("service_id", "client__channel_name"):
        channels[service_id].append(channel)
    return [(by_id[service_id], channels[service_id]) for service_id in service_ids if service_id in by_id]


def _delete_owned_services(client_id: int) -> None:
    """Delete the services ``client_id`` owns and their subscriptions, in two statements."""
    sub, service = Subscription._meta.db_table, Service._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{sub}" WHERE "service_id" IN (SELECT "id" FROM "{service}" WHERE "owner_id" = %s)',
            [client_id],
        )
        cursor.execute(f'DELETE FROM "{service}" WHERE "owner_id" = %s', [client_id])


def _depart_many(client_ids: list[int]) -> list[Departure | None | Exception]:
    """``_depart(id, force=False)`` for each client, in order; those that hold nothing
    are claimed and released by one statement for all of them.

    A client named twice departs once; the second gets None, as a second ``_depart``
    would. One client's failure is its own outcome, not the others'.
    """
    gone: dict[int, tuple[Any, ...]] = {}
    batched = len(client_ids) > 1 and connection.features.can_return_columns_from_insert
    if batched:
        try:
            rows = _fetch_all(_quick_sql(len(client_ids)), list(client_ids))
        except IntegrityError:
            # A row naming one of them arrived meanwhile: nothing was deleted; each goes its own way.
            batched = False
        else:
            gone = {row[0]: row for row in rows}
    outcomes: list[Departure | None | Exception] = []
    for client_id in client_ids:
        row = gone.pop(client_id, None)
        try:
            if row is not None:
                outcomes.append(_released(row))
            elif batched:  # it holds something, or it is gone or claimed already
                outcomes.append(_depart_long(client_id, False))
            else:
                outcomes.append(_depart(client_id, False))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


class Departures(trips.Batched[int, "Departure | None"]):
    """Leaves on their way to the database (``trips.Batched``): a crowd leaving at once
    is claimed by a statement per batch, not per client; one client alone waits for
    nobody."""

    task_name = "fileshare-departures"

    async def _trip(self, client_ids: list[int]) -> list[Departure | None | Exception]:
        outcomes: list[Departure | None | Exception] = await db(_depart_many)(client_ids)
        return outcomes


departures = Departures()


def _release(client_id: int) -> None:
    """Delete the client's row (its name is free) and the rows that still hang on it.

    Plain DELETEs in one transaction: Django's cascade would first select every
    related row, ten times the cost. ``_depart`` removed services and subscriptions
    (deleted again here in case one appeared since); the rest is the file index and
    resumable uploads. A relation added later and not deleted here fails loudly on
    the foreign key, on SQLite and PostgreSQL.
    """
    part, upload, stored, sub, service, client = (
        model._meta.db_table for model in (UploadPart, ResumableUpload, StoredFile, Subscription, Service, LiveClient)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{sub}" WHERE "client_id" = %s'
            f' OR "service_id" IN (SELECT "id" FROM "{service}" WHERE "owner_id" = %s)',
            [client_id, client_id],
        )
        cursor.execute(f'DELETE FROM "{service}" WHERE "owner_id" = %s', [client_id])
        cursor.execute(
            f'DELETE FROM "{part}" WHERE "upload_id" IN (SELECT "id" FROM "{upload}" WHERE "owner_id" = %s)',
            [client_id],
        )
        cursor.execute(f'DELETE FROM "{upload}" WHERE "owner_id" = %s', [client_id])
        cursor.execute(f'DELETE FROM "{stored}" WHERE "owner_id" = %s', [client_id])
        cursor.execute(f'DELETE FROM "{client}" WHERE "id" = %s', [client_id])


EVENTS_PER_TURN = 64
"""Events the leave sends before it lets the event loop run others: a client owning
thousands of services must not hold up every other client while its leave tells."""


async def _take_turns(sent: int) -> None:
    """Yield to the event loop after every EVENTS_PER_TURN events (``sent`` counts them)."""
    if sent % EVENTS_PER_TURN == 0:
        await asyncio.sleep(0)


SWEEP_EVERY = 0.2
"""Seconds a departed client's folder may wait for FolderSweeper's next batch."""


class FolderSweeper:
    """Deletes the storage folders of clients that left holding nothing, a batch per trip.

    Such a folder is nearly always absent. It can hold the blob of an upload that raced
    the leave (which, finding its owner gone, deletes it too) or one whose deletion
    failed before; it is swept for those. A worker-thread trip per departing client
    was an eighth of a handshake's CPU; one trip per batch, at most every SWEEP_EVERY
    seconds, costs next to nothing. A process that dies with folders pending leaves
    them to ``manage.py fileshare_reconcile``.
    """

    def __init__(self, every: float = SWEEP_EVERY) -> None:
        self.every = every
        self._folders: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, folder: str) -> None:
        """Have ``folder`` swept with the next batch (call on the event loop)."""
        self._folders.append(folder)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._sweep_soon(), name="fileshare-folder-sweeper")

    async def idle(self) -> None:
        """Return once every folder added so far is swept (for tests and shutdown)."""
        while self._task is not None and not self._task.done() and self._task.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([self._task])

    async def _sweep_soon(self) -> None:
        await asyncio.sleep(self.every)
        while self._folders:
            batch, self._folders = self._folders, []
            await sync_to_async(_delete_folders, thread_sensitive=False)(batch)


def _delete_folders(folders: list[str]) -> None:
    for folder in folders:
        try:
            storage.delete_folder(folder)
        except Exception:  # one folder's failure must not keep the others
            logger.exception("sweeping the folder %s failed; fileshare_reconcile will remove it", folder)


sweeper = FolderSweeper()
"""This process's sweeper of departed clients' folders."""


async def leave(client_id: int, reason: str, *, force: bool = False) -> bool:
    """Remove a client and everything it holds; True if this call did the work.

    Order (PROTOCOL.md, "When a client leaves"): its services are deleted
    (SERVICE_DELETE_RESULT to everyone), it is unsubscribed from the services it
    had joined (SERVICE_CLIENT_UNSUBSCRIBED to those only), its files are deleted,
    its row goes (key refused, name free) and CLIENT_LEFT goes to everyone. The key
    is refused from the first step on. Two trips to the database in all, both on
    the database thread (SQLite has one writer at a time); one for a client that
    held nothing, whose row goes with the first step and whose folder (see
    FolderSweeper) is swept in a batch soon after. Clients leaving at once share the
    first trip (``Departures``).

    A failure part way does not raise: the leave is handed to ``retries`` (logged in
    one line), which finishes it later, and False is returned. Cancelling the caller
    does not cancel the leave (daphne cancels a consumer whose disconnect takes longer
    than its close timeout, e.g. while the database is unreachable): it goes on in a
    task of its own.
    """
    task = asyncio.ensure_future(_leave(client_id, reason, force))
    _leaving.add(task)
    task.add_done_callback(_leaving.discard)
    return await asyncio.shield(task)


_leaving: set[asyncio.Future[bool]] = set()
"""Leaves under way (their tasks, kept from the garbage collector while their callers may be gone)."""


async def _leave(client_id: int, reason: str, force: bool) -> bool:
    started = time.perf_counter()
    try:
        departure: Departure | None = await (db(_depart)(client_id, True) if force else departures.submit(client_id))
    except Exception as exc:
        retries.add(Unfinished(client_id, reason, None, force), exc)
        return False
    if departure is None:
        return False
    logger.info("client %s leaving: %s", departure.info["name"], reason)
    try:
        await _finish(client_id, departure)
    except Exception as exc:
        retries.add(Unfinished(client_id, reason, departure, force), exc)
        return False
    metrics.LEAVES.inc()
    metrics.LEAVE_SECONDS.observe(time.perf_counter() - started)
    return True


async def _finish(client_id: int, departure: Departure) -> None:
    """The leave's steps after the claim; each done step is noted in ``departure``, so
    that a retry after a failure goes on from the step that failed."""
    info = departure.info
    if not departure.parted:
        await relay.part(departure.channel_name)
        # Other processes stop relaying to it now, not when CLIENT_LEFT goes out.
        await relay.forget(info)
        departure.parted = True

    sent = 0
    while departure.services:
        service = departure.services[0]
        await relay.broadcast({"type": "SERVICE_DELETE_RESULT", "service": service})
        await relay.notify_dashboard("service_deleted", service=service["name"])
        departure.services.pop(0)
        sent += 1
        await _take_turns(sent)
    while departure.subscriptions:
        service, channels = departure.subscriptions[0]
        event = {"type": "SERVICE_CLIENT_UNSUBSCRIBED", "client": info, "service": service}
        await relay.deliver_event(channels, event)
        await relay.notify_dashboard("service_changed", service=service["name"])
        departure.subscriptions.pop(0)
        sent += 1
        await _take_turns(sent)

    if not departure.stored_gone:
        if departure.released:
            # It held nothing and its row is gone: its folder is swept with others', soon.
            sweeper.add(departure.folder)
        else:
            # Storage I/O may be slow (S3): a worker thread of its own, not the database
            # thread. Between the two steps the index rows still exist, but nothing serves
            # them: lookups skip clients whose leave has started.
            await sync_to_async(storage.delete_folder, thread_sensitive=False)(departure.folder)
            await db(_release)(client_id)
        departure.stored_gone = True
    await relay.broadcast({"type": "CLIENT_LEFT", "client": info})
    await relay.notify_dashboard("client_left", client=info["name"])


# -- Leaves that failed part way, tried again until they complete ----------------------------

OUTAGES = (ChannelLayerDown, OperationalError, InterfaceError, OSError)
"""Failures that mean a service (Redis, the database, storage) is unreachable: logged
in one line, without a traceback."""


@dataclass
class Unfinished:
    """A leave that failed part way: what is known of it, and its retry lease."""

    client_id: int
    reason: str
    departure: Departure | None
    """None while the leave is not claimed yet (the claim itself failed)."""
    force: bool
    attempts: int = 0
    renewed: datetime | None = None
    """The ``left_at`` this process last wrote to the row (its lease on the retry)."""


class Retries:
    """This process's unfinished leaves (``Unfinished``), retried on each heartbeat."""

    def __init__(self) -> None:
        self._pending: dict[int, Unfinished] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, unfinished: Unfinished, error: BaseException) -> None:
        """Keep ``unfinished`` for the next ``run``; log its failure once."""
        who = unfinished.departure.info["name"] if unfinished.departure else f"client #{unfinished.client_id}"
        retry = f"retrying every {conf.lease_seconds() / 3:g} s until it completes"
        if isinstance(error, OUTAGES):
            logger.warning("the leave of %s failed (%s: %s); %s", who, type(error).__name__, error, retry)
        else:
            logger.error("the leave of %s failed; %s", who, retry, exc_info=error)
        self._pending[unfinished.client_id] = unfinished

    async def run(self) -> int:
        """Try every unfinished leave once more; returns how many completed.

        Not while the channel layer is settling after an outage (``settled``): the
        leave's broadcasts would miss the processes that have not restored their
        clients' group memberships yet."""
        done = 0
        settled = getattr(get_channel_layer(), "settled", None)
        if self._pending and settled is not None and not settled():
            return done
        for client_id, unfinished in list(self._pending.items()):
            unfinished.attempts += 1
            try:
                completed = await self._retry(unfinished)
            except Exception as exc:
                if not isinstance(exc, OUTAGES):
                    logger.error("retrying the leave of client #%s failed", client_id, exc_info=exc)
                continue
            del self._pending[client_id]
            if completed:
                done += 1
                who = unfinished.departure.info["name"] if unfinished.departure else f"client #{client_id}"
                logger.info("the leave of %s completed (retry %d)", who, unfinished.attempts)
        return done

    async def _retry(self, unfinished: Unfinished) -> bool:
        """One more try; False if there is nothing left for this process to do (another
        process finished the leave or took it over)."""
        departure = unfinished.departure
        if departure is None:
            departure = await db(_depart)(unfinished.client_id, unfinished.force)
            if departure is None:
                return False
            unfinished.departure = departure
            logger.info("client %s leaving: %s", departure.info["name"], unfinished.reason)
        if not departure.stored_gone and not departure.released:
            renewed = await db(_renew_claim)(unfinished.client_id, unfinished.renewed)
            if renewed is None:
                return False  # the row is gone or another process's sweeper took the leave over
            unfinished.renewed = renewed
        await _finish(unfinished.client_id, departure)
        return True


retries = Retries()
"""This process's unfinished leaves."""


def _renew_claim(client_id: int, mine: datetime | None) -> datetime | None:
    """Renew a leaving row's ``left_at`` (the retry's lease); None if it is gone or its
    ``left_at`` is no longer the one this process wrote (``mine``; None on the first try)."""
    now = timezone.now()
    rows = LiveClient.objects.filter(pk=client_id, left_at__isnull=False)
    if mine is not None:
        rows = rows.filter(left_at=mine)
    return now if rows.update(left_at=now) else None


def claim_stale() -> list[int]:
    """The leaving rows whose retrier stopped renewing them, claimed (``left_at`` pushed
    forward, conditionally) for this process to finish."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=conf.leave_retry_seconds())
    claimed = []
    for pk, left_at in LiveClient.objects.filter(left_at__lt=cutoff).values_list("pk", "left_at"):
        if LiveClient.objects.filter(pk=pk, left_at=left_at).update(left_at=now):
            claimed.append(pk)
    return claimed


async def finish_stale() -> int:
    """Finish the leaves whose retrier stopped (see ``claim_stale``); returns how many
    completed here (the others wait in ``retries``)."""
    count = 0
    for client_id in await db(claim_stale)():
        logger.warning("the leave of client #%s was left unfinished; finishing it", client_id)
        if await leave(client_id, "its leave was left unfinished", force=True):
            count += 1
    return count
