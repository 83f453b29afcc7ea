"""What a pw_transfer resource id names, and the bytes behind it.

docs/pw_file.md, "pw_transfer". A resource id is a pw_file ``file_id``: a client
file (its ``StoredFile`` row, while its owner is live) or a published entry
(``fileshare.pw.published``). Any live client reads either; only a file's owner
writes it, and published files are read-only.

A write is spooled, as it arrives, to a file with no name (``offload.SpooledBody``:
gone with its descriptor, whatever happens to the process), and handed to
``files.store`` only once complete: that swaps the row's blob in one transaction,
so the file keeps its id and readers see the old bytes or the new, never a mix.
Storage I/O runs in worker threads, database work through ``registry.db``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from asgiref.sync import sync_to_async

from fileshare import conf
from fileshare.exceptions import NotFound, ReadOnly
from fileshare.fileapi import offload
from fileshare.models import LiveClient, StoredFile
from fileshare.presence.registry import db
from fileshare.pw import published
from fileshare.store import files, storage

WINDOW_LIMIT = 0xFFFF_FFFF
"""pw_transfer's ``window_end_offset`` is a uint32: no transfer reaches past 4 GiB - 1."""


@dataclass(frozen=True)
class Readable:
    """A file a read transfer streams: a client file's blob or a published file's path."""

    file_id: int
    size: int
    blob: str | None = None
    local_path: str | None = None

    def open_at(self, offset: int) -> IO[bytes]:
        """A binary reader positioned at ``offset`` (sync; worker thread)."""
        if self.blob is not None:
            return storage.open_blob(self.blob, offset)
        assert self.local_path is not None
        handle = open(self.local_path, "rb")  # noqa: SIM115 (closed by BlockReader.close)
        handle.seek(offset)
        return handle


@dataclass(frozen=True)
class Writable:
    """A client file its owner may replace: the row's id, owner and path."""

    file_id: int
    owner_id: int
    folder: str
    owner_name: str
    path: str


def _published_id(resource_id: int) -> str | None:
    """The name of the configured, named published entry with that id, or None."""
    for file_id, name, _ in published.configured():
        if file_id == resource_id:
            return name
    return None


def _published(resource_id: int) -> Readable:
    name = _published_id(resource_id)
    if name is None:
        raise NotFound(f"no file has id {resource_id}")
    entry = published.find(name)
    return Readable(file_id=resource_id, size=entry.size, local_path=entry.local_path)


def _client_file(resource_id: int) -> Readable:
    row = (
        StoredFile.objects.filter(file_id=resource_id, owner__left_at__isnull=True).values("blob", "size").first()
        if resource_id < published.ID_BASE
        else None
    )
    if row is None:
        raise NotFound(f"no file has id {resource_id}")
    return Readable(file_id=resource_id, size=row["size"], blob=row["blob"])


async def readable(resource_id: int) -> Readable:
    """The file behind ``resource_id`` for any live client; raises NotFound."""
    if resource_id >= published.ID_BASE:
        found: Readable = await sync_to_async(_published, thread_sensitive=False)(resource_id)
        return found
    client_file: Readable = await db(_client_file)(resource_id)
    return client_file


def _writable(asker_id: int, resource_id: int) -> Writable:
    if resource_id >= published.ID_BASE:
        if _published_id(resource_id) is None:
            raise NotFound(f"no file has id {resource_id}")
        raise ReadOnly("published files are read-only")
    row = StoredFile.objects.select_related("owner").filter(file_id=resource_id, owner__left_at__isnull=True).first()
    if row is None:
        raise NotFound(f"no file has id {resource_id}")
    owner: LiveClient = row.owner
    if owner.pk != asker_id:
        raise ReadOnly(f"file {resource_id} is {owner.name}'s: only its owner writes it")
    return Writable(file_id=resource_id, owner_id=owner.pk, folder=owner.folder, owner_name=owner.name, path=row.path)


