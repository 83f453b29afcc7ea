"""Client files: the storage blobs and their index rows, kept in step.

An upload is written to a fresh blob first and indexed only once complete, in a
transaction that also checks that the owner is still connected; a replaced file's
old blob is deleted after the swap. So the index never points at a partial blob,
and a blob without a row (a crash between the two writes) is an orphan that
``manage.py fileshare_reconcile`` removes. Async functions here are the API for
views and consumers; the sync ``_`` functions run in worker threads.

A row's ``sha256`` is empty while it is being computed after the answer
(``FILESHARE_CHECKSUM_AFTER_ANSWER``, see ``fill_checksum``).
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from asgiref.sync import sync_to_async
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import ChecksumMismatch, Conflict, IsDirectory, NotFound, OwnerLeft
from fileshare.fileapi import offload
from fileshare.models import LiveClient, StoredFile
from fileshare.observe import metrics
from fileshare.presence.registry import db
from fileshare.store import paths, quotas, storage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """Where an upload goes and what it must satisfy."""

    owner_id: int
    folder: str
    path: str
    limit: int
    expected_sha256: str | None = None
    # A content type the client declared (tus ``filetype``); guessed from the path if None.
    content_type: str | None = None
    # The tus upload this file completes: the room it reserved is the file's (fileshare.store.quotas).
    reservation: uuid.UUID | None = None


def guess_type(path: str) -> str:
    """A content type from the file name; ``application/octet-stream`` if unknown."""
    return mimetypes.guess_type(path, strict=False)[0] or "application/octet-stream"


def _owner_still_live(owner_id: int) -> None:
    if not LiveClient.objects.filter(pk=owner_id, left_at__isnull=True).exists():
        raise OwnerLeft("the folder's owner disconnected during the upload; nothing was stored")


def _check_conflicts(owner_id: int, path: str) -> None:
    clash = StoredFile.objects.filter(owner_id=owner_id).filter(
        Q(path__in=paths.parents(path)) | Q(path__startswith=path + "/")
    )
    if clash.exists():
        other = clash.values_list("path", flat=True).first()
        raise Conflict(f"{path!r} clashes with {other!r}: a path cannot be both a file and a folder")


def check_path_free(owner_id: int, path: str) -> None:
    """Raise Conflict if ``path`` would be both a file and a folder in the owner's index (sync)."""
    _check_conflicts(owner_id, path)


Source = storage.Readable | offload.LocalFile | offload.SpooledBody
"""An upload's bytes: a readable body, a file the front proxy wrote, or the body the server spooled."""


def _check_quotas(upload: Upload, size: int) -> None:
    replacing = StoredFile.objects.filter(owner_id=upload.owner_id, path=upload.path).exists()
    quotas.check(
        upload.owner_id,
        size,
        replacing=upload.path if replacing else None,
        new_file=not replacing,
        except_upload=upload.reservation,
    )


def _store(upload: Upload, source: Source) -> StoredFile:
    _check_conflicts(upload.owner_id, upload.path)
    known = getattr(source, "size", None)
    if isinstance(known, int):  # refuse before writing when the size is known already
        _check_quotas(upload, known)
    blob = storage.new_blob_name(upload.folder, upload.path)
    still_wanted = partial(_owner_still_live, upload.owner_id)
    if isinstance(source, offload.LocalFile):  # a body the front proxy wrote: moved, not copied
        hash_now = upload.expected_sha256 is not None or not conf.checksum_after_answer()
        adopted = offload.adopt(blob, source, upload.limit, still_wanted, hash_now=hash_now)
        size, digest = adopted.size, adopted.sha256
    elif isinstance(source, offload.SpooledBody):  # a body the server spooled: linked, not copied
        adopted = offload.adopt_spooled(blob, source, upload.limit, still_wanted)
        size, digest = adopted.size, adopted.sha256
    else:
        reader = storage.CountingReader(source, upload.limit, still_wanted)
        storage.save_blob(blob, reader)
        size, digest = reader.count, reader.sha256.hexdigest()
    old_blob = None
    try:
        if upload.expected_sha256 is not None and digest != upload.expected_sha256:
            raise ChecksumMismatch(
                f"the body's SHA-256 is {digest}, not the {upload.expected_sha256} the request declared"
            )
        with transaction.atomic():
            _owner_still_live(upload.owner_id)
            _check_conflicts(upload.owner_id, upload.path)
            _check_quotas(upload, size)
            now = timezone.now()
            row = StoredFile.objects.select_for_update().filter(owner_id=upload.owner_id, path=upload.path).first()
            if row is None:
                row = StoredFile(owner_id=upload.owner_id, path=upload.path)
            else:
                old_blob = row.blob
            row.blob = blob
            row.size = size
            row.content_type = upload.content_type or guess_type(upload.path)
            row.sha256 = digest or ""
            row.modified_at = now
            row.save()
    except BaseException:
        storage.delete_blob(blob)
        raise
    if old_blob:
        storage.delete_blob(old_blob)
    return row


