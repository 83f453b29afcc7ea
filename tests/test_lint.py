"""The code stays clean: ruff's rules and mypy (strict, see pyproject.toml) pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.server import REPO


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "fileshare", "concierge_site", "tests", "bench", "examples", "clients/python")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_python_client_passes_mypy_strict() -> None:
    # clients/python has its own configuration: strict, with nothing relaxed.
    result = run("mypy", cwd=REPO / "clients" / "python")
    assert result.returncode == 0, result.stdout + result.stderr
