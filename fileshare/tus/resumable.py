"""Resumable uploads: the state of a tus upload and the assembly of its file.

The wire protocol is in ``fileshare.tus.views`` and docs/resumable.md; this module
holds what it manipulates. Django's storage API has no append, so every accepted
PATCH body becomes its own *part* blob, ``<folder>/.parts/<upload id>/<offset>-<random>``,
recorded as an ``UploadPart`` row in the transaction that advances the upload's
offset (a concurrent PATCH at the same offset loses that race and gets 409). When
the last byte arrives the parts are streamed, in order and one chunk at a time,
into ``fileshare.store.files.store``, which writes a fresh blob and indexes it: the file
becomes visible only then, like any PUT. The parts are then deleted.

Parts live in the owner's folder, so the leave sequence deletes them with the
rest of it, and the rows go by cascade with the owner's ``LiveClient`` row.

The final PATCH assembles while the client waits. Its part is not counted in the
offset until the file is stored: while a process assembles (a claim naming its
``ServerInstance``), HEAD still reports the previous offset and PATCH/DELETE get
423; if the assembly fails the claim is dropped and the client may send the last
chunk again; if the process dies its lease lapses and the claim with it.

The sync ``_`` functions do database and storage work and run in worker threads;
the async functions are the API for the views.

Why this module is long: tus 1.0's upload lifecycle (create, append, assemble, expire) over the database and storage, each step with its race handling.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.utils import timezone

from fileshare import conf
from fileshare.exceptions import (
    ChunkChecksumMismatch,
    FileshareError,
    NotFound,
    OffsetMismatch,
    OwnerLeft,
    TooLarge,
    UploadExpired,
    UploadLocked,
)
from fileshare.models import LiveClient, ResumableUpload, ServerInstance, UploadPart
from fileshare.observe import metrics
from fileshare.presence.instance import current as current_instance
from fileshare.store import files, quotas, storage
from fileshare.ws import relay

logger = logging.getLogger(__name__)

PARTS_DIR = ".parts"
"""Folder, inside a client's storage folder, that holds the parts of its unfinished uploads.

Client files are stored as ``<folder>/<random hex><suffix>``, so this name can
never be a client file's blob.
"""

CHECKSUM_ALGORITHMS: dict[str, Any] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
"""Upload-Checksum algorithms, by their tus names (the checksum extension requires sha1)."""


# -- What the views see. -------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """The client an upload belongs to: its row id, name and storage folder."""

    id: int
    name: str
    folder: str


@dataclass(frozen=True)
class Checksum:
    """A PATCH's declared ``Upload-Checksum``: a tus algorithm name and the raw digest."""

    algorithm: str
    digest: bytes


@dataclass(frozen=True)
class UploadState:
    """An upload as HEAD reports it."""

    id: uuid.UUID
    path: str
    length: int
    offset: int
    metadata: str
    expires_at: datetime
    completed: bool

    @classmethod
    def of(cls, row: ResumableUpload) -> UploadState:
        return cls(
            id=row.id,
            path=row.path,
            length=row.length,
            offset=row.offset,
            metadata=row.metadata,
            expires_at=row.expires_at,
            completed=row.completed_at is not None,
        )


@dataclass(frozen=True)
class _Pending:
    """A final part written and claimed: the file is ready to be assembled."""

    upload_id: uuid.UUID
    path: str
    length: int
    content_type: str
    parts: list[tuple[str, int, int]]  # (blob, offset, size), in order
    final_blob: str | None  # the last part, written but not recorded as an UploadPart


def parts_prefix(folder: str, upload_id: uuid.UUID) -> str:
    """The storage folder holding one upload's parts."""
    return f"{folder}/{PARTS_DIR}/{upload_id.hex}"


