"""The ``concierge`` command-line tool, end to end in subprocesses against a real server."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from concierge_client.cli import EXIT_CODES

from tests.conftest import Spawn
from tests.support.server import ServerProcess, start_server

MiB = 1024 * 1024
COMMANDS = ["listen", "send", "share", "get", "ls", "rm", "services", "clients"]


def cli_env(server: ServerProcess | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCIERGE_")}
    if server is not None:
        env["CONCIERGE_URL"] = server.url
    return env


def concierge(
    server: ServerProcess | None, *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``concierge ARGS`` to its end (as the installed console script would: ``python -m``)."""
    return subprocess.run(
        [sys.executable, "-m", "concierge_client.cli", *args],
        env=cli_env(server),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Running:
    """A long-running ``concierge`` process (listen, share) read line by line."""

    def __init__(self, server: ServerProcess, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "concierge_client.cli", *args],
            env=cli_env(server),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def line(self, timeout: float = 30) -> str:
        """The next line of stdout (a reader thread collects them, so none waits in a buffer)."""
        try:
            text = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s") from None
        if text is None:
            raise AssertionError(f"the process ended with {self.proc.wait()}")
        return text

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self.lines.put(text.rstrip("\n"))
        self.lines.put(None)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        assert self.proc.stderr is not None
        code = self.proc.wait(30)
        err = self.proc.stderr.read()
        self._close()
        return code, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        self.reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def running(server: ServerProcess) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for process in started:
        process.kill()


def start(started: list[Running], server: ServerProcess, *args: str, cwd: Path | None = None) -> Running:
    process = Running(server, *args, cwd=cwd)
    started.append(process)
    return process


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def wait_until_gone(server: ServerProcess, name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if name not in concierge(server, "clients").stdout:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} is still connected")


# -- share and get --------------------------------------------------------------------------------


def test_share_in_one_process_and_get_in_another(
    server: ServerProcess, running: list[Running], name: str, tmp_path: Path
) -> None:
    first = tmp_path / "notes.txt"
    first.write_text("shared notes\n")
    second = tmp_path / "data.bin"
    second.write_bytes(os.urandom(MiB + 7))
    share = start(running, server, "share", str(first), str(second), "--name", name)
    urls = [share.line(), share.line()]
    assert urls == [f"{server.url}/fs/{name}/notes.txt", f"{server.url}/fs/{name}/data.bin"]

    out = tmp_path / "out"
    out.mkdir()
    got = concierge(server, "get", f"{name}/data.bin", "-o", str(out / "copy.bin"))
    assert got.returncode == 0, got.stderr
    digest = hashlib.sha256(second.read_bytes()).hexdigest()
    assert got.stdout == f"{out / 'copy.bin'} {MiB + 7} sha256:{digest}\n"
    assert (out / "copy.bin").read_bytes() == second.read_bytes()
    assert got.stderr == ""  # no progress bar when stderr is not a terminal
    plain = concierge(server, "get", f"{name}/notes.txt", cwd=out)  # default: the base name, here
    assert plain.returncode == 0 and (out / "notes.txt").read_text() == "shared notes\n"
    (out / "folder").mkdir()
    into = concierge(server, "get", f"{name}/notes.txt", "-o", str(out / "folder"))
    assert into.returncode == 0 and (out / "folder" / "notes.txt").read_text() == "shared notes\n"

    listed = concierge(server, "ls", name)
    assert listed.stdout.splitlines() == [f"file\t{MiB + 7}\tdata.bin", "file\t13\tnotes.txt"]
    as_json = [json.loads(line) for line in concierge(server, "ls", name, "--json").stdout.splitlines()]
    assert [(e["path"], e["type"], e["permissions"]) for e in as_json] == [
        ("data.bin", "file", 1),
        ("notes.txt", "file", 1),
    ]
    assert f"dir\t-\t{name}/" in concierge(server, "ls").stdout.splitlines()

    code, err = share.stop(signal.SIGTERM)
    assert code == 0 and err == ""
    wait_until_gone(server, name)  # closed with 1000: the session ended, the folder went with it
    gone = concierge(server, "get", f"{name}/data.bin", "-o", str(out / "late.bin"))
    assert gone.returncode == 5 and "not_found" in one_error_line(gone)


def test_share_as_a_path_and_sigint_ends_it_cleanly(
    server: ServerProcess, running: list[Running], name: str, tmp_path: Path
) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    share = start(running, server, "share", str(source), "--name", name, "--as", "docs/renamed.txt")
    assert share.line() == f"{server.url}/fs/{name}/docs/renamed.txt"
    assert concierge(server, "ls", f"{name}/docs").stdout == "file\t1\trenamed.txt\n"
    code, err = share.stop(signal.SIGINT)
    assert code == 0 and err == ""


def test_sigterm_while_share_is_still_uploading_closes_cleanly(
    server: ServerProcess, running: list[Running], name: str, tmp_path: Path
) -> None:
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(48 * MiB))
    share = start(running, server, "share", str(source), "--name", name, "--chunk-size", "1")
    deadline = time.monotonic() + 30
    while name not in concierge(server, "clients").stdout:  # connected, now uploading 48 chunks
        assert time.monotonic() < deadline
    code, err = share.stop(signal.SIGTERM)
    assert code == 0 and err == ""
    wait_until_gone(server, name)


