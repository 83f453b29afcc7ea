"""The configurations the bench measures, started on loopback and stopped afterwards.

* ``run_command``: the README's run command (``runconcierge`` on the embedded
  defaults: SQLite, the in-memory channel layer, local disk), no proxy.
* ``recipe``: deploy/nginx.conf in front of ``runconcierge --proxy-headers``
  processes (PostgreSQL and Redis when there are several).
* ``cluster``: two ``runconcierge`` processes sharing PostgreSQL and Redis.
* ``plain_relay``: bench/plain_relay.py, the ceiling for messages.
* ``daphne_floor``: bench/daphne_floor.py under stock daphne, a reference for handshakes.
* ``ceiling_nginx``: nginx serving a file (static GET) and taking PUTs
  (``dav_methods PUT``), the ceilings for files.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.nginx import NginxProcess, Recipe, find_nginx, free_port, start_nginx, start_recipe
from tests.support.server import (
    POSTGRES,
    REDIS,
    REPO,
    ServerProcess,
    base_env,
    drop_postgres_database,
    manage,
    new_postgres_database,
    reachable,
    start_server,
)


def dump_logs(processes: list[ServerProcess], nginx: NginxProcess | None = None, lines: int = 30) -> None:
    """Print the last lines of each server's log to stderr (when a measurement failed)."""
    for process in processes:
        tail = process.log().splitlines()[-lines:]
        state = "running" if process.alive() else f"exited with {process.proc.returncode}"
        print(f"--- {process.log_path} ({state})", *tail, sep="\n", file=sys.stderr)
    if nginx is not None:
        print(f"--- {nginx.root / 'error.log'}", *nginx.log().splitlines()[-lines:], sep="\n", file=sys.stderr)


def services_available() -> bool:
    """Whether PostgreSQL and Redis answer on loopback (the several-process configurations)."""
    return reachable(POSTGRES) and reachable(REDIS)


@contextmanager
def run_command(root: Path) -> Iterator[ServerProcess]:
    """``manage.py runconcierge`` on the embedded defaults in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    env = base_env(root)
    manage(env, "migrate", "-v0")
    process = start_server(env, root)
    try:
        yield process
    except BaseException:
        dump_logs([process])
        raise
    finally:
        process.stop()


@dataclass
class SharedServices:
    """A fresh PostgreSQL database and a Redis key prefix for one configuration."""

    database_url: str
    prefix: str

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "CONCIERGE_CHANNEL_PREFIX": self.prefix,
        }


@contextmanager
def shared_services() -> Iterator[SharedServices]:
    """A new PostgreSQL database (dropped afterwards) and a unique Redis prefix."""
    url = new_postgres_database()
    try:
        yield SharedServices(url, f"bench{uuid.uuid4().hex[:8]}")
    finally:
        drop_postgres_database(url)


@contextmanager
def recipe(root: Path, processes: int = 2) -> Iterator[Recipe]:
    """The production recipe: nginx in front of ``processes`` app processes.

    Several processes share PostgreSQL and Redis; without them (or with one
    process) the processes share one SQLite file and the in-memory layer.
    """
    with ExitStack() as stack:
        if processes > 1 and services_available():
            services = stack.enter_context(shared_services())
            started = start_recipe(root, processes=processes, workers="auto", **services.env())
        else:
            started = start_recipe(root, processes=1, workers="auto")
        try:
            yield started
        except BaseException:
            dump_logs(started.apps, started.nginx)
            raise
        finally:
            started.stop()


@contextmanager
def cluster(root: Path) -> Iterator[list[ServerProcess]]:
    """Two ``runconcierge`` processes behaving as one concierge (PostgreSQL and Redis)."""
    with shared_services() as services:
        overrides = {**services.env(), "FILESHARE_STORAGE_ROOT": str(root / "files")}
        manage(base_env(root, **overrides), "migrate", "-v0")
        processes: list[ServerProcess] = []
        try:
            for index in range(2):
                data_dir = root / f"p{index}"
                processes.append(start_server(base_env(data_dir, **overrides), data_dir, name=f"p{index}"))
            yield processes
        except BaseException:
            dump_logs(processes)
            raise
        finally:
            for process in processes:
                process.stop()


@dataclass
class SubprocessServer:
    """A websocket server in a subprocess: bench/plain_relay.py, or daphne serving bench/daphne_floor.py."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@contextmanager
def _serving(
    proc: subprocess.Popen[bytes], port: Callable[[], int | None], what: str, timeout: float
) -> Iterator[SubprocessServer]:
    """Wait until ``port()`` names the port ``proc`` listens on; stop ``proc`` afterwards."""
    try:
        deadline = time.monotonic() + timeout
        while (bound := port()) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.05)
        yield SubprocessServer(proc, bound)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def plain_relay(root: Path, timeout: float = 15, announce: bool = False) -> Iterator[SubprocessServer]:
    """The plain ``websockets`` relay on a free loopback port (``announce``: the crowd work too)."""
    root.mkdir(parents=True, exist_ok=True)
    ready = root / "plain.ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.plain_relay", "--port", "0", "--ready-file", str(ready)]
        + (["--announce"] if announce else []),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def bound() -> int | None:
        text = ready.read_text().strip() if ready.exists() else ""
        return int(text.split()[1]) if text else None

    with _serving(proc, bound, "bench.plain_relay", timeout) as relay:
        yield relay


@contextmanager
def daphne_floor(timeout: float = 15) -> Iterator[SubprocessServer]:
    """bench/daphne_floor.py under stock daphne (no access log, runconcierge's backlog) on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen(
        # The listen backlog of runconcierge (Twisted's default of 50 drops part of a burst).
        [
            sys.executable,
            "-m",
            "daphne",
            "-v",
            "0",
            "-e",
            f"tcp:port={port}:interface=127.0.0.1:backlog=1024",
            "bench.daphne_floor:application",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with _serving(
        proc, lambda: port if reachable(("127.0.0.1", port)) else None, "daphne (bench.daphne_floor)", timeout
    ) as floor:
        yield floor


CEILING_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        sendfile on;
        tcp_nopush on;
        location /static/ {{
            alias {static}/;
        }}
        location /dav/ {{
            alias {dav}/;
            dav_methods PUT DELETE;
            client_max_body_size 0;
            client_body_buffer_size 1m;
            client_body_temp_path {dav_temp};
        }}
    }}
"""


@contextmanager
def ceiling_nginx(root: Path, static: Path) -> Iterator[tuple[NginxProcess, Path]]:
    """nginx serving ``static/`` and taking PUTs into ``root/dav`` (same filesystem as its temp folder)."""
    if find_nginx() is None:
        raise RuntimeError("nginx is not installed: run scripts/install-bench-deps.sh")
    dav, dav_temp = root / "dav", root / "dav-tmp"
    dav.mkdir(parents=True, exist_ok=True)
    dav_temp.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _attempt in range(5):
        port = free_port()
        servers = CEILING_SERVER.format(port=port, static=static, dav=dav, dav_temp=dav_temp)
        try:
            nginx = start_nginx(root / "nginx", servers, port, workers="auto")
        except RuntimeError as exc:
            last = exc
            continue
        try:
            yield nginx, dav
        finally:
            nginx.stop()
        return
    raise RuntimeError(f"the ceiling nginx did not start: {last}")