def part_of(name: str) -> uuid.UUID | None:
    """The upload a blob named ``name`` is a part of, or None if it is not a part.

    For storage-against-index reconciliation: a part is live while its
    ``ResumableUpload`` row exists, although no ``StoredFile`` names it.
    """
    segments = name.split("/")
    if len(segments) < 3 or segments[-3] != PARTS_DIR:
        return None
    try:
        return uuid.UUID(hex=segments[-2])
    except ValueError:
        return None


def _expiry() -> datetime:
    now: datetime = timezone.now()
    return now + timedelta(seconds=conf.tus_expiry())


def _owner_live(owner_id: int) -> None:
    if not LiveClient.objects.filter(pk=owner_id, left_at__isnull=True).exists():
        raise OwnerLeft("the folder's owner disconnected during the upload; nothing was kept")


def _claim_live(row: ResumableUpload) -> bool:
    """Whether a server process that still holds its lease is assembling ``row``."""
    if row.finishing_by is None:
        return False
    cutoff = timezone.now() - timedelta(seconds=conf.lease_seconds())
    return bool(ServerInstance.objects.filter(pk=row.finishing_by, heartbeat_at__gte=cutoff).exists())


def _delete_upload(row: ResumableUpload, folder: str) -> None:
    """Delete an upload's row (its part rows go by cascade), then its part blobs."""
    ResumableUpload.objects.filter(pk=row.pk).delete()
    storage.delete_folder(parts_prefix(folder, row.id))


def _sweep_expired(owner: Owner) -> int:
    """Remove the owner's expired uploads (unless being assembled); returns how many."""
    count = 0
    for row in ResumableUpload.objects.filter(owner_id=owner.id, expires_at__lt=timezone.now()):
        if not _claim_live(row):
            _delete_upload(row, owner.folder)
            count += 1
    metrics.TUS_UPLOADS.labels("expired").inc(count)
    return count


def _load(owner: Owner, upload_id: uuid.UUID) -> ResumableUpload:
    """The owner's upload; raises NotFound, or UploadExpired after removing an expired one."""
    row: ResumableUpload | None = ResumableUpload.objects.filter(pk=upload_id, owner_id=owner.id).first()
    if row is None:
        raise NotFound(f"{owner.name} has no resumable upload {upload_id}")
    if row.expires_at < timezone.now() and not _claim_live(row):
        _delete_upload(row, owner.folder)
        raise UploadExpired(f"the upload {upload_id} expired at {row.expires_at.isoformat()}; start a new one")
    return row


# -- Creation, status, termination. --------------------------------------------------------


def _create(owner: Owner, path: str, length: int, metadata: str, content_type: str) -> UploadState:
    _sweep_expired(owner)
    # Fail early rather than after the last byte (files.store checks again then).
    files.check_path_free(owner.id, path)
    with transaction.atomic():
        _owner_live(owner.id)
        quotas.check(owner.id, length)  # the upload reserves its room now
        row = ResumableUpload.objects.create(
            owner_id=owner.id,
            path=path,
            length=length,
            metadata=metadata,
            content_type=content_type,
            expires_at=_expiry(),
        )
    return UploadState.of(row)


async def create(owner: Owner, path: str, length: int, metadata: str = "", content_type: str = "") -> UploadState:
    """Start an upload of ``length`` bytes to ``path`` (already cleaned) in the owner's folder.

    An empty upload is stored at once. Raises Conflict (a path that would be both a
    file and a folder) or OwnerLeft; also removes the owner's expired uploads.
    """
    state = await sync_to_async(_create, thread_sensitive=False)(owner, path, length, metadata, content_type)
    metrics.TUS_UPLOADS.labels("created").inc()
    if length == 0:
        instance_id = await current_instance.ensure_started()
        pending = await sync_to_async(_claim_empty, thread_sensitive=False)(owner, state.id, instance_id)
        try:
            state = await _assemble(owner, pending, instance_id)
        except BaseException:
            # Nothing to resume: an empty upload that cannot be stored is no upload at all.
            with contextlib.suppress(FileshareError):  # already gone if the owner left
                await sync_to_async(_terminate, thread_sensitive=False)(owner, state.id)
            raise
    return state


