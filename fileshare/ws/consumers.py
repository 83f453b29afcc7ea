"""The websocket boundary: handshake, sequence numbers, dispatch, close codes.

``ConciergeConsumer`` is the one place where exceptions become socket actions: a
HandshakeError before HELLO closes the socket with its close code; after HELLO a
FileshareError becomes its reply payload and the socket stays open; anything
unexpected is logged and becomes ERROR_INTERNAL (or close 4000 during the
handshake). No traceback reaches a client.

Why this module is long: the websocket boundary: handshake, resume, seq, dispatch, reply ordering and every close code; the one place exceptions become close codes or error payloads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from fileshare import conf, protocol
from fileshare.exceptions import (
    BadName,
    BadSecret,
    BadVersion,
    ChannelLayerDown,
    FatalDecode,
    FileshareError,
    HandshakeError,
    IdentifyTimeout,
    NotIdentified,
    ProtocolError,
)
from fileshare.models import LiveClient
from fileshare.observe import metrics
from fileshare.presence import instance, lifecycle, registry, sessions
from fileshare.protocol import CloseCode, JsonObject
from fileshare.pw import listing, pw_rpc, pw_transfer
from fileshare.ws import relay
from fileshare.ws.handlers import HANDLERS, Later

logger = logging.getLogger(__name__)

MAX_REPLIES_DUE = 256
"""Replies waiting for their delivery (handlers.Later) before the consumer stops
reading frames until they are sent: the sender's window, in frames."""


def parse_identify(text: str | None) -> registry.Identity:
    """Validate the first frame; raise the HandshakeError that names what is wrong."""
    if text is None:
        raise NotIdentified("the first frame must be a text IDENTIFY frame, not binary")
    try:
        payload = protocol.decode(text)
    except protocol.DecodeError as exc:
        raise FatalDecode(str(exc)) from None
    if payload["type"] != "IDENTIFY":
        raise NotIdentified(f"the first frame must be IDENTIFY, not {protocol.quote(payload['type'], 40)}")
    name = payload.get("name")
    if not protocol.is_valid_name(name, conf.max_name_length()):
        raise BadName(f"name must be 1-{conf.max_name_length()} letters, digits or '_'")
    listing.check_client_name(name)
    version = payload.get("version")
    if not protocol.is_compatible_version(version):
        raise BadVersion(f"version {protocol.quote(version, 40)} is not semver compatible with ^0.2.0")
    secret = conf.secret()
    if secret is not None and payload.get("secret") != secret:
        raise BadSecret("the secret does not match")
    try:
        nickname = protocol.text_field(payload, "nickname", conf.max_nickname_length())
        tags = protocol.text_list(payload, "tags", conf.max_tags(), conf.max_tag_length())
    except protocol.ShapeError as exc:
        raise FatalDecode(str(exc)) from None
    resume = payload.get("resume", False)
    if resume is None:
        resume = False
    if not (isinstance(resume, bool) or (isinstance(resume, str) and 0 < len(resume) <= sessions.MAX_TOKEN_LENGTH)):
        raise FatalDecode("resume must be true, false or a session token from an earlier HELLO")
    return registry.Identity(name=name, nickname=nickname, version=version, tags=tags, resume=resume)


Event = dict[str, Any]

UNHEARD: JsonObject = {"type": "BAD", "desc": "the socket closed before this frame was handled; it was not"}
"""The answer to a request (other than MESSAGE) read after its client closed: it is not
carried out, and the answer goes nowhere (the socket is closed)."""

_LATE: set[asyncio.Task[None]] = set()
"""Leaves that outlive their cancelled consumer (kept referenced until done)."""


