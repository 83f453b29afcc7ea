"""Storage and index in step (in-process, real FileSystemStorage in a temp folder)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.utils import timezone

from fileshare.exceptions import ChecksumMismatch, OwnerLeft, TooLarge
from fileshare.models import LiveClient, StoredFile
from fileshare.store import files
from tests.support.local_storage import local_file_storage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage_root(tmp_path: Path):  # type: ignore[no-untyped-def]
    with local_file_storage(tmp_path):
        yield tmp_path


class LeavesMidway(io.RawIOBase):
    """A body whose owner leaves after the first chunk."""

    def __init__(self, client: LiveClient) -> None:
        self.client = client
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self.sent == 1:
            LiveClient.objects.filter(pk=self.client.pk).update(left_at=timezone.now())
        if self.sent >= 4:
            return b""
        self.sent += 1
        return b"x" * 1024


def upload(client: LiveClient, path: str = "f.bin", **kw) -> files.Upload:  # type: ignore[no-untyped-def]
    return files.Upload(owner_id=client.pk, folder=client.folder, path=path, limit=kw.pop("limit", 10**6), **kw)


def test_an_owner_leaving_during_the_write_leaves_no_blob_and_no_row(
    storage_root: Path, client_row: LiveClient
) -> None:
    with pytest.raises(OwnerLeft):
        files._store(upload(client_row), LeavesMidway(client_row))
    assert not StoredFile.objects.exists()
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


def test_a_body_over_the_limit_leaves_nothing(storage_root: Path, client_row: LiveClient) -> None:
    with pytest.raises(TooLarge):
        files._store(upload(client_row, limit=100), io.BytesIO(b"x" * 101))
    assert not StoredFile.objects.exists()
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


def test_a_checksum_mismatch_leaves_nothing(storage_root: Path, client_row: LiveClient) -> None:
    with pytest.raises(ChecksumMismatch):
        files._store(upload(client_row, expected_sha256="0" * 64), io.BytesIO(b"abc"))
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []


def test_a_replacement_swaps_the_blob_and_deletes_the_old_one(storage_root: Path, client_row: LiveClient) -> None:
    first = files._store(upload(client_row), io.BytesIO(b"one"))
    second = files._store(upload(client_row), io.BytesIO(b"two!"))
    assert first.file_id == second.file_id and first.blob != second.blob
    blobs = [p for p in storage_root.rglob("*") if p.is_file()]
    assert [b.read_bytes() for b in blobs] == [b"two!"]
    assert StoredFile.objects.get().size == 4