def _claim_empty(owner: Owner, upload_id: uuid.UUID, instance_id: uuid.UUID) -> _Pending:
    with transaction.atomic():
        row = ResumableUpload.objects.select_for_update().get(pk=upload_id)
        row.finishing_by = instance_id
        row.finishing_since = timezone.now()
        row.save(update_fields=["finishing_by", "finishing_since"])
    return _Pending(row.id, row.path, row.length, row.content_type, [], None)


def _status(owner: Owner, upload_id: uuid.UUID) -> UploadState:
    return UploadState.of(_load(owner, upload_id))


async def status(owner: Owner, upload_id: uuid.UUID) -> UploadState:
    """The upload's offset and length; raises NotFound or UploadExpired."""
    return await sync_to_async(_status, thread_sensitive=False)(owner, upload_id)


def _terminate(owner: Owner, upload_id: uuid.UUID) -> None:
    row = _load(owner, upload_id)
    if _claim_live(row):
        raise UploadLocked("the upload's file is being assembled; it cannot be terminated now")
    _delete_upload(row, owner.folder)


async def terminate(owner: Owner, upload_id: uuid.UUID) -> None:
    """Remove an upload and its parts (tus termination). A finished upload's file stays.

    Raises NotFound, UploadExpired or UploadLocked (being assembled).
    """
    await sync_to_async(_terminate, thread_sensitive=False)(owner, upload_id)
    metrics.TUS_UPLOADS.labels("terminated").inc()


# -- Appending a PATCH body. -----------------------------------------------------------------


class _HashingSource:
    """A readable that hashes what passes through it."""

    def __init__(self, source: storage.Readable, algorithm: str) -> None:
        self.source = source
        self.hash = CHECKSUM_ALGORITHMS[algorithm]()

    def read(self, size: int = -1, /) -> bytes:
        data = self.source.read(size)
        self.hash.update(data)
        return data


def _append(
    owner: Owner,
    upload_id: uuid.UUID,
    offset: int,
    source: storage.Readable,
    declared_length: int | None,
    checksum: Checksum | None,
    instance_id: uuid.UUID,
) -> UploadState | _Pending:
    row = _load(owner, upload_id)
    if row.offset != offset:
        raise OffsetMismatch(f"Upload-Offset is {offset} but the upload is at {row.offset}; HEAD it and resume there")
    if _claim_live(row):
        raise UploadLocked("the upload's file is being assembled; retry shortly")
    limit = min(conf.tus_max_chunk_bytes(), row.length - offset)
    if declared_length is not None and declared_length > limit:
        raise _too_large(row, offset, declared_length)
    if declared_length == 0 and checksum is None:
        return _renew(owner, upload_id, offset)

    hashing = _HashingSource(source, checksum.algorithm) if checksum else None
    reader = storage.CountingReader(hashing or source, limit, lambda: _owner_live(owner.id))
    blob = f"{parts_prefix(owner.folder, upload_id)}/{offset:020d}-{uuid.uuid4().hex[:12]}"
    try:
        storage.save_blob(blob, reader)
    except TooLarge:
        raise _too_large(row, offset, None) from None
    try:
        if hashing is not None and checksum is not None and hashing.hash.digest() != checksum.digest:
            raise ChunkChecksumMismatch(
                f"the body's {checksum.algorithm} does not match Upload-Checksum; nothing was appended"
            )
        if reader.count == 0:
            storage.delete_blob(blob)
            return _renew(owner, upload_id, offset)
        return _record(owner, upload_id, offset, blob, reader.count, instance_id)
    except BaseException:
        storage.delete_blob(blob)
        raise


