"""pw_file List and Delete over HTTP and websocket payloads, against a real server (docs/pw_file.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fileshare.exceptions import BadName
from fileshare.pw import listing
from tests.support.clients import Client, connect
from tests.support.server import ServerProcess, manage


@pytest.fixture
async def other(server: ServerProcess, name: str) -> AsyncIterator[Client]:
    client = await connect(server.ws_url, name + "_o")
    yield client
    await client.close()


async def put(http: httpx.AsyncClient, client: Client, path: str, data: bytes = b"x") -> dict[str, Any]:
    response = await http.put(f"/fs/{client.name}/{path}", content=data, headers={"Authorization": client.key})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def ls(http: httpx.AsyncClient, asker: Client, url: str, status: int = 200) -> dict[str, Any]:
    response = await http.get(url, headers={"Authorization": asker.key})
    assert response.status_code == status, response.text
    return dict(response.json())


def by_path(listing_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in listing_json["entries"]}


# -- HTTP -------------------------------------------------------------------------------------


async def test_root_lists_live_client_folders_with_the_askers_permissions(
    http: httpx.AsyncClient, owner: Client, other: Client
) -> None:
    root = await ls(http, owner, "/fs/")
    assert root["path"] == "/"
    entries = by_path(root)
    assert entries[owner.name] == {
        "path": owner.name,
        "type": "directory",
        "permissions": 3,
        "size_bytes": None,
        "file_id": None,
        "content_type": None,
        "modified": None,
    }
    assert entries[other.name]["permissions"] == 1
    assert "_published" not in entries  # nothing is published on this server
    assert [e["path"] for e in root["entries"]] == sorted(e["path"] for e in root["entries"])


async def test_a_client_that_left_disappears_from_the_root(
    server: ServerProcess, http: httpx.AsyncClient, owner: Client, name: str
) -> None:
    leaver = await connect(server.ws_url, name + "_l")
    assert leaver.name in by_path(await ls(http, owner, "/fs/"))
    await leaver.close()
    await owner.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == leaver.name)
    assert leaver.name not in by_path(await ls(http, owner, "/fs/"))


async def test_nested_folders_list_immediate_children_relative_to_the_requested_path(
    http: httpx.AsyncClient, owner: Client
) -> None:
    top = await put(http, owner, "top.txt", b"12345")
    await put(http, owner, "d1/y.bin", b"yy")
    z = await put(http, owner, "d1/d2/z.txt", b"zzz")
    await put(http, owner, "d1/d2/w.json", b"{}")
    await put(http, owner, "d1/d2/d3/deep.txt")

    folder = await ls(http, owner, f"/fs/{owner.name}/")
    assert folder["path"] == f"/{owner.name}"
    assert [(e["path"], e["type"]) for e in folder["entries"]] == [("d1", "directory"), ("top.txt", "file")]
    top_entry = by_path(folder)["top.txt"]
    assert top_entry["size_bytes"] == 5
    assert top_entry["file_id"] == top["file_id"]
    assert top_entry["content_type"] == "text/plain"
    assert top_entry["permissions"] == 3
    assert top_entry["modified"].endswith("+00:00")
    assert by_path(folder)["d1"]["size_bytes"] is None and by_path(folder)["d1"]["file_id"] is None

    d1 = await ls(http, owner, f"/fs/{owner.name}/d1/")
    assert d1["path"] == f"/{owner.name}/d1"
    assert [(e["path"], e["type"]) for e in d1["entries"]] == [("d2", "directory"), ("y.bin", "file")]

    d2 = await ls(http, owner, f"/fs/{owner.name}/d1/d2/")
    assert [(e["path"], e["type"]) for e in d2["entries"]] == [
        ("d3", "directory"),
        ("w.json", "file"),
        ("z.txt", "file"),
    ]
    assert by_path(d2)["z.txt"]["file_id"] == z["file_id"]
    assert by_path(d2)["z.txt"]["size_bytes"] == 3


async def test_another_client_sees_the_folder_read_only(http: httpx.AsyncClient, owner: Client, other: Client) -> None:
    await put(http, owner, "f.txt")
    await put(http, owner, "sub/g.txt")
    seen = by_path(await ls(http, other, f"/fs/{owner.name}/"))
    assert {e["permissions"] for e in seen.values()} == {1}
    mine = by_path(await ls(http, owner, f"/fs/{owner.name}/"))
    assert {e["permissions"] for e in mine.values()} == {3}


async def test_listing_a_file_path_lists_that_one_file(http: httpx.AsyncClient, owner: Client) -> None:
    row = await put(http, owner, "a/b/c.txt", b"abc")
    one = await ls(http, owner, f"/fs/{owner.name}/a/b/c.txt/")
    assert one["path"] == f"/{owner.name}/a/b/c.txt"
    assert [(e["path"], e["type"], e["size_bytes"], e["file_id"]) for e in one["entries"]] == [
        ("c.txt", "file", 3, row["file_id"])
    ]


async def test_file_ids_are_unique_and_stable_across_replacements(
    http: httpx.AsyncClient, owner: Client, other: Client
) -> None:
    first = await put(http, owner, "same.txt", b"one")
    again = await put(http, owner, "same.txt", b"two, longer")
    assert again["file_id"] == first["file_id"]
    entry = by_path(await ls(http, owner, f"/fs/{owner.name}/"))["same.txt"]
    assert (entry["file_id"], entry["size_bytes"]) == (first["file_id"], len(b"two, longer"))

    ids = {first["file_id"]}
    for index in range(5):
        ids.add((await put(http, owner, f"n{index}"))["file_id"])
        ids.add((await put(http, other, f"n{index}"))["file_id"])
    assert len(ids) == 11

    await http.delete(f"/fs/{owner.name}/same.txt", headers={"Authorization": owner.key})
    recreated = await put(http, owner, "same.txt", b"three")
    assert recreated["file_id"] not in ids - {first["file_id"]}


@pytest.mark.parametrize(
    "suffix",
    ["nobody/", "sub/", "d/", "D1/", "d1/Y.txt/", "d1/y.tx/", "d1/y.txt.x/"],
)
async def test_no_exact_match_is_404(http: httpx.AsyncClient, owner: Client, suffix: str) -> None:
    await put(http, owner, "d1/y.txt")
    body = await ls(http, owner, f"/fs/{owner.name}/{suffix}", status=404)
    assert body["error"] == "not_found" and body["detail"]


async def test_an_unknown_client_is_404(http: httpx.AsyncClient, owner: Client) -> None:
    body = await ls(http, owner, "/fs/no_such_client_here/", status=404)
    assert body["error"] == "not_found"
    await ls(http, owner, f"/fs/{owner.name.upper()}/", status=404)


async def test_paths_are_case_sensitive(http: httpx.AsyncClient, owner: Client) -> None:
    await put(http, owner, "Sub/upper.txt")
    await put(http, owner, "sub/lower.txt")
    await put(http, owner, "Readme")
    await put(http, owner, "readme")
    top = [e["path"] for e in (await ls(http, owner, f"/fs/{owner.name}/"))["entries"]]
    assert top == ["Readme", "Sub", "readme", "sub"]
    assert [e["path"] for e in (await ls(http, owner, f"/fs/{owner.name}/sub/"))["entries"]] == ["lower.txt"]
    assert [e["path"] for e in (await ls(http, owner, f"/fs/{owner.name}/Sub/"))["entries"]] == ["upper.txt"]


async def test_listing_needs_a_live_clients_key(http: httpx.AsyncClient, owner: Client) -> None:
    for headers in ({}, {"Authorization": "not-a-uuid"}, {"Authorization": "00000000-0000-4000-8000-000000000000"}):
        for url in ("/fs/", f"/fs/{owner.name}/"):
            response = await http.get(url, headers=headers)
            assert response.status_code == 401
            assert set(response.json()) == {"error", "detail"}
    assert (await http.get("/fs/", headers={"Authorization": f"Bearer {owner.key}"})).status_code == 200
    assert (await http.get("/fs/", headers={"x-fs-key": owner.key})).status_code == 200


async def test_folder_urls_keep_the_file_api_for_other_methods(http: httpx.AsyncClient, owner: Client) -> None:
    refused = await http.put(f"/fs/{owner.name}/sub/", content=b"x", headers={"Authorization": owner.key})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_path"
    root = await http.delete("/fs/", headers={"Authorization": owner.key})
    assert (root.status_code, root.headers["allow"]) == (405, "GET")


# -- websocket payloads ---------------------------------------------------------------------


async def test_file_list_payload_matches_the_http_listing(
    http: httpx.AsyncClient, owner: Client, other: Client
) -> None:
    await put(http, owner, "p/q.txt", b"q")
    await put(http, owner, "r.txt", b"rr")
    for raw in (f"/{owner.name}", owner.name):
        reply = await other.request({"type": "FILE_LIST", "path": raw})
        assert reply["type"] == "FILE_LIST_RESULT" and reply["done"] is True
        assert reply["path"] == f"/{owner.name}"
        assert reply["entries"] == (await ls(http, other, f"/fs/{owner.name}/"))["entries"]
    root = await other.request({"type": "FILE_LIST", "path": "/"})
    assert by_path(root)[other.name]["permissions"] == 3
    assert (await other.request({"type": "FILE_LIST", "path": ""}))["entries"] == root["entries"]
    assert (await other.request({"type": "FILE_LIST"}))["entries"] == root["entries"]


async def test_file_list_errors(owner: Client) -> None:
    missing = await owner.request({"type": "FILE_LIST", "path": f"/{owner.name}/nothing"})
    assert missing["type"] == "NOT_FOUND" and missing["path"] == f"/{owner.name}/nothing" and missing["desc"]
    bad = await owner.request({"type": "FILE_LIST", "path": f"/{owner.name}/../x"})
    assert bad["type"] == "BAD" and bad["desc"]
    shape = await owner.request({"type": "FILE_LIST", "path": 7})
    assert shape["type"] == "ERROR_PROTOCOL"


async def test_file_delete_removes_only_the_askers_own_files(
    http: httpx.AsyncClient, owner: Client, other: Client
) -> None:
    await put(http, owner, "keep/k.txt")
    await put(http, owner, "gone.txt")
    denied = await other.request({"type": "FILE_DELETE", "path": f"/{owner.name}/gone.txt"})
    assert denied["type"] == "BAD" and denied["path"] == f"/{owner.name}/gone.txt"
    folder = await owner.request({"type": "FILE_DELETE", "path": f"/{owner.name}/keep"})
    assert folder["type"] == "BAD" and "folder" in folder["desc"]
    assert (await owner.request({"type": "FILE_DELETE", "path": f"/{owner.name}"}))["type"] == "BAD"
    assert (await owner.request({"type": "FILE_DELETE", "path": "/"}))["type"] == "BAD"
    case = await owner.request({"type": "FILE_DELETE", "path": f"/{owner.name}/GONE.txt"})
    assert case["type"] == "NOT_FOUND"

    done = await owner.request({"type": "FILE_DELETE", "path": f"/{owner.name}/gone.txt"})
    assert done == {"type": "FILE_DELETE_RESULT", "path": f"/{owner.name}/gone.txt", "seq": done["seq"]}
    assert (await http.get(f"/fs/{owner.name}/gone.txt", headers={"Authorization": owner.key})).status_code == 404
    assert [e["path"] for e in (await ls(http, owner, f"/fs/{owner.name}/"))["entries"]] == ["keep"]
    again = await owner.request({"type": "FILE_DELETE", "path": f"/{owner.name}/gone.txt"})
    assert again["type"] == "NOT_FOUND" and again["desc"]
    assert (await owner.request({"type": "FILE_DELETE", "path": "/nobody_here/x"}))["type"] == "NOT_FOUND"


def bulk_insert(server: ServerProcess, owner: str, count: int, folder: str = "bulk", huge: bool = False) -> None:
    """Index ``count`` files of ``owner`` directly (listings read only the index, never storage)."""
    code = f"""
