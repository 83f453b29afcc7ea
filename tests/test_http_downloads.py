"""Downloads done properly (RFC 9110): ranges, validators and conditional requests, on each backend."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from email.utils import formatdate
from http.client import HTTPConnection
from pathlib import Path

import httpx
import pytest

from fileshare.exceptions import RangeNotSatisfiable
from fileshare.fileapi.downloads import ByteRange, if_range_holds, parse_range
from tests.conftest import s3_client_of, stored_names
from tests.support.clients import Client, connect
from tests.support.server import ServerProcess


@pytest.fixture
def app(files_server: ServerProcess) -> ServerProcess:
    """The shared ``owner`` and ``http`` fixtures run against every storage backend here."""
    return files_server


SIZE = 600_000  # a few of the server's 256 KiB read chunks
DATA = os.urandom(SIZE)


@pytest.fixture
async def stored(http: httpx.AsyncClient, owner: Client) -> str:
    """The URL of DATA, uploaded as ``owner``'s ``dir/data.bin``."""
    url = f"/fs/{owner.name}/dir/data.bin"
    assert (await http.put(url, content=DATA, headers={"Authorization": owner.key})).status_code == 201
    return url


def auth(owner: Client, **headers: str) -> dict[str, str]:
    return {"Authorization": owner.key, **{k.replace("_", "-"): v for k, v in headers.items()}}


def error_of(response: httpx.Response) -> dict[str, str]:
    assert "\n" not in response.text.strip()
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    return body


# -- Range parsing, without a server ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 10, 100)),
        ("bytes=90-", ByteRange(90, 100, 100)),
        ("bytes=-5", ByteRange(95, 100, 100)),
        ("bytes=-500", ByteRange(0, 100, 100)),
        ("bytes=50-5000", ByteRange(50, 100, 100)),
        ("bytes=99-99", ByteRange(99, 100, 100)),
        ("BYTES=1-2", ByteRange(1, 3, 100)),
        (" bytes= 3-4 ", ByteRange(3, 5, 100)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("bytes=5-1", None),  # invalid: ignored
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("bytes=", None),
        ("items=0-1", None),
        ("0-1", None),
        (None, None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=5000-", "bytes=-0"])
def test_ranges_past_the_end_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_an_empty_file_ignores_ranges() -> None:
    assert parse_range("bytes=0-", 0) is None
    assert parse_range("bytes=-1", 0) is None


def test_if_range_uses_strong_comparison_and_exact_dates() -> None:
    etag = '"abc"'
    assert if_range_holds(None, etag, 1000)
    assert if_range_holds('"abc"', etag, 1000)
    assert not if_range_holds('W/"abc"', etag, 1000)
    assert not if_range_holds('"other"', etag, 1000)
    assert if_range_holds(formatdate(1000, usegmt=True), etag, 1000)
    assert not if_range_holds(formatdate(999, usegmt=True), etag, 1000)
    assert not if_range_holds("not a date", etag, 1000)


# -- Against a real server, on each backend -----------------------------------------------------


async def test_the_whole_file_is_202_and_advertises_ranges(http: httpx.AsyncClient, owner: Client, stored: str) -> None:
    response = await http.get(stored, headers=auth(owner))
    assert (response.status_code, response.content) == (202, DATA)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["content-length"] == str(SIZE)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=262140-262150", 262140, 262151),  # across a 256 KiB read chunk
        (f"bytes={SIZE - 10}-", SIZE - 10, SIZE),
        ("bytes=-7", SIZE - 7, SIZE),
        (f"bytes=100-{SIZE * 2}", 100, SIZE),
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),
    ],
)
async def test_a_single_range_is_206_with_content_range(
    http: httpx.AsyncClient, owner: Client, stored: str, header: str, start: int, end: int
) -> None:
    response = await http.get(stored, headers=auth(owner, Range=header))
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{SIZE}"
    assert response.headers["content-length"] == str(end - start)
    assert response.headers["etag"] and response.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 10}", "bytes=-0"])
