"""Storage against the file index: find and fix where they disagree (``manage.py fileshare_reconcile``).

``fileshare.store.files`` writes a blob before its index row and deletes a row before
its blob, and a leaving client's folder goes before its ``LiveClient`` row. So a
crash or a killed process can leave three kinds of disagreement:

- an **orphan blob**: a blob that no index row names, in a live client's folder
  (killed between the two writes, or mid-upload). Deleted, but only once older
  than ``grace``: an upload in progress has a blob and no row yet. The parts of a
  resumable upload (``<folder>/.parts/<upload id>/...``) are kept while their
  ``ResumableUpload`` row exists; ``fileshare.tus.resumable`` expires them itself.
- a **dangling row**: an index row whose blob is gone (deleted or lost behind
  the server's back). The row is deleted and reported; the file was already
  unreadable (404).
- a **gone folder**: a folder that no ``LiveClient`` owns (the leave sequence was
  cut short). Deleted whole, by prefix.
- a **row without a checksum**: an upload answered before its SHA-256 was
  computed (``FILESHARE_CHECKSUM_AFTER_ANSWER``) by a process that died before it
  was. The checksum is computed and stored (``files._fill_checksum``).
- on S3, an **unfinished upload**: a multipart upload that a killed process
  never completed. It is no object, so it is in no listing, but S3 keeps its
  parts. Aborted once older than ``grace``.

Storage is listed first and the index read after, folder by folder, and every
decision is checked again right before it is carried out, so that a server
serving clients meanwhile loses nothing: a row written after the listing keeps
its blob, and a client that connected after the listing keeps its folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from fileshare.models import LiveClient, ResumableUpload, StoredFile
from fileshare.store import files, storage
from fileshare.tus import resumable

DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class DanglingRow:
    """An index row whose blob is missing."""

    file_id: int
    client: str
    path: str
    blob: str


@dataclass
class Report:
    """What a reconciliation found, and did unless it was a dry run."""

    dry_run: bool
    orphan_blobs: list[storage.Blob] = field(default_factory=list)
    recent_orphans: list[storage.Blob] = field(default_factory=list)
    dangling_rows: list[DanglingRow] = field(default_factory=list)
    gone_folders: dict[str, int] = field(default_factory=dict)
    unfinished_uploads: list[str] = field(default_factory=list)
    checksums_filled: list[int] = field(default_factory=list)
    """file_ids of rows whose missing checksum was computed (or would be)."""
    blobs_seen: int = 0

    @property
    def clean(self) -> bool:
        """True when storage and index agreed (recent orphans aside)."""
        return not (
            self.orphan_blobs
            or self.dangling_rows
            or self.gone_folders
            or self.unfinished_uploads
            or self.checksums_filled
        )


def _folder_of(name: str) -> str:
    return name.split("/", 1)[0] if "/" in name else ""


def reconcile(
    *,
    dry_run: bool = False,
    grace: timedelta = DEFAULT_GRACE,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Compare storage with the index and fix what disagrees; see the module docstring.

    ``log`` gets one line per finding. Synchronous: call it from a management
    command or a worker thread, never from the event loop.
    """
    report = Report(dry_run=dry_run)
    say = log or (lambda line: None)
    verb = "would delete" if dry_run else "deleted"
    cutoff = timezone.now() - grace
    seen_folders: set[str] = set()

    for folder, group in itertools.groupby(storage.iter_blobs(""), key=lambda blob: _folder_of(blob.name)):
        blobs = list(group)
        report.blobs_seen += len(blobs)
        seen_folders.add(folder)
        if folder and not LiveClient.objects.filter(folder=folder).exists():
            report.gone_folders[folder] = report.gone_folders.get(folder, 0) + len(blobs)
            if not dry_run:
                storage.delete_folder(folder)
            say(f"folder of a gone client: {folder} ({len(blobs)} blobs) - {verb}")
            continue
        _orphans(report, folder, blobs, cutoff, say, verb)
        _dangling(report, StoredFile.objects.filter(owner__folder=folder), {b.name for b in blobs}, say, verb)

    # Live clients with rows but no blobs at all were not met in the listing.
    unseen = StoredFile.objects.exclude(owner__folder__in=seen_folders) if seen_folders else StoredFile.objects.all()
    _dangling(report, unseen, set(), say, verb)

    # Rows answered before their checksum, by a process that died before computing it.
    for file_id, client, path, blob in StoredFile.objects.filter(sha256="", modified_at__lt=cutoff).values_list(
        "file_id", "owner__name", "path", "blob"
    ):
        report.checksums_filled.append(file_id)
        if not dry_run:
            files._fill_checksum(file_id, blob)
        say(
            f"index row without a checksum: {client}/{path} (file_id {file_id}) - {'would compute' if dry_run else 'computed'}"
        )

    for name, upload_id, initiated in storage.iter_unfinished_uploads(""):
        if initiated > cutoff:
            continue  # most likely still streaming
        report.unfinished_uploads.append(name)
        if not dry_run:
            storage.abort_unfinished_upload(name, upload_id)
        say(
            f"unfinished upload: {name} (begun {initiated:%Y-%m-%d %H:%M:%S}) - {'would abort' if dry_run else 'aborted'}"
        )
    return report


def _orphans(
    report: Report,
    folder: str,
    blobs: list[storage.Blob],
    cutoff: datetime,
    say: Callable[[str], None],
    verb: str,
) -> None:
    """Blobs of ``folder`` no row names: delete those older than the cutoff."""
    if folder:
        indexed = set(StoredFile.objects.filter(blob__startswith=f"{folder}/").values_list("blob", flat=True))
    else:  # at the storage root, outside every folder: no row can name it
        indexed = set()
    uploads: dict[object, bool] = {}
    for blob in blobs:
        if blob.name in indexed:
            continue
        upload_id = resumable.part_of(blob.name)
        if upload_id is not None:
            if upload_id not in uploads:
                uploads[upload_id] = ResumableUpload.objects.filter(pk=upload_id).exists()
            if uploads[upload_id]:
                continue  # a part of an unfinished resumable upload
        if blob.modified > cutoff:
            report.recent_orphans.append(blob)
            say(f"unindexed blob younger than the grace period (an upload in progress?): {blob.name} - kept")
            continue
        if StoredFile.objects.filter(blob=blob.name).exists():  # indexed since we looked
            continue
        report.orphan_blobs.append(blob)
        if not report.dry_run:
            storage.delete_blob(blob.name)
        say(f"orphan blob: {blob.name} ({blob.size} bytes, modified {blob.modified:%Y-%m-%d %H:%M:%S}) - {verb}")


def _dangling(
    report: Report,
    rows: Any,
    listed: set[str],
    say: Callable[[str], None],
    verb: str,
) -> None:
    """Rows whose blob was not listed and does not exist now: delete the row."""
    backend = storage.get_storage()
    candidates = [
        (row.file_id, row.owner.name, row.path, row.blob)
        for row in rows.select_related("owner")
        if row.blob not in listed
    ]
    for file_id, client, path, blob in candidates:
        if backend.exists(blob):  # written after the listing
            continue
        found = DanglingRow(file_id, client, path, blob)
        report.dangling_rows.append(found)
        if not report.dry_run:
            # Only if the row still names the missing blob (a PUT may have replaced it since).
            StoredFile.objects.filter(file_id=file_id, blob=blob).delete()
        say(f"index row without its blob: {client}/{path} (file_id {file_id}, blob {blob} missing) - {verb}")
