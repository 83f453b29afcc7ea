"""A corpus of hostile paths, sent raw on the wire: none reaches outside the owner's folder.

``http.client`` sends the request target exactly as written (httpx and browsers
would normalise ``..`` away before it left the client, which would test nothing).
"""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import stored_names
from tests.support.clients import connect
from tests.support.server import ServerProcess

# Request targets below /fs/<owner>/ (as raw bytes on the wire).
CORPUS = [
    "../victim/secret.txt",
    "..%2fvictim%2fsecret.txt",
    "..%2Fvictim%2Fsecret.txt",
    "%2e%2e/victim/secret.txt",
    "%2E%2E/victim/secret.txt",
    "%2e%2e%2fvictim%2fsecret.txt",
    ".%2e/victim/secret.txt",
    "%2e./victim/secret.txt",
    "%252e%252e%252fvictim%252fsecret.txt",
    "%25252e%25252e/victim",
    "..%5cvictim%5csecret.txt",
    "..\\victim\\secret.txt",
    "a%5c..%5c..%5cvictim",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "a/../../victim/secret.txt",
    "a%2f..%2f..%2fvictim%2fsecret.txt",
    "a/./b",
    "./a",
    "%2e",
    "...",
    ".%20.",
    "a//b",
    "a/",
    "a%00b",
    "a/..%00/b",
    "a%0ab",
    "a%0d%0aSet-Cookie:x",
    "a%09b",
    "a%7fb",
    "%c0%ae%c0%ae/victim",
    "%ef%bc%8e%ef%bc%8e/victim/secret.txt",  # fullwidth full stops
    "%e2%80%a5/victim/secret.txt",  # two dot leader
    "..%ef%bc%8fvictim",  # fullwidth solidus
    "..%ef%bc%bcvictim",  # fullwidth reverse solidus
    "a%e2%80%aeb",  # right-to-left override
    "a%e2%80%8bb",  # zero width space
    "a%e2%80%a8b",  # line separator
    "x" * 300,
    "d/" * 700 + "f",
    "C:%5cwindows%5cwin.ini",
    "..;/victim/secret.txt",
    "%u002e%u002e/victim",
]


def raw_request(
    server: ServerProcess, method: str, target: str, key: str, body: bytes | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Authorization", key)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_corpus_has_at_least_thirty_paths() -> None:
    assert len(set(CORPUS)) >= 30


@pytest.mark.parametrize("raw", CORPUS)
async def test_hostile_path_never_escapes_the_owners_folder(files_server: ServerProcess, name: str, raw: str) -> None:
    owner = await connect(files_server.ws_url, name)
    victim = await connect(files_server.ws_url, name + "_v")
    outside = files_server.data_dir / "outside.txt"
    outside.write_bytes(b"untouchable")
    async with httpx.AsyncClient(base_url=files_server.url) as http:
        put = await http.put(
            f"/fs/{victim.name}/secret.txt", content=b"victim data", headers={"Authorization": victim.key}
        )
        assert put.status_code == 201
    # The corpus names "victim"; point it at this test's victim folder.
    target = f"/fs/{owner.name}/" + raw.replace("victim", victim.name)

    for method, body in (("PUT", b"pwned"), ("GET", None), ("DELETE", None), ("PUT", b"pwned")):
        status, payload = await _in_thread(files_server, method, target, owner.key, body)
        assert status < 500, (method, status, payload)
        if status >= 400:
            error = json.loads(payload)
            assert set(error) == {"error", "detail"}, error
            assert b"\n" not in payload.strip()

    async with httpx.AsyncClient(base_url=files_server.url) as http:
        intact = await http.get(f"/fs/{victim.name}/secret.txt", headers={"Authorization": victim.key})
        assert (intact.status_code, intact.content) == (202, b"victim data")
    assert outside.read_bytes() == b"untouchable"
    _assert_storage_holds_only_client_folders(files_server)
    await owner.close()
    await victim.close()


async def _in_thread(
    server: ServerProcess, method: str, target: str, key: str, body: bytes | None
) -> tuple[int, bytes]:
    return await asyncio.to_thread(raw_request, server, method, target, key, body)


def _assert_storage_holds_only_client_folders(server: ServerProcess) -> None:
    """Every stored blob sits one level down in a session folder (on disk: a file in a
    directory under the storage root; on S3: a key ``<prefix>/<folder>/<blob>``)."""
    if server.env.get("FILESHARE_S3_BUCKET"):
        prefix = server.env["FILESHARE_S3_PREFIX"].strip("/") + "/"
        outside = [key for key in stored_names(server, whole_bucket=True) if not key.startswith(prefix)]
        assert not outside, f"keys outside {prefix!r}: {outside}"
        for name in stored_names(server):
            parts = name.split("/")
            assert len(parts) == 2 and all(parts), f"unexpected key in the bucket: {name!r}"
            assert ".." not in parts and "\\" not in name, f"unexpected key in the bucket: {name!r}"
        return
    root = Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files"))
    if not root.exists():
        return
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        assert len(relative.parts) <= 2, f"unexpected nesting in storage: {relative}"
