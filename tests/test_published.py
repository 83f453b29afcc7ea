"""The seed's flat file system: operator-published files at /_published (docs/pw_file.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from pw_file import file_pb2
from pw_status import Status

from concierge_site.settings import env_published
from fileshare.pw import published
from tests.support.clients import Client, connect, identify_payload, refused
from tests.support.server import ServerProcess, base_env, manage, start_server
from tests.test_pw_rpc import PwFileClient

BASE = published.ID_BASE


@pytest.fixture(scope="module")
def published_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("published")
    (folder / "alpha.txt").write_bytes(b"alpha contents\n")
    (folder / "beta.bin").write_bytes(bytes(range(256)) * 1000)
    (folder / "hidden.txt").write_bytes(b"nobody lists me")
    (folder / "empty").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def pub_server(tmp_path_factory: pytest.TempPathFactory, published_dir: Path) -> Iterator[ServerProcess]:
    """One server publishing five entries: two of them hidden (unnamed; file missing)."""
    entries = [
        f"alpha.txt={published_dir / 'alpha.txt'}",
        f"={published_dir / 'hidden.txt'}",  # unnamed: hidden, but keeps position 1
        f"beta.bin={published_dir / 'beta.bin'}",
        f"ghost={published_dir / 'missing.txt'}",  # its file is missing: hidden
        f"empty={published_dir / 'empty'}",
    ]
    data_dir = tmp_path_factory.mktemp("pub_server")
    env = base_env(data_dir, FILESHARE_PUBLISHED=",".join(entries))
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


@pytest.fixture
async def client(pub_server: ServerProcess, name: str) -> AsyncIterator[Client]:
    connected = await connect(pub_server.ws_url, name)
    yield connected
    await connected.close()


@pytest.fixture
async def http(pub_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=pub_server.url, timeout=30) as session:
        yield session


async def test_the_published_folder_is_listed_read_only_by_name(http: httpx.AsyncClient, client: Client) -> None:
    root = {e["path"]: e for e in (await http.get("/fs/", headers={"Authorization": client.key})).json()["entries"]}
    assert root["_published"]["type"] == "directory" and root["_published"]["permissions"] == 1

    listing = (await http.get("/fs/_published/", headers={"Authorization": client.key})).json()
    assert listing["path"] == "/_published"
    assert [(e["path"], e["size_bytes"], e["file_id"], e["permissions"], e["type"]) for e in listing["entries"]] == [
        ("alpha.txt", 15, BASE + 0, 1, "file"),
        ("beta.bin", 256_000, BASE + 2, 1, "file"),
        ("empty", 0, BASE + 4, 1, "file"),
    ]
    assert listing["entries"][0]["content_type"] == "text/plain"

    one = await client.request({"type": "FILE_LIST", "path": "/_published/beta.bin"})
    assert [(e["path"], e["file_id"]) for e in one["entries"]] == [("beta.bin", BASE + 2)]
    assert (await client.request({"type": "FILE_LIST", "path": "/_published/ghost"}))["type"] == "NOT_FOUND"
    assert (await client.request({"type": "FILE_LIST", "path": "/_published/hidden.txt"}))["type"] == "NOT_FOUND"
    assert (await client.request({"type": "FILE_LIST", "path": "/_Published"}))["type"] == "NOT_FOUND"


async def test_any_live_client_downloads_a_published_file(
    http: httpx.AsyncClient, client: Client, published_dir: Path
) -> None:
    got = await http.get("/fs/_published/beta.bin", headers={"Authorization": client.key})
    assert got.status_code == 202
    assert got.content == (published_dir / "beta.bin").read_bytes()
    assert got.headers["content-length"] == "256000"
    assert got.headers["content-disposition"].startswith("attachment")
    head = await http.head("/fs/_published/alpha.txt", headers={"Authorization": client.key})
    assert (head.status_code, head.headers["content-length"], head.content) == (202, "15", b"")
    empty = await http.get("/fs/_published/empty", headers={"Authorization": client.key})
    assert (empty.status_code, empty.content) == (202, b"")

    assert (await http.get("/fs/_published/alpha.txt")).status_code == 401
    for missing in ("ghost", "hidden.txt", "ALPHA.TXT", "nope"):
        response = await http.get(f"/fs/_published/{missing}", headers={"Authorization": client.key})
        assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_published_files_are_read_only(http: httpx.AsyncClient, client: Client, published_dir: Path) -> None:
    headers = {"Authorization": client.key}
    assert (await http.put("/fs/_published/alpha.txt", content=b"pwned", headers=headers)).status_code == 403
    assert (await http.put("/fs/_published/new.txt", content=b"pwned", headers=headers)).status_code == 403
    assert (await http.delete("/fs/_published/alpha.txt", headers=headers)).status_code == 403
    denied = await client.request({"type": "FILE_DELETE", "path": "/_published/alpha.txt"})
    assert denied["type"] == "BAD"
    assert (await client.request({"type": "FILE_DELETE", "path": "/_published/nope"}))["type"] == "NOT_FOUND"
    assert (published_dir / "alpha.txt").read_bytes() == b"alpha contents\n"


async def test_pigweeds_client_lists_the_flat_file_system(pub_server: ServerProcess, name: str) -> None:
    pw = await asyncio.to_thread(PwFileClient, pub_server.ws_url, name)
    try:
        status, responses = await asyncio.to_thread(pw.fs.List, path="/_published")
        assert status is Status.OK
        paths = [p for r in responses for p in r.paths]
        assert [(p.path, p.file_id, p.size_bytes, p.permissions) for p in paths] == [
            ("alpha.txt", BASE, 15, file_pb2.Path.READ),
            ("beta.bin", BASE + 2, 256_000, file_pb2.Path.READ),
            ("empty", BASE + 4, 0, file_pb2.Path.READ),
        ]
        status, _ = await asyncio.to_thread(pw.fs.Delete, path="/_published/alpha.txt")
        assert status is Status.PERMISSION_DENIED
    finally:
        await asyncio.to_thread(pw.close)


async def test_nothing_published_means_no_folder(server: ServerProcess, name: str) -> None:
    client = await connect(server.ws_url, name)
    assert (await client.request({"type": "FILE_LIST", "path": "/_published"}))["type"] == "NOT_FOUND"
    await client.close()


async def test_no_client_may_identify_as_the_published_folder(pub_server: ServerProcess) -> None:
    code, _ = await refused(pub_server.ws_url, json.dumps(identify_payload("_published")))
    assert code == 4008


# -- configuration ------------------------------------------------------------------------------


def test_the_environment_variable_parses_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILESHARE_PUBLISHED", " a=/x/a , =/x/hidden,b.txt=/x/b=c ,")
    assert env_published("FILESHARE_PUBLISHED") == [("a", "/x/a"), ("", "/x/hidden"), ("b.txt", "/x/b=c")]
    for bad in ("no-equals-sign", "a=relative/path", "a=/x,a=/y", "a/b=/x", "a="):
        monkeypatch.setenv("FILESHARE_PUBLISHED", bad)
        with pytest.raises(ImproperlyConfigured):
            env_published("FILESHARE_PUBLISHED")
    monkeypatch.setenv("FILESHARE_PUBLISHED", "=/x/1,=/x/2")  # several unnamed entries are fine
    assert env_published("FILESHARE_PUBLISHED") == [("", "/x/1"), ("", "/x/2")]
    monkeypatch.delenv("FILESHARE_PUBLISHED")
    assert env_published("FILESHARE_PUBLISHED") == []


def test_ids_follow_positions_and_unnamed_entries_keep_theirs() -> None:
    with override_settings(FILESHARE_PUBLISHED=[("a", "/x/a"), ("", "/x/h"), ("", "/x/i"), ("b", "/x/b")]):
        assert published.configured() == [(BASE, "a", "/x/a"), (BASE + 3, "b", "/x/b")]
    with override_settings(FILESHARE_PUBLISHED={"one": "/x/1", "two": "/x/2"}):
        assert [name for _, name, _ in published.configured()] == ["one", "two"]


@pytest.mark.parametrize(
    "entries",
    [
        [("a", "/x"), ("a", "/y")],
        [("a/b", "/x")],
        [("..", "/x")],
        [("a", "relative/path")],
        [("a", 3)],
        ["not a pair"],
    ],
)
def test_bad_configuration_is_refused_loudly(entries: object) -> None:
    with override_settings(FILESHARE_PUBLISHED=entries), pytest.raises(ImproperlyConfigured):
        published.configured()