async def test_an_unsatisfiable_range_is_416_with_the_size(
    http: httpx.AsyncClient, owner: Client, stored: str, header: str
) -> None:
    response = await http.get(stored, headers=auth(owner, Range=header))
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert error_of(response)["error"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=0-1,10-20", "bytes=9-3", "lines=1-2", "bytes=x"])
async def test_several_or_malformed_ranges_get_the_whole_file(
    http: httpx.AsyncClient, owner: Client, stored: str, header: str
) -> None:
    response = await http.get(stored, headers=auth(owner, Range=header))
    assert (response.status_code, response.content) == (202, DATA)
    assert "content-range" not in response.headers


async def test_head_ignores_range_and_sends_no_body(http: httpx.AsyncClient, owner: Client, stored: str) -> None:
    response = await http.head(stored, headers=auth(owner, Range="bytes=0-9"))
    assert (response.status_code, response.content) == (202, b"")
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["accept-ranges"] == "bytes"


async def test_if_none_match_is_304_without_a_body(http: httpx.AsyncClient, owner: Client, stored: str) -> None:
    etag = (await http.head(stored, headers=auth(owner))).headers["etag"]
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        response = await http.get(stored, headers=auth(owner, If_None_Match=value))
        assert (response.status_code, response.content) == (304, b""), value
        assert response.headers["etag"] == etag
        assert "last-modified" in response.headers
    changed = await http.get(stored, headers=auth(owner, If_None_Match='"not-this-one"'))
    assert (changed.status_code, changed.content) == (202, DATA)
    head = await http.head(stored, headers=auth(owner, If_None_Match=etag))
    assert head.status_code == 304


async def test_if_modified_since_is_304_unless_the_file_is_newer(
    http: httpx.AsyncClient, owner: Client, stored: str
) -> None:
    last_modified = (await http.head(stored, headers=auth(owner))).headers["last-modified"]
    same = await http.get(stored, headers=auth(owner, If_Modified_Since=last_modified))
    assert (same.status_code, same.content) == (304, b"")
    older = await http.get(stored, headers=auth(owner, If_Modified_Since="Mon, 01 Jan 2001 00:00:00 GMT"))
    assert (older.status_code, older.content) == (202, DATA)
    # If-None-Match wins over If-Modified-Since (RFC 9110 section 13.1.3).
    both = await http.get(stored, headers=auth(owner, If_Modified_Since=last_modified, If_None_Match='"other"'))
    assert both.status_code == 202


async def test_a_replaced_file_has_a_new_etag(http: httpx.AsyncClient, owner: Client, stored: str) -> None:
    old = (await http.head(stored, headers=auth(owner))).headers["etag"]
    await http.put(stored, content=b"new content", headers=auth(owner))
    response = await http.get(stored, headers=auth(owner, If_None_Match=old))
    assert (response.status_code, response.content) == (202, b"new content")
    assert response.headers["etag"] != old


async def test_if_range_applies_the_range_only_to_the_same_file(
    http: httpx.AsyncClient, owner: Client, stored: str
) -> None:
    head = await http.head(stored, headers=auth(owner))
    etag, last_modified = head.headers["etag"], head.headers["last-modified"]
    for validator in (etag, last_modified):
        same = await http.get(stored, headers=auth(owner, Range="bytes=0-3", If_Range=validator))
        assert (same.status_code, same.content) == (206, DATA[:4]), validator
    for validator in ('"something-else"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        other = await http.get(stored, headers=auth(owner, Range="bytes=0-3", If_Range=validator))
        assert (other.status_code, other.content) == (202, DATA), validator


async def test_a_failed_if_match_is_412(http: httpx.AsyncClient, owner: Client, stored: str) -> None:
    etag = (await http.head(stored, headers=auth(owner))).headers["etag"]
    assert (await http.get(stored, headers=auth(owner, If_Match=etag))).status_code == 202
    failed = await http.get(stored, headers=auth(owner, If_Match='"other"'))
    assert failed.status_code == 412 and error_of(failed)["error"] == "precondition_failed"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("notes.txt", "text/plain"),
        ("data.json", "application/json"),
        ("photo.PNG", "image/png"),
        ("blob", "application/octet-stream"),
    ],
)
async def test_the_content_type_is_guessed_from_the_name(
    http: httpx.AsyncClient, owner: Client, path: str, content_type: str
) -> None:
    url = f"/fs/{owner.name}/types/{path}"
    await http.put(url, content=b"x", headers=auth(owner))
    for method in ("GET", "HEAD"):
        response = await http.request(method, url, headers=auth(owner))
        assert response.headers["content-type"] == content_type, method
        assert response.headers["content-disposition"] == f'attachment; filename="{path}"'


async def test_an_empty_file_ignores_range(http: httpx.AsyncClient, owner: Client) -> None:
    url = f"/fs/{owner.name}/empty"
    await http.put(url, content=b"", headers=auth(owner))
    response = await http.get(url, headers=auth(owner, Range="bytes=0-"))
    assert (response.status_code, response.content) == (202, b"")


async def test_a_missing_blob_is_a_404_not_a_cut_stream(
    files_server: ServerProcess, http: httpx.AsyncClient, owner: Client
) -> None:
    url = f"/fs/{owner.name}/lost.bin"
    before = set(stored_names(files_server))
    await http.put(url, content=b"soon gone", headers=auth(owner))
    (blob,) = set(stored_names(files_server)) - before
    _delete_directly(files_server, blob)
    response = await http.get(url, headers=auth(owner))
    assert response.status_code == 404 and error_of(response)["error"] == "not_found"


