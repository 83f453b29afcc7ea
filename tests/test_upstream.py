"""The dependency parts the concierge patches are guarded: start-up fails when one is gone or changed."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import autobahn.websocket.protocol
import daphne.server
import pytest
import twisted.internet.abstract
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from fileshare import upstream
from tests.support.server import REPO


def test_every_guarded_part_is_as_reviewed_in_the_pinned_versions() -> None:
    assert upstream.problems() == []
    assert upstream.installed_versions() == upstream.TESTED_WITH


def test_the_reviewed_versions_are_the_pinned_ones() -> None:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.split("[")[0].strip().lower()] = version.strip()
    for distribution, version in upstream.TESTED_WITH.items():
        assert pins.get(distribution) == version, f"{distribution} is not pinned at the reviewed {version}"


def test_check_fails_with_E101_naming_a_patched_part_that_was_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(daphne.server.Server, "create_application")
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    message = str(raised.value)
    assert "fileshare.E101" in message
    assert "daphne.server:Server.create_application" in message
    assert "FlowControlServer.create_application" in message  # who relies on it


def test_check_fails_with_E102_when_a_copied_method_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    def send_data(self: object, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """An upgrade that rewrote autobahn's sendData but still keeps send_queue, trafficStats,
        outgoingOctetsWireLevel and preopenOutgoingOctetsWireLevel."""

    monkeypatch.setattr(autobahn.websocket.protocol.WebSocketProtocol, "sendData", send_data)
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "fileshare.E102" in str(raised.value)
    assert "WebSocketProtocol.sendData" in str(raised.value)


def test_check_fails_when_a_private_attribute_read_here_is_renamed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A renamed _tempDataLen would read as 0 and silently turn backpressure off.
    def write(self: object, data: bytes) -> None:
        self._pendingBytes = len(data)  # type: ignore[attr-defined]

    monkeypatch.setattr(twisted.internet.abstract.FileDescriptor, "write", write)
    problems = upstream.problems()
    assert [p.part.name for p in problems] == ["twisted.internet.abstract:FileDescriptor.write"]
    assert "_tempDataLen" in problems[0].detail and not problems[0].changed


def test_a_different_version_with_intact_parts_only_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(upstream.TESTED_WITH, "daphne", "0.0.1")
    call_command("check")  # warnings do not fail the check
    from fileshare.checks import check_upstream_parts

    assert [m.id for m in check_upstream_parts()] == ["fileshare.W101"]


def test_manage_check_fails_in_a_fresh_process_when_a_part_is_gone(tmp_path: object) -> None:
    # The same check runs before runconcierge serves: a process that cannot find a
    # patched part refuses to start, and says why.
    code = (
        "import daphne.server, django, sys;"
        "del daphne.server.Server.create_application;"
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'concierge_site.settings';"
        "django.setup();"
        "from django.core.management import execute_from_command_line;"
        "execute_from_command_line(['manage.py', 'check'])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "fileshare.E101" in result.stderr


def test_only_the_server_and_layers_packages_may_import_the_patched_libraries() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    banned = config["flake8-tidy-imports"]["banned-api"]
    assert {"daphne", "twisted", "autobahn", "channels_redis"} <= set(banned)
    allowed = {path for path, rules in config["per-file-ignores"].items() if "TID251" in rules}
    assert allowed == {"fileshare/server/*", "fileshare/layers/*", "tests/*", "bench/*"}
    offenders = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "TID251", "fileshare", "concierge_site", "examples"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert offenders.returncode == 0, offenders.stdout


def test_an_optional_library_that_is_not_installed_is_not_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    # A project without the [redis] or [s3] extras has nothing of theirs to patch.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "channels_redis" else real(name, *a)
    )
    assert upstream.problems() == []
