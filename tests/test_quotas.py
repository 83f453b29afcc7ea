"""Quotas per client (bytes and files, tus uploads in progress included) and for the whole
store (docs/limits.md), against real servers."""

from __future__ import annotations

import asyncio
import base64

import httpx

from tests.conftest import Spawn
from tests.support import rawhttp
from tests.support.clients import connect
from tests.support.server import ServerProcess

KIB = 1024


def refusal(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == error
    return str(body["detail"])


def tus_create(http: httpx.AsyncClient, name: str, key: str, path: str, length: int) -> asyncio.Future[httpx.Response]:
    metadata = "filename " + base64.b64encode(path.encode()).decode()
    return asyncio.ensure_future(
        http.post(
            f"/tus/{name}/",
            headers={
                "Authorization": key,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(length),
                "Upload-Metadata": metadata,
            },
        )
    )


async def test_a_client_cannot_hold_more_bytes_than_its_quota(spawn: Spawn, name: str) -> None:
    server = spawn(FILESHARE_CLIENT_QUOTA_BYTES=str(1000 * KIB))
    client = await connect(server.ws_url, name)
    auth = {"Authorization": client.key}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            assert (await http.put(f"/fs/{name}/a.bin", content=b"a" * 600 * KIB, headers=auth)).status_code == 201
            detail = refusal(
                await http.put(f"/fs/{name}/b.bin", content=b"b" * 600 * KIB, headers=auth), 413, "quota_exceeded"
            )
            assert "quota" in detail
            # Replacing a file frees its bytes first.
            assert (await http.put(f"/fs/{name}/a.bin", content=b"c" * 900 * KIB, headers=auth)).status_code == 201

            async def chunks():  # no declared length: cut where the quota ends
                for _ in range(10):
                    yield b"d" * 100 * KIB

            refusal(await http.put(f"/fs/{name}/d.bin", content=chunks(), headers=auth), 413, "quota_exceeded")
            form = await http.post(f"/fs/{name}/", files={"file": ("e.bin", b"e" * 300 * KIB)}, headers=auth)
            refusal(form, 413, "quota_exceeded")
            listing = (await http.get(f"/fs/{name}/", headers=auth)).json()
            assert [(e["path"], e["size_bytes"]) for e in listing["entries"]] == [("a.bin", 900 * KIB)]
    finally:
        await client.close()
    assert "Traceback" not in server.log()


async def test_unfinished_tus_uploads_count_against_the_quota(spawn: Spawn, name: str) -> None:
    server = spawn(FILESHARE_CLIENT_QUOTA_BYTES=str(1000 * KIB), FILESHARE_CLIENT_QUOTA_FILES="2")
    client = await connect(server.ws_url, name)
    auth = {"Authorization": client.key}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            created = await tus_create(http, name, client.key, "big.bin", 800 * KIB)
            assert created.status_code == 201, created.text
            # The 800 KiB reserved by the upload leave 200 KiB.
            refusal(await http.put(f"/fs/{name}/x.bin", content=b"x" * 300 * KIB, headers=auth), 413, "quota_exceeded")
            refusal(await tus_create(http, name, client.key, "more.bin", 300 * KIB), 413, "quota_exceeded")
            # Files: the upload counts as one; a second file fits, a third does not.
            assert (await http.put(f"/fs/{name}/y.bin", content=b"y", headers=auth)).status_code == 201
            detail = refusal(await http.put(f"/fs/{name}/z.bin", content=b"z", headers=auth), 413, "quota_exceeded")
            assert "files" in detail
            # The upload completes into its own reservation.
            patch = await http.patch(
                created.headers["location"],
                content=b"p" * 800 * KIB,
                headers={
                    **auth,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert patch.status_code == 204, patch.text
            listing = (await http.get(f"/fs/{name}/", headers=auth)).json()
            assert sorted(e["path"] for e in listing["entries"]) == ["big.bin", "y.bin"]
    finally:
        await client.close()


async def test_the_whole_store_answers_507_when_its_quota_is_reached(spawn: Spawn, name: str) -> None:
    server = spawn(FILESHARE_STORE_QUOTA_BYTES=str(1000 * KIB))
    first = await connect(server.ws_url, name)
    second = await connect(server.ws_url, name + "_2")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            put = await http.put(f"/fs/{name}/a.bin", content=b"a" * 800 * KIB, headers={"Authorization": first.key})
            assert put.status_code == 201
            other = await http.put(
                f"/fs/{second.name}/b.bin", content=b"b" * 300 * KIB, headers={"Authorization": second.key}
            )
            assert "store" in refusal(other, 507, "insufficient_storage")
    finally:
        await first.close()
        await second.close()


async def test_an_upload_declaring_more_than_the_quota_is_refused_before_its_body(spawn: Spawn, name: str) -> None:
    server: ServerProcess = spawn(FILESHARE_CLIENT_QUOTA_BYTES=str(1000 * KIB))
    client = await connect(server.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/big.bin", {"Content-Length": str(2000 * KIB), "Authorization": client.key}
        )

        def ask() -> rawhttp.Answer:
            with rawhttp.connect((server.host, server.port)) as sock:
                sock.sendall(head)  # the body never follows
                return rawhttp.read_answer(sock)

        answer = await asyncio.to_thread(ask)
        assert answer.status == 413 and answer.json()["error"] == "quota_exceeded"
    finally:
        await client.close()
