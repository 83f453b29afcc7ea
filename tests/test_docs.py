"""The README stays true: its examples run, its tables match the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fileshare.protocol import CloseCode
from tests.support.js_client import JS_CLIENT, build_js_client
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
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "CONCIERGE_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("upload /fs/py_example/notes/today.txt ") and len(lines[0].split()[-1]) == 64
    assert lines[1] == "download True ['line 0', 'line 1', 'line 2', 'line 3']"
    assert lines[2] == "delete []"


def test_the_quickstart_hands_a_file_over_between_two_clients(server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(example("quickstart"))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "CONCIERGE_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "viewer: message from scanner {'file': 'scanner/scans/scan.txt'}",
        "viewer: downloaded 13 bytes, sha256 verified: True",
        "scanner: reply from viewer got it",
    ]
    assert (tmp_path / "received.txt").read_text() == "slice 1 of 1\n"


def test_the_quickstart_output_shown_in_the_readme_is_what_it_prints() -> None:
    shown = re.search(
        r"<!-- example: quickstart -->\n```python\n.*?```\n\nIt prints:\n\n```text\n(.*?)```", README, re.S
    )
    assert shown, "README shows no output under the quickstart"
    assert shown.group(1).splitlines() == [
        "viewer: message from scanner {'file': 'scanner/scans/scan.txt'}",
        "viewer: downloaded 13 bytes, sha256 verified: True",
        "scanner: reply from viewer got it",
    ]


def test_the_javascript_example_runs_in_node(server: ServerProcess, tmp_path: Path) -> None:
    build_js_client()
    script = tmp_path / "example.mjs"
    script.write_text(example("javascript"))
    # As if installed: node_modules/concierge-client is the package folder.
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "concierge-client").symlink_to(JS_CLIENT, target_is_directory=True)
    result = subprocess.run(
        ["node", str(script)], cwd=tmp_path, env={**os.environ, "CONCIERGE_URL": server.url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "hello js_example",
        "message from js_example { hi: 'there' }",
        "upload 12",
        "download hello, files",
    ]
    assert "uploaded 12 of 12 bytes" in result.stderr


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


# -- Every doc stays inside the repository; docs/protocol.md stays true to the code. -----------

DOCS = sorted(
    {REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("deploy/*.md")}
    # Not the READMEs of installed npm packages (clients/js/node_modules, made by npm ci).
    | {doc for doc in REPO.glob("clients/**/README.md") if "node_modules" not in doc.parts}
)
LINK_RE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\[[^\]]+\]:\s*(\S+)", re.M)
PROTOCOL_DOC = REPO / "docs" / "protocol.md"
TERMINAL = {4002, 4003, 4005, 4006, 4007, 4008, 4010}
RETRY = {4000, 4009, 4011, 1006}


def relative_links(doc: Path) -> list[str]:
    """The doc's link targets that are not URLs or in-page anchors, without their #fragment."""
    targets = [a or b for a, b in LINK_RE.findall(doc.read_text())]
    return [
        target.split("#", 1)[0]
        for target in targets
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")
    ]


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def test_the_docs_to_check_include_the_readme_and_the_protocol() -> None:
    assert REPO / "README.md" in DOCS and PROTOCOL_DOC in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_stays_in_the_repository_and_exists(doc: Path) -> None:
    for target in relative_links(doc):
        if not target:
            continue
        assert "shared/" not in target, f"{doc.name} links to {target!r}, outside the repository"
        resolved = (doc.parent / target).resolve()
        assert resolved.is_relative_to(REPO.resolve()), f"{doc.name} links to {target!r}, outside the repository"
        assert resolved.exists(), f"{doc.name} links to {target!r}, which does not exist"


def test_the_link_check_sees_escaping_and_missing_links(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "[p](../shared/PROTOCOL.md) [s](https://tus.io/) [a](#top) [m](docs/missing.md#part)\n[r]: ../r.md\n"
    )
    assert relative_links(doc) == ["../shared/PROTOCOL.md", "docs/missing.md", "../r.md"]


def test_the_readme_and_the_install_page_link_to_the_protocol() -> None:
    assert "(docs/protocol.md)" in README
    assert "(protocol.md)" in (REPO / "docs" / "install.md").read_text()


def test_the_protocol_close_code_table_has_every_code_and_whether_to_reconnect() -> None:
    table = section(PROTOCOL_DOC.read_text(), "## 2. Close codes, and whether to reconnect")
    rows = re.findall(r"^\| (\d{4}) \| ([^|]+?) \| ([^|]+?) \|", table, re.M)
    documented = {int(code): (name, reconnect) for code, name, reconnect in rows}
    assert {code: name for code, (name, _) in documented.items() if code != 1006} == {
        int(code): code.name for code in CloseCode
    }
    assert 1006 in documented
    assert {code for code, (_, reconnect) in documented.items() if reconnect == "no"} == TERMINAL
    assert {code for code, (_, reconnect) in documented.items() if reconnect.startswith("yes")} >= RETRY


def test_the_protocol_lists_exactly_the_payloads_the_server_handles() -> None:
    from fileshare.ws.handlers import HANDLERS

    table = section(PROTOCOL_DOC.read_text(), "### Client to server")
    assert set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M)) == set(HANDLERS)


def sent_types() -> set[str]:
    """Every payload type the server's code puts in a frame for a client."""
    found: set[str] = set()
    for source in (REPO / "fileshare").rglob("*.py"):
        text = source.read_text()
        found |= set(re.findall(r'"type": "([A-Z][A-Z_]+)"', text))
        found |= set(re.findall(r'payload_type(?:: str)? = "([A-Z][A-Z_]+)"', text))
    return found


def test_the_protocol_documents_every_payload_the_server_sends() -> None:
    table = section(PROTOCOL_DOC.read_text(), "### Server to client")
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M))
    sent = sent_types()
    assert {"HELLO", "OK", "CLIENT_JOINED", "NOT_FOUND", "ERROR_INTERNAL"} <= sent  # the scan sees the code
    assert sent - documented == set(), f"docs/protocol.md misses {sorted(sent - documented)}"