from django.utils import timezone
from fileshare.models import LiveClient, StoredFile
owner = LiveClient.objects.get(name={owner!r}, left_at__isnull=True)
now = timezone.now()
rows = [StoredFile(owner=owner, path=f"{folder}/f{{i:05d}}.txt", blob=f"{{owner.folder}}/bulk{{i}}", size=i,
                   content_type="text/plain", sha256="0" * 64, modified_at=now) for i in range({count})]
if {huge!r}:
    rows.append(StoredFile(owner=owner, path="{folder}-huge.bin", blob=f"{{owner.folder}}/huge", size=5 * 1024**3,
                           content_type="application/octet-stream", sha256="0" * 64, modified_at=now))
StoredFile.objects.bulk_create(rows, batch_size=2000)
"""
    manage(server.env, "shell", "-c", code)


async def test_a_10000_entry_listing_streams_in_chunks_with_one_seq(
    server: ServerProcess, http: httpx.AsyncClient, owner: Client
) -> None:
    bulk_insert(server, owner.name, 10_000, huge=True)
    number = await owner.send({"type": "FILE_LIST", "path": f"/{owner.name}/bulk"})
    frames = []
    while not frames or not frames[-1]["done"]:
        frames.append(await owner.expect(lambda p: p.get("seq") == number, timeout=30))
    assert len(frames) == 20
    assert all(f["type"] == "FILE_LIST_RESULT" and f["path"] == f"/{owner.name}/bulk" for f in frames)
    assert [f["done"] for f in frames] == [False] * 19 + [True]
    assert all(len(f["entries"]) == listing_chunk() for f in frames)
    assert max(len(json.dumps(f)) for f in frames) < 256 * 1024
    names = [e["path"] for f in frames for e in f["entries"]]
    assert names == [f"f{i:05d}.txt" for i in range(10_000)]
    assert len({e["file_id"] for f in frames for e in f["entries"]}) == 10_000
    # The stream used one seq: the next frame is numbered right after it.
    assert (await owner.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"

    # Over 4 GiB: JSON carries the true size (pw_rpc clamps it, see test_pw_rpc).
    top = by_path(await ls(http, owner, f"/fs/{owner.name}/"))
    assert top["bulk-huge.bin"]["size_bytes"] == 5 * 1024**3
    assert top["bulk"]["type"] == "directory"


def listing_chunk() -> int:
    from fileshare.ws.handlers import FILE_LIST_CHUNK

    return FILE_LIST_CHUNK


async def test_an_empty_folder_lists_as_one_final_frame(owner: Client) -> None:
    reply = await owner.request({"type": "FILE_LIST", "path": f"/{owner.name}"})
    assert (reply["entries"], reply["done"]) == ([], True)


def test_reserved_names_are_refused_for_identify() -> None:
    with pytest.raises(BadName):
        listing.check_client_name("_published")
    listing.check_client_name("_other")
    listing.check_client_name("published")