async def store(upload: Upload, source: Source) -> StoredFile:
    """Write ``source`` (read in chunks, in a worker thread) as ``upload.path``.

    A ``LocalFile`` (a body the front proxy wrote to disk) is adopted: hashed, then
    moved into local storage without a second copy (``fileshare.fileapi.offload.adopt``). A
    ``SpooledBody`` (the run command's server wrote and hashed it as it arrived) is
    linked into local storage without reading it (``fileshare.fileapi.offload.adopt_spooled``).

    Raises TooLarge, QuotaExceeded, InsufficientStorage, Conflict, ChecksumMismatch or
    OwnerLeft; nothing is left in
    storage or the index when it raises. A row whose SHA-256 was left for later
    (``conf.checksum_after_answer``) gets it from ``fill_checksum``.
    """
    metrics.UPLOADS_IN_PROGRESS.inc()
    try:
        row: StoredFile = await sync_to_async(_store, thread_sensitive=False)(upload, source)
    finally:
        metrics.UPLOADS_IN_PROGRESS.dec()
    metrics.UPLOADED.inc(row.size)
    if not row.sha256:
        fill_checksum(row.file_id, row.blob)
    return row


_checksums = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fileshare-checksum")
"""One thread: checksums after the answer take one core at most, in upload order."""


def fill_checksum(file_id: int, blob: str) -> Future[None]:
    """Compute the SHA-256 of ``blob`` in the checksum thread and store it in its row.

    Only if the row still names that blob with no checksum: a file replaced or
    deleted meanwhile keeps its own. If the process dies first, the row keeps an
    empty checksum until ``manage.py fileshare_reconcile`` fills it.
    """
    return _checksums.submit(_fill_checksum, file_id, blob)


def _fill_checksum(file_id: int, blob: str) -> None:
    close_old_connections()
    try:
        digest = offload.sha256_of(storage.get_storage().path(blob))
    except FileNotFoundError:
        return  # deleted meanwhile
    except Exception:
        logger.exception("computing the checksum of %s failed; fileshare_reconcile will retry", blob)
        return
    try:
        StoredFile.objects.filter(file_id=file_id, blob=blob, sha256="").update(sha256=digest)
    finally:
        close_old_connections()


def _find(owner_name: str, path: str) -> StoredFile:
    row = (
        StoredFile.objects.select_related("owner")
        .filter(owner__name=owner_name, owner__left_at__isnull=True, path=path)
        .first()
    )
    if row is None:
        if not LiveClient.objects.filter(name=owner_name, left_at__isnull=True).exists():
            raise NotFound(f"no live client is named {owner_name!r}")
        raise NotFound(f"{owner_name} has no file {path!r}")
    return row


find = db(_find)
"""``await find(owner_name, path)`` -> the index row; raises NotFound."""


def _remove(owner_id: int, path: str) -> None:
    with transaction.atomic():
        row = StoredFile.objects.select_for_update().filter(owner_id=owner_id, path=path).first()
        if row is None:
            if StoredFile.objects.filter(owner_id=owner_id, path__startswith=path + "/").exists():
                raise IsDirectory(f"{path!r} is a folder; folders are not deleted: delete its files")
            raise NotFound(f"no file {path!r} in this folder")
        blob = row.blob
        row.delete()
    storage.delete_blob(blob)


async def remove(owner_id: int, path: str) -> None:
    """Delete one file (index row first, then the blob); raises NotFound, or IsDirectory
    for a folder (as pw_file's Delete does)."""
    await sync_to_async(_remove, thread_sensitive=False)(owner_id, path)


async def read_chunks(blob: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    """Stream a blob's bytes ``[start, end)`` in chunks, one worker-thread read per chunk."""
    handle = await sync_to_async(storage.open_blob, thread_sensitive=False)(blob, start, end)
    remaining = None if end is None else end - start
    size = conf.chunk_size()
    try:
        while remaining is None or remaining > 0:
            want = size if remaining is None else min(size, remaining)
            chunk = await sync_to_async(handle.read, thread_sensitive=False)(want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()
