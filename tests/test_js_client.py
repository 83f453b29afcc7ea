"""The JavaScript client (clients/js) under Node's test runner, against a real server.

``npm test`` runs clients/js/test/*.test.js (node --test) with ``CONCIERGE_URL`` set to a
server started here, and ``CONCIERGE_TEST_CONTROL`` to a control server through which the
Node tests restart that server (SIGKILL, then the same port and data) and kick a client
from the dashboard. A failure of any Node test fails this test, with node's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.js_client import JS_CLIENT, ServerControl, build_js_client
from tests.support.server import base_env, manage, start_server


@pytest.fixture(scope="module")
def js_build() -> Path:
    return build_js_client()


@pytest.fixture
def controlled(tmp_path: Path) -> Iterator[ServerControl]:
    """A server of its own (it gets restarted), with an operator, behind a control server.

    A short lease lets the restarted process sweep the killed one's clients within
    seconds, so that their names are free again for the reconnecting clients.
    """
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    env = base_env(data_dir, FILESHARE_LEASE_SECONDS="3")
    manage(env, "migrate", "-v0")
    operator = ("operator", f"pw-{uuid.uuid4().hex}")
    manage(
        {**env, "CONCIERGE_OPERATOR_USERNAME": operator[0], "CONCIERGE_OPERATOR_PASSWORD": operator[1]},
        "ensure_operator",
    )
    control = ServerControl(start_server(env, data_dir, "js"), operator)
    yield control
    control.close()


def run_npm_test(control: ServerControl, *files: str, node_options: str = "") -> str:
    env = {**os.environ, "CONCIERGE_URL": control.server.url, "CONCIERGE_TEST_CONTROL": control.url}
    if node_options:
        env["NODE_OPTIONS"] = node_options
    command = ["npm", "test"] if not files else ["node", "--test", "--test-concurrency=1", *files]
    result = subprocess.run(command, cwd=JS_CLIENT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node's tests failed:\n{output}"
    return output


def summary(output: str) -> dict[str, int]:
    return {
        key: int(value) for key, value in re.findall(r"^# (tests|pass|fail|skipped|cancelled) (\d+)$", output, re.M)
    }


def test_the_node_tests_of_the_javascript_client_pass_against_a_real_server(
    js_build: Path, controlled: ServerControl
) -> None:
    output = run_npm_test(controlled)
    counts = summary(output)
    assert counts["fail"] == 0 and counts["cancelled"] == 0, output
    # (Node 20 does not count a skipped suite in "# skipped": look for its marker too.)
    assert counts["skipped"] == 0 and "# SKIP" not in output, f"no Node test may skip here:\n{output}"
    assert counts["pass"] >= 50, output
    assert controlled.restarts == 2, "the reconnection tests restarted the server"
    assert "reconnect" in output and "4010" in output


def test_the_session_tests_pass_with_the_platform_websocket(js_build: Path, controlled: ServerControl) -> None:
    """Node 22+ has a global WebSocket; on Node 20/21 the same one is behind --experimental-websocket."""
    major = int(subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip("v\n").split(".")[0])
    flag = "--experimental-websocket" if major < 22 else ""
    output = run_npm_test(controlled, "test/session.test.js", node_options=flag)
    counts = summary(output)
    assert counts["fail"] == 0 and counts["skipped"] == 0 and counts["pass"] > 0, output
