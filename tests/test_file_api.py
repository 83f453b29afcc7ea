"""The file API (PROTOCOL.md section 3) against a real server, on every storage backend."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from tests.support.clients import Client, connect
from tests.support.server import ServerProcess


@pytest.fixture
def app(files_server: ServerProcess) -> ServerProcess:
    """The shared ``owner`` and ``http`` fixtures run against every storage backend here."""
    return files_server


@pytest.fixture
async def other(files_server: ServerProcess, name: str) -> Client:
    client = await connect(files_server.ws_url, name + "_o")
    yield client
    await client.close()


def error_of(response: httpx.Response) -> dict[str, str]:
    """The one-line JSON error body, checked for shape."""
    assert "\n" not in response.text.strip()
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    return body


async def test_put_then_get_returns_the_same_bytes_with_202(http: httpx.AsyncClient, owner: Client) -> None:
    data = os.urandom(300_000)
    put = await http.put(f"/fs/{owner.name}/dir/sub/data.bin", content=data, headers={"Authorization": owner.key})
    assert put.status_code == 201
    assert put.json()["sha256"] == hashlib.sha256(data).hexdigest()
    get = await http.get(f"/fs/{owner.name}/dir/sub/data.bin", headers={"Authorization": owner.key})
    assert get.status_code == 202
    assert get.content == data
    assert get.headers["content-length"] == str(len(data))
    assert get.headers["content-disposition"].startswith("attachment")
    assert get.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("size", [0, 1])
async def test_tiny_files_round_trip(http: httpx.AsyncClient, owner: Client, size: int) -> None:
    data = b"z" * size
    assert (
        await http.put(f"/fs/{owner.name}/t{size}", content=data, headers={"Authorization": owner.key})
    ).status_code == 201
    got = await http.get(f"/fs/{owner.name}/t{size}", headers={"Authorization": owner.key})
    assert (got.status_code, got.content) == (202, data)


async def test_any_live_client_may_read_but_only_the_owner_may_write_or_delete(
    http: httpx.AsyncClient, owner: Client, other: Client
) -> None:
    url = f"/fs/{owner.name}/shared.txt"
    assert (await http.put(url, content=b"v1", headers={"Authorization": owner.key})).status_code == 201
    read = await http.get(url, headers={"Authorization": other.key})
    assert (read.status_code, read.content, read.headers["content-type"]) == (202, b"v1", "text/plain")
    write = await http.put(url, content=b"evil", headers={"Authorization": other.key})
    assert write.status_code == 403 and error_of(write)["error"] == "forbidden"
    delete = await http.delete(url, headers={"Authorization": other.key})
    assert delete.status_code == 403
    assert (await http.get(url, headers={"Authorization": owner.key})).content == b"v1"


async def test_the_public_id_is_not_a_key(http: httpx.AsyncClient, owner: Client) -> None:
    response = await http.put(f"/fs/{owner.name}/x", content=b"x", headers={"Authorization": owner.public_id})
    assert response.status_code == 401


@pytest.mark.parametrize("form", ["plain", "bearer", "x-fs-key"])
async def test_all_three_key_header_forms_are_accepted(http: httpx.AsyncClient, owner: Client, form: str) -> None:
    headers = {
        "plain": {"Authorization": owner.key},
        "bearer": {"Authorization": f"Bearer {owner.key}"},
        "x-fs-key": {"x-fs-key": owner.key},
    }[form]
    assert (await http.put(f"/fs/{owner.name}/{form}", content=b"k", headers=headers)).status_code == 201
    assert (await http.get(f"/fs/{owner.name}/{form}", headers=headers)).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "not-a-uuid"},
        {"Authorization": "Basic abc"},
        {"Authorization": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"},
        {"x-fs-key": "Bearer"},
    ],
)
async def test_missing_malformed_or_unknown_keys_get_401(
    http: httpx.AsyncClient, owner: Client, headers: dict[str, str]
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await http.request(
            method, f"/fs/{owner.name}/f", content=b"x" if method == "PUT" else None, headers=headers
        )
        assert response.status_code == 401, method
        assert error_of(response)["error"] == "unauthorized"


async def test_a_put_replaces_the_file_and_keeps_its_file_id(http: httpx.AsyncClient, owner: Client) -> None:
    url = f"/fs/{owner.name}/same.txt"
    first = await http.put(url, content=b"first version", headers={"Authorization": owner.key})
    second = await http.put(url, content=b"second", headers={"Authorization": owner.key})
    assert first.json()["file_id"] == second.json()["file_id"]
    assert (await http.get(url, headers={"Authorization": owner.key})).content == b"second"


async def test_delete_removes_the_file_then_404(http: httpx.AsyncClient, owner: Client) -> None:
    url = f"/fs/{owner.name}/gone.txt"
    await http.put(url, content=b"bye", headers={"Authorization": owner.key})
    assert (await http.delete(url, headers={"Authorization": owner.key})).status_code == 200
    for method in ("GET", "DELETE"):
        response = await http.request(method, url, headers={"Authorization": owner.key})
        assert response.status_code == 404 and error_of(response)["error"] == "not_found"


async def test_deleting_a_folder_is_refused_with_501_and_keeps_its_files(
    http: httpx.AsyncClient, owner: Client
) -> None:
    url = f"/fs/{owner.name}/kept/inside.txt"
    await http.put(url, content=b"stay", headers={"Authorization": owner.key})
    refused = await http.delete(f"/fs/{owner.name}/kept", headers={"Authorization": owner.key})
    assert refused.status_code == 501 and error_of(refused)["error"] == "is_directory"
    assert "folder" in error_of(refused)["detail"]
    assert (await http.get(url, headers={"Authorization": owner.key})).content == b"stay"


async def test_unknown_client_or_file_is_404(http: httpx.AsyncClient, owner: Client) -> None:
    missing_client = await http.get("/fs/nobody_here/x", headers={"Authorization": owner.key})
    assert missing_client.status_code == 404 and "nobody_here" in error_of(missing_client)["detail"]
    missing_file = await http.get(f"/fs/{owner.name}/nope", headers={"Authorization": owner.key})
    assert missing_file.status_code == 404


async def test_paths_are_case_sensitive(http: httpx.AsyncClient, owner: Client) -> None:
    await http.put(f"/fs/{owner.name}/Case.txt", content=b"upper", headers={"Authorization": owner.key})
    assert (await http.get(f"/fs/{owner.name}/case.txt", headers={"Authorization": owner.key})).status_code == 404


async def test_a_path_cannot_be_a_file_and_a_folder(http: httpx.AsyncClient, owner: Client) -> None:
    await http.put(f"/fs/{owner.name}/a/b", content=b"1", headers={"Authorization": owner.key})
    clash = await http.put(f"/fs/{owner.name}/a", content=b"2", headers={"Authorization": owner.key})
    assert clash.status_code == 409 and error_of(clash)["error"] == "conflict"
    under = await http.put(f"/fs/{owner.name}/a/b/c", content=b"3", headers={"Authorization": owner.key})
    assert under.status_code == 409


async def test_over_the_size_limit_is_413_and_nothing_is_stored(spawn_files_server, name: str) -> None:
    process = spawn_files_server(FILESHARE_MAX_UPLOAD_BYTES="1000")
    client = await connect(process.ws_url, name)
    async with httpx.AsyncClient(base_url=process.url) as http:
        declared = await http.put(f"/fs/{name}/big", content=b"x" * 1001, headers={"Authorization": client.key})
        assert declared.status_code == 413 and error_of(declared)["error"] == "too_large"

        async def chunked():  # no Content-Length: the limit is enforced while reading
            for _ in range(3):
                yield b"y" * 600

        streamed = await http.put(f"/fs/{name}/big", content=chunked(), headers={"Authorization": client.key})
        assert streamed.status_code == 413
        assert (await http.get(f"/fs/{name}/big", headers={"Authorization": client.key})).status_code == 404
        ok = await http.put(f"/fs/{name}/small", content=b"x" * 1000, headers={"Authorization": client.key})
        assert ok.status_code == 201
    await client.close()


async def test_multipart_post_to_a_path_stores_one_file(http: httpx.AsyncClient, owner: Client) -> None:
    response = await http.post(
        f"/fs/{owner.name}/forms/one.csv",
        files={"file": ("ignored.csv", b"a,b\n1,2\n")},
        headers={"Authorization": owner.key},
    )
    assert response.status_code == 201
    got = await http.get(f"/fs/{owner.name}/forms/one.csv", headers={"Authorization": owner.key})
    assert got.content == b"a,b\n1,2\n"


async def test_multipart_post_to_a_folder_stores_each_file_under_its_name(
    http: httpx.AsyncClient, owner: Client
) -> None:
    files = [("files", ("a.txt", b"A")), ("files", ("b.json", b"{}")), ("other", ("c.bin", b"\x00"))]
    response = await http.post(f"/fs/{owner.name}/", files=files, headers={"Authorization": owner.key})
    assert response.status_code == 201
    assert sorted(f["path"] for f in response.json()["files"]) == ["a.txt", "b.json", "c.bin"]
    for path, data in (("a.txt", b"A"), ("b.json", b"{}"), ("c.bin", b"\x00")):
        assert (await http.get(f"/fs/{owner.name}/{path}", headers={"Authorization": owner.key})).content == data


async def test_multipart_post_with_the_wrong_number_of_files_is_400(http: httpx.AsyncClient, owner: Client) -> None:
    none = await http.post(f"/fs/{owner.name}/x.txt", data={"k": "v"}, headers={"Authorization": owner.key})
    assert none.status_code == 400 and error_of(none)["error"] == "bad_request"
    two = await http.post(
        f"/fs/{owner.name}/x.txt", files=[("a", ("1", b"1")), ("b", ("2", b"2"))], headers={"Authorization": owner.key}
    )
    assert two.status_code == 400


async def test_multipart_post_by_another_client_is_403(http: httpx.AsyncClient, owner: Client, other: Client) -> None:
    response = await http.post(f"/fs/{owner.name}/", files={"f": ("a.txt", b"A")}, headers={"Authorization": other.key})
    assert response.status_code == 403


async def test_checksum_header_is_verified_and_a_mismatch_stores_nothing(
    http: httpx.AsyncClient, owner: Client
) -> None:
    data = b"checked body"
    good = hashlib.sha256(data).hexdigest()
    ok = await http.put(
        f"/fs/{owner.name}/c1", content=data, headers={"Authorization": owner.key, "X-Checksum-SHA256": good}
    )
    assert ok.status_code == 201
    bad = await http.put(
        f"/fs/{owner.name}/c2", content=data, headers={"Authorization": owner.key, "X-Checksum-SHA256": "0" * 64}
    )
    assert bad.status_code == 400 and error_of(bad)["error"] == "checksum_mismatch"
    assert (await http.get(f"/fs/{owner.name}/c2", headers={"Authorization": owner.key})).status_code == 404


async def test_unsupported_methods_get_405_with_allow(http: httpx.AsyncClient, owner: Client) -> None:
    response = await http.request("PATCH", f"/fs/{owner.name}/x", headers={"Authorization": owner.key})
    assert response.status_code == 405 and "PUT" in response.headers["allow"]
    assert json.loads(response.text)["error"] == "method_not_allowed"
