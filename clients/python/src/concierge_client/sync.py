"""A thin synchronous wrapper: the asyncio client runs on an event loop in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from concierge_client.client import ConciergeClient, EventStream, Handler
from concierge_client.events import (
    ClientDetails,
    ClientInfo,
    Event,
    FileListing,
    Hello,
    JsonObject,
    ServiceInfo,
    ServiceResult,
)
from concierge_client.files import Downloaded, Uploaded
from concierge_client.tus import Progress

T = TypeVar("T")


class SyncConciergeClient:
    """The same client for code without asyncio. Takes the arguments of :class:`ConciergeClient`.

    Handlers registered with :meth:`on` run on the background thread.
    """

    def __init__(self, url: str, name: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="concierge-client", daemon=True)
        self._thread.start()
        self._client: ConciergeClient = self._run(self._make(url, name, options))

    @staticmethod
    async def _make(url: str, name: str, options: dict[str, Any]) -> ConciergeClient:
        return ConciergeClient(url, name, **options)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def client(self) -> ConciergeClient:
        """The asyncio client underneath (use it only from its loop)."""
        return self._client

    def connect(self) -> Hello:
        return self._run(self._client.connect())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop the background loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close(code, reason))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SyncConciergeClient:
        try:
            self.connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def hello(self) -> Hello:
        return self._client.hello

    @property
    def key(self) -> str:
        return self._client.key

    @property
    def info(self) -> ClientInfo:
        return self._client.info

    @property
    def connected(self) -> bool:
        return self._client.connected

    def on(self, kind: str | type[Event], handler: Handler) -> Callable[[], None]:
        """Register a handler (it runs on the background thread); returns a function that removes it."""
        return self._run(self._on(kind, handler))

    async def _on(self, kind: str | type[Event], handler: Handler) -> Callable[[], None]:
        return self._client.on(kind, handler)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Every event from now on (the iterator is registered at once), until the client stops or
        ``timeout`` seconds pass without one."""
        stream = self._run(self._stream())
        return self._iterate(stream, timeout)

    async def _stream(self) -> EventStream:
        return self._client.events()

    @staticmethod
    async def _next(stream: EventStream) -> Event | None:
        return await anext(stream, None)

    def _iterate(self, stream: EventStream, timeout: float | None) -> Iterator[Event]:
        try:
            while True:
                future = asyncio.run_coroutine_threadsafe(self._next(stream), self._loop)
                try:
                    event = future.result(timeout)
                except concurrent.futures.TimeoutError:
                    future.cancel()
                    return
                if event is None:
                    return
                yield event
        finally:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(stream.close)

    def call(self, payload: JsonObject, *, timeout: float | None = None) -> JsonObject:
        return self._run(self._client.call(payload, timeout=timeout))

    def send_to(self, client: str | ClientInfo, data: Any) -> None:
        self._run(self._client.send_to(client, data))

    def send_to_uuid(self, uuid: str, data: Any) -> None:
        self._run(self._client.send_to_uuid(uuid, data))

    def broadcast(self, data: Any) -> None:
        self._run(self._client.broadcast(data))

    def send_to_service(self, service: str, data: Any) -> None:
        self._run(self._client.send_to_service(service, data))

    def send_to_service_client(self, service: str, uuid: str, data: Any) -> None:
        self._run(self._client.send_to_service_client(service, uuid, data))

    def create_service(self, service: str, nickname: str | None = None) -> ServiceResult:
        return self._run(self._client.create_service(service, nickname))

    def delete_service(self, service: str) -> ServiceInfo:
        return self._run(self._client.delete_service(service))

    def subscribe(self, service: str) -> ServiceResult:
        return self._run(self._client.subscribe(service))

    def unsubscribe(self, service: str) -> ServiceResult:
        return self._run(self._client.unsubscribe(service))

    def fetch_self(self) -> ClientDetails:
        return self._run(self._client.fetch_self())

    def fetch_client(self, uuid: str) -> ClientDetails:
        return self._run(self._client.fetch_client(uuid))

    def fetch_clients(self) -> list[ClientInfo]:
        return self._run(self._client.fetch_clients())

    def fetch_service(self, service: str) -> ServiceInfo:
        return self._run(self._client.fetch_service(service))

    def fetch_services(self) -> list[ServiceInfo]:
        return self._run(self._client.fetch_services())

    def set_seq(self, seq: int) -> None:
        self._run(self._client.set_seq(seq))

    def file_list(self, path: str = "") -> FileListing:
        return self._run(self._client.file_list(path))

    def file_delete(self, path: str) -> str:
        return self._run(self._client.file_delete(path))

    def upload(
        self,
        source: str | os.PathLike[str],
        path: str | None = None,
        *,
        progress: Progress | None = None,
        **options: Any,
    ) -> Uploaded:
        return self._run(self._client.files.upload(source, path, progress=progress, **options))

    def download(
        self,
        remote: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> Downloaded:
        return self._run(self._client.files.download(remote, dest, progress=progress, resume=resume))

    def list(self, path: str = "") -> FileListing:
        return self._run(self._client.files.list(path))

    def delete(self, path: str, client: str | None = None) -> None:
        self._run(self._client.files.delete(path, client))
