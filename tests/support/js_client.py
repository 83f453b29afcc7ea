"""The JavaScript client (clients/js) for tests: its build, and a control server for its Node tests.

The Node tests (``npm test`` in clients/js) talk to a real concierge at ``CONCIERGE_URL``.
What they cannot do themselves, restarting that server or kicking a client from the
dashboard, they ask of :class:`ServerControl`, a small HTTP server of the test process at
``CONCIERGE_TEST_CONTROL``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.support.server import REPO, ServerProcess, start_server

JS_CLIENT = REPO / "clients" / "js"


def require_node() -> None:
    """Skip (on a laptop) or fail (in CI) without node and npm."""
    import pytest

    if shutil.which("node") and shutil.which("npm"):
        return
    if os.environ.get("CI"):
        pytest.fail("node and npm are needed for the JavaScript client's tests in CI")
    pytest.skip("node and npm are not installed")


def build_js_client() -> Path:
    """Install and build clients/js with scripts/install-js-deps.sh (quick when up to date)."""
    require_node()
    result = subprocess.run([str(REPO / "scripts" / "install-js-deps.sh")], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"scripts/install-js-deps.sh failed:\n{result.stdout}\n{result.stderr}")
    built = JS_CLIENT / "dist" / "index.js"
    assert built.is_file(), f"{built} was not built"
    return built


class ServerControl:
    """Restarts a server on its port and kicks its clients, on request over HTTP."""

    def __init__(self, server: ServerProcess, operator: tuple[str, str]) -> None:
        self.server = server
        self.operator = operator
        self.restarts = 0
        self._lock = threading.Lock()
        control = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                try:
                    answer = control.act(self.path.strip("/"), body)
                    status = 200
                except Exception as exc:  # the Node test shows it
                    answer, status = {"error": repr(exc)}, 500
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host!s}:{port}"

    def act(self, action: str, body: dict[str, str]) -> dict[str, object]:
        with self._lock:
            if action == "restart":
                return self.restart()
            if action == "kick":
                return self.kick(body["client"])
        raise ValueError(f"unknown action {action!r}")

    def restart(self) -> dict[str, object]:
        """SIGKILL the server (a crash: no close frames) and start it again on the same port and data."""
        old = self.server
        old.kill()
        self.restarts += 1
        self.server = start_server(old.env, old.data_dir, f"restart{self.restarts}", "--port", str(old.port))
        assert self.server.port == old.port
        return {"restarted": True, "port": self.server.port}

    def kick(self, public_id: str) -> dict[str, object]:
        """The dashboard's disconnect action (close 4010), as a logged-in operator."""
        username, password = self.operator
        with httpx.Client(base_url=self.server.url, timeout=20) as http:
            http.get("/login/")
            login = {"username": username, "password": password, "csrfmiddlewaretoken": http.cookies["csrftoken"]}
            assert http.post("/login/", data=login).status_code == 302, "operator login failed"
            answer = http.post(
                "/dashboard/actions/disconnect",
                data={"client": public_id},
                headers={"X-CSRFToken": http.cookies["csrftoken"]},
            )
            answer.raise_for_status()
            return dict(answer.json())

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.server.stop()