def _too_large(row: ResumableUpload, offset: int, declared: int | None) -> TooLarge:
    remaining = row.length - offset
    size = f"{declared} bytes" if declared is not None else "the body"
    if remaining < conf.tus_max_chunk_bytes():
        return TooLarge(f"{size} would go past Upload-Length: only {remaining} bytes remain from offset {offset}")
    return TooLarge(f"{size} is over the limit of {conf.tus_max_chunk_bytes()} bytes per PATCH (Tus-Max-Chunk-Size)")


def _renew(owner: Owner, upload_id: uuid.UUID, offset: int) -> UploadState:
    """An empty PATCH: nothing to store; the upload's expiry moves on."""
    with transaction.atomic():
        row = ResumableUpload.objects.select_for_update().filter(pk=upload_id, owner_id=owner.id).first()
        if row is None:
            raise NotFound(f"{owner.name} has no resumable upload {upload_id}")
        if row.offset != offset:
            raise OffsetMismatch(f"Upload-Offset is {offset} but the upload is at {row.offset}")
        if row.completed_at is None:
            row.expires_at = _expiry()
            row.save(update_fields=["expires_at"])
    return UploadState.of(row)


def _record(
    owner: Owner, upload_id: uuid.UUID, offset: int, blob: str, size: int, instance_id: uuid.UUID
) -> UploadState | _Pending:
    """Count a written part, or claim the assembly if it is the last one."""
    with transaction.atomic():
        _owner_live(owner.id)
        row = ResumableUpload.objects.select_for_update().filter(pk=upload_id, owner_id=owner.id).first()
        if row is None:
            raise NotFound(f"the upload {upload_id} was terminated while this PATCH was being stored")
        if row.offset != offset or row.completed_at is not None:
            raise OffsetMismatch(f"another PATCH moved the upload to {row.offset} while this one was being stored")
        if _claim_live(row):
            raise UploadLocked("the upload's file is being assembled; retry shortly")
        if row.finishing_by is not None:
            logger.warning("upload %s: the process assembling it lost its lease; the claim is dropped", row.id)
            row.finishing_by = None
            row.finishing_since = None
        if offset + size < row.length:
            try:
                with transaction.atomic():
                    UploadPart.objects.create(upload=row, offset=offset, size=size, blob=blob)
            except IntegrityError:
                raise OffsetMismatch(f"another PATCH already stored offset {offset}") from None
            row.offset = offset + size
            row.expires_at = _expiry()
            row.save(update_fields=["offset", "expires_at", "finishing_by", "finishing_since"])
            return UploadState.of(row)
        row.finishing_by = instance_id
        row.finishing_since = timezone.now()
        row.save(update_fields=["finishing_by", "finishing_since"])
        parts = [(p.blob, p.offset, p.size) for p in row.parts.order_by("offset")]
    parts.append((blob, offset, size))
    return _Pending(row.id, row.path, row.length, row.content_type, parts, blob)


async def append(
    owner: Owner,
    upload_id: uuid.UUID,
    offset: int,
    source: storage.Readable,
    declared_length: int | None = None,
    checksum: Checksum | None = None,
) -> UploadState:
    """Store ``source`` (a PATCH body, read in chunks in a worker thread) at ``offset``.

    When it completes the upload, the file is assembled and indexed before this
    returns. Nothing is appended when it raises: NotFound, UploadExpired,
    OffsetMismatch, UploadLocked, TooLarge (over the per-PATCH limit or past the
    upload's length), ChunkChecksumMismatch or OwnerLeft; and from the assembly,
    Conflict.
    """
    instance_id = await current_instance.ensure_started()
    outcome = await sync_to_async(_append, thread_sensitive=False)(
        owner, upload_id, offset, source, declared_length, checksum, instance_id
    )
    if isinstance(outcome, UploadState):
        return outcome
    return await _assemble(owner, outcome, instance_id)


# -- Assembly. --------------------------------------------------------------------------------


