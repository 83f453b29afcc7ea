"""What the compatibility tests with the original ERT Concierge's clients share.

* ``Deployment``: the server as a client of the original meets it, under the run
  command (``manage.py runconcierge``), the production recipe (deploy/nginx.conf in
  front of it) or plain ``daphne concierge_site.asgi:application``.
* ``StaticSite``: a tiny static HTTP server on another loopback port, the "other
  origin" a browser page is served from.
* ``BROWSER_JS``: the test page and its npm packages (tus-js-client), installed by
  scripts/install-js-deps.sh.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.nginx import free_port, require_nginx, start_recipe
from tests.support.server import REPO, base_env, manage, start_server

BROWSER_JS = REPO / "tests" / "browser_js"
TUS_BUNDLE = BROWSER_JS / "node_modules" / "tus-js-client" / "dist" / "tus.min.js"
FRONTEND_URL = "/app/"
KINDS = ("run_command", "recipe")


@dataclass
class Deployment:
    """A running concierge as its clients reach it."""

    kind: str
    host: str
    port: int
    stop: Callable[[], None]
    log: Callable[[], str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def start_deployment(kind: str, root: Path, **env: str) -> Deployment:
    """The concierge under ``kind`` (one of KINDS or ``"plain_daphne"``) with ``env`` overrides."""
    if kind == "recipe":
        require_nginx()
        recipe = start_recipe(root, **env)
        app = recipe.apps[0]
        return Deployment(kind, "127.0.0.1", recipe.nginx.port, recipe.stop, lambda: app.log() + recipe.nginx.log())
    server_env = base_env(root, **env)
    manage(server_env, "migrate", "-v0")
    if kind == "run_command":
        server = start_server(server_env, root)
        return Deployment(kind, server.host, server.port, server.stop, server.log)
    if kind == "plain_daphne":
        return start_plain_daphne(server_env, root)
    raise ValueError(f"unknown deployment {kind!r}")


def start_plain_daphne(env: dict[str, str], root: Path, timeout: float = 30) -> Deployment:
    """``daphne concierge_site.asgi:application`` as a user of daphne would start it."""
    log_path = root / "daphne.log"
    for _attempt in range(5):  # the port may be taken between free_port() and daphne's bind
        port = free_port()
        log = open(log_path, "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "concierge_site.asgi:application"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:

            def stop(proc: subprocess.Popen[bytes] = proc) -> None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

            return Deployment("plain_daphne", "127.0.0.1", port, stop, lambda: log_path.read_text(errors="replace"))
    raise RuntimeError(f"daphne did not start:\n{log_path.read_text(errors='replace')[-3000:]}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


class StaticSite:
    """A static HTTP server for ``folder`` on a free loopback port, in a thread: another origin."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=os.fspath(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