async def writable(asker: LiveClient, resource_id: int) -> Writable:
    """The file behind ``resource_id`` if ``asker`` owns it; raises NotFound or ReadOnly (403)."""
    target: Writable = await db(_writable)(asker.pk, resource_id)
    return target


def _exists(file_id: int) -> bool:
    return StoredFile.objects.filter(file_id=file_id, owner__left_at__isnull=True).exists()


async def still_there(source: Readable) -> bool:
    """False once a client file is deleted or its owner has left (published files stay)."""
    if source.blob is None:
        return True
    alive: bool = await db(_exists)(source.file_id)
    return alive


def upload_limit() -> int:
    """The most bytes one write may carry: the file API's limit, and pw_transfer's 4 GiB - 1."""
    return min(conf.max_upload_bytes(), WINDOW_LIMIT)


class BlockReader:
    """Reads a Readable in blocks of ``conf.chunk_size()`` in a worker thread and hands out
    slices: one thread hop per block, however small the chunks. Seeks on a rewind (a
    reopen where the storage cannot seek), so a read keeps the bytes it opened even if
    the file is replaced meanwhile (on local disk)."""

    def __init__(self, source: Readable) -> None:
        self.source = source
        self._handle: IO[bytes] | None = None
        self._position = 0  # where the handle reads next
        self._start = 0  # offset of _block
        self._block = b""

    async def read(self, offset: int, most: int) -> bytes:
        """At most ``most`` bytes from ``offset`` (fewer at a block's end); raises EOFError
        if the file ends before its size said."""
        if not self._start <= offset < self._start + len(self._block):
            self._block = await sync_to_async(self._fill, thread_sensitive=False)(offset)
            self._start = offset
            if not self._block:
                raise EOFError(f"the file ends at {offset}, before its recorded size {self.source.size}")
        begin = offset - self._start
        return self._block[begin : begin + most]

    def _fill(self, offset: int) -> bytes:
        if self._handle is None or offset != self._position:
            if self._handle is not None and self._handle.seekable():
                self._handle.seek(offset)
            else:
                self._close()
                self._handle = self.source.open_at(offset)
        want = min(conf.chunk_size(), self.source.size - offset)
        block = self._handle.read(want) if want > 0 else b""
        self._position = offset + len(block)
        return block

    def _close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None

    async def close(self) -> None:
        self._block = b""
        await sync_to_async(self._close, thread_sensitive=False)()


class Spool:
    """The bytes of a write as they arrive, in a SpooledBody; buffered to one thread hop
    per ``conf.chunk_size()``."""

    def __init__(self, body: offload.SpooledBody) -> None:
        self.body = body
        self._buffer = bytearray()

    @classmethod
    async def create(cls) -> Spool:
        make: Callable[[], offload.SpooledBody] = lambda: offload.SpooledBody(offload.spool_directory())  # noqa: E731
        return cls(await sync_to_async(make, thread_sensitive=False)())

    async def append(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= conf.chunk_size():
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            pending, self._buffer = bytes(self._buffer), bytearray()
            await sync_to_async(self.body.write, thread_sensitive=False)(pending)

    async def commit(self, target: Writable) -> StoredFile:
        """Replace ``target``'s bytes with the spool's (``files.store``: one transaction, same
        file id). Raises NotFound if the file was deleted meanwhile, OwnerLeft if its owner
        left, TooLarge."""
        await self.flush()
        if not await db(_exists)(target.file_id):
            raise NotFound(f"file {target.file_id} was deleted during the write; nothing was stored")
        upload = files.Upload(owner_id=target.owner_id, folder=target.folder, path=target.path, limit=upload_limit())
        row: StoredFile = await files.store(upload, self.body)
        return row

    async def discard(self) -> None:
        """Drop the bytes: the unnamed file is gone with its descriptor."""
        self._buffer = bytearray()
        await sync_to_async(self.body.close, thread_sensitive=False)()
