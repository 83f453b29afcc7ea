"""Real concierge server processes for tests: ``manage.py runconcierge`` on port 0.

Like daphne's own ``daphne/testing.py``, each server is a subprocess that tells us
its port once it listens. Tests talk to it with real websocket and HTTP clients.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    """True if something accepts TCP connections at ``address``."""
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def require(address: tuple[str, int], what: str) -> None:
    """Skip (on a laptop) or fail (in CI, where the service must run) when ``what`` is down."""
    import pytest

    if reachable(address):
        return
    message = f"{what} is not reachable at {address[0]}:{address[1]}"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must have it")
    pytest.skip(message)


def base_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for a server: embedded defaults under ``data_dir``, then overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FILESHARE_", "CONCIERGE_", "DATABASE_URL", "REDIS_URL", "AWS_"))
    }
    env.update(
        {
            "CONCIERGE_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "concierge_site.settings",
            "AWS_CONFIG_FILE": str(data_dir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(data_dir / "no-aws-credentials"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` with ``args`` in ``env``; raise with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def new_postgres_database() -> str:
    """Create an empty PostgreSQL database for one test module; returns its URL."""
    name = f"concierge_t_{uuid.uuid4().hex[:12]}"
    subprocess.run(
        ["psql", "-h", POSTGRES[0], "-U", "postgres", "-d", "test", "-qc", f'CREATE DATABASE "{name}"'],
        check=True,
        capture_output=True,
    )
    return f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    subprocess.run(
        [
            "psql",
            "-h",
            POSTGRES[0],
            "-U",
            "postgres",
            "-d",
            "test",
            "-qc",
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        ],
        capture_output=True,
    )


@dataclass
class ServerProcess:
    """One running concierge process."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_server(
    env: dict[str, str], data_dir: Path, name: str = "server", *args: str, timeout: float = 30
) -> ServerProcess:
    """Start ``runconcierge`` (with extra ``args``) on a free loopback port; wait until it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ready = data_dir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    log_path = data_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runconcierge", "--port", "0", "--ready-file", str(ready), *args],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            host, port = ready.read_text().split()
            return ServerProcess(proc, host, int(port), data_dir, env, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server {name} did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def restart_on_same_port(process: ServerProcess, name: str = "again") -> ServerProcess:
    """Stop ``process`` (SIGTERM) and start a new one with its environment and data on the same port."""
    process.stop()
    return start_server(process.env, process.data_dir, name, "--port", str(process.port))
