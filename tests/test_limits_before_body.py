"""The key, the owner and the declared size are checked when a request's headers arrive,
before its body is read (docs/limits.md), under the run command."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support import rawhttp
from tests.support.clients import Client, connect
from tests.support.server import ServerProcess

MIB = 1024 * 1024


def address(server: ServerProcess) -> tuple[str, int]:
    return (server.host, server.port)


def assert_json_error(answer: rawhttp.Answer, status: int, error: str) -> None:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"] == error and body["detail"]


def assert_no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()[-3000:]


async def in_thread(func, *args, **kwargs):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(func, *args, **kwargs)


async def test_a_keyless_300_mib_chunked_put_is_refused_without_the_server_reading_it(
    server: ServerProcess, owner: Client
) -> None:
    head = rawhttp.head_bytes("PUT", f"/fs/{owner.name}/big.bin", {"Transfer-Encoding": "chunked"})
    answer, blast = await in_thread(rawhttp.send_while_reading, address(server), head, rawhttp.chunked(300 * MIB))
    assert_json_error(answer, 401, "unauthorized")
    assert answer.headers["connection"] == "close"
    # The server stopped reading: the client could not push the body through.
    assert blast.sent < 100 * MIB, blast
    assert_no_traceback(server)


async def test_expect_100_continue_without_a_key_gets_the_refusal_not_100_continue(
    server: ServerProcess, owner: Client
) -> None:
    head = rawhttp.head_bytes(
        "PUT", f"/fs/{owner.name}/x.bin", {"Content-Length": str(50 * MIB), "Expect": "100-continue"}
    )

    def ask() -> rawhttp.Answer:
        with rawhttp.connect(address(server)) as sock:
            sock.sendall(head)  # and never the body
            return rawhttp.read_answer(sock)

    answer = await in_thread(ask)
    assert answer.interim == []
    assert_json_error(answer, 401, "unauthorized")


async def test_expect_100_continue_with_the_owners_key_gets_100_continue_then_stores(
    server: ServerProcess, owner: Client
) -> None:
    body = b"hello, continue" * 1000
    head = rawhttp.head_bytes(
        "PUT",
        f"/fs/{owner.name}/c.bin",
        {"Content-Length": str(len(body)), "Expect": "100-continue", "Authorization": owner.key},
    )

    def ask() -> rawhttp.Answer:
        with rawhttp.connect(address(server)) as sock:
            sock.sendall(head)
            interim = rawhttp.read_answer(sock, stop_after_interim=True)
            assert interim.status == 100
            sock.sendall(body)
            return rawhttp.read_answer(sock)

    answer = await in_thread(ask)
    assert answer.status == 201, answer.body
    assert answer.json()["size"] == len(body)


async def test_a_put_into_another_clients_folder_is_refused_on_its_headers(
    server: ServerProcess, owner: Client, name: str
) -> None:
    other = await connect(server.ws_url, name + "_x")
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{owner.name}/evil.bin", {"Content-Length": str(20 * MIB), "Authorization": other.key}
        )

        def ask() -> rawhttp.Answer:
            with rawhttp.connect(address(server)) as sock:
                sock.sendall(head)  # no body: the answer must come without it
                return rawhttp.read_answer(sock)

        assert_json_error(await in_thread(ask), 403, "forbidden")
    finally:
        await other.close()


async def test_an_unknown_key_is_refused_on_its_headers(server: ServerProcess, owner: Client) -> None:
    head = rawhttp.head_bytes(
        "PUT",
        f"/fs/{owner.name}/x.bin",
        {"Content-Length": str(20 * MIB), "Authorization": "Bearer 00000000-0000-0000-0000-000000000000"},
    )

    def ask() -> rawhttp.Answer:
        with rawhttp.connect(address(server)) as sock:
            sock.sendall(head)
            return rawhttp.read_answer(sock)

    assert_json_error(await in_thread(ask), 401, "unauthorized")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    from tests.support.server import base_env, manage, start_server

    data_dir = tmp_path_factory.mktemp("small")
    env = base_env(data_dir, FILESHARE_MAX_UPLOAD_BYTES=str(2 * MIB), FILESHARE_TUS_MAX_CHUNK_BYTES=str(MIB))
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


async def test_a_declared_length_over_the_limit_is_refused_with_413_before_the_body(
    small_server: ServerProcess, name: str
) -> None:
    client = await connect(small_server.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{client.name}/x.bin", {"Content-Length": str(3 * MIB), "Authorization": client.key}
        )

        def ask() -> rawhttp.Answer:
            with rawhttp.connect(address(small_server)) as sock:
                sock.sendall(head)
                return rawhttp.read_answer(sock)

        answer = await in_thread(ask)
        assert_json_error(answer, 413, "too_large")
        assert str(2 * MIB) in answer.json()["detail"]
    finally:
        await client.close()


async def test_a_chunked_body_stops_being_read_at_the_limit(small_server: ServerProcess, name: str) -> None:
    client = await connect(small_server.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{client.name}/x.bin", {"Transfer-Encoding": "chunked", "Authorization": client.key}
        )
        answer, blast = await in_thread(
            rawhttp.send_while_reading, address(small_server), head, rawhttp.chunked(300 * MIB)
        )
        assert_json_error(answer, 413, "too_large")
        assert blast.sent < 100 * MIB, blast
        listing = json.loads((await in_thread(_get, small_server, f"/fs/{client.name}/", client.key)).body)
        assert listing["entries"] == []
    finally:
        await client.close()
    assert_no_traceback(small_server)


async def test_a_chunked_body_within_the_limit_is_stored(small_server: ServerProcess, name: str) -> None:
    client = await connect(small_server.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{client.name}/ok.bin", {"Transfer-Encoding": "chunked", "Authorization": client.key}
        )
        answer, _ = await in_thread(
            rawhttp.send_while_reading, address(small_server), head, rawhttp.chunked(MIB, 300_000)
        )
        assert answer.status == 201, answer.body
        assert answer.json()["size"] == MIB
    finally:
        await client.close()


async def test_a_tus_patch_over_the_chunk_limit_is_refused_before_its_body(
    small_server: ServerProcess, name: str
) -> None:
    client = await connect(small_server.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PATCH",
            f"/tus/{client.name}/00000000-0000-0000-0000-000000000000",
            {
                "Content-Length": str(2 * MIB),
                "Authorization": client.key,
                "Tus-Resumable": "1.0.0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )

        def ask() -> rawhttp.Answer:
            with rawhttp.connect(address(small_server)) as sock:
                sock.sendall(head)
                return rawhttp.read_answer(sock)

        answer = await in_thread(ask)
        assert_json_error(answer, 413, "too_large")
        assert answer.headers["tus-resumable"] == "1.0.0"
    finally:
        await client.close()


async def test_a_body_on_a_request_that_is_not_an_upload_is_capped(server: ServerProcess) -> None:
    head = rawhttp.head_bytes("POST", "/login/", {"Content-Length": str(50 * MIB)})

    def ask() -> rawhttp.Answer:
        with rawhttp.connect(address(server)) as sock:
            sock.sendall(head)
            return rawhttp.read_answer(sock)

    assert_json_error(await in_thread(ask), 413, "too_large")


def _get(server: ServerProcess, target: str, key: str) -> rawhttp.Answer:
    with rawhttp.connect(address(server)) as sock:
        sock.sendall(rawhttp.head_bytes("GET", target, {"Authorization": key, "Connection": "close"}))
        return rawhttp.read_answer(sock)