def _finish_later(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _LATE.add(task)
    task.add_done_callback(_LATE.discard)


async def dispatch_each(
    sources: list[Callable[[], Awaitable[Event]]], dispatch: Callable[[Event], Awaitable[None]], turn: asyncio.Lock
) -> None:
    """Pass each event from ``sources`` to ``dispatch``, one at a time (holding ``turn``), until it raises.

    What channels' ``await_many_dispatch`` does, at a third of its cost per event: one
    long-lived reader per source instead of a new task and an ``asyncio.wait`` per
    event. A reader takes its next event only once its last one is dispatched, so a
    busy consumer still pushes back on its sources. While ``turn`` is free, no event
    is being dispatched.
    """

    async def read(source: Callable[[], Awaitable[Event]]) -> None:
        while True:
            event = await source()
            async with turn:
                await dispatch(event)

    readers = [asyncio.ensure_future(read(source)) for source in sources]
    try:
        done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_EXCEPTION)
        for reader in done:
            reader.result()
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


REFUSALS = frozenset(
    {"BAD", "INVALID_NAME", "INVALID_UUID", "INVALID_SERVICE", "ERROR_PROTOCOL", "ERROR_UNSUPPORTED", "ERROR_INTERNAL"}
)
"""Reply types that refuse a payload (counted by reply type in the metrics)."""


