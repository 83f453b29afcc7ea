"""Bytes in and out of the configured Django storage backend.

All file I/O goes through Django's storage API (``storages[alias]``, looked up per
call so that a test's ``override_settings(STORAGES=...)`` takes effect), so that S3
is a settings change. The functions here are synchronous: async callers reach
them through ``fileshare.store.files``, which runs them in a worker thread.

A backend may offer faster paths, used when present: ``delete_prefix(prefix)``
(S3: batch deletes by prefix), ``open_range(name, start, end)`` returning a
streaming binary reader (S3: a ranged GET, never buffered whole),
``iter_keys(prefix)`` (S3: a paginated listing), ``download_url(...)`` (S3: a
presigned URL) and ``iter_uploads``/``abort_upload`` (S3: multipart uploads left
unfinished). ``fileshare.store.s3.StreamingS3Storage`` has them all.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, NamedTuple, Protocol

from django.core.files import File
from django.core.files.storage import Storage, storages

from fileshare import conf
from fileshare.exceptions import FileshareError, TooLarge
from fileshare.store import paths


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors of a write to a full disk (or over the user's disk quota)."""


def is_full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's disk quota) is full."""
    return isinstance(exc, OSError) and exc.errno in FULL_DISK


def get_storage() -> Storage:
    """The storage backend for client files."""
    return storages[conf.storage_alias()]


def new_blob_name(folder: str, path: str) -> str:
    """A storage name unique to one upload, inside the client's folder."""
    return f"{folder}/{uuid.uuid4().hex}{paths.blob_suffix(path)}"


class CountingReader(File):
    """A read-only, non-seekable file over ``source`` that counts and hashes.

    Raises TooLarge past ``limit`` bytes, and calls ``still_wanted`` every
    ``check_every`` bytes, aborting the write when it raises (the owner left).
    """

    def __init__(
        self,
        source: Readable,
        limit: int,
        still_wanted: Callable[[], None] | None = None,
        check_every: int = 16 * 1024 * 1024,
    ) -> None:
        super().__init__(None, name="upload")
        self.source = source
        self.limit = limit
        self.count = 0
        self.sha256 = hashlib.sha256()
        self.still_wanted = still_wanted
        self.check_every = check_every
        self._next_check = check_every

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size and size > 0 else conf.chunk_size())
        self.count += len(data)
        if self.count > self.limit:
            raise TooLarge(f"the body is over the limit of {self.limit} bytes")
        if self.still_wanted is not None and self.count >= self._next_check:
            self._next_check += self.check_every
            self.still_wanted()
        self.sha256.update(data)
        return data

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        while data := self.read(chunk_size or conf.chunk_size()):
            yield data

    def multiple_chunks(self, chunk_size: int | None = None) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def save_blob(name: str, reader: CountingReader) -> None:
    """Write ``reader`` to storage under exactly ``name``; delete it on any failure."""
    storage = get_storage()
    try:
        saved = storage.save(name, reader)
    except BaseException:
        delete_blob(name)
        raise
    if saved != name:  # a backend that renames on collision would break the index
        delete_blob(saved)
        raise FileshareError(f"storage saved {saved!r} instead of {name!r}")


def open_blob(name: str, start: int = 0, end: int | None = None) -> IO[bytes]:
    """A binary reader positioned at ``start``; reads stop at ``end`` (exclusive) if given.

    Raises FileNotFoundError when the blob is missing.
    """
    storage = get_storage()
    ranged = getattr(storage, "open_range", None)
    if ranged is not None:
        return ranged(name, start, end)
    handle = storage.open(name, "rb")
    if start:
        handle.seek(start)
    return handle


def delete_blob(name: str) -> None:
    """Delete one blob; a missing one is not an error."""
    with contextlib.suppress(FileNotFoundError):
        get_storage().delete(name)


def delete_folder(folder: str) -> int:
    """Delete every blob under ``folder/``, however many; returns how many went."""
    storage = get_storage()
    by_prefix = getattr(storage, "delete_prefix", None)
    if by_prefix is not None:
        return int(by_prefix(folder.rstrip("/") + "/"))
    return _delete_tree(storage, folder.rstrip("/"))


def _delete_tree(storage: Storage, folder: str) -> int:
    try:
        dirs, names = storage.listdir(folder)
    except FileNotFoundError:
        return 0
    count = 0
    for name in names:
        delete_blob(f"{folder}/{name}")
        count += 1
    for sub in dirs:
        count += _delete_tree(storage, f"{folder}/{sub}")
    with contextlib.suppress(FileNotFoundError, OSError):  # FileSystemStorage.delete removes an empty directory
        storage.delete(folder)
    return count


class Blob(NamedTuple):
    """One stored blob, as listed by :func:`iter_blobs`."""

    name: str
    size: int
    modified: datetime


def iter_blobs(prefix: str = "") -> Iterator[Blob]:
    """Every blob whose name starts with ``prefix`` (a folder, ending in ``/``, or ``""``).

    Uses the backend's ``iter_keys`` when it has one (S3: ``ListObjectsV2``
    pages), otherwise walks ``listdir`` from the folder down.
    """
    storage = get_storage()
    by_keys = getattr(storage, "iter_keys", None)
    if by_keys is not None:
        for name, size, modified in by_keys(prefix):
            yield Blob(name, size, modified)
        return
    yield from _walk(storage, prefix.rstrip("/"))


def _walk(storage: Storage, folder: str) -> Iterator[Blob]:
    try:
        dirs, names = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(names):
        full = f"{folder}/{name}" if folder else name
        try:
            yield Blob(full, storage.size(full), storage.get_modified_time(full))
        except FileNotFoundError:  # deleted while we walked
            continue
    for sub in sorted(dirs):
        yield from _walk(storage, f"{folder}/{sub}" if folder else sub)


def download_url(name: str, filename: str, content_type: str) -> str | None:
    """A URL the client can fetch the blob from directly, or None if the backend has none.

    S3: a presigned GET that names ``filename`` as an attachment.
    """
    presign = getattr(get_storage(), "download_url", None)
    if presign is None:
        return None
    return str(presign(name, filename, content_type))


def iter_unfinished_uploads(prefix: str = "") -> Iterator[tuple[str, str, datetime]]:
    """Uploads a backend began and never finished, as ``(name, upload_id, initiated)``.

    S3: multipart uploads left by a killed process. Other backends have none
    (a partial file on disk is an ordinary, unindexed blob).
    """
    listing = getattr(get_storage(), "iter_uploads", None)
    if listing is None:
        return
    yield from listing(prefix)


def abort_unfinished_upload(name: str, upload_id: str) -> None:
    """Abort one upload listed by :func:`iter_unfinished_uploads`."""
    get_storage().abort_upload(name, upload_id)
