"""Fixtures: real concierge processes (single, with settings, and a two-process cluster)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.server import (
    POSTGRES,
    REDIS,
    ServerProcess,
    base_env,
    drop_postgres_database,
    manage,
    new_postgres_database,
    require,
    start_server,
)


@pytest.fixture
def name() -> str:
    """A client name no other test uses."""
    return f"c_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on the embedded defaults: SQLite, in-memory layer, local disk."""
    data_dir = tmp_path_factory.mktemp("server")
    env = base_env(data_dir)
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


Spawn = Callable[..., ServerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start servers with extra environment (``spawn(FILESHARE_SECRET="s")``)."""
    started: list[ServerProcess] = []

    def start(**overrides: str) -> ServerProcess:
        data_dir = tmp_path / f"s{len(started)}"
        data_dir.mkdir()
        env = base_env(data_dir, **overrides)
        manage(env, "migrate", "-v0")
        process = start_server(env, data_dir)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class Cluster:
    """Several server processes sharing one PostgreSQL database and one Redis."""

    def __init__(self, root: Path, **overrides: str) -> None:
        require(POSTGRES, "PostgreSQL")
        require(REDIS, "Redis")
        self.root = root
        self.database_url = new_postgres_database()
        self.env_overrides = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "CONCIERGE_CHANNEL_PREFIX": f"t{uuid.uuid4().hex[:8]}",
            "FILESHARE_STORAGE_ROOT": str(root / "files"),
            **overrides,
        }
        manage(base_env(root, **self.env_overrides), "migrate", "-v0")
        self.processes: list[ServerProcess] = []

    def start(self) -> ServerProcess:
        data_dir = self.root / f"p{len(self.processes)}"
        process = start_server(base_env(data_dir, **self.env_overrides), data_dir, name=f"p{len(self.processes)}")
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        drop_postgres_database(self.database_url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two processes, A and B, behaving as one concierge."""
    group = Cluster(tmp_path_factory.mktemp("cluster"))
    group.start()
    group.start()
    yield group
    group.close()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """A fresh cluster with extra settings, for tests that kill or tune processes."""
    made: list[Cluster] = []

    def make(**overrides: str) -> Cluster:
        group = Cluster(tmp_path / f"cluster{len(made)}", **overrides)
        made.append(group)
        return group

    yield make
    for group in made:
        group.close()


# -- Storage backends: the file-API suite runs on each. --------------------------------------

BACKENDS = ["disk"]


@pytest.fixture(scope="module", params=BACKENDS)
def storage_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment selecting a storage backend for a server."""
    return {}


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory, storage_env: dict[str, str]) -> Iterator[ServerProcess]:
    """One server per storage backend, for the file-API suite."""
    data_dir = tmp_path_factory.mktemp("files")
    env = base_env(data_dir, **storage_env)
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


@pytest.fixture
def spawn_files_server(spawn: Spawn, storage_env: dict[str, str]) -> Spawn:
    """``spawn`` on the storage backend under test."""
    return lambda **overrides: spawn(**{**storage_env, **overrides})
