"""Keys and limits before the body behind the production recipe (deploy/nginx.conf): nginx
asks the application (auth_request) before it reads an upload's body (docs/limits.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import rawhttp
from tests.support.clients import connect
from tests.support.nginx import Recipe, require_nginx, start_recipe

pytestmark = pytest.mark.nginx
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recipe]:
    require_nginx()
    started = start_recipe(tmp_path_factory.mktemp("limits"), FILESHARE_CLIENT_QUOTA_BYTES=str(MIB))
    yield started
    started.stop()


def ask_headers_only(recipe: Recipe, head: bytes) -> rawhttp.Answer:
    """Send a request's head and never its body: an answer proves it was judged on the headers."""
    with rawhttp.connect(("127.0.0.1", recipe.nginx.port)) as sock:
        sock.sendall(head)
        return rawhttp.read_answer(sock, timeout=30)


def written(recipe: Recipe) -> list[Path]:
    return [p for p in recipe.upload_temp.rglob("*") if p.is_file()]


def assert_json(answer: rawhttp.Answer, status: int, error: str) -> None:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"] == error


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_a_keyless_upload_is_refused_by_nginx_before_its_body(recipe: Recipe, name: str, method: str) -> None:
    client = await connect(recipe.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            method, f"/fs/{name}/x.bin", {"Content-Length": str(300 * MIB), "Expect": "100-continue"}
        )
        answer = await asyncio.to_thread(ask_headers_only, recipe, head)
        # nginx sends "100 Continue" before a refusal whenever it discards a body (unlike
        # runconcierge); the refusal follows at once, and the body is never stored.
        assert_json(answer, 401, "unauthorized")
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert written(recipe) == []
    finally:
        await client.close()


async def test_a_foreign_or_over_quota_upload_is_refused_by_nginx_before_its_body(recipe: Recipe, name: str) -> None:
    owner = await connect(recipe.ws_url, name)
    other = await connect(recipe.ws_url, name + "_x")
    try:
        foreign = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/x.bin", {"Content-Length": str(10), "Authorization": other.key}
        )
        assert_json(await asyncio.to_thread(ask_headers_only, recipe, foreign), 403, "forbidden")
        over = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/x.bin", {"Content-Length": str(2 * MIB), "Authorization": owner.key}
        )
        assert_json(await asyncio.to_thread(ask_headers_only, recipe, over), 413, "quota_exceeded")
        tus = rawhttp.head_bytes(
            "POST",
            f"/tus/{name}/",
            {"Authorization": other.key, "Tus-Resumable": "1.0.0", "Upload-Length": "5", "Content-Length": "10"},
        )
        assert_json(await asyncio.to_thread(ask_headers_only, recipe, tus), 403, "forbidden")
        assert written(recipe) == []
    finally:
        await owner.close()
        await other.close()


async def test_admitted_uploads_still_pass_through_nginx(recipe: Recipe, name: str) -> None:
    client = await connect(recipe.ws_url, name)
    try:
        async with httpx.AsyncClient(base_url=recipe.url, timeout=30) as http:
            auth = {"Authorization": client.key}
            put = await http.put(f"/fs/{name}/a.txt", content=b"put", headers=auth)
            assert put.status_code == 201, put.text
            post = await http.post(f"/fs/{name}/", files={"file": ("sub/b.txt", b"post")}, headers=auth)
            assert post.status_code == 201, post.text
            delete = await http.delete(f"/fs/{name}/a.txt", headers=auth)
            assert delete.status_code == 200
            got = await http.get(f"/fs/{name}/sub/b.txt", headers=auth)
            assert (got.status_code, got.content) == (202, b"post")
    finally:
        await client.close()
