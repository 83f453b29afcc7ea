"""The README stays true: its examples run, its tables match the code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fileshare.protocol import CloseCode
from tests.support.server import REPO, ServerProcess

README = (REPO / "README.md").read_text()


def example(language: str) -> str:
    match = re.search(rf"<!-- example: {language} -->\n```\w+\n(.*?)```", README, re.S)
    assert match, f"README has no {language} example"
    return match.group(1)


def test_the_python_example_runs_against_a_live_server(server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example("python"))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env={**os.environ, "CONCIERGE_URL": server.url},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("upload /fs/py_example/notes/today.txt ") and len(lines[0].split()[-1]) == 64
    assert lines[1] == "download True ['line 0', 'line 1', 'line 2', 'line 3']"
    assert lines[2] == "delete []"


def test_the_javascript_example_runs_in_node(server: ServerProcess, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "example.mjs"
    script.write_text(example("javascript"))
    version = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip("v\n").split(".")[0])
    flags = ["--experimental-websocket"] if version < 22 else []
    result = subprocess.run(
        [node, *flags, str(script)], env={**os.environ, "CONCIERGE_URL": server.url},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["upload 201", "download 202 { hi: 'there' }", "delete 200"]


def test_the_close_code_table_lists_every_code() -> None:
    rows = dict(re.findall(r"^\| (\d{4}) \| (\w+) \|", README, re.M))
    assert rows == {str(int(code)): code.name for code in CloseCode}


def test_the_settings_table_lists_every_environment_variable() -> None:
    settings_source = (REPO / "concierge_site" / "settings.py").read_text()
    used = set(re.findall(r'env(?:_bool|_int|_number|_published)?\("([A-Z_0-9]+)"', settings_source))
    documented = set(re.findall(r"`([A-Z][A-Z_0-9]+)`", README))
    # The S3 row lists its siblings as `_REGION`, `_PREFIX`, ...
    documented |= {f"FILESHARE_S3_{suffix}" for suffix in re.findall(r"`_([A-Z_]+)`", README)}
    missing = used - documented
    assert not missing, f"README's settings table misses {sorted(missing)}"