def _delete_directly(server: ServerProcess, blob: str) -> None:
    bucket = server.env.get("FILESHARE_S3_BUCKET")
    if bucket:
        s3_client_of(server).delete_object(Bucket=bucket, Key=f"{server.env['FILESHARE_S3_PREFIX']}/{blob}")
    else:
        (Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files")) / blob).unlink()


async def test_a_304_carries_no_content_length_of_zero(files_server: ServerProcess, owner: Client, stored: str) -> None:
    """On the wire: a 304 has no body and no ``Content-Length: 0`` (RFC 9110 section 8.6)."""
    await asyncio.to_thread(_check_304_on_the_wire, files_server, owner.key, stored)


def _check_304_on_the_wire(files_server: ServerProcess, key: str, stored: str) -> None:
    conn = HTTPConnection(files_server.host, files_server.port, timeout=30)
    try:
        conn.request("GET", stored, headers={"Authorization": key})
        first = conn.getresponse()
        etag = first.getheader("ETag")
        first.read()
        conn.request("GET", stored, headers={"Authorization": key, "If-None-Match": etag})
        response = conn.getresponse()
        assert response.status == 304
        assert response.getheader("Content-Length") in (None, str(SIZE))
        assert response.read() == b""
        # The connection is still usable: no stray body bytes were sent.
        conn.request("HEAD", stored, headers={"Authorization": key})
        assert conn.getresponse().status == 202
    finally:
        conn.close()


# -- curl, when installed -----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_ranges_and_resume(files_server: ServerProcess, owner: Client, stored: str, tmp_path: Path) -> None:
    base = [
        "curl", "--silent", "--show-error", "--fail", "--noproxy", "*", "-H", f"Authorization: {owner.key}"
    ]  # fmt: skip
    url = files_server.url + stored

    def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*base, *args, url], capture_output=True, timeout=60, check=True)

    assert (await asyncio.to_thread(curl, "-r", "0-9")).stdout == DATA[:10]
    assert (await asyncio.to_thread(curl, "-r", "-5")).stdout == DATA[-5:]
    assert (await asyncio.to_thread(curl, "-r", f"{SIZE - 3}-")).stdout == DATA[-3:]
    # Resume a download cut after 1000 bytes: curl asks for bytes=1000- and appends.
    partial = tmp_path / "resumed.bin"
    partial.write_bytes(DATA[:1000])
    await asyncio.to_thread(curl, "-C", "-", "-o", str(partial))
    assert partial.read_bytes() == DATA
    headers = (await asyncio.to_thread(curl, "-r", "0-9", "-D", "-", "-o", os.devnull)).stdout.decode()
    assert headers.startswith("HTTP/1.1 206")
    assert f"content-range: bytes 0-9/{SIZE}" in headers.lower()


# -- FILESHARE_S3_REDIRECT_DOWNLOADS ------------------------------------------------------------


@pytest.mark.parametrize("storage_env", ["s3"], indirect=True)  # presigned URLs are S3's
async def test_s3_redirect_sends_the_client_to_a_presigned_url(
    spawn_files_server, storage_env: dict[str, str], name: str
) -> None:
    server = spawn_files_server(FILESHARE_S3_REDIRECT_DOWNLOADS="1")
    client = await connect(server.ws_url, name)
    url = f"/fs/{name}/report final.csv"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        assert (await http.put(url, content=DATA, headers=auth(client))).status_code == 201
        redirect = await http.get(url, headers=auth(client))
        assert redirect.status_code == 302
        location = redirect.headers["location"]
        assert location.startswith(storage_env["FILESHARE_S3_ENDPOINT_URL"]) and "X-Amz-Signature=" in location
        assert client.key not in location

        # Conditional requests and HEAD are still answered by the concierge.
        etag = (await http.head(url, headers=auth(client))).headers["etag"]
        assert (await http.get(url, headers=auth(client, If_None_Match=etag))).status_code == 304

    async with httpx.AsyncClient(timeout=60, follow_redirects=True) as anyone:
        followed = await anyone.get(server.url + url, headers=auth(client))
        assert (followed.status_code, followed.content) == (200, DATA)
        assert followed.headers["content-disposition"] == 'attachment; filename="report final.csv"'
        assert followed.headers["content-type"] == "text/csv"
        ranged = await anyone.get(server.url + url, headers=auth(client, Range="bytes=5-9"))
        assert (ranged.status_code, ranged.content) == (206, DATA[5:10])
        # The URL alone is the credential, for a few minutes: no Authorization needed.
        direct = await anyone.get(location)
        assert (direct.status_code, direct.content) == (200, DATA)
    await client.close()
