"""The leave's database steps (fileshare/presence/lifecycle.py), in-process on the test database.

The whole leave sequence over a real socket is covered in test_cleanup.py and
test_messaging.py; here, which way ``_depart`` goes and what it leaves behind.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from fileshare.models import LiveClient, StoredFile
from fileshare.presence import lifecycle
from tests.support.local_storage import local_file_storage

pytestmark = pytest.mark.django_db(transaction=True)


def store_a_file(client: LiveClient) -> StoredFile:
    return StoredFile.objects.create(
        owner=client,
        path="a.txt",
        blob="owner.abc/a.txt.1",
        size=1,
        content_type="text/plain",
        sha256="0" * 64,
        modified_at=timezone.now(),
    )


def test_a_client_that_holds_nothing_is_released_with_its_claim(client_row: LiveClient) -> None:
    departure = lifecycle._depart(client_row.pk, force=False)

    assert departure is not None and departure.released
    assert departure.info == client_row.info()
    assert departure.folder == "owner.abc"
    assert not LiveClient.objects.filter(pk=client_row.pk).exists()


def test_a_client_with_a_file_is_only_claimed_until_its_folder_is_deleted(client_row: LiveClient) -> None:
    store_a_file(client_row)

    departure = lifecycle._depart(client_row.pk, force=False)

    assert departure is not None and not departure.released
    row = LiveClient.objects.get(pk=client_row.pk)
    assert row.left_at is not None
    assert StoredFile.objects.filter(owner=client_row).count() == 1
    lifecycle._release(client_row.pk)
    assert not LiveClient.objects.filter(pk=client_row.pk).exists()
    assert not StoredFile.objects.exists()


def test_a_second_claim_gets_nothing_unless_forced(client_row: LiveClient) -> None:
    store_a_file(client_row)
    assert lifecycle._depart(client_row.pk, force=False) is not None

    assert lifecycle._depart(client_row.pk, force=False) is None
    forced = lifecycle._depart(client_row.pk, force=True)
    assert forced is not None and not forced.released


def test_a_row_that_arrives_unseen_sends_the_leave_the_long_way(
    client_row: LiveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick leave deletes a client that holds nothing in one statement; a file row
    it did not see (another transaction's, committed meanwhile) fails that statement on
    its foreign key. Simulated with a quick leave blind to files: the leave must still
    claim the client, keep the row for the folder's deletion, and lose nothing."""
    quick, claim, read = lifecycle._depart_sql()
    blind = re.sub(r" AND NOT \(EXISTS\(.*\)\) RETURNING", " RETURNING", quick)
    assert blind != quick
    monkeypatch.setattr(lifecycle, "_depart_sql", lambda: (blind, claim, read))
    store_a_file(client_row)

    departure = lifecycle._depart(client_row.pk, force=False)

    assert departure is not None and not departure.released
    assert LiveClient.objects.get(pk=client_row.pk).left_at is not None
    assert StoredFile.objects.filter(owner=client_row).count() == 1


async def test_a_client_that_held_nothing_has_its_folder_swept_soon_after_it_left(
    client_row: LiveClient, tmp_path: Path
) -> None:
    """Its row goes at once; a blob left in its folder (an upload that raced the leave)
    goes with the sweeper's next batch, never later."""
    from asgiref.sync import sync_to_async

    with local_file_storage(tmp_path) as root:
        stray = root / client_row.folder / "raced.bin"
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"half an upload")

        assert await lifecycle.leave(client_row.pk, "test")

        assert not await sync_to_async(LiveClient.objects.filter(pk=client_row.pk).exists)()
        await asyncio.wait_for(lifecycle.sweeper.idle(), 5)
        assert not stray.exists()
        assert not (root / client_row.folder).exists()


async def test_one_folder_that_cannot_be_swept_does_not_keep_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fileshare.store import storage

    swept: list[str] = []

    def delete_folder(folder: str) -> int:
        if folder == "broken":
            raise OSError("the disk said no")
        swept.append(folder)
        return 0

    monkeypatch.setattr(storage, "delete_folder", delete_folder)
    sweeper = lifecycle.FolderSweeper(every=0.01)
    for folder in ("a", "broken", "b"):
        sweeper.add(folder)
    await asyncio.wait_for(sweeper.idle(), 5)
    assert swept == ["a", "b"]


def crowd(client_row: LiveClient, size: int) -> list[LiveClient]:
    """``size`` more live clients on client_row's server; every fourth holds a file."""
    members = [
        LiveClient.objects.create(
            name=f"crowd{i}",
            version="0.2.0",
            key=uuid.uuid4(),
            public_id=uuid.uuid4(),
            channel_name=f"crowd-channel-{i}",
            folder=f"crowd{i}.abc",
            instance_id=client_row.instance_id,
        )
        for i in range(size)
    ]
    for holder in members[::4]:
        StoredFile.objects.create(
            owner=holder,
            path="a.txt",
            blob=f"{holder.folder}/a.txt.1",
            size=1,
            content_type="text/plain",
            sha256="0" * 64,
            modified_at=timezone.now(),
        )
    return members


async def test_clients_leaving_together_are_claimed_in_few_trips_and_each_leaves_once(
    client_row: LiveClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgiref.sync import sync_to_async

    members = await sync_to_async(crowd)(client_row, 24)
    trips: list[int] = []
    depart_many = lifecycle._depart_many

    def counted(client_ids: list[int]) -> list[object]:
        trips.append(len(client_ids))
        return depart_many(client_ids)  # type: ignore[return-value]

    monkeypatch.setattr(lifecycle, "_depart_many", counted)
    ids = [member.pk for member in members]
    with local_file_storage(tmp_path):
        did = await asyncio.gather(*(lifecycle.leave(pk, "crowd") for pk in [*ids, ids[1], ids[4]]))

    assert did == [True] * len(ids) + [False, False]  # a client named twice leaves once
    assert sum(trips) == len(ids) + 2 and len(trips) <= 3, trips
    assert not await LiveClient.objects.filter(pk__in=ids).aexists()
    assert not await StoredFile.objects.filter(owner_id__in=ids).aexists()
    assert await LiveClient.objects.filter(pk=client_row.pk).aexists()


def test_a_crowd_whose_statement_fails_on_a_row_it_did_not_see_leaves_one_by_one(
    client_row: LiveClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for one client (above): the batch's quick leave blind to files fails on the
    holders' foreign keys, deletes nothing, and each client goes its own way."""
    members = crowd(client_row, 8)
    real = lifecycle._quick_sql.__wrapped__
    monkeypatch.setattr(
        lifecycle, "_quick_sql", lambda rows: re.sub(r" AND NOT \(EXISTS\(.*\)\) RETURNING", " RETURNING", real(rows))
    )
    lifecycle._depart_sql.cache_clear()
    try:
        outcomes = lifecycle._depart_many([member.pk for member in members])
    finally:
        lifecycle._depart_sql.cache_clear()

    assert all(isinstance(outcome, lifecycle.Departure) for outcome in outcomes)
    released = [outcome.released for outcome in outcomes if isinstance(outcome, lifecycle.Departure)]
    assert released == [i % 4 != 0 for i in range(8)]
    holders = [member.pk for member in members[::4]]
    assert set(LiveClient.objects.values_list("pk", flat=True)) == {client_row.pk, *holders}
    assert StoredFile.objects.filter(owner_id__in=holders).count() == 2
