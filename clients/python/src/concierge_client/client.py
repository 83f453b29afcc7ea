"""The asyncio client: connect, IDENTIFY, requests by seq, events, reconnection."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from concierge_client.backoff import Backoff, should_retry
from concierge_client.errors import (
    CannotConnect,
    ConciergeError,
    ConnectionClosed,
    InvalidService,
    NotConnected,
    RequestTimeout,
    TerminalClose,
    UnexpectedReply,
    reply_error,
)
from concierge_client.events import (
    ClientDetails,
    ClientInfo,
    Connected,
    Disconnected,
    Event,
    FileEntry,
    FileListing,
    Hello,
    JsonObject,
    ServiceCreated,
    ServiceDeleted,
    ServiceInfo,
    ServiceResult,
    parse_event,
)
from concierge_client.files import FileApi
from concierge_client.urls import Endpoints

log = logging.getLogger("concierge_client")

PROTOCOL_VERSION = "0.2.0"
"""The protocol version this client speaks (sent in IDENTIFY)."""

Handler = Callable[[Any], Awaitable[None] | None]
"""An event handler: a function or coroutine function taking one event."""


@dataclass
class _Pending:
    future: asyncio.Future[list[JsonObject]]
    frames: list[JsonObject] = field(default_factory=list)


class EventStream:
    """An async iterator over the client's events, from the moment it was made until the client closes."""

    def __init__(self, client: ConciergeClient) -> None:
        self._client = client
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        client._streams.add(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stop receiving events."""
        self._client._streams.discard(self._queue)


class ConciergeClient:
    """A concierge client over one websocket, reconnected as the close-code table allows.

    ``url`` is the server's base URL (``http://host:port``); the websocket, file API and
    tus URLs are derived from it. ``resume=True`` asks the server for a resumable session
    (see docs/python-client.md) and resumes it after a dropped connection when the server offers one.
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        nickname: str | None = None,
        tags: Iterable[str] = (),
        secret: str | None = None,
        resume: bool = False,
        reconnect: bool = True,
        backoff: Backoff = Backoff(),  # noqa: B008 (frozen)
        max_attempts: int | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        name_grace: float = 30.0,
        version: str = PROTOCOL_VERSION,
    ) -> None:
        self.endpoints = Endpoints.from_url(url)
        self.name = name
        self.nickname = nickname
        self.tags = list(tags)
        self.secret = secret
        self.resume = resume
        self.reconnect = reconnect
        self.backoff = backoff
        self.max_attempts = max_attempts
        """Reconnection attempts in a row before giving up (None: no limit)."""
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.name_grace = name_grace
        """Seconds after losing a connection during which a reconnect refused with 4005 is retried: the
        name is then most likely still held by this client's own previous connection, which the server
        has not yet seen die (after a server restart, until another process sweeps the dead one's
        clients). 0 makes 4005 terminal at once, as it always is on the first connect."""
        self.version = version
        self._ws: ClientConnection | None = None
        self._hello: Hello | None = None
        self._seq = 0
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._streams: set[asyncio.Queue[Event | None]] = set()
        self._dispatch: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscriptions: dict[str, None] = {}
        self._awaiting: dict[str, None] = {}
        self._owned: dict[str, str | None] = {}
        self._ready = asyncio.Event()
        self._closing = False
        self._finished = False
        self._close_error: ConnectionClosed | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.files = FileApi(self.endpoints, key=self._key, owner=lambda: self.name)
        """The file API (upload, download, list, delete), with this client's key."""

    # -- Connection ----------------------------------------------------------------------

    async def connect(self) -> Hello:
        """Open the socket, IDENTIFY and wait for HELLO; then keep the connection alive.

        Raises CannotConnect when the server cannot be reached and ConnectionClosed
        (TerminalClose for a code that forbids retrying) when it refuses the IDENTIFY.
        """
        if self._ws is not None:
            raise ConciergeError("already connected")
        self._closing = self._finished = False
        self._close_error = None
        self._dispatch = asyncio.Queue()
        hello, ws = await self._open(first=True)
        reader = asyncio.create_task(self._read(ws))
        self._tasks = [asyncio.create_task(self._supervise(ws, reader)), asyncio.create_task(self._run_handlers())]
        self._ready.set()
        self._emit(Connected(hello, reconnected=False, resumed=False, recovered=True, missed=0))
        return hello

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket with ``code`` (1000: the session ends, the folder goes) and stop reconnecting."""
        self._closing = True
        self._ready.clear()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)
        current = asyncio.current_task()
        if self._tasks and self._tasks[0] is not current:
            supervisor = self._tasks[0]
            if ws is None:
                supervisor.cancel()  # waiting to reconnect: stop now
            await asyncio.wait({supervisor}, timeout=5)
            supervisor.cancel()
        for task in list(self._background):
            task.cancel()
        if not self._finished:
            self._emit(Disconnected(code, reason, retry_in=None))
        self._finish(None)
        if len(self._tasks) > 1 and self._tasks[1] is not current:
            await asyncio.wait({self._tasks[1]}, timeout=5)
        await self.files.aclose()

    async def wait_closed(self) -> None:
        """Wait until the client has stopped for good (closed, or refused a reconnection)."""
        if self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._tasks[0])

    async def __aenter__(self) -> ConciergeClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Identified, with a live socket."""
        return self._ready.is_set()

    @property
    def close_error(self) -> ConnectionClosed | None:
        """Why the client stopped for good, when the server's close code forbade (or ran out of) retries."""
        return self._close_error

    @property
    def hello(self) -> Hello:
        if self._hello is None:
            raise NotConnected("not connected yet")
        return self._hello

    @property
    def key(self) -> str:
        """This connection's secret key for the file API."""
        return self.hello.key

    @property
    def info(self) -> ClientInfo:
        """This client as others see it (its public id is ``info.uuid``)."""
        client = self.hello.client
        if client is None:
            return ClientInfo(self.name, self.nickname, self.hello.key, tuple(self.tags))
        return client

    @property
    def subscriptions(self) -> list[str]:
        """The services this client subscribed to (renewed after a reconnect)."""
        return list(self._subscriptions)

    def _key(self) -> str:
        return self.key

    def _identify(self, first: bool) -> JsonObject:
        payload: JsonObject = {
            "type": "IDENTIFY",
            "name": self.name,
            "nickname": self.nickname,
            "version": self.version,
            "secret": self.secret,
            "tags": self.tags,
        }
        if self.resume:
            session = None if first or self._hello is None else self._hello.session
            payload["resume"] = session.token if session is not None else True
        return payload

    async def _open(self, first: bool) -> tuple[Hello, ClientConnection]:
        try:
            ws = await websockets.connect(
                self.endpoints.ws,
                subprotocols=[websockets.Subprotocol("ert-concierge")],
                max_size=None,
                open_timeout=self.connect_timeout,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise CannotConnect(f"cannot reach {self.endpoints.ws}: {exc}") from exc
        try:
            await ws.send(json.dumps(self._identify(first)))
            async with asyncio.timeout(self.connect_timeout):
                frame = await ws.recv()
        except websockets.ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            raise (ConnectionClosed if should_retry(code) else TerminalClose)(code, reason) from None
        except TimeoutError:
            await ws.close()
            raise CannotConnect(f"no HELLO from {self.endpoints.ws} within {self.connect_timeout} s") from None
        try:
            payload = json.loads(frame)
            if payload.get("type") != "HELLO":
                raise ValueError(payload.get("type"))
            hello = Hello.from_json(payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            await ws.close()
            raise CannotConnect(f"expected HELLO from {self.endpoints.ws}, got {str(frame)[:200]!r}") from None
        self._ws, self._hello, self._seq = ws, hello, 0
        return hello, ws

    async def _read(self, ws: ClientConnection) -> tuple[int | None, str]:
        try:
            while True:
                frame = await ws.recv()
                if isinstance(frame, str):
                    self._route(frame)
        except websockets.ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")

    def _route(self, frame: str) -> None:
        try:
            payload = json.loads(frame)
        except ValueError:
            log.warning("ignored a frame that is not JSON: %.100r", frame)
            return
        if not isinstance(payload, dict):
            return
        seq = payload.get("seq")
        pending = self._pending.get(seq) if isinstance(seq, int) else None
        if pending is not None:
            if payload.get("type") == "FILE_LIST_RESULT" and payload.get("done") is False:
                pending.frames.append(payload)
                return
            del self._pending[seq]  # type: ignore[arg-type]
            if not pending.future.done():
                pending.future.set_result([*pending.frames, payload])
            return
        if seq is not None:
            return  # the reply to a request that timed out
        event = parse_event(payload)
        if isinstance(event, ServiceDeleted) and event.service.name in self._subscriptions:
            del self._subscriptions[event.service.name]
            self._awaiting[event.service.name] = None
        elif isinstance(event, ServiceCreated) and event.service.name in self._awaiting:
            task = asyncio.create_task(self._subscribe_again(event.service.name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._emit(event)

    async def _subscribe_again(self, service: str) -> None:
        """A service this client was subscribed to exists again: subscribe (its owner came back)."""
        if self._awaiting.pop(service, 0) is None:
            try:
                await self._service_result({"type": "SELF_SUBSCRIBE", "service": service}, "SELF_SUBSCRIBE_RESULT")
            except ConciergeError as exc:
                log.warning("could not subscribe to %r again: %s", service, exc)

    async def _supervise(self, ws: ClientConnection, reader: asyncio.Task[tuple[int | None, str]]) -> None:
        """Wait for each socket to end; reconnect with backoff while the close code allows."""
        while True:
            code, reason = await reader
            self._ready.clear()
            self._ws = None
            self._fail_pending(ConnectionClosed(code, reason))
            if self._closing:
                return
            if not self.reconnect or not should_retry(code):
                self._stop(TerminalClose(code, reason) if not should_retry(code) else ConnectionClosed(code, reason))
                return
            attempt = 0
            lost_at = asyncio.get_running_loop().time()
            while True:
                if self.max_attempts is not None and attempt >= self.max_attempts:
                    self._stop(ConnectionClosed(code, reason))
                    return
                delay = self.backoff.delay(attempt)
                self._emit(Disconnected(code, reason, retry_in=delay))
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    hello, ws = await self._open(first=False)
                    if self._closing:
                        await ws.close()
                        return
                    break
                except TerminalClose as exc:
                    held = asyncio.get_running_loop().time() - lost_at < self.name_grace
                    if exc.code != 4005 or not held:
                        self._stop(exc)
                        return
                    code, reason = exc.code, exc.reason
                    attempt += 1
                except (CannotConnect, ConnectionClosed) as exc:
                    code, reason = (exc.code, exc.reason) if isinstance(exc, ConnectionClosed) else (None, str(exc))
                    attempt += 1
            reader = asyncio.create_task(self._read(ws))
            if not hello.resumed:
                await self._restore()
            self._ready.set()
            self._emit(
                Connected(
                    hello,
                    reconnected=True,
                    resumed=hello.resumed,
                    recovered=hello.resumed and hello.recovered,
                    missed=hello.missed,
                )
            )

    async def _restore(self) -> None:
        """After a fresh (not resumed) session: create the services this client owned, subscribe again."""
        for service, nickname in list(self._owned.items()):
            try:
                result = await self._service_result(
                    {"type": "SERVICE_CREATE", "service": service, "nickname": nickname},
                    "SERVICE_CREATE_RESULT",
                    wait=False,
                )
                if not result.successful:
                    log.warning("service %r was taken by another client while reconnecting", service)
                    del self._owned[service]
            except ConciergeError as exc:
                log.warning("could not create service %r again: %s", service, exc)
        for service in list(self._subscriptions):
            try:
                await self._service_result(
                    {"type": "SELF_SUBSCRIBE", "service": service}, "SELF_SUBSCRIBE_RESULT", wait=False
                )
            except InvalidService:  # not there (yet): subscribe when it is created again
                self._subscriptions.pop(service, None)
                self._awaiting[service] = None
            except ConciergeError as exc:
                log.warning("could not subscribe to %r again: %s", service, exc)

    def _fail_pending(self, error: ConciergeError) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(error)

    def _stop(self, error: ConnectionClosed) -> None:
        self._close_error = error
        self._emit(Disconnected(error.code, error.reason, retry_in=None))
        self._finish(error)

    def _finish(self, error: ConciergeError | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._ready.clear()
        self._fail_pending(error or NotConnected("the client is closed"))
        for queue in self._streams:
            queue.put_nowait(None)
        self._dispatch.put_nowait(None)

    # -- Events ----------------------------------------------------------------------------

    def on(self, kind: str | type[Event], handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` for every event of ``kind`` (a type such as ``"MESSAGE"``, an event
        class such as ``Message``, or ``"*"`` for all). Coroutine handlers are awaited, one event
        at a time in arrival order. Returns a function that removes the handler."""
        key = kind if isinstance(kind, str) else kind.type
        self._handlers.setdefault(key, []).append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.get(key, []).remove(handler)

        return remove

    def events(self) -> EventStream:
        """An async iterator over every event from now on; it ends when the client stops."""
        return EventStream(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.events()

    def _emit(self, event: Event) -> None:
        for queue in self._streams:
            queue.put_nowait(event)
        self._dispatch.put_nowait(event)

    async def _run_handlers(self) -> None:
        while (event := await self._dispatch.get()) is not None:
            for handler in [*self._handlers.get(event.type, ()), *self._handlers.get("*", ())]:
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("event handler %r failed on %s", handler, event.type)

    # -- Requests ----------------------------------------------------------------------------

    async def call(self, payload: JsonObject, *, timeout: float | None = None) -> JsonObject:
        """Send ``payload`` and return the reply carrying its seq; an error reply raises its ReplyError."""
        frames = await self._exchange(payload, timeout=timeout)
        return frames[-1]

    async def _exchange(
        self, payload: JsonObject, *, timeout: float | None = None, wait: bool = True
    ) -> list[JsonObject]:
        limit = self.request_timeout if timeout is None else timeout
        if self._finished:
            raise NotConnected("the client is closed") from self._close_error
        try:
            if wait:
                async with asyncio.timeout(limit):
                    await self._ready.wait()
        except TimeoutError:
            raise NotConnected(f"not connected within {limit} s") from None
        loop = asyncio.get_running_loop()
        async with self._send_lock:
            ws = self._ws
            if ws is None:
                raise NotConnected("not connected")
            set_seq = payload.get("type") == "SELF_SET_SEQ"
            number = int(payload["seq"]) if set_seq else self._seq
            pending = _Pending(loop.create_future())
            self._pending[number] = pending
            try:
                await ws.send(json.dumps(payload))
            except websockets.ConnectionClosed as exc:
                self._pending.pop(number, None)
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
                raise ConnectionClosed(code, reason) from None
            self._seq = number + 1
        try:
            async with asyncio.timeout(limit):
                frames = await pending.future
        except TimeoutError:
            self._pending.pop(number, None)
            raise RequestTimeout(f"no reply to {payload.get('type')} (seq {number}) within {limit} s") from None
        error = reply_error(frames[-1])
        if error is not None:
            raise error
        return frames

    async def _expect(
        self, payload: JsonObject, reply_type: str, *, wait: bool = True, timeout: float | None = None
    ) -> JsonObject:
        reply = (await self._exchange(payload, wait=wait, timeout=timeout))[-1]
        if reply.get("type") != reply_type:
            raise UnexpectedReply(f"{payload.get('type')} was answered with {reply.get('type')}, not {reply_type}")
        return reply

    async def _service_result(self, payload: JsonObject, reply_type: str, *, wait: bool = True) -> ServiceResult:
        reply = await self._expect(payload, reply_type, wait=wait)
        result = ServiceResult(bool(reply.get("successful")), ServiceInfo.from_json(reply["service"]))
        service = str(payload["service"])
        if reply_type == "SERVICE_CREATE_RESULT" and result.successful:
            self._owned[service] = payload.get("nickname")
        elif reply_type == "SELF_SUBSCRIBE_RESULT":
            self._subscriptions[service] = None
        elif reply_type == "SELF_UNSUBSCRIBE_RESULT":
            self._subscriptions.pop(service, None)
            self._awaiting.pop(service, None)
        return result

    # -- MESSAGE --------------------------------------------------------------------------

    async def send(self, target: JsonObject, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE to any target object; returns on OK."""
        await self._expect({"type": "MESSAGE", "target": target, "data": data}, "OK", timeout=timeout)

    async def send_to(self, client: str | ClientInfo, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE to a client by name (a string) or by its public id (a ClientInfo)."""
        if isinstance(client, ClientInfo):
            await self.send_to_uuid(client.uuid, data, timeout=timeout)
        else:
            await self.send({"type": "NAME", "name": client}, data, timeout=timeout)

    async def send_to_uuid(self, uuid: str, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE to the client with this public id."""
        await self.send({"type": "UUID", "uuid": uuid}, data, timeout=timeout)

    async def broadcast(self, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE to every client (this one included)."""
        await self.send({"type": "ALL"}, data, timeout=timeout)

    async def send_to_service(self, service: str, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE to a service: from its owner to every subscriber, from a subscriber to the owner."""
        await self.send({"type": "SERVICE", "service": service}, data, timeout=timeout)

    async def send_to_service_client(self, service: str, uuid: str, data: Any, *, timeout: float | None = None) -> None:
        """MESSAGE from a service's owner to one client (by public id), stamped with the service."""
        await self.send({"type": "SERVICE_CLIENT_UUID", "service": service, "uuid": uuid}, data, timeout=timeout)

    # -- Services and subscriptions -------------------------------------------------------

    async def create_service(self, service: str, nickname: str | None = None) -> ServiceResult:
        """SERVICE_CREATE; ``successful`` is False when the name is taken (``service`` is then the existing one).
        A service this client created is created again after a reconnect that lost it."""
        payload: JsonObject = {"type": "SERVICE_CREATE", "service": service}
        if nickname is not None:
            payload["nickname"] = nickname
        return await self._service_result(payload, "SERVICE_CREATE_RESULT")

    async def delete_service(self, service: str) -> ServiceInfo:
        """SERVICE_DELETE (owner only: BadRequest otherwise)."""
        reply = await self._expect({"type": "SERVICE_DELETE", "service": service}, "SERVICE_DELETE_RESULT")
        self._owned.pop(service, None)
        return ServiceInfo.from_json(reply["service"])

    async def subscribe(self, service: str) -> ServiceResult:
        """SELF_SUBSCRIBE (``successful`` False: already subscribed).

        Kept: renewed after a reconnect, and when the service is deleted (its owner left), renewed
        as soon as a service of that name is created again; ``unsubscribe`` ends that."""
        return await self._service_result({"type": "SELF_SUBSCRIBE", "service": service}, "SELF_SUBSCRIBE_RESULT")

    async def unsubscribe(self, service: str) -> ServiceResult:
        """SELF_UNSUBSCRIBE (``successful`` False: was not subscribed)."""
        return await self._service_result({"type": "SELF_UNSUBSCRIBE", "service": service}, "SELF_UNSUBSCRIBE_RESULT")

    # -- Fetching -----------------------------------------------------------------------------

    async def fetch_self(self) -> ClientDetails:
        """SELF_FETCH: this client and its subscriptions."""
        return ClientDetails.from_json(await self._expect({"type": "SELF_FETCH"}, "SELF_FETCH_RESULT"))

    async def fetch_client(self, uuid: str) -> ClientDetails:
        """CLIENT_FETCH by public id (InvalidUuid when no such client)."""
        return ClientDetails.from_json(
            await self._expect({"type": "CLIENT_FETCH", "uuid": uuid}, "CLIENT_FETCH_RESULT")
        )

    async def fetch_clients(self) -> list[ClientInfo]:
        """CLIENT_FETCH_ALL: every live client."""
        reply = await self._expect({"type": "CLIENT_FETCH_ALL"}, "CLIENT_FETCH_ALL_RESULT")
        return [ClientInfo.from_json(c) for c in reply.get("clients") or ()]

    async def fetch_service(self, service: str) -> ServiceInfo:
        """SERVICE_FETCH (InvalidService when no such service)."""
        reply = await self._expect({"type": "SERVICE_FETCH", "service": service}, "SERVICE_FETCH_RESULT")
        return ServiceInfo.from_json(reply["service"])

    async def fetch_services(self) -> list[ServiceInfo]:
        """SERVICE_FETCH_ALL: every service."""
        reply = await self._expect({"type": "SERVICE_FETCH_ALL"}, "SERVICE_FETCH_ALL_RESULT")
        return [ServiceInfo.from_json(s) for s in reply.get("services") or ()]

    async def set_seq(self, seq: int) -> None:
        """SELF_SET_SEQ: the server numbers the next frame ``seq + 1`` (this client follows)."""
        await self._expect({"type": "SELF_SET_SEQ", "seq": seq}, "OK")

    # -- pw_file over the websocket ---------------------------------------------------------

    async def file_list(self, path: str = "", *, timeout: float | None = None) -> FileListing:
        """FILE_LIST: the entries at a pw_file path (``""``: the live clients' folders), all frames joined."""
        frames = await self._exchange({"type": "FILE_LIST", "path": path}, timeout=timeout)
        if frames[-1].get("type") != "FILE_LIST_RESULT":
            raise UnexpectedReply(f"FILE_LIST was answered with {frames[-1].get('type')}")
        entries = tuple(FileEntry.from_json(e) for frame in frames for e in frame.get("entries") or ())
        return FileListing(str(frames[-1].get("path", path)), entries)

    async def file_delete(self, path: str) -> str:
        """FILE_DELETE of one file in this client's folder (``/<name>/<path>``); returns the deleted path."""
        reply = await self._expect({"type": "FILE_DELETE", "path": path}, "FILE_DELETE_RESULT")
        return str(reply.get("path", path))
