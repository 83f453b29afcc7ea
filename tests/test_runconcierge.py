"""``manage.py runconcierge`` in any project: what it serves, where, and its start-up self-check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from fileshare import conf
from tests.conftest import new_bucket, s3_env
from tests.support.s3server import S3Server
from tests.support.server import REPO, ServerProcess, base_env, manage, start_server


def run_briefly(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``runconcierge`` that is expected to stop by itself (a failed self-check)."""
    return subprocess.run(
        [sys.executable, "manage.py", "runconcierge", "--port", "0", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_host_and_port_default_to_loopback_64209_without_project_settings() -> None:
    with override_settings():
        del settings.CONCIERGE_HOST
        del settings.CONCIERGE_PORT
        assert (conf.host(), conf.port()) == ("127.0.0.1", 64209)


def test_prints_the_backends_and_the_login_url_on_the_port_it_bound(server: ServerProcess) -> None:
    log = server.log()
    assert "backends: database sqlite, channel layer in-memory, storage filesystem" in log
    assert (
        f"Dashboard: http://127.0.0.1:{server.port}/dashboard/ (log in at http://127.0.0.1:{server.port}/login/)" in log
    )


def test_the_login_url_honours_base_url(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    manage(env, "migrate", "-v0")
    process = start_server(env, tmp_path, "proxied", "--base-url", "https://concierge.example/")
    try:
        assert httpx.get(f"{process.url}/healthz").status_code == 200
        assert (
            "Dashboard: https://concierge.example/dashboard/ (log in at https://concierge.example/login/)"
            in process.log()
        )
    finally:
        process.stop()


def test_serves_the_application_named_by_asgi(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    manage(env, "migrate", "-v0")
    process = start_server(env, tmp_path, "named", "--asgi", "tests.support.asgi_variants:concierge_outside_validator")
    try:
        assert httpx.get(f"{process.url}/healthz").json() == {"status": "ok"}
    finally:
        process.stop()


def test_an_asgi_application_that_cannot_be_imported_stops_with_its_name(tmp_path: Path) -> None:
    result = run_briefly(base_env(tmp_path), "--asgi", "no_such_module:application")
    assert result.returncode != 0
    assert "cannot import the ASGI application 'no_such_module:application'" in result.stderr


def test_an_unreachable_redis_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    env = base_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    manage(env, "migrate", "-v0")
    result = run_briefly(env)
    assert result.returncode != 0
    assert "not serving: the channel layer (redis) is unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    result = run_briefly(base_env(tmp_path, DATABASE_URL="postgres://nobody@127.0.0.1:1/none"))
    assert result.returncode != 0
    assert "not serving: the database (postgresql) is unreachable" in result.stderr


def test_a_storage_folder_that_cannot_be_made_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = base_env(tmp_path, FILESHARE_STORAGE_ROOT=str(blocker))
    manage(env, "migrate", "-v0")
    result = run_briefly(env)
    assert result.returncode != 0
    assert "not serving: the storage (filesystem) is unreachable" in result.stderr


@pytest.mark.s3
def test_a_missing_bucket_stops_the_start(tmp_path: Path, s3_server: S3Server) -> None:
    env = base_env(tmp_path, **s3_env(s3_server, "no-such-bucket-here", tmp_path))
    manage(env, "migrate", "-v0")
    result = run_briefly(env)
    assert result.returncode != 0
    assert re.search(r"not serving: the storage \(s3\) is unreachable: ClientError", result.stderr), result.stderr


@pytest.mark.s3
def test_an_existing_bucket_passes_the_self_check(tmp_path: Path, s3_server: S3Server) -> None:
    env = base_env(tmp_path, **s3_env(s3_server, new_bucket(s3_server), tmp_path))
    manage(env, "migrate", "-v0")
    process = start_server(env, tmp_path, "s3")
    try:
        assert "backends: database sqlite, channel layer in-memory, storage s3" in process.log()
    finally:
        process.stop()


@pytest.mark.s3
def test_fileshare_create_bucket_creates_a_missing_bucket_once_and_the_server_then_starts(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = f"created-{tmp_path.name[-12:].lower().replace('_', '-')}"
    env = base_env(tmp_path, **s3_env(s3_server, bucket, tmp_path))
    manage(env, "migrate", "-v0")
    assert manage(env, "fileshare_create_bucket").stdout.strip() == f"Created the bucket {bucket!r}."
    assert manage(env, "fileshare_create_bucket").stdout.strip() == f"The bucket {bucket!r} exists; nothing to do."
    assert s3_server.client().head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    process = start_server(env, tmp_path, "created")
    try:
        assert httpx.get(f"{process.url}/readyz").json()["checks"]["storage"] == {"backend": "s3", "ok": True}
    finally:
        process.stop()


def test_fileshare_create_bucket_makes_a_missing_storage_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet" / "files"
    env = base_env(tmp_path, FILESHARE_STORAGE_ROOT=str(folder))
    assert manage(env, "fileshare_create_bucket").stdout.strip() == f"The storage folder {folder} was created."
    assert folder.is_dir()
    assert manage(env, "fileshare_create_bucket").stdout.strip() == f"The storage folder {folder} exists."


def test_ensure_operator_no_links_leaves_the_url_to_runconcierge(tmp_path: Path) -> None:
    """./scripts/run passes --no-links: the URL ensure_operator would print ignores --port."""
    env = base_env(tmp_path, CONCIERGE_OPERATOR_PASSWORD="a long enough secret")
    manage(env, "migrate", "-v0")
    first = manage(env, "ensure_operator", "--no-links").stdout
    assert "Created the operator account 'admin'" in first and "http" not in first
    assert manage(env, "ensure_operator", "--no-links").stdout.strip() == "Operators exist (e.g. 'admin')."
