"""A leave whose claim meets a database outage is retried until it completes.

The outage is real: the test holds SQLite's write lock (an EXCLUSIVE transaction on the
server's own database file) while the client closes, so the server's writes wait out
their 30 s busy timeout and fail with "database is locked"; then the lock goes.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import httpx

from tests.conftest import Spawn
from tests.support.clients import connect
from tests.support.server import ServerProcess


async def wait_for_log(process: ServerProcess, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in process.log().splitlines():
            if re.search(pattern, line):
                return line
        await asyncio.sleep(0.2)
    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n{process.log()[-3000:]}")


async def test_a_client_that_closes_while_the_database_is_locked_leaves_once_it_is_free(
    spawn: Spawn, name: str
) -> None:
    server = spawn(FILESHARE_LEASE_SECONDS="3")
    leaver = await connect(server.ws_url, name)
    watcher = await connect(server.ws_url, f"{name}_w")
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        put = await http.put(f"/fs/{name}/f.txt", content=b"held", headers={"Authorization": leaver.key})
        assert put.status_code == 201
        folder = list((server.data_dir / "files").glob(f"{name}.*"))
        assert len(folder) == 1

        lock = sqlite3.connect(server.data_dir / "concierge.sqlite3", timeout=60, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            await leaver.close()
            line = await wait_for_log(server, r"the leave of .* failed \(OperationalError: database is locked\)", 120)
            assert "Traceback" not in server.log()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        await watcher.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name, timeout=60)
        assert not folder[0].exists()
        assert (await http.get(f"/fs/{name}/f.txt", headers={"Authorization": watcher.key})).status_code == 404
        assert (await http.get(f"/fs/{name}/f.txt", headers={"Authorization": leaver.key})).status_code == 401
    again = await connect(server.ws_url, name)  # the name is free
    await again.close()
    await wait_for_log(server, rf"the leave of {name} completed \(retry \d+\)", 10)
    assert "retrying every 1 s" in line
    await watcher.close()
