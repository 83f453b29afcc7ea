"""Quotas: how much a client, and the whole store, may hold (docs/limits.md).

A client's use is its indexed files plus its unfinished tus uploads, each counted
at its declared ``Upload-Length`` (one file each): an upload reserves its room
when it is created. The store's use is the same summed over every client.

Checked three times, each against what is known then: on a request's headers
before its body is read (``fileshare.fileapi.gate``, with the declared length), when a tus
upload is created (its ``Upload-Length``), and when a file is indexed (its real
size, in the transaction that indexes it). Uploads of one client running at the
same time are each checked against the files already indexed, so together they
may pass the quota by what is in flight at once; the check at indexing refuses
the ones that arrive over it.

The functions here are synchronous ORM code, run in worker threads or on the
registry's database thread.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Count, Sum

from fileshare import conf
from fileshare.exceptions import InsufficientStorage, QuotaExceeded
from fileshare.models import ResumableUpload, StoredFile


@dataclass(frozen=True)
class Usage:
    """Bytes and files held (files indexed, plus unfinished tus uploads at their declared length)."""

    bytes: int
    files: int


def _usage(owner_id: int | None, *, except_upload: uuid.UUID | None = None, except_path: str | None = None) -> Usage:
    stored = StoredFile.objects.all() if owner_id is None else StoredFile.objects.filter(owner_id=owner_id)
    if except_path is not None:
        stored = stored.exclude(path=except_path)
    pending = ResumableUpload.objects.filter(completed_at__isnull=True)
    if owner_id is not None:
        pending = pending.filter(owner_id=owner_id)
    if except_upload is not None:
        pending = pending.exclude(pk=except_upload)
    files = stored.aggregate(n=Count("file_id"), size=Sum("size"))
    uploads = pending.aggregate(n=Count("id"), size=Sum("length"))
    return Usage(int(files["size"] or 0) + int(uploads["size"] or 0), int(files["n"]) + int(uploads["n"]))


def client_usage(owner_id: int) -> Usage:
    """What one client holds now (sync)."""
    return _usage(owner_id)


def store_usage() -> int:
    """Bytes all clients hold now (sync)."""
    return _usage(None).bytes


def room(
    owner_id: int, *, replacing: str | None = None, except_upload: uuid.UUID | None = None
) -> tuple[int | None, int | None]:
    """Bytes the client, and the store, may still take: ``(client, store)``, None for no limit (sync).

    ``replacing``: a path whose file the new one replaces (its bytes are freed);
    ``except_upload``: a tus upload whose reservation the new file takes over.
    """
    held = _usage(owner_id, except_upload=except_upload, except_path=replacing) if conf.client_quota_bytes() else None
    return _room(owner_id, held, replacing, except_upload)


def _room(
    owner_id: int, held: Usage | None, replacing: str | None, except_upload: uuid.UUID | None
) -> tuple[int | None, int | None]:
    client_quota, store_quota = conf.client_quota_bytes(), conf.store_quota_bytes()
    client_left = store_left = None
    if client_quota is not None and held is not None:
        client_left = client_quota - held.bytes
    if store_quota is not None:
        total = _usage(None, except_upload=except_upload).bytes
        if replacing is not None:
            total -= _size_at(owner_id, replacing)
        store_left = store_quota - total
    return client_left, store_left


def _size_at(owner_id: int, path: str) -> int:
    row = StoredFile.objects.filter(owner_id=owner_id, path=path).values_list("size", flat=True).first()
    return int(row or 0)


def check(
    owner_id: int,
    size: int,
    *,
    replacing: str | None = None,
    new_file: bool = True,
    except_upload: uuid.UUID | None = None,
) -> None:
    """Raise QuotaExceeded (413) or InsufficientStorage (507) unless ``size`` more bytes
    (and one more file, if ``new_file``) fit (sync).

    ``replacing``/``except_upload`` as in :func:`room`.
    """
    files_quota = conf.client_quota_files()
    held = None
    if conf.client_quota_bytes() is not None or files_quota is not None:
        held = _usage(owner_id, except_upload=except_upload, except_path=replacing)
    if new_file and files_quota is not None and held is not None and held.files + 1 > files_quota:
        raise QuotaExceeded(
            f"the client holds {held.files} files already, its quota (FILESHARE_CLIENT_QUOTA_FILES={files_quota})"
        )
    client_left, store_left = _room(owner_id, held, replacing, except_upload)
    if client_left is not None and size > client_left:
        raise QuotaExceeded(
            f"{size} bytes would take the client over its quota of {conf.client_quota_bytes()} bytes "
            f"({max(client_left, 0)} bytes left; FILESHARE_CLIENT_QUOTA_BYTES)"
        )
    if store_left is not None and size > store_left:
        raise InsufficientStorage(
            f"{size} bytes would take the store over its quota of {conf.store_quota_bytes()} bytes "
            f"({max(store_left, 0)} bytes left; FILESHARE_STORE_QUOTA_BYTES)"
        )


def exists(owner_id: int, path: str) -> bool:
    """Whether the client has a file at ``path`` (an upload there replaces it; sync)."""
    return StoredFile.objects.filter(owner_id=owner_id, path=path).exists()
