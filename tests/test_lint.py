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


def test_the_tree_is_formatted_by_ruff() -> None:
    result = run(
        "ruff", "format", "--check", "fileshare", "concierge_site", "tests", "bench", "examples", "clients/python"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_python_client_passes_mypy_strict() -> None:
    # clients/python has its own configuration: strict, with nothing relaxed.
    result = run("mypy", cwd=REPO / "clients" / "python")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_module_over_300_lines_says_why_at_its_top() -> None:
    import ast

    for path in sorted((REPO / "fileshare").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        if source.count("\n") > 300:
            docstring = ast.get_docstring(ast.parse(source)) or ""
            assert "Why this module is long" in docstring, f"{path.relative_to(REPO)} is long and does not say why"


def test_no_import_cycles_between_the_apps_modules() -> None:
    import ast

    modules: dict[str, set[str]] = {}
    for path in sorted((REPO / "fileshare").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("fileshare")
                and node.col_offset == 0
            ):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if (REPO / (full.replace(".", "/") + ".py")).exists() else node.module)
            elif isinstance(node, ast.Import) and node.col_offset == 0:
                imported |= {a.name for a in node.names if a.name.startswith("fileshare")}
        modules[name] = imported

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in modules.get(node, ()):
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail and len(trail) < 12:
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [cycle for name in modules if (cycle := cycle_from(name))]
    assert not cycles, f"import cycles at module level: {cycles[:3]}"
