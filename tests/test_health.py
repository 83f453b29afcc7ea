"""/healthz and /readyz (docs/health.md): cheap, no key, nothing secret, JSON."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import ServerProcess, base_env, manage, start_server


def test_liveness_answers_ok_without_a_key(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_readiness_names_each_backend_and_nothing_else(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": {"backend": "sqlite", "ok": True},
            "channel_layer": {"backend": "in-memory", "ok": True},
            "storage": {"backend": "filesystem", "ok": True},
        },
    }
    assert str(server.data_dir) not in response.text


def test_readiness_answers_503_naming_the_failed_backend_but_not_its_address(tmp_path: Path) -> None:
    env = base_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    manage(env, "migrate", "-v0")
    process = start_server(env, tmp_path, "unready", "--no-self-check")
    try:
        response = httpx.get(f"{process.url}/readyz", timeout=30)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["channel_layer"]["backend"] == "redis"
        assert body["checks"]["channel_layer"]["ok"] is False
        assert body["checks"]["channel_layer"]["error"].isidentifier()  # a class name, no detail
        assert body["checks"]["database"]["ok"] is True and body["checks"]["storage"]["ok"] is True
        assert "127.0.0.1:1" not in response.text
        assert "readiness: the channel_layer (redis) failed" in process.log()
    finally:
        process.stop()
