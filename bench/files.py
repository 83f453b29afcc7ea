"""Large-file figures: throughput and the server's peak RSS, with curl as the client.

curl (not a Python client) moves the bytes, so that the client is never what
limits nginx's ceilings on a small machine. Every transfer starts after ``sync``,
so that one measurement's dirty pages are not written back during the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import websockets

from bench.transfer_rss import RssSampler

MIB = 1024 * 1024


def make_source(path: Path, size: int) -> Path:
    """A file of ``size`` random-looking bytes (1 MiB of urandom, repeated), written once."""
    if path.exists() and path.stat().st_size == size:
        return path
    block = os.urandom(MIB)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            out.write(block[: min(MIB, left)])
            left -= MIB
    return path


@dataclass
class Transfer:
    """One curl transfer: seconds, bytes and the peak RSS of the sampled processes."""

    seconds: float
    size: int
    status: int
    peak_rss: dict[str, float]

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds if self.seconds > 0 else 0.0


class Peaks:
    """RSS samplers for named process trees (``{"app": [pid, ...], "nginx": [pid]}``).

    A group's peak is that of its largest process (an nginx group counts the
    master with its workers, as RssSampler adds children).
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.samplers = {name: [RssSampler(pid) for pid in pids] for name, pids in groups.items()}

    def __enter__(self) -> Peaks:
        for samplers in self.samplers.values():
            for sampler in samplers:
                sampler.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for samplers in self.samplers.values():
            for sampler in samplers:
                sampler.__exit__()

    def mib(self) -> dict[str, float]:
        return {name: round(max(s.peak for s in samplers) / MIB, 1) for name, samplers in self.samplers.items()}


def curl(args: list[str], groups: dict[str, list[int]], expect: set[int]) -> Transfer:
    """Run curl with ``args``, sampling RSS meanwhile; raise unless the status is in ``expect``."""
    command = ["curl", "-sS", "--noproxy", "*", "-H", "Expect:", "-w", "%{json}", *args]
    with Peaks(groups) as peaks:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)} failed: {done.stderr.strip()}")
    info = json.loads(done.stdout[done.stdout.index("{") :])
    status = int(info["http_code"])
    if status not in expect:
        raise RuntimeError(f"curl {' '.join(args)}: HTTP {status}")
    size = int(info["size_upload"]) or int(info["size_download"])
    return Transfer(float(info["time_total"]), size, status, peaks.mib())


def upload(
    url: str,
    source: Path,
    headers: dict[str, str],
    groups: dict[str, list[int]],
    response: Path,
    rate: int | None = None,
) -> Transfer:
    """PUT ``source`` to ``url`` (after ``sync``), optionally sending at ``rate`` bytes per second."""
    os.sync()
    args = ["-T", str(source), "-o", str(response), url]
    if rate:
        args[:0] = ["--limit-rate", str(rate)]
    for name, value in headers.items():
        args[:0] = ["-H", f"{name}: {value}"]
    return curl(args, groups, {200, 201, 204})


def download(url: str, headers: dict[str, str], groups: dict[str, list[int]], rate: int | None = None) -> Transfer:
    """GET ``url`` into /dev/null (after ``sync``), optionally reading at ``rate`` bytes per second."""
    os.sync()
    args = ["-o", os.devnull, url]
    if rate:
        args[:0] = ["--limit-rate", str(rate)]
    for name, value in headers.items():
        args[:0] = ["-H", f"{name}: {value}"]
    return curl(args, groups, {200, 202})


@contextmanager
def identified(ws_url: str, name: str) -> Iterator[str]:
    """A concierge client held open in a thread for the duration; yields its key."""
    ready = threading.Event()
    stop = threading.Event()
    key: dict[str, str] = {}

    async def hold() -> None:
        async with websockets.connect(ws_url, compression=None) as ws:
            await ws.send(json.dumps({"type": "IDENTIFY", "name": name, "version": "0.2.0", "tags": []}))
            key["value"] = json.loads(await ws.recv())["uuid"]
            ready.set()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # keep reading: the server never waits on us
                    await asyncio.wait_for(ws.recv(), 0.2)

    thread = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"no HELLO from {ws_url}")
    try:
        yield key["value"]
    finally:
        stop.set()
        thread.join(10)