class ConciergeConsumer(AsyncConsumer):
    """One websocket client on ``/ws``."""

    client: LiveClient
    seq: int

    def __init__(self) -> None:
        self.identified = False
        self.closing = False
        self.seq = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._due: collections.deque[tuple[int, JsonObject | Later]] = collections.deque()
        self._replier: asyncio.Task[None] | None = None
        self._turn = asyncio.Lock()
        self._send_now: Callable[[str], bool] | None = None
        self._left = False
        self._transfers: pw_transfer.TransferService | None = None
        self._inbox: Any = None
        self._kicked = False
        self._adopted: asyncio.Future[None] | None = None
        """Done once the HELLO of a resume is sent: only then does the consumer read the
        held session's channel, which it adopted (``_adopted_event``)."""

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Event]], send: Any) -> None:
        # AsyncConsumer.__call__ with dispatch_each in place of await_many_dispatch.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self._inbox = getattr(receive, "__self__", None)
        sources = [receive]
        attached = False
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            self._adopted = asyncio.get_running_loop().create_future()
            sources.extend([self.channel_receive, self._adopted_event])
            self._send_now = scope.get("extensions", {}).get(relay.SEND_TEXT_NOW)
            attach = getattr(self.channel_layer, "attach", None)
            if self._send_now is not None and attach is not None:
                attach(self.channel_name, self._take_frame)
                attached = True
        self.base_send = send
        try:
            with contextlib.suppress(StopConsumer):
                await dispatch_each(sources, self.dispatch, self._turn)
        except asyncio.CancelledError:
            # Daphne cancels an application still busy (with frames the client sent before
            # closing) some seconds after its socket closed: the client must leave all the
            # same, in a task of its own that this cancellation does not reach.
            self.closing = True
            self._abandon_replies()
            if self.identified and not self._left:
                _finish_later(self._hold_or_leave(None, "socket closed while its frames were being answered"))
            raise
        except ChannelLayerDown as exc:
            # Redis unreachable (its outage is logged once by the layer): no traceback per client.
            logger.warning("closing the socket of %s: %s", self._who(), exc.detail)
            await self._fail()
        except Exception:
            # Handlers answer their own failures (ERROR_INTERNAL); what gets here broke the
            # consumer itself, e.g. the channel layer during a broadcast.
            logger.exception("the consumer of %s failed; closing its socket", self._who())
            await self._fail()
        finally:
            if attached:
                # Only its own taker: a resumed session's new consumer may have attached since.
                self.channel_layer.detach(self.channel_name, self._take_frame)

    async def _adopted_event(self) -> Event:
        """The next event of a resumed session's channel; waits forever (no layer call) in
        any other consumer. The consumer's own new channel goes unused after a resume."""
        assert self._adopted is not None
        if not self._adopted.done():
            await self._adopted
        event: Event = await self.channel_layer.receive(self.channel_name)
        return event

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch hops to a thread (close_old_connections) before every
        # message; our database calls manage their connections in their own hop.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- websocket events ---------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        offered = self.scope.get("subprotocols") or []
        chosen = conf.SUBPROTOCOL if conf.SUBPROTOCOL in offered else None
        # Accept first, always: daphne turns a close before accept into HTTP 403.
        await self.send({"type": "websocket.accept", "subprotocol": chosen})
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(conf.identify_timeout(), self._identify_expired)

    def _identify_expired(self) -> None:
        if not self.identified and not self.closing:
            asyncio.ensure_future(self._refuse(IdentifyTimeout(f"no IDENTIFY within {conf.identify_timeout():g} s")))

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        metrics.FRAMES_IN.inc()
        metrics.BYTES_IN.inc(len(message.get("text") or message.get("bytes") or ""))
        if self.closing:
            return
        if not self.identified:
            await self._identify(message.get("text"))
            return
        text = message.get("text")
        if text is None and self._socket_gone():
            return  # nobody would hear the answer
        if text is None:
            # A binary frame is one pw_rpc packet (docs/pw_file.md): answered in kind, not counted in seq.
            async for frame in pw_rpc.answer(self.client, message.get("bytes") or b"", self._transfers):
                key = "bytes" if isinstance(frame, bytes) else "text"
                await self.send({"type": "websocket.send", key: frame})
            return
        number = self.seq
        self.seq += 1
        reply = await self._handle(text)
        if isinstance(reply, Later) and reply.pending.done() and not self._due:
            reply = self._settled(reply)
        if isinstance(reply, Later) or self._due:
            await self._reply_later(number, reply)
            return
        reply.setdefault("seq", number)
        await self.send_payload(reply)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        self.closing = True
        if self.identified:
            metrics.DISCONNECTS.labels(str(message.get("code") or 1006)).inc()
            metrics.CLIENTS.dec()
        if self._deadline is not None:
            self._deadline.cancel()
        self._abandon_replies()
        await self._hold_or_leave(message.get("code"), f"socket closed ({message.get('code')})")
        raise StopConsumer()

    async def _send_bytes(self, frame: bytes) -> None:
        """A binary frame from a pw_transfer task, unless the socket is closing."""
        if not self.closing:
            await self.send({"type": "websocket.send", "bytes": frame})

    async def _leave(self, reason: str) -> None:
        """The client leaves (once): its transfers end, then its row, services, subscriptions and files go."""
        if not self.identified or self._left:
            return
        self._left = True
        if self._transfers is not None:
            await self._transfers.close()
        registry.local.remove(self.client)
        try:
            await lifecycle.leave(self.client.pk, reason)
        except Exception:
            logger.exception("leave failed for %s; the lease sweeper will finish it", self.client.name)

    async def _hold_or_leave(self, code: int | None, reason: str) -> None:
        """A resumable session whose socket ended other than by the client's own close
        (1000) or a kick is held (docs/sessions.md); any other client leaves."""
        if (
            self.identified
            and not self._left
            and self.client.session_hash is not None
            and code != 1000
            and not self._kicked
            and await self._hold()
        ):
            return
        await self._leave(reason)

    async def _hold(self) -> bool:
        """Hold the session for the grace: its row, channel and group memberships stay,
        and the channel keeps up to FILESHARE_RESUME_BUFFER frames. False if it could not be."""
        grace = conf.resume_grace()
        layer = self.channel_layer
        channel, session_hash = self.client.channel_name, self.client.session_hash
        assert session_hash is not None
        kept = layer.hold(channel, conf.resume_buffer(), grace)
        try:
            held = await sessions.hold(self.client.pk, session_hash, grace)
        except Exception:
            logger.exception("holding the session of %s failed; it leaves", self.client.name)
            held = False
        if not held:
            layer.release(channel)
            return False
        self._left = True  # its leave, if any, is the grace's end's (_end_hold_after)
        if self._transfers is not None:
            await self._transfers.close()
        _finish_later(self._end_hold_after(grace, self.client, session_hash, kept))
        await relay.notify_dashboard("client_away", client=self.client.name)
        logger.info("client %s dropped; its session is held for %g s", self.client.name, grace)
        return True

    async def _end_hold_after(self, grace: float, client: LiveClient, session_hash: str, kept: Any) -> None:
        """After the grace: unless the session was resumed, the leave runs. The layer's hold
        (``kept``) goes either way, unless a resume took it already."""
        await asyncio.sleep(grace)
        self.channel_layer.drop_hold(client.channel_name, kept)
        try:
            ended = await sessions.end_hold(client.pk, session_hash)
        except Exception:
            logger.exception("ending the held session of %s failed; the lease sweeper will", client.name)
            return
        registry.local.remove(client)  # only this object: a resume here registered its own
        if not ended:
            return  # resumed (here or elsewhere), or gone already
        try:
            await lifecycle.leave(client.pk, "its session was not resumed within the grace")
        except Exception:
            logger.exception("leave failed for %s; the lease sweeper will finish it", client.name)

    async def _fail(self) -> None:
        """After an unexpected failure: close the socket (4000, internal error) and leave,
        so that no registration outlives its consumer."""
        self._abandon_replies()
        with contextlib.suppress(Exception):
            await self.close(int(CloseCode.UNKNOWN), "internal error")
        await self._leave("the server failed serving it")

    def _who(self) -> str:
        return self.client.name if self.identified else "a client not identified yet"

    # -- channel layer events -------------------------------------------------------------

    async def fileshare_frame(self, message: dict[str, Any]) -> None:
        """A payload relayed from another client or a broadcast."""
        if self.identified and not self.closing:
            await self.send({"type": "websocket.send", "text": message["text"]})

    def _take_frame(self, message: dict[str, Any]) -> bool:
        """``fileshare_frame`` at once, in the sender's call, when nothing is before it.

        The layer offers a message here only while this channel's queue is empty; with
        no event being dispatched either (``_turn`` free), it is next in order. False
        leaves it to the queue: another event type, a handshake or dispatch under way,
        or a socket that has not drained (the queued path waits for it).
        """
        if message["type"] != "fileshare.frame" or self._turn.locked() or not self.identified or self.closing:
            return False
        assert self._send_now is not None
        if not self._send_now(message["text"]):
            return False
        metrics.FRAMES_OUT.inc()
        metrics.BYTES_OUT.inc(len(message["text"]))
        return True

    async def fileshare_missed(self, message: dict[str, Any]) -> None:
        """Events owed to this client were not delivered (its queue was full): say how many."""
        metrics.EVENTS_DROPPED.inc(int(message["count"]))
        if self.identified and not self.closing:
            await self.send_payload(relay.missed_payload(int(message["count"])))

    async def fileshare_forget(self, message: dict[str, Any]) -> None:
        """A client somewhere started to leave: this process must not route to it any more."""
        registry.remote.forget(str(message["name"]), str(message["public_id"]))

    async def fileshare_kick(self, message: dict[str, Any]) -> None:
        """Close the socket on request (dashboard, lapsed lease); a held session ends too."""
        self._kicked = True
        await self.close(int(message["code"]), str(message.get("reason", "")))

    # -- handshake and dispatch -----------------------------------------------------------

    def _can_hold(self) -> bool:
        """Whether this process's channel layer can keep a held session's frames."""
        return hasattr(self.channel_layer, "hold") and hasattr(self.channel_layer, "release")

    async def _identify(self, text: str | None) -> None:
        started = time.perf_counter()
        session: JsonObject | None = None
        try:
            identity = parse_identify(text)
            instance_id = await instance.current.ensure_started()
            if identity.resume is not False and self._can_hold():
                token, token_hash = sessions.new_token()
                grace = conf.resume_grace()
                session = {"token": token, "grace": int(grace) if grace.is_integer() else grace}
                if isinstance(identity.resume, str):
                    held = await sessions.resume(
                        identity.name, sessions.digest(identity.resume), token_hash, instance_id
                    )
                    if held is not None:
                        await self._resumed(held, session, started)
                        return
                    session["resumed"] = False
                self.client = await registry.register(identity, self.channel_name, instance_id, token_hash)
            else:
                self.client = await registry.register(identity, self.channel_name, instance_id)
        except HandshakeError as exc:
            await self._refuse(exc)
            return
        except Exception:
            logger.exception("IDENTIFY failed")
            await self._refuse(FileshareError("internal error during IDENTIFY"))
            return
        self.identified = True
        self._transfers = pw_transfer.TransferService(self.client, self._send_bytes)
        if self._deadline is not None:
            self._deadline.cancel()
        registry.local.add(self.client)
        info = self.client.info()
        hello: JsonObject = {
            "type": "HELLO",
            "uuid": str(self.client.key),
            "version": conf.SERVER_VERSION,
            "client": info,
        }
        if session is not None:
            resumed = session.pop("resumed", None)
            if resumed is not None:
                hello["resumed"] = resumed
            hello["session"] = session
        await self.send_payload(hello)
        metrics.CLIENTS.inc()
        metrics.HANDSHAKES.labels("hello").inc()
        metrics.HANDSHAKE_SECONDS.observe(time.perf_counter() - started)
        # Everyone already present hears of the newcomer; then it joins the group.
        await relay.broadcast({"type": "CLIENT_JOINED", "client": info})
        await relay.join(self.channel_name)
        await relay.notify_dashboard("client_joined", client=identity.name)
        logger.info("client %s identified", identity.name)

    async def _resumed(self, held: LiveClient, session: JsonObject, started: float) -> None:
        """Adopt a held session: its row, and its channel with the frames kept there, which
        this consumer reads from now on, after HELLO. Nobody else is told: for them it never left."""
        layer = self.channel_layer
        if self._send_now is not None:
            layer.detach(self.channel_name, self._take_frame)
        self.channel_name = held.channel_name
        missed, recovered = layer.release(self.channel_name)
        if self._send_now is not None:
            layer.attach(self.channel_name, self._take_frame)
        self.client = held
        self.identified = True
        self._transfers = pw_transfer.TransferService(self.client, self._send_bytes)
        if self._deadline is not None:
            self._deadline.cancel()
        registry.local.add(self.client)
        # Already a member, unless the session was held by a process that died since.
        await relay.join(self.channel_name)
        await self.send_payload(
            {
                "type": "HELLO",
                "uuid": str(held.key),
                "version": conf.SERVER_VERSION,
                "client": held.info(),
                "resumed": True,
                "missed": missed,
                "recovered": recovered,
                "session": session,
            }
        )
        assert self._adopted is not None
        self._adopted.set_result(None)
        await relay.notify_dashboard("client_back", client=held.name)
        metrics.CLIENTS.inc()
        metrics.HANDSHAKES.labels("resumed").inc()
        metrics.HANDSHAKE_SECONDS.observe(time.perf_counter() - started)
        logger.info("client %s resumed its session (%d frames kept, recovered: %s)", held.name, missed, recovered)

    async def _handle(self, text: str) -> JsonObject | Later:
        try:
            payload = protocol.decode(text)
            handler = HANDLERS.get(payload["type"])
            if handler is None:
                return {
                    "type": "ERROR_UNSUPPORTED",
                    "desc": f"unsupported payload type {protocol.quote(payload['type'])}",
                }
            if payload["type"] != "MESSAGE" and self._socket_gone():
                # The client closed after sending this: only its MESSAGEs still matter.
                return dict(UNHEARD)
            if payload["type"] != "MESSAGE" and self._due:
                # Other handlers may send frames of their own: earlier replies go first.
                await self._replies_sent()
            return await handler(self, payload)
        except (protocol.DecodeError, protocol.ShapeError) as exc:
            return ProtocolError(str(exc)).payload()
        except FileshareError as exc:
            return exc.payload()
        except Exception:
            logger.exception("handler failed for a frame from %s", self.client.name)
            return FileshareError("internal error; the request was not completed").payload()

    def _socket_gone(self) -> bool:
        """Whether daphne has queued this socket's disconnect (always the last event it
        queues), so that frames still waiting before it are from a client that left."""
        events: Any = getattr(self._inbox, "_queue", None)  # asyncio.Queue's deque
        return bool(events) and events[-1].get("type") == "websocket.disconnect"

    # -- replies that wait for a delivery ----------------------------------------------------

    def _settled(self, later: Later) -> JsonObject:
        """The reply a completed Later stands for."""
        try:
            later.pending.result()
        except FileshareError as exc:
            return exc.payload()
        except Exception:
            logger.exception("a delivery for %s failed", self.client.name)
            return FileshareError("internal error; the message was not delivered").payload()
        return dict(later.reply)

    async def _reply_later(self, number: int, reply: JsonObject | Later) -> None:
        """Queue a reply behind the ones still due; replies go out in frame order."""
        self._due.append((number, reply))
        if self._replier is None or self._replier.done():
            self._replier = asyncio.ensure_future(self._send_due())
        if len(self._due) >= MAX_REPLIES_DUE:
            await self._replies_sent()

    async def _replies_sent(self) -> None:
        if self._replier is not None and not self._replier.done():
            await asyncio.wait([self._replier])

    async def _send_due(self) -> None:
        while self._due and not self.closing:
            number, reply = self._due[0]
            if isinstance(reply, Later):
                await asyncio.wait([reply.pending])
                reply = self._settled(reply)
            reply.setdefault("seq", number)
            await self.send_payload(reply)
            # Only now: a reply handled meanwhile must not overtake this one (the send may wait).
            self._due.popleft()

    def _abandon_replies(self) -> None:
        """The socket is gone: the deliveries go on, their replies are dropped."""
        if self._replier is not None:
            self._replier.cancel()
        for _, reply in self._due:
            if isinstance(reply, Later):
                # Retrieve the outcome so that asyncio does not log it as never retrieved.
                reply.pending.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._due.clear()

    async def _refuse(self, exc: FileshareError) -> None:
        if self.closing:
            return
        logger.info("handshake refused (%s): %s", int(exc.close_code), exc.detail)
        metrics.HANDSHAKES.labels(str(int(exc.close_code))).inc()
        await self.close(int(exc.close_code), exc.detail)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``; the reason is truncated to fit a close frame."""
        if self.closing:
            return
        self.closing = True
        await self.send(
            {"type": "websocket.close", "code": code, "reason": reason.encode()[:120].decode(errors="ignore")}
        )

    async def send_payload(self, payload: JsonObject) -> None:
        """Send one frame; a reply over FILESHARE_MAX_FRAME_BYTES goes as BAD saying so."""
        text = protocol.encode(payload)
        limit = conf.max_frame_bytes()
        if len(text) * 4 > limit and protocol.encoded_size(text) > limit:
            size = protocol.encoded_size(text)
            logger.warning(
                "a %s reply of %d bytes to %s is over the frame limit", payload.get("type"), size, self._who()
            )
            refusal: JsonObject = {
                "type": "BAD",
                "desc": f"the reply ({payload.get('type')}) would be {size} bytes, over the frame limit of {limit} bytes",
            }
            if "seq" in payload:
                refusal["seq"] = payload["seq"]
            payload = refusal
            text = protocol.encode(refusal)
        if payload["type"] in REFUSALS:
            metrics.REFUSED.labels(payload["type"]).inc()
        await self.send({"type": "websocket.send", "text": text})

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            metrics.FRAMES_OUT.inc()
            metrics.BYTES_OUT.inc(len(message.get("text") or message.get("bytes") or ""))
        await self.base_send(message)


__all__ = ["CloseCode", "ConciergeConsumer", "parse_identify"]
