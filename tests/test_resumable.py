"""Resumable uploads (tus 1.0, docs/resumable.md) against a real server.

Raw tus requests go through httpx; the interrupted-and-resumed upload uses
tus-py-client (``tuspy``), an existing client, with its URL storage.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import stored_names
from tests.support.clients import Client, connect
from tests.support.local_storage import local_file_storage
from tests.support.server import ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


# -- Helpers -------------------------------------------------------------------------------


def metadata(**values: str) -> str:
    """``Upload-Metadata`` for ``values``."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def headers(client: Client, **extra: str) -> dict[str, str]:
    """The owner's key, ``Tus-Resumable`` and ``extra`` (underscores become dashes)."""
    return {"Authorization": client.key, **TUS, **{k.replace("_", "-"): v for k, v in extra.items()}}


async def create(http: httpx.AsyncClient, client: Client, path: str, length: int, **meta: str) -> str:
    """POST a new upload; returns its URL."""
    response = await http.post(
        f"/tus/{client.name}/",
        headers=headers(client, Upload_Length=str(length), Upload_Metadata=metadata(filename=path, **meta)),
    )
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    # A finished upload no longer expires; an empty one is finished at once.
    assert ("upload-expires" in response.headers) == (length > 0)
    return response.headers["location"]


async def patch(
    http: httpx.AsyncClient, client: Client, url: str, offset: int, body: bytes, **extra: str
) -> httpx.Response:
    return await http.patch(
        url, content=body, headers=headers(client, Upload_Offset=str(offset), Content_Type=OCTETS, **extra)
    )


async def offset_of(http: httpx.AsyncClient, client: Client, url: str) -> int:
    response = await http.head(url, headers=headers(client))
    assert response.status_code == 200, response.status_code
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


def checksum(algorithm: str, body: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, body).digest()).decode()}"


def folders(server: ServerProcess, name: str) -> list[Path]:
    root = server.data_dir / "files"
    return sorted(root.glob(f"{name}.*")) if root.exists() else []


def part_files(server: ServerProcess, name: str) -> list[Path]:
    """Every part blob of ``name``'s unfinished uploads, on disk."""
    return sorted(p for folder in folders(server, name) for p in (folder / ".parts").rglob("*") if p.is_file())


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    assert response.headers["tus-resumable"] == "1.0.0"
    return str(body["error"])


# -- Fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a 1 KiB PATCH limit and a 10 KiB upload limit."""
    from tests.support.server import base_env, manage, start_server

    data_dir = tmp_path_factory.mktemp("small")
    env = base_env(data_dir, FILESHARE_TUS_MAX_CHUNK_BYTES="1024", FILESHARE_MAX_UPLOAD_BYTES="10240")
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


# -- Discovery and the happy path -------------------------------------------------------------


async def test_options_advertises_tus_1_0_and_its_extensions_without_a_key(http: httpx.AsyncClient) -> None:
    for url in ("/tus/", "/tus/anyone/", "/tus/anyone/00000000-0000-0000-0000-000000000000"):
        response = await http.options(url)
        assert response.status_code == 204, url
        assert response.headers["tus-version"] == "1.0.0"
        assert response.headers["tus-extension"] == "creation,termination,checksum,expiration"
        assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"
        assert response.headers["tus-max-size"] == str(8 * 1024**3)
        assert response.headers["tus-max-chunk-size"] == str(64 * 1024 * 1024)