def measure_deployment(
    url: str,
    ws_url: str,
    groups: dict[str, list[int]],
    source: Path,
    work: Path,
    name: str,
    slow_rate: int,
    slow_upload: bool = False,
) -> dict[str, Transfer]:
    """Upload ``source`` and download it (at full speed, then at ``slow_rate``) through one deployment.

    With ``slow_upload``, then also upload it again at ``slow_rate`` (``"upload_slow"``).
    """
    with identified(ws_url, name) as key:
        headers = {"Authorization": key}
        file_url = f"{url}/fs/{name}/big.bin"
        put = upload(file_url, source, headers, groups, work / f"{name}.json")
        wait_for_checksum(file_url, headers)
        get = download(file_url, headers, groups)
        slow = download(file_url, headers, groups, rate=slow_rate)
        moved = {"upload": put, "download": get, "download_slow": slow}
        if slow_upload:
            moved["upload_slow"] = upload(file_url, source, headers, groups, work / f"{name}.json", rate=slow_rate)
        subprocess.run(
            ["curl", "-sS", "-X", "DELETE", "-H", f"Authorization: {key}", "-o", os.devnull, file_url],
            check=False,
            timeout=60,
        )
    return moved


def wait_for_checksum(file_url: str, headers: dict[str, str], patience: float = 120) -> None:
    """Wait until the file has its ETag: behind nginx its SHA-256 is computed after the
    201 (FILESHARE_CHECKSUM_AFTER_ANSWER), and the download is measured without that
    hash competing for the CPU (its cost is reported as the SHA-256 speed)."""
    deadline = time.monotonic() + patience
    command = [
        "curl",
        "-sS",
        "-I",
        "-o",
        "-",
        "--noproxy",
        "*",
        *(f for k, v in headers.items() for f in ("-H", f"{k}: {v}")),
        file_url,
    ]
    while time.monotonic() < deadline:
        head = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False).stdout
        if any(line.lower().startswith("etag:") for line in head.splitlines()):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{file_url} got no ETag within {patience:g} s")


def measure_ceilings(
    base: str, source: Path, dav: Path, groups: dict[str, list[int]], work: Path
) -> dict[str, Transfer]:
    """nginx static GET of ``source`` and nginx dav PUT of it."""
    get = download(f"{base}/static/{source.name}", {}, groups)
    put = upload(f"{base}/dav/put.bin", source, {}, groups, work / "dav.out")
    (dav / "put.bin").unlink(missing_ok=True)
    return {"static_get": get, "dav_put": put}


def slow_dav_put(base: str, source: Path, dav: Path, groups: dict[str, list[int]], work: Path, rate: int) -> Transfer:
    """nginx dav PUT of ``source``, the client sending at ``rate`` bytes per second."""
    put = upload(f"{base}/dav/put.bin", source, {}, groups, work / "dav.out", rate=rate)
    (dav / "put.bin").unlink(missing_ok=True)
    return put


def sha256_speed(source: Path) -> float:
    """MiB/s of SHA-256 over ``source`` read in 1 MiB blocks (as fileshare.fileapi.offload adopts a file)."""
    digest, buffer = hashlib.sha256(), bytearray(MIB)
    view = memoryview(buffer)
    started = time.perf_counter()
    with open(source, "rb", buffering=0) as handle:
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return source.stat().st_size / MIB / (time.perf_counter() - started)


def wait_quiet(seconds: float = 0.5) -> None:
    """A short pause between measurements (lets writeback and sockets settle)."""
    time.sleep(seconds)