def test_get_resumes_a_partial_file_and_verifies_it(
    server: ServerProcess, running: list[Running], name: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(4 * MiB))
    share = start(running, server, "share", str(source), "--name", name)
    url = share.line()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = tmp_path / "copy.bin"
    # What an interrupted earlier run leaves: the first MiB and the ETag it was fetched with.
    Path(f"{dest}.part").write_bytes(source.read_bytes()[:MiB])
    Path(f"{dest}.part.json").write_text(json.dumps({"url": url, "etag": f'"{digest}"'}))
    got = concierge(server, "get", f"{name}/big.bin", "-o", str(dest), "--progress")
    assert got.returncode == 0, got.stderr
    assert dest.read_bytes() == source.read_bytes() and not Path(f"{dest}.part").exists()
    assert "big.bin" in got.stderr or "copy.bin" in got.stderr  # --progress draws the bar on stderr
    # A partial file whose bytes are wrong fails the checksum: exit 4, one line, nothing kept.
    Path(f"{dest}.part").write_bytes(b"\0" * MiB)
    Path(f"{dest}.part.json").write_text(json.dumps({"url": url, "etag": f'"{digest}"'}))
    dest.unlink()
    bad = concierge(server, "get", f"{name}/big.bin", "-o", str(dest))
    assert bad.returncode == 4 and "checksum mismatch" in one_error_line(bad)
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_rm_with_the_key_written_by_share(
    server: ServerProcess, running: list[Running], name: str, tmp_path: Path
) -> None:
    source = tmp_path / "gone.txt"
    source.write_text("x")
    key_file = tmp_path / "key"
    share = start(running, server, "share", str(source), "--name", name, "--key-file", str(key_file))
    share.line()
    assert key_file.stat().st_mode & 0o777 == 0o600
    refused = concierge(server, "rm", f"{name}/gone.txt")  # a short-lived client may not
    assert refused.returncode == 1 and "HTTP 403" in one_error_line(refused)
    deleted = concierge(server, "rm", f"{name}/gone.txt", "--key", key_file.read_text().strip())
    assert deleted.returncode == 0, deleted.stderr
    assert concierge(server, "ls", name).stdout == ""
    missing = concierge(server, "rm", f"{name}/gone.txt", "--key", key_file.read_text().strip())
    assert missing.returncode == 5 and one_error_line(missing)


# -- listen, send, services, clients ----------------------------------------------------------------


def test_listen_prints_what_send_sends(server: ServerProcess, running: list[Running], name: str) -> None:
    listen = start(running, server, "listen", "--name", name)
    connected = json.loads(listen.line())
    assert connected["type"] == "connected" and connected["client"]["name"] == name
    sent = concierge(server, "send", "--to", name, '{"temp": 21.5}')
    assert sent.returncode == 0 and sent.stdout == "" and sent.stderr == ""
    seen = [json.loads(listen.line()) for _ in range(3)]
    assert [p["type"] for p in seen] == ["CLIENT_JOINED", "MESSAGE", "CLIENT_LEFT"]  # the sender came and went
    assert seen[1]["data"] == {"temp": 21.5} and seen[1]["origin"]["name"] == seen[0]["client"]["name"]
    assert concierge(server, "send", "--to", name, "--string", "42").returncode == 0
    assert [json.loads(listen.line()).get("data") for _ in range(3)][1] == "42"
    assert concierge(server, "send", "--uuid", connected["client"]["uuid"], "plain text").returncode == 0
    assert [json.loads(listen.line()).get("data") for _ in range(3)][1] == "plain text"
    code, _ = listen.stop(signal.SIGTERM)
    assert code == 0


