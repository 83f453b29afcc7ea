"""``manage.py fileshare_reconcile`` against a real server's storage and index, on each backend."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_client_of, stored_names
from tests.support.clients import Client, connect
from tests.support.server import ServerProcess, manage


@pytest.fixture
def app(files_server: ServerProcess) -> ServerProcess:
    """The shared ``owner`` and ``http`` fixtures run against every storage backend here."""
    return files_server


GHOST = "ghost_client.0123456789abcdef"


def folder_of(server: ServerProcess, client_name: str) -> str:
    """The storage folder of ``client_name``'s session, read from the server's database."""
    with sqlite3.connect(f"file:{server.data_dir / 'concierge.sqlite3'}?mode=ro", uri=True) as db:
        (folder,) = db.execute("SELECT folder FROM fileshare_liveclient WHERE name = ?", (client_name,)).fetchone()
    return str(folder)


def indexed_paths(server: ServerProcess, client_name: str) -> list[str]:
    """The paths the index lists for ``client_name``."""
    with sqlite3.connect(f"file:{server.data_dir / 'concierge.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT f.path FROM fileshare_storedfile f JOIN fileshare_liveclient c ON c.id = f.owner_id "
            "WHERE c.name = ? ORDER BY f.path",
            (client_name,),
        ).fetchall()
    return [path for (path,) in rows]


def put_directly(server: ServerProcess, name: str, data: bytes) -> None:
    """Write a blob into storage behind the server's back."""
    bucket = server.env.get("FILESHARE_S3_BUCKET")
    if bucket:
        s3_client_of(server).put_object(Bucket=bucket, Key=f"{server.env['FILESHARE_S3_PREFIX']}/{name}", Body=data)
        return
    path = Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files")) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def delete_directly(server: ServerProcess, name: str) -> None:
    """Delete a blob behind the server's back."""
    bucket = server.env.get("FILESHARE_S3_BUCKET")
    if bucket:
        s3_client_of(server).delete_object(Bucket=bucket, Key=f"{server.env['FILESHARE_S3_PREFIX']}/{name}")
        return
    (Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files")) / name).unlink()


async def upload(server: ServerProcess, client: Client, path: str, data: bytes) -> str:
    """PUT a file; returns the name of the blob it was stored as."""
    before = set(stored_names(server))
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.put(f"/fs/{client.name}/{path}", content=data, headers={"Authorization": client.key})
        assert response.status_code == 201
    (blob,) = set(stored_names(server)) - before
    return blob


async def reconcile(server: ServerProcess, *args: str) -> str:
    return (await asyncio.to_thread(manage, server.env, "fileshare_reconcile", *args)).stdout


async def test_reconcile_fixes_orphans_dangling_rows_and_gone_folders(
    files_server: ServerProcess, owner: Client
) -> None:
    keep = await upload(files_server, owner, "keep.txt", b"keep me")
    lost = await upload(files_server, owner, "sub/lost.txt", b"lost behind our back")
    folder = folder_of(files_server, owner.name)
    delete_directly(files_server, lost)  # -> an index row without its blob
    orphan = f"{folder}/{'0' * 32}.bin"
    put_directly(files_server, orphan, b"no row names me")  # -> a blob without an index row
    ghosts = [f"{GHOST}/{'a' * 32}.txt", f"{GHOST}/{'b' * 32}"]
    for ghost in ghosts:
        put_directly(files_server, ghost, b"left behind")  # -> the folder of a gone client

    before = stored_names(files_server)
    dry = await reconcile(files_server, "--dry-run", "--grace", "0")
    assert f"orphan blob: {orphan}" in dry and "would delete" in dry
    assert f"index row without its blob: {owner.name}/sub/lost.txt" in dry
    assert f"folder of a gone client: {GHOST} (2 blobs)" in dry
    assert keep not in dry
    assert stored_names(files_server) == before
    assert indexed_paths(files_server, owner.name) == ["keep.txt", "sub/lost.txt"]

    done = await reconcile(files_server, "--grace", "0")
    assert f"orphan blob: {orphan}" in done and "deleted" in done
    after = stored_names(files_server)
    assert keep in after
    assert orphan not in after and not [name for name in after if name.startswith(GHOST + "/")]
    assert indexed_paths(files_server, owner.name) == ["keep.txt"]
    async with httpx.AsyncClient(base_url=files_server.url) as http:
        got = await http.get(f"/fs/{owner.name}/keep.txt", headers={"Authorization": owner.key})
        assert (got.status_code, got.content) == (202, b"keep me")

    again = await reconcile(files_server, "--grace", "0")
    assert "deleted 0 orphan blobs, 0 index rows without a blob and 0 folders" in again


async def test_young_unindexed_blobs_are_kept_as_uploads_in_progress(
    files_server: ServerProcess, owner: Client
) -> None:
    await upload(files_server, owner, "a.txt", b"a")
    in_progress = f"{folder_of(files_server, owner.name)}/{'1' * 32}.bin"
    put_directly(files_server, in_progress, b"still arriving")
    output = await reconcile(files_server)  # the default grace: one hour
    assert f"younger than the grace period (an upload in progress?): {in_progress} - kept" in output
    assert in_progress in stored_names(files_server)
    await reconcile(files_server, "--grace", "0")
    assert in_progress not in stored_names(files_server)


async def test_rows_of_a_client_with_no_blob_left_are_found(files_server: ServerProcess, owner: Client) -> None:
    """The client's folder is in no listing at all, yet its rows are checked."""
    only = await upload(files_server, owner, "only.bin", b"x")
    delete_directly(files_server, only)
    output = await reconcile(files_server, "--grace", "0")
    assert f"index row without its blob: {owner.name}/only.bin" in output
    assert indexed_paths(files_server, owner.name) == []


@pytest.mark.parametrize("storage_env", ["s3"], indirect=True)  # only S3 has multipart uploads
async def test_unfinished_multipart_uploads_are_aborted(files_server: ServerProcess, owner: Client) -> None:
    bucket = files_server.env["FILESHARE_S3_BUCKET"]
    client = s3_client_of(files_server)
    key = f"{files_server.env['FILESHARE_S3_PREFIX']}/{folder_of(files_server, owner.name)}/{'2' * 32}.bin"
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * 1024)

    dry = await reconcile(files_server, "--dry-run", "--grace", "0")
    assert "would abort" in dry and key.split("/", 1)[1] in dry
    await reconcile(files_server, "--grace", "0")
    pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload_id not in [u["UploadId"] for u in pending]


