"""Fixtures: real concierge processes (single, with settings, and a two-process cluster)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.clients import Client, connect
from tests.support.s3server import (
    S3Server,
    aws_isolation_env,
    make_s3_client,
    require_weed_binary,
    start_s3_server,
)
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
def client_row() -> Any:
    """A live client's row (``owner``, folder ``owner.abc``) in the test database, for
    in-process tests marked ``django_db``."""
    from django.utils import timezone

    from fileshare.models import LiveClient, ServerInstance

    instance = ServerInstance.objects.create(hostname="h", pid=1, heartbeat_at=timezone.now())
    return LiveClient.objects.create(
        name="owner",
        version="0.2.0",
        key=uuid.uuid4(),
        public_id=uuid.uuid4(),
        channel_name="c1",
        folder="owner.abc",
        instance=instance,
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

BACKENDS = ["disk", "s3"]
S3_PREFIX = "files"
"""FILESHARE_S3_PREFIX of the S3 test servers, so that ``location`` is exercised too."""


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole session (it takes 5-10 s to start)."""
    weed = require_weed_binary()
    server = start_s3_server(tmp_path_factory.mktemp("seaweedfs"), weed=weed)
    yield server
    server.stop()


def s3_env(server: S3Server, bucket: str, data_dir: Path) -> dict[str, str]:
    """Server environment that stores files in ``bucket`` on ``server``, isolated from ~/.aws."""
    return {
        "FILESHARE_S3_BUCKET": bucket,
        "FILESHARE_S3_ENDPOINT_URL": server.endpoint_url,
        "FILESHARE_S3_REGION": server.region,
        "FILESHARE_S3_ACCESS_KEY_ID": server.access_key,
        "FILESHARE_S3_SECRET_ACCESS_KEY": server.secret_key,
        "FILESHARE_S3_ADDRESSING_STYLE": "path",
        "FILESHARE_S3_SIGNATURE_VERSION": "s3v4",
        "FILESHARE_S3_PREFIX": S3_PREFIX,
        **aws_isolation_env(data_dir),
    }


def new_bucket(server: S3Server) -> str:
    """Create an empty bucket with a fresh name on ``server``."""
    bucket = f"concierge-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    return bucket


def drop_bucket(server: S3Server, bucket: str) -> None:
    """Delete ``bucket`` and everything in it (SeaweedFS frees its volumes)."""
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module", params=BACKENDS)
def storage_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment selecting a storage backend for a server: local disk, or a fresh S3 bucket."""
    if request.param == "disk":
        yield {}
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = new_bucket(server)
    yield s3_env(server, bucket, tmp_path_factory.mktemp("aws"))
    drop_bucket(server, bucket)


def s3_client_of(server: ServerProcess) -> Any:
    """A boto3 client for the S3 server ``server`` stores its files on (cached: making one takes 0.1-0.4 s)."""
    env = server.env
    return _s3_client(
        env["FILESHARE_S3_ENDPOINT_URL"],
        env["FILESHARE_S3_ACCESS_KEY_ID"],
        env["FILESHARE_S3_SECRET_ACCESS_KEY"],
        env.get("FILESHARE_S3_REGION") or "us-east-1",
    )


@functools.cache
def _s3_client(endpoint_url: str, access_key: str, secret_key: str, region: str) -> Any:
    return make_s3_client(endpoint_url, access_key, secret_key, region)


def stored_names(server: ServerProcess, *, whole_bucket: bool = False) -> list[str]:
    """Every blob in ``server``'s file storage, named relative to its root (disk) or prefix (S3), sorted.

    ``whole_bucket``: on S3, every key in the bucket, prefix included.
    """
    bucket = server.env.get("FILESHARE_S3_BUCKET")
    if not bucket:
        root = Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files"))
        if not root.exists():
            return []
        return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if not path.is_dir())
    client = s3_client_of(server)
    prefix = server.env.get("FILESHARE_S3_PREFIX", "").strip("/")
    prefix = f"{prefix}/" if prefix and not whole_bucket else ""
    names: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names.extend(item["Key"][len(prefix) :] for item in page.get("Contents", ()))
    return sorted(names)


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


# -- Dashboard operators (tests/test_dashboard*.py) --------------------------------------------


@dataclass(frozen=True)
class Account:
    """A user of a test server's dashboard."""

    username: str
    password: str


def create_account(server: ServerProcess, username: str, *, staff: bool) -> Account:
    """A user on ``server``'s database (``staff`` makes it an operator), made with manage.py shell."""
    password = f"pw-{uuid.uuid4().hex}"
    code = (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user({username!r}, password={password!r}, is_staff={staff!r})"
    )
    manage(server.env, "shell", "-c", code)
    return Account(username, password)


def login_form(account: Account, csrftoken: str) -> dict[str, str]:
    """The login form's fields for ``account``."""
    return {"username": account.username, "password": account.password, "csrfmiddlewaretoken": csrftoken}


async def operator_session(server: ServerProcess, account: Account) -> httpx.AsyncClient:
    """An httpx client logged in to ``server`` as ``account`` (session and CSRF cookies set)."""
    client = httpx.AsyncClient(base_url=server.url, timeout=10)
    await client.get("/login/")
    response = await client.post("/login/", data=login_form(account, client.cookies["csrftoken"]))
    if response.status_code != 302:
        await client.aclose()
        raise AssertionError(f"login as {account.username} failed: {response.status_code}")
    return client


@pytest.fixture(scope="module")
def operator(server: ServerProcess) -> Account:
    """The first operator of the module's ``server``, made by ``manage.py ensure_operator``."""
    account = Account("operator", f"pw-{uuid.uuid4().hex}")
    env = {
        **server.env,
        "CONCIERGE_OPERATOR_USERNAME": account.username,
        "CONCIERGE_OPERATOR_PASSWORD": account.password,
    }
    manage(env, "ensure_operator")
    return account


# -- Clients of the server under test: ``app`` is ``server`` unless a module overrides it. ----


@pytest.fixture
def app(server: ServerProcess) -> ServerProcess:
    """The server that ``owner`` and ``http`` talk to."""
    return server


@pytest.fixture
async def owner(app: ServerProcess, name: str) -> AsyncIterator[Client]:
    """An identified client named after the test."""
    client = await connect(app.ws_url, name)
    yield client
    await client.close()


@pytest.fixture
async def http(app: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the server's file API."""
    async with httpx.AsyncClient(base_url=app.url, timeout=60) as client:
        yield client