def test_listen_stops_when_its_reader_goes(server: ServerProcess, name: str) -> None:
    pipeline = subprocess.Popen(
        f"{sys.executable} -m concierge_client.cli listen --name {name} | head -n 1",
        shell=True,
        env=cli_env(server),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert pipeline.stdout is not None
        assert json.loads(pipeline.stdout.readline())["type"] == "connected"
        # head has gone: the next event (the CLIENT_JOINED of the clients command) cannot be written.
        wait_until_gone(server, name)
        assert pipeline.wait(30) == 0
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait()
        if pipeline.stdout is not None:
            pipeline.stdout.close()


def test_listen_pretty_with_a_service(server: ServerProcess, running: list[Running], name: str) -> None:
    service = f"{name}_svc"
    # A service exists while its owner is connected: create it from the library, subscribe from the CLI.
    from concierge_client import Message, SyncConciergeClient

    with SyncConciergeClient(server.url, f"{name}_creator") as creator:
        creator.create_service(service, "Room")
        member = start(running, server, "listen", "--name", f"{name}_m", "--subscribe", service, "--pretty")
        assert member.line() == f"connected as {name}_m"
        services = concierge(server, "services")
        row = next(line for line in services.stdout.splitlines() if line.startswith(service))
        assert row.split("\t")[:2] == [service, "Room"] and row.endswith("\t1")
        to_owner = creator.events(timeout=10)
        sent = concierge(server, "send", "--service", service, "hello owner")
        assert sent.returncode == 0, sent.stderr
        got = next(e for e in to_owner if isinstance(e, Message))
        assert got.data == "hello owner" and got.service is not None and got.service.name == service
        missing = concierge(server, "send", "--service", f"{name}_nothing", "x")
        assert missing.returncode == 5 and one_error_line(missing).startswith("error: INVALID_SERVICE")
        creator.send_to_service(service, {"n": 1})
        while not (text := member.line()).startswith("MESSAGE"):
            pass
        assert text == f'MESSAGE from {name}_creator ({name}_creator) via {service}: {{"n": 1}}'
    code, _ = member.stop()
    assert code == 0


def test_clients_lists_the_others(server: ServerProcess, running: list[Running], name: str) -> None:
    listen = start(running, server, "listen", "--name", name, "--nickname", "Lab PC", "--tag", "lab", "--tag", "vr")
    listen.line()
    rows = concierge(server, "clients").stdout.splitlines()
    row = next(r for r in rows if r.startswith(name + "\t"))
    fields = row.split("\t")
    assert fields[0] == name and fields[1] == "Lab PC" and fields[3] == "lab,vr"
    as_json = [json.loads(r) for r in concierge(server, "clients", "--json").stdout.splitlines()]
    assert {"name": name, "nickname": "Lab PC", "uuid": fields[2], "tags": ["lab", "vr"]} in as_json


# -- Failures: exit codes and one error line ---------------------------------------------------------


def test_failures_print_one_error_line_and_exit_with_their_code(server: ServerProcess, tmp_path: Path) -> None:
    missing = concierge(server, "send", "--to", "nobody_is_called_this", "hi")
    assert missing.returncode == 5 and one_error_line(missing) == "error: INVALID_NAME: nobody_is_called_this"
    no_file = concierge(server, "get", "nobody_is_called_this/x.bin", "-o", str(tmp_path / "x"))
    assert no_file.returncode == 5 and one_error_line(no_file)
    unreachable = concierge(None, "clients", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 3 and "cannot reach" in one_error_line(unreachable)
    usage = concierge(server, "send", "hi")
    assert usage.returncode == 2 and one_error_line(usage)
    bad_url = concierge(server, "clients", "--url", "ftp://example")
    assert bad_url.returncode == 2 and one_error_line(bad_url)
    nothing = concierge(server, "share", str(tmp_path / "no-such-file"))
    assert nothing.returncode == 1 and "not a file" in one_error_line(nothing)
    bad_remote = concierge(server, "get", "just-a-name")
    assert bad_remote.returncode == 2 and one_error_line(bad_remote)


def test_listen_reconnects_and_exits_3_on_a_terminal_close(spawn: Spawn, running: list[Running], name: str) -> None:
    first = spawn(FILESHARE_LEASE_SECONDS="2")
    listen = start(running, first, "listen", "--name", name, "--pretty")
    assert listen.line() == f"connected as {name}"
    first.stop()
    assert listen.line().startswith("disconnected (code None), retrying in ")
    second = start_server({**first.env, "FILESHARE_SECRET": "new"}, first.data_dir, "secret", "--port", str(first.port))
    try:
        while not (text := listen.line(timeout=60)).startswith("disconnected (code 4006"):
            assert text.startswith("disconnected"), text
        assert "retrying" not in text
        code = listen.proc.wait(30)
        assert listen.proc.stderr is not None
        err = listen.proc.stderr.read()
        assert code == 3 and err.count("\n") == 1 and err.startswith("error: connection closed (4006 BAD_SECRET)")
    finally:
        second.stop()


def test_a_refused_identify_exits_3(spawn: Spawn) -> None:
    server = spawn(FILESHARE_SECRET="s3cret")
    refused = concierge(server, "clients")
    assert refused.returncode == 3 and "4006" in one_error_line(refused)
    allowed = concierge(server, "clients", "--secret", "s3cret")
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = concierge(None, command, "--help")
    assert result.returncode == 0 and "usage: concierge " + command in result.stdout


def test_the_help_lists_the_exit_codes() -> None:
    result = concierge(None, "--help")
    assert result.returncode == 0
    for code, meaning in EXIT_CODES.items():
        assert f"  {code:>3}  {meaning}\n" in result.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("concierge")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "concierge-client 0.1.0"
