"""The Redis channel layer for several processes: channels_redis, made fast and lossless.

``ConciergeRedisLayer`` is channels_redis' ``RedisChannelLayer`` (same keys, groups,
serialisation and settings) with two parts replaced for process-specific channels
(the ``specific.<process>!<client>`` names every consumer gets):

* **send** is one Lua call (one round trip) instead of four commands, and capacity
  counts the messages waiting for *that channel* (a counter per channel in Redis,
  raised by ``send``, lowered when the consumer takes the message), not the
  messages waiting for the whole process. A full channel raises ``ChannelFull``,
  which the relay turns into an answer to the sender.
* **receive** is fed by one pump task per process that pops every waiting message
  of the process in one ``ZPOPMIN`` (blocking in ``BZPOPMIN`` only when there is
  none) and hands them to local queues. channels_redis instead makes four round
  trips per message, one message at a time, and its local buffer drops the oldest
  message when a channel falls behind; here nothing sent with ``send`` is dropped
  (the counter stops senders first). A client frame sent to a group (a broadcast)
  for a channel whose local queue holds ``capacity`` messages is not queued: it
  becomes (or adds to) a ``fileshare.missed`` marker at the tail of that queue, which the consumer
  turns into EVENTS_MISSED (channels_redis dropped the oldest, silently). Other
  group messages (dashboard notices, route forgets) for a full channel are dropped,
  as in channels' in-memory layer.
  ``send_missed`` sends such a marker to a channel that refused an event.

A channel's taker (``fileshare.layers.takers``) gets a message the pump hands out while
nothing waits in that channel's local queue; a counted one is uncounted at once.

Messages for a channel whose consumer has ended are dropped (and uncounted). The
pump pops a message before it is delivered; if the process dies in between, the
message is lost with the process and with the client it was meant for.

**Redis outages and restarts.** While Redis cannot be reached, every send, broadcast
and group change raises ``ChannelLayerDown`` (the client's request is answered with
what failed, not with a traceback) and the log gets one line when the outage starts
and one when it ends. A Redis that restarts (or is flushed) comes back without the
group memberships: without them, no client connected before would hear a broadcast
again. So each process remembers the groups its own channels joined, keeps a marker
key in Redis (``<prefix>alive:<process>``, renewed every ``WATCH_EVERY`` seconds), and
when the marker is gone re-adds every membership it holds, logging one line with the
counts (``check_memberships``).

Why this module is long: channels_redis' layer with its send, receive, group and recovery paths replaced; they share the batching outbox and the pump.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fileshare.exceptions import ChannelLayerDown
from fileshare.layers.takers import Takers
from fileshare.observe import metrics
from fileshare.ws.relay import FRAME, MISSED

logger = logging.getLogger(__name__)
_DIGESTS: dict[str, str] = {}

_SEND = """
local now, expired, expiry = ARGV[1], ARGV[2], ARGV[3]
local queued = {}
for i = 1, #KEYS / 2 do
    local queue, counter = KEYS[2 * i - 1], KEYS[2 * i]
    local member, score, capacity = ARGV[3 * i + 1], ARGV[3 * i + 2], tonumber(ARGV[3 * i + 3])
    redis.call('ZREMRANGEBYSCORE', queue, 0, expired)
    local depth = tonumber(redis.call('GET', counter) or '0')
    redis.call('EXPIRE', counter, expiry)
    if depth >= capacity then
        queued[i] = 0
    else
        redis.call('INCR', counter)
        redis.call('EXPIRE', counter, expiry)
        redis.call('ZADD', queue, score, member)
        redis.call('EXPIRE', queue, expiry)
        queued[i] = 1
    end
