"""A full disk answers 507 and is logged; a channel-layer outage after a file is stored does
not turn the answer into a 500 (docs/limits.md). Real parts: a small tmpfs as the storage
volume, a private redis-server that is stopped."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Spawn
from tests.support import rawhttp
from tests.support.clients import connect
from tests.support.server import ServerProcess, base_env, manage, start_server

MIB = 1024 * 1024


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (needs root and mount(2), as in the CI container)."""
    volume = tmp_path / "volume"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(volume)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield volume
    finally:
        subprocess.run(["umount", "-l", str(volume)], check=False)


@pytest.fixture
def full_disk_server(tmp_path: Path, small_volume: Path) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    env = base_env(data_dir, FILESHARE_STORAGE_ROOT=str(small_volume / "files"))
    data_dir.mkdir()
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


def assert_507(status: int, body: dict[str, str]) -> None:
    assert status == 507, body
    assert body["error"] == "insufficient_storage" and "full" in body["detail"]


async def test_a_put_that_fills_the_disk_gets_507_and_is_logged(full_disk_server: ServerProcess, name: str) -> None:
    server = full_disk_server
    client = await connect(server.ws_url, name)
    try:
        # Declared length: spooled as it arrives until the volume is full.
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/big.bin", {"Content-Length": str(20 * MIB), "Authorization": client.key}
        )
        answer, _ = await asyncio.to_thread(
            rawhttp.send_while_reading, (server.host, server.port), head, rawhttp.plain(20 * MIB)
        )
        assert_507(answer.status, answer.json())
        # Undeclared length (chunked): the same.
        head = rawhttp.head_bytes(
            "PUT", f"/fs/{name}/big2.bin", {"Transfer-Encoding": "chunked", "Authorization": client.key}
        )
        answer, _ = await asyncio.to_thread(
            rawhttp.send_while_reading, (server.host, server.port), head, rawhttp.chunked(20 * MIB)
        )
        assert_507(answer.status, answer.json())
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            # A form is parsed out of the spool and then written to storage: that write fails.
            form = await http.post(
                f"/fs/{name}/", files={"file": ("f.bin", b"f" * 5 * MIB)}, headers={"Authorization": client.key}
            )
            assert_507(form.status_code, form.json())
            # The space went back: a small upload works, and nothing else is listed.
            small = await http.put(f"/fs/{name}/small.txt", content=b"ok", headers={"Authorization": client.key})
            assert small.status_code == 201
            listing = (await http.get(f"/fs/{name}/", headers={"Authorization": client.key})).json()
            assert [e["path"] for e in listing["entries"]] == ["small.txt"]
    finally:
        await client.close()
    log = server.log()
    assert log.count("disk is full") >= 3, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


async def test_a_put_during_a_redis_outage_is_answered_with_the_truth(
    spawn: Spawn, private_redis: tuple[subprocess.Popen[bytes], int], name: str
) -> None:
    redis, port = private_redis
    server = spawn(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    client = await connect(server.ws_url, name)
    try:
        redis.terminate()
        redis.wait(10)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            put = await http.put(f"/fs/{name}/kept.txt", content=b"stored", headers={"Authorization": client.key})
            assert put.status_code == 201, put.text
            got = await http.get(f"/fs/{name}/kept.txt", headers={"Authorization": client.key})
            assert (got.status_code, got.content) == (202, b"stored")
    finally:
        await client.ws.close()
    assert "dashboards were not told" in server.log()