async def test_parts_of_unfinished_resumable_uploads_are_kept(files_server: ServerProcess, owner: Client) -> None:
    """A paused tus upload's parts have no StoredFile row but must survive; stray parts go."""
    tus = {"Authorization": owner.key, "Tus-Resumable": "1.0.0"}
    async with httpx.AsyncClient(base_url=files_server.url) as http:
        created = await http.post(
            f"/tus/{owner.name}/",
            headers={
                **tus,
                "Upload-Length": "10",
                "Upload-Metadata": f"filename {base64.b64encode(b'r.bin').decode()}",
            },
        )
        assert created.status_code == 201, created.text
        patched = await http.patch(
            created.headers["location"],
            content=b"hello",
            headers={**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert patched.status_code == 204, patched.text
    folder = folder_of(files_server, owner.name)
    (part,) = [name for name in stored_names(files_server) if name.startswith(f"{folder}/.parts/")]
    stray = f"{folder}/.parts/{uuid.uuid4().hex}/{0:020d}-abcdef012345"
    put_directly(files_server, stray, b"an upload nobody remembers")

    output = await reconcile(files_server, "--grace", "0")
    assert part not in output and f"orphan blob: {stray}" in output
    names = stored_names(files_server)
    assert part in names and stray not in names


async def test_a_row_left_without_its_checksum_gets_it(server: ServerProcess, name: str) -> None:
    """A process that answered before hashing (FILESHARE_CHECKSUM_AFTER_ANSWER) and died."""
    client = await connect(server.ws_url, name)
    data = b"checksum me later" * 1000
    try:
        await upload(server, client, "late.bin", data)
        with sqlite3.connect(server.data_dir / "concierge.sqlite3") as db:
            db.execute(
                "UPDATE fileshare_storedfile SET sha256 = '' WHERE owner_id = (SELECT id FROM fileshare_liveclient WHERE name = ?)",
                (name,),
            )
        async with httpx.AsyncClient(base_url=server.url) as http:
            head = await http.head(f"/fs/{name}/late.bin", headers={"Authorization": client.key})
            assert head.status_code == 202 and "etag" not in head.headers
            out = await reconcile(server, "--grace", "0")
            assert "index row without a checksum" in out and "computed 1 missing checksums" in out
            head = await http.head(f"/fs/{name}/late.bin", headers={"Authorization": client.key})
            assert head.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    finally:
        await client.close()
