"""Two processes on a Redis that dies and comes back: nobody goes deaf, no leave is lost.

Each test has its own ``redis-server`` (tests/support/redis_server.py), SIGKILLed and
started again on the same port, never the machine's shared one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster
from tests.support.clients import Client, connect
from tests.support.redis_server import PrivateRedis
from tests.support.server import ServerProcess

pytestmark = pytest.mark.cluster

RESTORED = re.compile(
    r"lost this process's group memberships .*: restored (\d+) memberships of (\d+) channels in (\d+) groups"
)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """This test's own Redis."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


async def wait_for_log(process: ServerProcess, pattern: str | re.Pattern[str], timeout: float = 30) -> str:
    """The first line of ``process``'s log that matches ``pattern``, waiting ``timeout`` s at most."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in process.log().splitlines():
            if re.search(pattern, line):
                return line
        await asyncio.sleep(0.2)
    raise AssertionError(f"no log line matching {pattern!r} within {timeout} s:\n{process.log()[-3000:]}")


async def settled(*clients: Client) -> None:
    """Return once each client's IDENTIFY has run to its end (joins, broadcasts): its
    consumer answers frames in order, so a reply to a later frame proves it."""
    for client in clients:
        assert (await client.request({"type": "CLIENT_FETCH_ALL"}))["type"] == "CLIENT_FETCH_ALL_RESULT"


def joined(name: str) -> Callable[[dict[str, object]], bool]:
    return lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == name  # type: ignore[index]


def left(name: str) -> Callable[[dict[str, object]], bool]:
    return lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name  # type: ignore[index]


async def test_after_a_redis_restart_clients_connected_before_hear_broadcasts_again(
    make_cluster: Callable[..., Cluster], redis: PrivateRedis, name: str
) -> None:
    group = make_cluster(REDIS_URL=redis.url)
    a, b = group.start(), group.start()
    on_a = await connect(a.ws_url, f"{name}_a")
    on_b = await connect(b.ws_url, f"{name}_b")
    await on_a.expect(joined(on_b.name))
    await settled(on_a, on_b)

    redis.kill()
    redis.start()
    # Each process notices, restores its clients' memberships and says so, with counts.
    for process in (a, b):
        line = await wait_for_log(process, RESTORED)
        memberships, channels, groups = (int(n) for n in RESTORED.search(line).groups())  # type: ignore[union-attr]
        assert memberships >= 1 and channels >= 1 and groups >= 1, line

    newcomer = await connect(a.ws_url, f"{name}_n")
    await on_a.expect(joined(newcomer.name), timeout=10)
    await on_b.expect(joined(newcomer.name), timeout=10)
    reply = await on_b.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "after the restart"}, timeout=30)
    assert reply["type"] == "OK", reply
    assert (await on_a.expect("MESSAGE", timeout=10))["data"] == "after the restart"
    assert (await newcomer.expect("MESSAGE", timeout=10))["data"] == "after the restart"
    for process in (a, b):  # once per restart, not once per check
        assert len(RESTORED.findall(process.log())) == 1, process.log()[-3000:]
    for client in (newcomer, on_a, on_b):
        await client.close()


async def test_during_a_redis_outage_a_message_is_answered_with_what_failed_and_logged_in_one_line(
    make_cluster: Callable[..., Cluster], redis: PrivateRedis, name: str
) -> None:
    group = make_cluster(REDIS_URL=redis.url)
    a, b = group.start(), group.start()
    sender = await connect(a.ws_url, f"{name}_s")
    other = await connect(b.ws_url, f"{name}_o")
    await sender.expect(joined(other.name))
    await settled(sender, other)
    # Routes known to A before the outage, so that the sends themselves meet it.
    targets = [{"type": "ALL"}, {"type": "NAME", "name": other.name}, {"type": "UUID", "uuid": other.public_id}]
    for target in targets[1:]:
        assert (await sender.request({"type": "MESSAGE", "target": target, "data": 0}))["type"] == "OK"

    redis.kill()
    for number in range(2):
        for target in targets:
            reply = await sender.request({"type": "MESSAGE", "target": target, "data": number}, timeout=60)
            assert reply["type"] == "ERROR_INTERNAL", reply
            assert "Redis" in reply["desc"] and "unreachable" in reply["desc"], reply
            assert "Traceback" not in reply["desc"]
    log = a.log()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("Redis is unreachable") == 1, log[-3000:]

    redis.start()
    await wait_for_log(a, "Redis is reachable again")
    await sender.close()
    await other.close()


async def test_a_client_that_closes_during_a_redis_outage_leaves_once_redis_is_back(
    make_cluster: Callable[..., Cluster], redis: PrivateRedis, name: str
) -> None:
    """Its services, files, row and name go, and everyone hears CLIENT_LEFT."""
    group = make_cluster(REDIS_URL=redis.url, FILESHARE_LEASE_SECONDS="3")
    a, b = group.start(), group.start()
    leaver = await connect(a.ws_url, name)
    watcher = await connect(b.ws_url, f"{name}_w")
    service = f"svc_{name}"
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(f"{a.url}/fs/{name}/f.txt", content=b"held", headers={"Authorization": leaver.key})
        assert put.status_code == 201
        assert (await leaver.request({"type": "SERVICE_CREATE", "service": service}))["successful"]
        await watcher.expect("SERVICE_CREATE_RESULT")
        await settled(leaver, watcher)
        folder = list(Path(group.root / "files").glob(f"{name}.*"))
        assert len(folder) == 1

        redis.kill()
        await leaver.close()
        await wait_for_log(a, f"the leave of {name} failed")
        redis.start()

        deleted = await watcher.expect("SERVICE_DELETE_RESULT", timeout=60)
        assert deleted["service"]["name"] == service
        await watcher.expect(left(name), timeout=60)
        # Once each: the retries went on from the step that failed.
        await watcher.quiet(lambda p: p["type"] == "SERVICE_DELETE_RESULT" or left(name)(p), wait=3)
        assert not folder[0].exists()
        assert (await http.get(f"{b.url}/fs/{name}/f.txt", headers={"Authorization": watcher.key})).status_code == 404
    again = await connect(b.ws_url, name)  # the name is free
    await again.close()
    log = a.log()
    assert f"the leave of {name} completed" in log
    assert "Traceback" not in log, log[-3000:]
    await watcher.close()


async def test_a_leave_left_unfinished_by_a_process_that_died_is_finished_by_another(
    make_cluster: Callable[..., Cluster], redis: PrivateRedis, name: str
) -> None:
    group = make_cluster(REDIS_URL=redis.url, FILESHARE_LEASE_SECONDS="3", FILESHARE_LEAVE_RETRY_SECONDS="3")
    a, b = group.start(), group.start()
    leaver = await connect(a.ws_url, name)
    watcher = await connect(b.ws_url, f"{name}_w")
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(f"{a.url}/fs/{name}/f.txt", content=b"held", headers={"Authorization": leaver.key})
        assert put.status_code == 201
    folder = list(Path(group.root / "files").glob(f"{name}.*"))
    await settled(leaver, watcher)

    redis.kill()
    await leaver.close()
    await wait_for_log(a, f"the leave of {name} failed")
    a.kill()  # its retries die with it
    redis.start()

    await watcher.expect(left(name), timeout=60)
    assert not folder[0].exists()
    again: Client = await connect(b.ws_url, name)
    await again.close()
    await wait_for_log(b, "was left unfinished; finishing it")
    await watcher.close()