end
return queued
"""
"""Queue several messages in order. KEYS: per message, the process's queue and the
channel's counter. ARGV: now, expired before, expiry, then per message: itself,
its score and its channel's capacity. Per message, 1 if queued, 0 if its channel
is full."""

_TAKEN = """
for i = 1, #KEYS do
    local left = redis.call('DECRBY', KEYS[i], ARGV[i])
    if left <= 0 then
        redis.call('DEL', KEYS[i])
    else
        redis.call('EXPIRE', KEYS[i], ARGV[#ARGV])
    end
end
"""
"""KEYS: channel counters. ARGV: how many each channel's consumer took, then expiry."""

_COUNTED = "__fileshare_counted__"
_BATCH = 500
_REPORT_AFTER = 0.002
"""Seconds a consumer's takings wait to be reported, so that one trip reports many.
Senders see a channel fuller than it is for that long, never emptier."""
_REPORT_AT_ONCE = 32
"""Report without waiting once this many takings are waiting."""


@dataclass(slots=True)
class _Outgoing:
    channel: str
    process_channel: str
    member: bytes
    score: float
    done: asyncio.Future[None]
    extra: int = 0
    """Room beyond the channel's capacity this message may take (the missed-events marker)."""


UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""What redis-py raises when Redis cannot be reached (refused, reset, timed out, loading)."""

WATCH_EVERY = 1.0
"""Seconds between two checks that Redis still holds this process's group memberships."""
SETTLE = 3 * WATCH_EVERY
"""Seconds after Redis is back (or lost memberships were restored) until ``settled``:
by then every process has had time to restore its own, so a broadcast reaches them all."""
MARKER_TTL = 600
"""Seconds the marker key of a process outlives its last renewal (a dead process's goes)."""


POOL_CONNECTIONS = 100
"""Redis connections per process and Redis host at most (redis-py's default)."""
POOL_WAIT = 20.0
"""Seconds a command waits for a free connection before it fails (redis-py's default)."""


class ConciergeRedisLayer(Takers, RedisChannelLayer):
    """channels_redis with a one-round-trip send, per-channel capacity and batched receive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queues: dict[str, collections.deque[tuple[bool, dict[str, Any]]]] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._taken: collections.Counter[str] = collections.Counter()
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._reporting: asyncio.Task[None] | None = None
        self._outbox: list[_Outgoing] = []
        self._sending: asyncio.Task[None] | None = None
        self._last_queued: asyncio.Future[None] | None = None
        self._last_score = 0.0
        self._down_since: float | None = None
        self._back_at = -SETTLE
        self.memberships: dict[str, set[str]] = collections.defaultdict(set)
        """The groups this process's channels joined (group -> channels), to restore them."""
        self._watch: asyncio.Task[None] | None = None
        self._marked: set[int] = set()

    def create_pool(self, index: int) -> Any:
        """A pool that waits for a free connection instead of refusing the command.

        redis-py's default pool raises MaxConnectionsError once 100 connections are in
        use; 200 clients identifying at once on one process reached that (each
        CLIENT_JOINED broadcast holds one while it runs), and their handshakes failed.
        Here a command waits for a connection (``max_connections``, default
        POOL_CONNECTIONS; ``timeout`` seconds at most, default POOL_WAIT) as with
        redis-py's ``BlockingConnectionPool``. A host given other than by address
        (sentinels) keeps channels_redis' pool.
        """
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:
            return super().create_pool(index)
        host.setdefault("max_connections", POOL_CONNECTIONS)
        host.setdefault("timeout", POOL_WAIT)
        # After a Redis restart every pooled connection is dead, and the first command on
        # each would fail: a command that meets a closed connection is tried once more,
        # on a new one. (Only a connection that broke after Redis ran the command and
        # before its reply arrived would run it twice; a restart takes whatever the
        # first try did with it.)
        host.setdefault("retry", Retry(NoBackoff(), 1))
        host.setdefault("retry_on_error", [RedisConnectionError])
        return BlockingConnectionPool.from_url(address, **host)

    def _counter_key(self, channel: str) -> str:
        return f"{self.prefix}depth:{channel}"

    # -- outages -----------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> None:
        """Note that Redis could not be reached; the first failure of an outage is logged
        (one line, no traceback), the others are not."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error(
                "Redis is unreachable (%s: %s); sends, broadcasts and group changes fail until it is back",
                type(exc).__name__,
                exc,
            )

    def unreachable(self, exc: BaseException, what: str) -> ChannelLayerDown:
        """The error for an operation that failed because Redis is unreachable (noted by
        ``_unreachable``); ``what`` names what was not sent."""
        self._unreachable(exc)
        metrics.LAYER_ERRORS.labels("send").inc()
        return ChannelLayerDown(
            f"the channel layer (Redis) is unreachable, so {what} could not be sent; try again later"
        )

    def _reachable(self) -> None:
        """Redis answered: log the end of an outage (once)."""
        if self._down_since is not None:
            logger.warning("Redis is reachable again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
            self._back_at = time.monotonic()

    def settled(self) -> bool:
        """Whether Redis is reachable and has been for SETTLE seconds since it came back
        or lost this process's memberships. Work that was held back by an outage (a
        leave's broadcasts) waits for this, so that every process has restored its
        clients' memberships before it broadcasts."""
        return self._down_since is None and time.monotonic() - self._back_at >= SETTLE

    # -- sending -----------------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if "!" not in channel:
            await self._outbox_sent()
            try:
                await super().send(channel, message)
            except UNREACHABLE as exc:
                raise self.unreachable(exc, "the message") from None
            return
        await self.send_in_order(channel, message)

    async def send_missed(self, channel: str) -> None:
        """Tell ``channel``'s consumer, after what is queued for it, that it missed a message.

        The marker may take one place beyond the channel's capacity; should that place
        be taken by an earlier marker not yet handed out, this miss is not counted
        (EVENTS_MISSED's count is then a lower bound; the client is told either way).
        """
        queue = self._queues.get(channel)
        if queue is not None:
            self._mark_missed(channel, queue, 1, counted=False)
            self._wake(channel)
            return
        with contextlib.suppress(ChannelFull):
            await self.send_in_order(channel, {"type": MISSED, "count": 1}, extra=1)

    def send_in_order(self, channel: str, message: dict[str, Any], *, extra: int = 0) -> asyncio.Future[None]:
        """Queue ``message`` for ``channel`` behind everything this process sent before.

        The message's place is fixed when this returns; the future completes when
        Redis has it, or fails with ChannelFull. Messages queued while a trip is
        under way go together in the next one, so a sender need not wait for one
        message's trip before handing over the next.
        """
        assert "!" in channel, "only process-specific channels are sent in order"
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        member = self.serialize({**message, "__asgi_channel__": channel, _COUNTED: True})
        # Scores order a process's queue: strictly increasing, whatever the clock does.
        self._last_score = max(time.time(), self._last_score + 1e-6)
        self._outbox.append(_Outgoing(channel, self.non_local_name(channel), member, self._last_score, done, extra))
        self._last_queued = done
        if self._sending is None or self._sending.done():
            self._sending = loop.create_task(self._send_outbox(), name="redis outbox")
        return done

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:_BATCH], self._outbox[_BATCH:]
            by_index: dict[int, list[_Outgoing]] = collections.defaultdict(list)
            for item in batch:
                by_index[self.consistent_hash(item.process_channel)].append(item)
            for index, items in by_index.items():
                now = time.time()
                keys: list[str] = []
                args: list[Any] = [now, int(now) - int(self.expiry), int(self.expiry)]
                for item in items:
                    keys += [self.prefix + item.process_channel, self._counter_key(item.channel)]
                    args += [item.member, item.score, self.get_capacity(item.channel) + item.extra]
                try:
                    queued = await self._script(self.connection(index), _SEND, len(keys), *keys, *args)
                except BaseException as exc:
                    error: Exception = exc if isinstance(exc, Exception) else ConnectionError(str(exc))
                    if isinstance(exc, UNREACHABLE):
                        error = self.unreachable(exc, "the message")
                    for item in items:
                        if not item.done.done():
                            item.done.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self._reachable()
                for item, ok in zip(items, queued, strict=True):
                    if not item.done.done():
                        if ok:
                            item.done.set_result(None)
                        else:
                            item.done.set_exception(ChannelFull())

    async def _outbox_sent(self) -> None:
        """Wait until everything queued by ``send_in_order`` so far has been handed to Redis
        (batches go in order: the last one queued is the last one done)."""
        last = self._last_queued
        if last is not None and not last.done() and last.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([last])

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        # A broadcast goes after the messages sent before it, as a send would.
        await self._outbox_sent()
        try:
            await super().group_send(group, message)
        except UNREACHABLE as exc:
            raise self.unreachable(exc, "the broadcast") from None

    async def group_add(self, group: str, channel: str) -> None:
        # Remembered first: if Redis is down now, the membership is restored when it is back.
        self.memberships[group].add(channel)
        try:
            await super().group_add(group, channel)
        except UNREACHABLE as exc:
            raise self.unreachable(exc, "the group membership") from None

    async def group_discard(self, group: str, channel: str) -> None:
        channels = self.memberships.get(group)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.memberships[group]
        try:
            await super().group_discard(group, channel)
        except UNREACHABLE as exc:
            raise self.unreachable(exc, "the group change") from None

    # -- receiving ---------------------------------------------------------------------------

    async def new_channel(self, prefix: str = "specific") -> str:
        channel: str = await super().new_channel(prefix)
        self._queues[channel] = collections.deque()
        return channel

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        process_channel = self.non_local_name(channel)
        assert process_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        queue = self._queues.setdefault(channel, collections.deque())
        self._ensure_pump(process_channel)
        try:
            while not queue:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters[channel] = waiter
                try:
                    await waiter
                finally:
                    if self._waiters.get(channel) is waiter:
                        del self._waiters[channel]
        except asyncio.CancelledError:
            # The consumer has ended: whatever still waits for it is dropped and uncounted.
            self._close_channel(channel)
            raise
        counted, message = queue.popleft()
        if counted:
            self._took(channel, 1)
        return message

    def _close_channel(self, channel: str) -> None:
        queue = self._queues.pop(channel, None)
        if queue:
            self._took(channel, sum(1 for counted, _ in queue if counted))
        # An ended consumer's memberships are not restored after a Redis restart.
        for group in [g for g, channels in self.memberships.items() if channel in channels]:
            self.memberships[group].discard(channel)
            if not self.memberships[group]:
                del self.memberships[group]

    def _ensure_pump(self, process_channel: str) -> None:
        """Start the task that moves ``process_channel``'s messages from Redis to local queues."""
        loop = asyncio.get_running_loop()
        pump = self._pumps.get(process_channel)
        if pump is None or pump.done() or pump.get_loop() is not loop:
            self._pumps[process_channel] = loop.create_task(
                self._run_pump(process_channel), name=f"redis pump {process_channel}"
            )
        if self._watch is None or self._watch.done() or self._watch.get_loop() is not loop:
            self._watch = loop.create_task(self._watch_memberships(), name="redis membership watch")

    async def _run_pump(self, process_channel: str) -> None:
        key = self.prefix + process_channel
        connection = self.connection(self.consistent_hash(process_channel))
        while True:
            try:
                # One trip: wait for a message, then take the others already waiting.
                async with connection.pipeline(transaction=False) as pipe:
                    pipe.bzpopmin(key, timeout=self.brpop_timeout)
                    pipe.zpopmin(key, _BATCH)
                    blocked, popped = await pipe.execute()
                if blocked is None:
                    continue
                popped = [(blocked[1], blocked[2]), *popped]
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                self._unreachable(exc)
                await asyncio.sleep(1)
                continue
            except Exception:
                logger.exception("receiving from Redis failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            self._reachable()
            for member, _score in popped:
                self._hand_out(self.deserialize(member))

    def _hand_out(self, message: dict[str, Any]) -> None:
        target = message.pop("__asgi_channel__")
        counted = bool(message.pop(_COUNTED, False))
        for channel in target if isinstance(target, list) else [target]:
            queue = self._queues.get(channel)
            if queue is None or (not queue and self._taken_at_once(channel, message)):
                if counted:  # gone, or taken at once
                    self._took(channel, 1)
                continue
            if message.get("type") == MISSED:
                self._mark_missed(channel, queue, int(message.get("count", 1)), counted)
            elif not counted and len(queue) >= self.get_capacity(channel):
                if message.get("type") == FRAME:
                    # A client's event for a channel that is behind: the consumer is told it missed it.
                    self._mark_missed(channel, queue, 1, counted=False)
                    self._wake(channel)
                    continue
                # Other group messages (dashboards, route forgets) stay best-effort, as in the
                # in-memory layer: this one is not queued (removing an older one instead could
                # drop a client's event, or the marker, silently).
                continue
            else:
                queue.append((counted, message))
            self._wake(channel)

    def _wake(self, channel: str) -> None:
        waiter = self._waiters.get(channel)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _mark_missed(
        self, channel: str, queue: collections.deque[tuple[bool, dict[str, Any]]], count: int, counted: bool
    ) -> None:
        """Add ``count`` missed messages to the marker at the tail of ``channel``'s local queue
        (a new one if the tail is something else). ``counted``: the marker arrived counted."""
        if queue and queue[-1][1].get("type") == MISSED:
            queue[-1][1]["count"] += count
            if counted:
                self._took(channel, 1)  # merged: nobody will take it
            return
        queue.append((counted, {"type": MISSED, "count": count}))

    # -- capacity bookkeeping ----------------------------------------------------------------

    def _took(self, channel: str, count: int) -> None:
        """Lower the channel's counter in Redis by ``count``, batched with other channels."""
        if count <= 0:
            return
        self._taken[channel] += count
        if self._reporting is None or self._reporting.done():
            self._reporting = asyncio.get_running_loop().create_task(self._report_taken())

    async def _report_taken(self) -> None:
        if self._taken.total() < _REPORT_AT_ONCE:
            await asyncio.sleep(_REPORT_AFTER)
        while self._taken:
            taken, self._taken = self._taken, collections.Counter()
            channels = list(taken)
            keys = [self._counter_key(c) for c in channels]
            # One connection per shard of the counters (all on one with a single host).
            by_index: dict[int, list[int]] = collections.defaultdict(list)
            for position, channel in enumerate(channels):
                by_index[self.consistent_hash(self.non_local_name(channel))].append(position)
            for index, positions in by_index.items():
                try:
                    await self._script(
                        self.connection(index),
                        _TAKEN,
                        len(positions),
                        *(keys[p] for p in positions),
                        *(taken[channels[p]] for p in positions),
                        int(self.expiry),
                    )
                except UNREACHABLE as exc:
                    self._unreachable(exc)  # the counters went with Redis, or expire
                except Exception:
                    logger.exception("lowering channel counters in Redis failed; they expire in %s s", self.expiry)

    # -- group memberships after a Redis restart -------------------------------------------

    def _marker_key(self) -> str:
        return f"{self.prefix}alive:{self.client_prefix}"

    async def _watch_memberships(self) -> None:
        """Every WATCH_EVERY seconds, check each Redis host for this process's marker and
        restore the memberships it lost."""
        while True:
            for index in range(self.ring_size):
                try:
                    await self.check_memberships(index)
                except UNREACHABLE as exc:
                    self._unreachable(exc)
                except Exception:
                    logger.exception("checking group memberships in Redis failed; trying again in %s s", WATCH_EVERY)
            await asyncio.sleep(WATCH_EVERY)

    async def check_memberships(self, index: int) -> int:
        """Renew the marker on host ``index``; if it was gone, re-add this process's
        memberships of the groups kept there. Returns how many were re-added."""
        connection = self.connection(index)
        key = self._marker_key()
        if await connection.set(key, b"1", ex=MARKER_TTL, xx=True):
            self._reachable()
            return 0
        groups = {
            group: set(channels)
            for group, channels in self.memberships.items()
            if channels and self.consistent_hash(group) == index
        }
        async with connection.pipeline(transaction=False) as pipe:
            now = time.time()
            for group, channels in groups.items():
                pipe.zadd(self._group_key(group), dict.fromkeys(channels, now))
                pipe.expire(self._group_key(group), self.group_expiry)
            pipe.set(key, b"1", ex=MARKER_TTL)
            await pipe.execute()
        # A channel that left meanwhile must not stay in a group it left.
        for group, channels in groups.items():
            gone = channels - self.memberships.get(group, set())
            if gone:
                await connection.zrem(self._group_key(group), *gone)
        self._reachable()
        self._back_at = time.monotonic()
        restored = sum(len(channels) for channels in groups.values())
        if index in self._marked:
            logger.warning(
                "Redis (host %d) lost this process's group memberships (restarted or flushed): "
                "restored %d memberships of %d channels in %d groups",
                index,
                restored,
                len(set().union(*groups.values())) if groups else 0,
                len(groups),
            )
        self._marked.add(index)
        return restored

    @staticmethod
    async def _script(connection: Any, script: str, keys: int, *args: Any) -> Any:
        """EVALSHA, loading the script on the first NOSCRIPT."""
        digest = _DIGESTS.get(script)
        if digest is None:
            digest = _DIGESTS[script] = hashlib.sha1(script.encode()).hexdigest()
        try:
            return await connection.evalsha(digest, keys, *args)
        except NoScriptError:
            return await connection.eval(script, keys, *args)

    async def close_pools(self) -> None:
        for task in [*self._pumps.values(), self._reporting, self._sending, self._watch]:
            if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._pumps.clear()
        self._reporting = None
        self._watch = None
        await super().close_pools()


__all__ = ["ConciergeRedisLayer"]