class PartsReader:
    """A readable over part blobs in order, one open at a time, checking each one's size."""

    def __init__(self, parts: list[tuple[str, int, int]]) -> None:
        self.parts = list(parts)
        self.index = 0
        self.handle: IO[bytes] | None = None
        self.read_from_part = 0

    def read(self, size: int = -1, /) -> bytes:
        want = size if size and size > 0 else conf.chunk_size()
        while self.index < len(self.parts):
            blob, _offset, expected = self.parts[self.index]
            if self.handle is None:
                self.handle = storage.open_blob(blob)
                self.read_from_part = 0
            data = self.handle.read(min(want, expected - self.read_from_part))
            if data:
                self.read_from_part += len(data)
                return data
            if self.read_from_part != expected:
                raise FileshareError(f"part {blob} holds {self.read_from_part} bytes, not {expected}")
            self.close()
            self.index += 1
        return b""

    def close(self) -> None:
        """Close the part being read, if any."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _check_contiguous(pending: _Pending) -> None:
    position = 0
    for blob, offset, size in pending.parts:
        if offset != position:
            raise FileshareError(f"the parts of upload {pending.upload_id} are not contiguous at {blob}")
        position += size
    if position != pending.length:
        raise FileshareError(f"the parts of upload {pending.upload_id} hold {position} of {pending.length} bytes")


async def _store_file(owner: Owner, pending: _Pending) -> None:
    """Stream the parts, in order, into a new file at the upload's path (``files.store``)."""
    _check_contiguous(pending)
    reader = PartsReader(pending.parts)
    upload = files.Upload(
        owner_id=owner.id,
        folder=owner.folder,
        path=pending.path,
        limit=pending.length,
        content_type=pending.content_type or None,
        reservation=pending.upload_id,
    )
    try:
        await files.store(upload, reader)
    except FileNotFoundError:
        # A part vanished: the leave sequence deleted the folder (OwnerLeft), or worse.
        await sync_to_async(_owner_live, thread_sensitive=False)(owner.id)
        raise
    finally:
        await sync_to_async(reader.close, thread_sensitive=False)()


def _complete(owner: Owner, pending: _Pending) -> UploadState | None:
    with transaction.atomic():
        row = ResumableUpload.objects.select_for_update().filter(pk=pending.upload_id).first()
        if row is not None:
            row.offset = row.length
            row.completed_at = timezone.now()
            row.expires_at = _expiry()
            row.finishing_by = None
            row.finishing_since = None
            row.save()
            row.parts.all().delete()
    storage.delete_folder(parts_prefix(owner.folder, pending.upload_id))
    return UploadState.of(row) if row is not None else None


def _give_up(owner: Owner, pending: _Pending, instance_id: uuid.UUID) -> None:
    """Drop the claim and the unrecorded final part, so that the last chunk may be sent again."""
    with transaction.atomic():
        ResumableUpload.objects.filter(pk=pending.upload_id, finishing_by=instance_id).update(
            finishing_by=None, finishing_since=None
        )
    if pending.final_blob is not None:
        storage.delete_blob(pending.final_blob)


async def _assemble(owner: Owner, pending: _Pending, instance_id: uuid.UUID) -> UploadState:
    try:
        await _store_file(owner, pending)
    except BaseException:
        await sync_to_async(_give_up, thread_sensitive=False)(owner, pending, instance_id)
        raise
    state = await sync_to_async(_complete, thread_sensitive=False)(owner, pending)
    try:  # best effort: the file is stored, so the client still gets the true answer
        await relay.notify_dashboard("file_changed", client=owner.name, path=pending.path)
    except Exception as exc:
        logger.warning("dashboards were not told that %s/%s changed: %r", owner.name, pending.path, exc)
    if state is None:  # the owner left the moment the file was stored
        raise OwnerLeft("the folder's owner disconnected as the upload completed")
    metrics.TUS_UPLOADS.labels("finished").inc()
    return state
