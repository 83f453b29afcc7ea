"""The run command's HTTP timeouts (docs/limits.md): headers that trickle, bodies that stall,
idle keep-alive connections; and what must not be cut: websockets, steady bodies."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support import rawhttp
from tests.support.clients import connect
from tests.support.server import ServerProcess, base_env, manage, start_server

TIMEOUT = "2"


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("timeouts")
    env = base_env(
        data_dir,
        FILESHARE_HTTP_HEADER_TIMEOUT=TIMEOUT,
        FILESHARE_HTTP_BODY_TIMEOUT=TIMEOUT,
        FILESHARE_HTTP_KEEPALIVE_TIMEOUT=TIMEOUT,
    )
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


def trickle(sock: socket.socket, data: bytes, every: float, state: dict[str, int]) -> None:
    try:
        for byte in data:
            sock.send(bytes([byte]))
            state["sent"] += 1
            time.sleep(every)
    except OSError:
        state["cut"] = 1


def test_headers_that_trickle_are_cut_with_408(strict: ServerProcess) -> None:
    # 400 bytes at one every 0.1 s would take 40 s; each byte would reset an idle timer.
    head = b"GET /fs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 400 + b"\r\n\r\n"
    with rawhttp.connect((strict.host, strict.port)) as sock:
        state = {"sent": 0}
        writer = threading.Thread(target=trickle, args=(sock, head, 0.1, state), daemon=True)
        writer.start()
        answer = rawhttp.read_answer(sock, timeout=60)
        assert answer.status == 408 and answer.json()["error"] == "request_timeout"
        assert "headers" in answer.json()["detail"]
        assert state["sent"] < len(head)
        assert sock.recv(10) == b""  # and closed


async def test_a_body_that_stalls_is_cut_with_408(strict: ServerProcess, name: str) -> None:
    client = await connect(strict.ws_url, name)
    try:
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/stalled.bin", {"Content-Length": "1000", "Authorization": client.key}
        )

        def stall() -> rawhttp.Answer:
            with rawhttp.connect((strict.host, strict.port)) as sock:
                sock.sendall(head + b"x" * 10)  # then nothing more
                return rawhttp.read_answer(sock, timeout=60)

        answer = await asyncio.to_thread(stall)
        assert answer.status == 408 and "body" in answer.json()["detail"]
    finally:
        await client.close()
    assert "Traceback" not in strict.log()


def test_an_idle_keep_alive_connection_is_closed(strict: ServerProcess) -> None:
    with rawhttp.connect((strict.host, strict.port)) as sock:
        sock.sendall(rawhttp.head_bytes("GET", "/tus/", {"X-HTTP-Method-Override": "OPTIONS"}))
        first = rawhttp.read_answer(sock)
        assert first.status == 204 and first.headers.get("connection", "") != "close"
        sock.settimeout(30)  # Twisted's own idle timer alone would wait 60 s
        assert sock.recv(10) == b""  # the server closed it, idle


async def test_a_body_arriving_steadily_is_not_cut_although_it_outlasts_the_timeouts(
    strict: ServerProcess, name: str
) -> None:
    client = await connect(strict.ws_url, name)
    try:
        body = b"b" * 10
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/steady.bin", {"Content-Length": str(len(body)), "Authorization": client.key}
        )

        def steady() -> rawhttp.Answer:
            with rawhttp.connect((strict.host, strict.port)) as sock:
                sock.sendall(head)
                for byte in body:  # 10 bytes, 0.5 s apart: 5 s in all, each gap under the body timeout
                    sock.sendall(bytes([byte]))
                    time.sleep(0.5)
                return rawhttp.read_answer(sock, timeout=60)

        answer = await asyncio.to_thread(steady)
        assert answer.status == 201, answer.body
    finally:
        await client.close()


async def test_a_websocket_outlives_the_http_timeouts(strict: ServerProcess, name: str) -> None:
    client = await connect(strict.ws_url, name)
    try:
        await asyncio.sleep(float(TIMEOUT) * 2.5)
        reply = await client.request({"type": "SELF_FETCH"})
        assert reply["type"] != "ERROR_INTERNAL"
    finally:
        await client.close()
