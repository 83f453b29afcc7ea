"""docs/install.md, followed literally: a fresh venv, the wheel, a new project, the page's steps.

The steps are the page's blocks marked ``<!-- install-step: KIND -->``: ``shell`` runs
in bash in an empty folder (``/path/to/concierge`` becomes the wheel built from this
repository), ``append FILE`` and ``write FILE`` edit the project, and ``run`` runs its
commands in the same terminal (the venv activated), the last one, ``runconcierge``,
on a free port. The result must answer HELLO, store and return a file, and show the
dashboard to the operator the page created.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.server import REPO

pytestmark = pytest.mark.slow

PAGE = REPO / "docs" / "install.md"
PLACEHOLDER = "/path/to/concierge"
STEP_RE = re.compile(r"<!-- install-step: (.+?) -->\n```\w+\n(.*?)```", re.S)


def page_steps() -> list[tuple[str, str]]:
    return [(kind.strip(), body) for kind, body in STEP_RE.findall(PAGE.read_text())]


def build_wheel(out: Path) -> Path:
    """The wheel of this repository (no network: the shared venv's setuptools builds it)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("concierge-*.whl")
    return wheel


def newcomer_env(bin_dir: Path) -> dict[str, str]:
    """A shell outside this repository's venv, whose ``python3`` is the base interpreter."""
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys._base_executable)  # type: ignore[attr-defined]
    shared_venv = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != shared_venv]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith(("FILESHARE_", "CONCIERGE_", "DATABASE_URL", "REDIS_URL"))
    }
    return {**env, "PATH": os.pathsep.join([str(bin_dir), *path]), "PYTHONUNBUFFERED": "1"}


def bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"step failed:\n{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_page_marks_every_step_the_test_applies() -> None:
    kinds = [kind for kind, _ in page_steps()]
    assert kinds == [
        "shell",
        "append mysite/mysite/settings.py",
        "append mysite/mysite/urls.py",
        "write mysite/mysite/asgi.py",
        "run",
    ]


def test_a_fresh_project_following_the_install_page_serves_the_concierge(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    env = newcomer_env(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    operator_output = ""
    server_command: list[str] = []
    for kind, body in page_steps():
        if kind == "shell":
            assert PLACEHOLDER in body
            bash(body.replace(PLACEHOLDER, str(wheel)), work, env)
        elif kind.startswith("append "):
            target = work / kind.removeprefix("append ")
            target.write_text(target.read_text() + "\n" + body)
        elif kind.startswith("write "):
            (work / kind.removeprefix("write ")).write_text(body)
        elif kind == "run":
            *commands, last = body.strip().splitlines()
            assert last == "python manage.py runconcierge"
            operator_output = bash(". .venv/bin/activate\n" + "\n".join(commands), work, env)
            server_command = last.split()
        else:
            pytest.fail(f"unknown install step {kind!r}")

    assert "System check identified no issues" in operator_output
    password = re.search(r"with the password: (\w+)", operator_output)
    assert password, operator_output

    project = work / "mysite"
    ready = tmp_path / "ready"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        python = str(work / ".venv" / "bin" / "python")
        proc = subprocess.Popen(
            [python, *server_command[1:], "--port", "0", "--ready-file", str(ready)],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        host, port = ready.read_text().split()
        base = f"http://{host}:{port}"
        assert "backends: database sqlite, channel layer in-memory, storage filesystem" in log_path.read_text()
        asyncio.run(use_the_concierge(base, password.group(1)))
        assert (project / "concierge-files").is_dir()
        assert "Traceback" not in log_path.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


async def use_the_concierge(base: str, password: str) -> None:
    ws_url = base.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url) as ws:  # a program: no Origin header
        await ws.send(json.dumps({"type": "IDENTIFY", "name": "demo", "version": "0.2.0"}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "HELLO" and hello["client"]["name"] == "demo"
        key = {"Authorization": f"Bearer {hello['uuid']}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            first = await http.put("/fs/demo/notes.txt", content=b"first", headers=key)
            assert first.status_code == 201, first.text
            second = await http.put("/fs/demo/notes.txt", content=b"second version", headers=key)
            assert second.status_code in {200, 201}, second.text
            download = await http.get("/fs/demo/notes.txt", headers=key)
            assert download.status_code in {200, 202} and download.content == b"second version"
            assert (await http.get("/readyz")).status_code == 200

            page = await http.get("/dashboard/")
            assert page.status_code == 302 and page.headers["Location"] == "/dashboard/login/?next=/dashboard/"
            login = await http.get("/dashboard/login/")
            assert login.status_code == 200
            answer = await http.post(
                "/dashboard/login/",
                data={
                    "username": "admin",
                    "password": password,
                    "next": "/dashboard/",
                    "csrfmiddlewaretoken": http.cookies["csrftoken"],
                },
            )
            assert answer.status_code == 302 and answer.headers["Location"] == "/dashboard/"
            dashboard = await http.get("/dashboard/")
            assert dashboard.status_code == 200 and "Operator dashboard" in dashboard.text
            style = await http.get("/static/fileshare/dashboard.css")
            assert style.status_code == 200 and style.headers["Content-Type"].startswith("text/css")
