"""Files through a real server on each backend, SeaweedFS S3 included: exact bytes, cleanup, memory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fileshare.store.s3 import StreamingS3Storage
from fileshare.store.storage import CountingReader
from tests.conftest import drop_bucket, new_bucket, s3_client_of, s3_env, stored_names
from tests.support.clients import connect
from tests.support.s3server import AWS_ENV_TO_UNSET, S3Server, aws_isolation_env
from tests.support.server import REPO, ServerProcess, base_env

pytestmark = pytest.mark.s3

MIB = 1024 * 1024
SIZES = {"empty": 0, "one-byte": 1, "5MiB+1": 5 * MIB + 1, "200MiB": 200 * MIB}


def folder_of(server: ServerProcess, client_name: str) -> str:
    """The storage folder of ``client_name``'s session (``<name>.<16 hex>``), found by its blobs."""
    folders = {name.split("/", 1)[0] for name in stored_names(server)}
    matches = [folder for folder in folders if folder.rsplit(".", 1)[0] == client_name]
    assert len(matches) == 1, (client_name, sorted(folders))
    return matches[0]


async def random_body(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    """``size`` random bytes in 1 MiB chunks, hashed into ``digest`` as they are sent."""
    sent = 0
    while sent < size:
        chunk = os.urandom(min(MIB, size - sent))
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(size, id=label, marks=[pytest.mark.slow] if size > 100 * MIB else [])
        for label, size in SIZES.items()
    ],
)
async def test_upload_then_download_is_byte_exact(files_server: ServerProcess, name: str, size: int) -> None:
    client = await connect(files_server.ws_url, name)
    sent = hashlib.sha256()
    url = f"/fs/{name}/data/blob.bin"
    headers = {"Authorization": client.key}
    async with httpx.AsyncClient(base_url=files_server.url, timeout=300) as http:
        put = await http.put(url, content=random_body(size, sent), headers={**headers, "Content-Length": str(size)})
        assert put.status_code == 201, put.text
        assert (put.json()["size"], put.json()["sha256"]) == (size, sent.hexdigest())

        received = hashlib.sha256()
        count = 0
        async with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 202
            assert response.headers["content-length"] == str(size)
            async for chunk in response.aiter_raw():
                received.update(chunk)
                count += len(chunk)
        assert (count, received.hexdigest()) == (size, sent.hexdigest())

    if files_server.env.get("FILESHARE_S3_BUCKET"):
        (blob,) = [n for n in stored_names(files_server) if n.startswith(folder_of(files_server, name) + "/")]
        head = s3_client_of(files_server).head_object(
            Bucket=files_server.env["FILESHARE_S3_BUCKET"], Key=f"{files_server.env['FILESHARE_S3_PREFIX']}/{blob}"
        )
        assert head["ContentLength"] == size
        # Past the 8 MiB threshold the upload went up as a multipart upload of 8 MiB parts.
        parts = -(-size // (8 * MIB))
        assert head["ETag"].strip('"').endswith(f"-{parts}") == (size >= 8 * MIB), head["ETag"]
    await client.close()


async def test_leaving_deletes_every_blob_of_the_folder_in_batches(files_server: ServerProcess, name: str) -> None:
    """2,503 blobs: more than two DeleteObjects batches of 1,000, and some never indexed."""
    owner = await connect(files_server.ws_url, name)
    bystander = await connect(files_server.ws_url, name + "_b")
    async with httpx.AsyncClient(base_url=files_server.url, timeout=60) as http:
        for i in range(3):
            put = await http.put(f"/fs/{name}/indexed/{i}.txt", content=b"i", headers={"Authorization": owner.key})
            assert put.status_code == 201
        kept = await http.put(f"/fs/{bystander.name}/keep.txt", content=b"k", headers={"Authorization": bystander.key})
        assert kept.status_code == 201
    folder = folder_of(files_server, name)
    await asyncio.to_thread(_fill_folder, files_server, folder, 2500)
    assert len([n for n in stored_names(files_server) if n.startswith(folder + "/")]) == 2503

    await owner.close()
    # The leave sequence deletes the folder before it announces CLIENT_LEFT.
    await bystander.expect(lambda p: p.get("type") == "CLIENT_LEFT" and p["client"]["name"] == name, timeout=120)
    remaining = stored_names(files_server)
    assert not [n for n in remaining if n.startswith(folder + "/")]
    assert any(n.startswith(folder_of(files_server, bystander.name) + "/") for n in remaining)
    if files_server.env.get("FILESHARE_S3_BUCKET"):
        assert not [key for key in stored_names(files_server, whole_bucket=True) if f"/{folder}/" in key]
    await bystander.close()


def _fill_folder(server: ServerProcess, folder: str, count: int) -> None:
    """Write ``count`` small blobs straight into ``folder`` in storage (quicker than 2,500 PUTs)."""
    bucket = server.env.get("FILESHARE_S3_BUCKET")
    if not bucket:
        root = Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files")) / folder
        for i in range(count):
            (root / f"extra{i:05d}.bin").write_bytes(b"x")
        return
    client = s3_client_of(server)
    prefix = server.env["FILESHARE_S3_PREFIX"]
    with ThreadPoolExecutor(8) as pool:  # botocore's pool holds 10 connections
        list(
            pool.map(
                lambda i: client.put_object(Bucket=bucket, Key=f"{prefix}/{folder}/extra{i:05d}.bin", Body=b"x"),
                range(count),
            )
        )


class Trickle:
    """A body that arrives in short reads, as from a socket: at most 64 KiB per ``read``."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        size = min(size if size > 0 else 64 * 1024, 64 * 1024)
        chunk = bytes(self.data[self.offset : self.offset + size])
        self.offset += len(chunk)
        return chunk


class RecordingReader(CountingReader):
    """A CountingReader that records the size of each ``read`` asked of it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def test_uploads_read_the_counting_reader_in_whole_parts(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Short reads are topped up to whole parts: 12 MiB + 5 in 5 MiB parts is 3 parts."""
    for variable in AWS_ENV_TO_UNSET:
        monkeypatch.delenv(variable, raising=False)
    for variable, value in aws_isolation_env(tmp_path).items():
        monkeypatch.setenv(variable, value)
    bucket = new_bucket(s3_server)
    try:
        storage = StreamingS3Storage(**s3_server.storage_options(bucket_name=bucket, part_size=5 * MIB))
        data = os.urandom(12 * MIB + 5)
        reader = RecordingReader(Trickle(data), limit=len(data))
        assert storage.save("folder/blob.bin", reader) == "folder/blob.bin"
        assert reader.asked[0] == 5 * MIB  # s3transfer asks for a whole part at a time
        assert max(reader.asked) == 5 * MIB and -1 not in reader.asked
        assert reader.count == len(data)
        head = s3_server.client().head_object(Bucket=bucket, Key="folder/blob.bin")
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
        with storage.open_range("folder/blob.bin", 5 * MIB - 3, 5 * MIB + 3) as body:
            assert body.read() == data[5 * MIB - 3 : 5 * MIB + 3]
        with pytest.raises(FileNotFoundError):
            storage.open_range("folder/missing.bin")
        assert storage.delete_prefix("folder/") == 1
    finally:
        drop_bucket(s3_server, bucket)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_storage_layer_moves_a_gib_each_way_in_under_100_mib(s3_server: S3Server, tmp_path: Path) -> None:
    """bench/s3_storage_rss.py in a subprocess: save_blob then open_blob of 1 GiB on S3."""
    bucket = new_bucket(s3_server)
    try:
        env = base_env(tmp_path, **s3_env(s3_server, bucket, tmp_path))
        result = subprocess.run(
            [sys.executable, "bench/s3_storage_rss.py", "--size-mib", "1024"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        figures = json.loads(result.stdout)
        print(json.dumps(figures))
        assert figures["backend"] == "fileshare.store.s3.StreamingS3Storage"
        assert figures["size_bytes"] == 1024 * MIB
    finally:
        drop_bucket(s3_server, bucket)