async def test_chunks_then_head_then_complete_gives_the_exact_file(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    data = os.urandom(700_000)
    url = await create(http, owner, "big/scan.bin", len(data))
    assert url.startswith(f"{server.url}/tus/{owner.name}/")
    assert await offset_of(http, owner, url) == 0
    cuts = [0, 250_000, 500_000, len(data)]
    for start, end in zip(cuts, cuts[1:], strict=False):
        response = await patch(
            http, owner, url, start, data[start:end], Upload_Checksum=checksum("sha256", data[start:end])
        )
        assert response.status_code == 204, response.text
        assert response.headers["upload-offset"] == str(end)
        assert response.headers["tus-resumable"] == "1.0.0"
        head = await http.head(url, headers=headers(owner))
        assert head.headers["upload-offset"] == str(end)
        assert head.headers["upload-length"] == str(len(data))
        assert head.headers["upload-metadata"] == metadata(filename="big/scan.bin")
        visible = await http.get(f"/fs/{owner.name}/big/scan.bin", headers={"Authorization": owner.key})
        # The file appears only once the last byte is in.
        assert visible.status_code == (202 if end == len(data) else 404)
    assert visible.content == data
    assert visible.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert part_files(server, owner.name) == []
    # The finished upload is remembered: a client resuming it learns it is complete.
    head = await http.head(url, headers=headers(owner))
    assert (head.status_code, head.headers["upload-offset"]) == (200, str(len(data)))
    assert "upload-expires" not in head.headers


async def test_filetype_sets_the_files_content_type(http: httpx.AsyncClient, owner: Client) -> None:
    url = await create(http, owner, "table", 3, filetype="text/csv; charset=utf-8")
    assert (await patch(http, owner, url, 0, b"a,b")).status_code == 204
    got = await http.get(f"/fs/{owner.name}/table", headers={"Authorization": owner.key})
    assert (got.status_code, got.headers["content-type"], got.content) == (202, "text/csv", b"a,b")


async def test_an_empty_upload_is_stored_at_creation(http: httpx.AsyncClient, owner: Client) -> None:
    url = await create(http, owner, "empty.txt", 0)
    assert await offset_of(http, owner, url) == 0
    got = await http.get(f"/fs/{owner.name}/empty.txt", headers={"Authorization": owner.key})
    assert (got.status_code, got.content) == (202, b"")


async def test_x_http_method_override_turns_a_post_into_a_patch(http: httpx.AsyncClient, owner: Client) -> None:
    url = await create(http, owner, "override.bin", 4)
    response = await http.post(
        url,
        content=b"abcd",
        headers=headers(owner, X_HTTP_Method_Override="PATCH", Upload_Offset="0", Content_Type=OCTETS),
    )
    assert response.status_code == 204 and response.headers["upload-offset"] == "4"


# -- Resuming -------------------------------------------------------------------------------


async def send_part_of_a_patch_and_drop(
    server: ServerProcess, client: Client, url: str, offset: int, body: bytes
) -> None:
    """Start a PATCH declaring all of ``body`` but send only half of it, then drop the connection."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    path = url.removeprefix(server.url)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nAuthorization: {client.key}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: {OCTETS}\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body[: len(body) // 2])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()


class KeptOpen(io.BytesIO):
    """The file for tuspy: it closes the stream it fingerprints (``with stream:``), then reads it again."""

    def close(self) -> None:
        pass


async def test_an_interrupted_upload_resumes_with_tuspy_from_the_servers_offset(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess, tmp_path: Path
) -> None:
    from tusclient import client as tus_client
    from tusclient.storage.filestorage import FileStorage

    data = os.urandom(1_000_000)
    url_storage = FileStorage(str(tmp_path / "tus-urls.json"))  # survives the "restart" below
    tus = tus_client.TusClient(f"{server.url}/tus/{owner.name}/", headers={"Authorization": owner.key})

    def uploader() -> Any:
        return tus.uploader(
            file_stream=KeptOpen(data),
            chunk_size=256 * 1024,
            metadata={"filename": "scans/scan.raw", "filetype": "application/x-scan"},
            store_url=True,
            url_storage=url_storage,
            upload_checksum=True,  # sha1 of every chunk
        )

    def first_session() -> str:
        first = uploader()
        first.upload(stop_at=512 * 1024)  # then the laptop lid closes
        return str(first.url)

    try:
        url = await asyncio.to_thread(first_session)
        assert await offset_of(http, owner, url) == 512 * 1024
        # A PATCH cut off in the middle: daphne never hands an incomplete body to the app.
        await send_part_of_a_patch_and_drop(server, owner, url, 512 * 1024, data[512 * 1024 : 768 * 1024])
        await asyncio.sleep(0.3)
        assert await offset_of(http, owner, url) == 512 * 1024
        missing = await http.get(f"/fs/{owner.name}/scans/scan.raw", headers={"Authorization": owner.key})
        assert missing.status_code == 404

        def second_session() -> tuple[str, int]:
            second = uploader()
            resumed_at = second.offset  # tuspy found the stored URL and asked the server (HEAD)
            second.upload()
            return str(second.url), resumed_at

        resumed_url, resumed_at = await asyncio.to_thread(second_session)
    finally:
        url_storage.close()
    assert (resumed_url, resumed_at) == (url, 512 * 1024)
    got = await http.get(f"/fs/{owner.name}/scans/scan.raw", headers={"Authorization": owner.key})
    assert (got.status_code, got.headers["content-type"]) == (202, "application/x-scan")
    assert got.content == data


async def test_tuspy_uploads_a_whole_file_in_one_session(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    from tusclient import client as tus_client

    data = os.urandom(300_001)
    tus = tus_client.TusClient(f"{server.url}/tus/{owner.name}/", headers={"Authorization": owner.key})
    uploader = tus.uploader(file_stream=KeptOpen(data), chunk_size=100_000, metadata={"filename": "whole.bin"})
    await asyncio.to_thread(uploader.upload)
    got = await http.get(f"/fs/{owner.name}/whole.bin", headers={"Authorization": owner.key})
    assert (got.status_code, got.content) == (202, data)


TUS_JS_CLIENT = "tus-js-client@4.3.1"
TUS_JS_SCRIPT = """
const tus = require("tus-js-client");
const fs = require("fs");
const [step] = process.argv.slice(2);
const env = process.env;
const data = fs.readFileSync(env.SOURCE);
const options = (extra) => ({
  endpoint: `${env.SERVER}/tus/${env.NAME}/`,
  headers: { Authorization: env.KEY },
  chunkSize: 256 * 1024,
  metadata: { filename: "js/upload.bin", filetype: "application/x-js-test" },
  urlStorage: new tus.FileUrlStorage(env.URLS),
  retryDelays: null,
  ...extra,
});
const first = () => new Promise((resolve, reject) => {
  let chunks = 0;
  const upload = new tus.Upload(data, options({
    onChunkComplete: () => { if (++chunks === 2) upload.abort().then(() => resolve(upload.url)); },
    onSuccess: () => reject(new Error("finished before the abort")),
    onError: reject,
  }));
  upload.start();
});
const second = () => new Promise((resolve, reject) => {
  const upload = new tus.Upload(data, options({ onSuccess: () => resolve(upload.url), onError: reject }));
  upload.findPreviousUploads().then((previous) => {
    if (previous.length !== 1) throw new Error(`${previous.length} previous uploads`);
    upload.resumeFromPreviousUpload(previous[0]);
    upload.start();
  }).catch(reject);
});
(step === "first" ? first() : second())
  .then((url) => console.log(JSON.stringify({ url })))
  .catch((error) => { console.error(String(error)); process.exit(1); });
"""


@pytest.fixture(scope="session")
def tus_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with tus-js-client installed from npm and the test script; skips without node or npm."""
    import shutil
    import subprocess

    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the tus-js-client test")
    folder = tmp_path_factory.mktemp("tus-js")
    try:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", TUS_JS_CLIENT],
            cwd=folder, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm could not install {TUS_JS_CLIENT}: {exc}")
    (folder / "upload.js").write_text(TUS_JS_SCRIPT)
    return folder


async def run_node(folder: Path, step: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        "node", "upload.js", step, cwd=folder, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return str(json.loads(out.decode().strip().splitlines()[-1])["url"])


async def test_tus_js_client_resumes_an_aborted_upload_under_node(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess, tus_js: Path, tmp_path: Path
) -> None:
    data = os.urandom(1_000_000)
    (tmp_path / "source.bin").write_bytes(data)
    env = {
        "SERVER": server.url,
        "NAME": owner.name,
        "KEY": owner.key,
        "SOURCE": str(tmp_path / "source.bin"),
        "URLS": str(tmp_path / "tus-js-urls.json"),
    }
    url = await run_node(tus_js, "first", env)
    assert await offset_of(http, owner, url) == 512 * 1024
    assert (await http.get(f"/fs/{owner.name}/js/upload.bin", headers={"Authorization": owner.key})).status_code == 404
    assert await run_node(tus_js, "second", env) == url  # a new process found the stored URL
    got = await http.get(f"/fs/{owner.name}/js/upload.bin", headers={"Authorization": owner.key})
    assert (got.status_code, got.headers["content-type"]) == (202, "application/x-js-test")
    assert got.content == data


# -- Refusals ---------------------------------------------------------------------------------


async def test_a_patch_at_the_wrong_offset_is_409_and_changes_nothing(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    url = await create(http, owner, "o.bin", 10)
    assert (await patch(http, owner, url, 0, b"12345")).status_code == 204
    for wrong in (0, 3, 7):
        response = await patch(http, owner, url, wrong, b"abc")
        assert response.status_code == 409 and error_of(response) == "offset_mismatch"
    assert await offset_of(http, owner, url) == 5
    assert len(part_files(server, owner.name)) == 1
    missing = await http.patch(url, content=b"x", headers=headers(owner, Content_Type=OCTETS))
    assert missing.status_code == 400


async def test_a_checksum_mismatch_is_460_and_appends_nothing(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    url = await create(http, owner, "c.bin", 8)
    for algorithm in ("sha1", "sha256"):
        response = await patch(http, owner, url, 0, b"abcd", Upload_Checksum=checksum(algorithm, b"abce"))
        assert response.status_code == 460 and error_of(response) == "checksum_mismatch"
    assert await offset_of(http, owner, url) == 0
    assert part_files(server, owner.name) == []
    unsupported = await patch(
        http, owner, url, 0, b"abcd", Upload_Checksum="md5 " + base64.b64encode(b"x" * 16).decode()
    )
    assert unsupported.status_code == 400
    garbled = await patch(http, owner, url, 0, b"abcd", Upload_Checksum="sha1 not-base64!")
    assert garbled.status_code == 400
    good = await patch(http, owner, url, 0, b"abcd", Upload_Checksum=checksum("sha1", b"abcd"))
    assert (good.status_code, good.headers["upload-offset"]) == (204, "4")


async def test_termination_removes_the_upload_and_its_parts(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    url = await create(http, owner, "t.bin", 100)
    assert (await patch(http, owner, url, 0, b"x" * 40)).status_code == 204
    assert (await patch(http, owner, url, 40, b"y" * 40)).status_code == 204
    assert len(part_files(server, owner.name)) == 2
    deleted = await http.delete(url, headers=headers(owner))
    assert (deleted.status_code, deleted.headers["tus-resumable"]) == (204, "1.0.0")
    assert part_files(server, owner.name) == []
    assert (await http.head(url, headers=headers(owner))).status_code == 404
    assert (await patch(http, owner, url, 80, b"z" * 20)).status_code == 404
    assert (await http.delete(url, headers=headers(owner))).status_code == 404
    assert (await http.get(f"/fs/{owner.name}/t.bin", headers={"Authorization": owner.key})).status_code == 404


async def test_a_patch_must_be_offset_octet_stream(http: httpx.AsyncClient, owner: Client) -> None:
    url = await create(http, owner, "m.bin", 4)
    for content_type in ("application/octet-stream", "text/plain", ""):
        response = await http.patch(
            url, content=b"abcd", headers=headers(owner, Upload_Offset="0", Content_Type=content_type)
        )
        assert response.status_code == 415 and error_of(response) == "unsupported_media_type"
    assert await offset_of(http, owner, url) == 0


async def test_requests_without_tus_resumable_1_0_0_are_412(http: httpx.AsyncClient, owner: Client) -> None:
    url = await create(http, owner, "v.bin", 4)
    for version in (None, "0.2.2"):
        extra = {} if version is None else {"Tus-Resumable": version}
        response = await http.head(url, headers={"Authorization": owner.key, **extra})
        assert response.status_code == 412
        assert (response.headers["tus-version"], response.headers["tus-resumable"]) == ("1.0.0", "1.0.0")
        post = await http.post(
            f"/tus/{owner.name}/", headers={"Authorization": owner.key, "Upload-Length": "1", **extra}
        )
        assert post.status_code == 412 and error_of(post) == "unsupported_version"


async def test_missing_or_unknown_keys_are_401_and_other_clients_403(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess, name: str
) -> None:
    url = await create(http, owner, "k.bin", 4)
    other = await connect(server.ws_url, name + "_o")
    try:
        no_key = {**TUS, "Upload-Length": "4", "Upload-Metadata": metadata(filename="x")}
        for key in (None, "not-a-uuid", "00000000-0000-4000-8000-000000000000"):
            auth = {} if key is None else {"Authorization": key}
            post = await http.post(f"/tus/{owner.name}/", headers={**no_key, **auth})
            assert post.status_code == 401 and error_of(post) == "unauthorized"
            head = await http.head(url, headers={**TUS, **auth})
            assert head.status_code == 401 and "upload-offset" not in head.headers
        post = await http.post(f"/tus/{owner.name}/", headers={**no_key, "Authorization": other.key})
        assert post.status_code == 403 and error_of(post) == "forbidden"
        head = await http.head(url, headers=headers(other))
        assert head.status_code == 403 and "upload-offset" not in head.headers
        assert (await patch(http, other, url, 0, b"evil")).status_code == 403
        assert (await http.delete(url, headers=headers(other))).status_code == 403
        # Its own URL space holds no one else's uploads.
        theirs = url.replace(f"/tus/{owner.name}/", f"/tus/{other.name}/")
        assert (await http.head(theirs, headers=headers(other))).status_code == 404
        for bearer in (f"Bearer {owner.key}",):
            assert (await http.head(url, headers={**TUS, "Authorization": bearer})).status_code == 200
        assert (await http.head(url, headers={**TUS, "x-fs-key": owner.key})).status_code == 200
        assert await offset_of(http, owner, url) == 0
    finally:
        await other.close()


async def test_creation_checks_the_path_length_and_metadata(http: httpx.AsyncClient, owner: Client) -> None:
    post = f"/tus/{owner.name}/"

    async def create_with(**extra: str) -> httpx.Response:
        return await http.post(post, headers=headers(owner, **extra))

    cases = {
        "no length": {"Upload_Metadata": metadata(filename="a")},
        "deferred length": {"Upload_Defer_Length": "1", "Upload_Metadata": metadata(filename="a")},
        "negative length": {"Upload_Length": "-1", "Upload_Metadata": metadata(filename="a")},
        "no filename": {"Upload_Length": "1"},
        "empty filename": {"Upload_Length": "1", "Upload_Metadata": "filename"},
        "bad base64": {"Upload_Length": "1", "Upload_Metadata": "filename !!!"},
        "duplicate key": {"Upload_Length": "1", "Upload_Metadata": metadata(filename="a") + ",filename YQ=="},
        "traversal": {"Upload_Length": "1", "Upload_Metadata": metadata(filename="../escape")},
        "absolute": {"Upload_Length": "1", "Upload_Metadata": metadata(filename="/etc/passwd")},
        "backslash": {"Upload_Length": "1", "Upload_Metadata": metadata(filename="a\\b")},
    }
    for label, extra in cases.items():
        response = await create_with(**extra)
        assert response.status_code == 400, label
        error_of(response)
    too_big = await create_with(Upload_Length=str(8 * 1024**3 + 1), Upload_Metadata=metadata(filename="a"))
    assert too_big.status_code == 413 and error_of(too_big) == "too_large"
    # A path that would be both a file and a folder is refused before any byte is sent.
    assert (
        await http.put(f"/fs/{owner.name}/dir", content=b"f", headers={"Authorization": owner.key})
    ).status_code == 201
    clash = await create_with(Upload_Length="1", Upload_Metadata=metadata(filename="dir/inner"))
    assert clash.status_code == 409 and error_of(clash) == "conflict"
    other_methods = await http.get(post, headers=headers(owner))
    assert other_methods.status_code == 405 and "POST" in other_methods.headers["allow"]


async def test_two_patches_racing_for_one_offset_store_exactly_one(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    url = await create(http, owner, "race.bin", 200_000)
    responses = await asyncio.gather(
        patch(http, owner, url, 0, b"a" * 100_000), patch(http, owner, url, 0, b"b" * 100_000)
    )
    assert sorted(r.status_code for r in responses) == [204, 409]
    assert await offset_of(http, owner, url) == 100_000
    assert len(part_files(server, owner.name)) == 1


# -- The per-PATCH limit ------------------------------------------------------------------------


async def test_a_patch_over_the_chunk_limit_is_413_and_appends_nothing(small_server: ServerProcess, name: str) -> None:
    owner = await connect(small_server.ws_url, name)
    try:
        async with httpx.AsyncClient(base_url=small_server.url, timeout=60) as http:
            options = await http.options("/tus/")
            assert options.headers["tus-max-chunk-size"] == "1024"
            assert options.headers["tus-max-size"] == "10240"
            url = await create(http, owner, "limited.bin", 4000)
            declared = await patch(http, owner, url, 0, b"x" * 1025)
            assert declared.status_code == 413 and error_of(declared) == "too_large"

            async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it is read
                for _ in range(3):
                    yield b"y" * 500

            undeclared = await http.patch(
                url, content=chunked(), headers=headers(owner, Upload_Offset="0", Content_Type=OCTETS)
            )
            assert undeclared.status_code == 413
            assert await offset_of(http, owner, url) == 0
            assert part_files(small_server, name) == []
            for start in range(0, 4000, 1024):
                body = bytes([start % 251]) * min(1024, 4000 - start)
                assert (await patch(http, owner, url, start, body)).status_code == 204
            got = await http.get(f"/fs/{name}/limited.bin", headers={"Authorization": owner.key})
            assert got.content == b"".join(bytes([s % 251]) * min(1024, 4000 - s) for s in range(0, 4000, 1024))
            # Past the declared length is refused too.
            short = await create(http, owner, "short.bin", 10)
            past = await patch(http, owner, short, 0, b"z" * 11)
            assert past.status_code == 413 and "Upload-Length" in past.json()["detail"]
            over = await http.post(
                f"/tus/{name}/", headers=headers(owner, Upload_Length="10241", Upload_Metadata=metadata(filename="x"))
            )
            assert over.status_code == 413
    finally:
        await owner.close()


# -- Lifetimes ---------------------------------------------------------------------------------


async def test_the_owner_leaving_deletes_its_partial_uploads(server: ServerProcess, name: str) -> None:
    owner = await connect(server.ws_url, name)
    watcher = await connect(server.ws_url, name + "_w")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        url = await create(http, owner, "unfinished.bin", 1000)
        assert (await patch(http, owner, url, 0, b"p" * 300)).status_code == 204
        assert (await patch(http, owner, url, 300, b"q" * 300)).status_code == 204
        assert len(part_files(server, name)) == 2
        await owner.close()
        await watcher.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
        assert folders(server, name) == []
        assert (await http.head(url, headers=headers(owner))).status_code == 401
    await watcher.close()


async def test_an_expired_upload_is_gone_with_its_parts(spawn, name: str) -> None:  # type: ignore[no-untyped-def]
    server = spawn(FILESHARE_TUS_EXPIRY="1")
    owner = await connect(server.ws_url, name)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            url = await create(http, owner, "slow.bin", 10)
            response = await patch(http, owner, url, 0, b"12345")
            assert response.status_code == 204 and "upload-expires" in response.headers
            await asyncio.sleep(1.5)
            gone = await http.head(url, headers=headers(owner))
            assert gone.status_code == 410 and "upload-offset" not in gone.headers
            assert part_files(server, name) == []
            assert (await http.head(url, headers=headers(owner))).status_code == 404
            # Expired uploads of a client are also swept when it starts another.
            stale = await create(http, owner, "stale.bin", 10)
            assert (await patch(http, owner, stale, 0, b"1")).status_code == 204
            await asyncio.sleep(1.5)
            await create(http, owner, "fresh.bin", 10)
            assert part_files(server, name) == []
    finally:
        await owner.close()


async def test_a_failed_assembly_keeps_the_upload_resumable_at_its_last_chunk(
    http: httpx.AsyncClient, owner: Client, server: ServerProcess
) -> None:
    url = await create(http, owner, "x/y.bin", 6)
    assert (await patch(http, owner, url, 0, b"abc")).status_code == 204
    # Meanwhile a file takes the name of the upload's folder: the assembly must fail.
    blocker = f"/fs/{owner.name}/x"
    assert (await http.put(blocker, content=b"!", headers={"Authorization": owner.key})).status_code == 201
    failed = await patch(http, owner, url, 3, b"def")
    assert failed.status_code == 409 and error_of(failed) == "conflict"
    assert await offset_of(http, owner, url) == 3
    assert len(part_files(server, owner.name)) == 1  # the final chunk was not kept
    assert (await http.delete(blocker, headers={"Authorization": owner.key})).status_code == 200
    retried = await patch(http, owner, url, 3, b"def")
    assert (retried.status_code, retried.headers["upload-offset"]) == (204, "6")
    got = await http.get(f"/fs/{owner.name}/x/y.bin", headers={"Authorization": owner.key})
    assert (got.status_code, got.content) == (202, b"abcdef")


# -- On every storage backend (local disk and S3) ---------------------------------------------


def part_names(server: ServerProcess, name: str) -> list[str]:
    """``name``'s part blobs in ``server``'s storage, whatever the backend."""
    return [n for n in stored_names(server) if n.startswith(f"{name}.") and "/.parts/" in n]


async def test_parts_are_stored_assembled_and_deleted_on_every_backend(files_server: ServerProcess, name: str) -> None:
    owner = await connect(files_server.ws_url, name)
    watcher = await connect(files_server.ws_url, name + "_w")
    async with httpx.AsyncClient(base_url=files_server.url, timeout=60) as http:
        data = os.urandom(600_000)
        url = await create(http, owner, "deep/scan.bin", len(data))
        assert (await patch(http, owner, url, 0, data[:300_000])).status_code == 204
        assert len(part_names(files_server, name)) == 1
        # Termination deletes the parts of that upload only.
        dropped = await create(http, owner, "dropped.bin", 10)
        assert (await patch(http, owner, dropped, 0, b"12345")).status_code == 204
        assert len(part_names(files_server, name)) == 2
        assert (await http.delete(dropped, headers=headers(owner))).status_code == 204
        assert len(part_names(files_server, name)) == 1
        # Completion assembles the file and deletes the parts.
        assert (await patch(http, owner, url, 300_000, data[300_000:])).status_code == 204
        assert part_names(files_server, name) == []
        got = await http.get(f"/fs/{name}/deep/scan.bin", headers={"Authorization": owner.key})
        assert (got.status_code, got.content) == (202, data)
        # Leaving deletes unfinished parts with the rest of the folder.
        unfinished = await create(http, owner, "unfinished.bin", 10)
        assert (await patch(http, owner, unfinished, 0, b"123")).status_code == 204
        assert len(part_names(files_server, name)) == 1
        await owner.close()
        await watcher.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
        assert [n for n in stored_names(files_server) if n.startswith(f"{name}.")] == []
    await watcher.close()


# -- The assembly claim, in-process (a crash cannot be timed against a real server) ---------------


@pytest.fixture
def parts_storage(tmp_path: Path) -> Iterator[Path]:
    with local_file_storage(tmp_path):
        yield tmp_path


@pytest.mark.django_db(transaction=True)
def test_an_assembly_claim_locks_the_upload_until_its_process_loses_its_lease(parts_storage: Path) -> None:
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from fileshare.exceptions import UploadLocked
    from fileshare.models import LiveClient, ResumableUpload, ServerInstance
    from fileshare.tus import resumable

    assembler = ServerInstance.objects.create(hostname="a", pid=1, heartbeat_at=timezone.now())
    row = LiveClient.objects.create(
        name="owner", version="0.2.0", key=uuid.uuid4(), public_id=uuid.uuid4(),
        channel_name="c1", folder="owner.abc", instance=assembler,
    )  # fmt: skip
    owner = resumable.Owner(row.pk, row.name, row.folder)
    state = resumable._create(owner, "f.bin", 6, "", "")
    assert isinstance(
        resumable._append(owner, state.id, 0, io.BytesIO(b"abc"), 3, None, assembler.id), resumable.UploadState
    )
    pending = resumable._append(owner, state.id, 3, io.BytesIO(b"def"), 3, None, assembler.id)
    assert isinstance(pending, resumable._Pending)  # the last chunk: assembling now
    assert [size for _blob, _offset, size in pending.parts] == [3, 3]

    # While the assembler holds its lease: HEAD still says 3, the last chunk and DELETE wait (423).
    assert resumable._status(owner, state.id).offset == 3
    with pytest.raises(UploadLocked):
        resumable._append(owner, state.id, 3, io.BytesIO(b"def"), 3, None, uuid.uuid4())
    with pytest.raises(UploadLocked):
        resumable._terminate(owner, state.id)

    # The assembler dies: once its lease lapses, the last chunk may be sent again.
    ServerInstance.objects.filter(pk=assembler.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    again = resumable._append(owner, state.id, 3, io.BytesIO(b"def"), 3, None, uuid.uuid4())
    assert isinstance(again, resumable._Pending)
    reader = resumable.PartsReader(again.parts)
    assert b"".join(iter(lambda: reader.read(2), b"")) == b"abcdef"
    assert resumable._complete(owner, again) is not None
    done = ResumableUpload.objects.get(pk=state.id)
    assert (done.offset, done.completed_at is not None, done.finishing_by) == (6, True, None)
    assert not (parts_storage / "owner.abc" / ".parts").exists() or not any(
        p.is_file() for p in (parts_storage / "owner.abc" / ".parts").rglob("*")
    )


def test_part_blob_names_name_their_upload() -> None:
    import uuid

    from fileshare.tus import resumable

    ident = uuid.uuid4()
    name = f"{resumable.parts_prefix('owner.abc', ident)}/{0:020d}-abcdef"
    assert resumable.part_of(name) == ident
    for other in ("owner.abc/0123abcd.bin", "owner.abc/.parts/not-a-uuid/0-x", ".parts", "a/b"):
        assert resumable.part_of(other) is None


@pytest.mark.django_db(transaction=True)
def test_a_part_shorter_than_recorded_fails_the_assembly(parts_storage: Path) -> None:
    from fileshare.exceptions import FileshareError
    from fileshare.tus import resumable

    (parts_storage / "p").mkdir()
    (parts_storage / "p" / "0").write_bytes(b"abc")
    (parts_storage / "p" / "1").write_bytes(b"d")
    reader = resumable.PartsReader([("p/0", 0, 3), ("p/1", 3, 3)])
    with pytest.raises(FileshareError, match="holds 1 bytes, not 3"):
        while reader.read(1024):
            pass
    reader.close()


@pytest.mark.cluster
async def test_an_upload_started_on_one_process_is_resumed_and_finished_on_another(cluster, name: str) -> None:  # type: ignore[no-untyped-def]
    a, b = cluster.processes
    owner = await connect(a.ws_url, name)
    try:
        data = os.urandom(200_000)
        async with httpx.AsyncClient(base_url=a.url, timeout=60) as http:
            url_on_a = await create(http, owner, "shared/state.bin", len(data))
            url_on_b = url_on_a.replace(a.url, b.url)
            assert (await patch(http, owner, url_on_a, 0, data[:120_000])).status_code == 204
            assert await offset_of(http, owner, url_on_b) == 120_000
            assert (await patch(http, owner, url_on_b, 120_000, data[120_000:])).status_code == 204
            got = await http.get(f"/fs/{name}/shared/state.bin", headers={"Authorization": owner.key})
            assert (got.status_code, got.content) == (202, data)
    finally:
        await owner.close()
