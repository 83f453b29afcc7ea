"""Peak server RSS while a large file is uploaded and downloaded through a real server.

    python -m bench.transfer_rss --size-mib 1024 [--read-rate-mbps 100] [--url URL --pid PID]

Without --url it starts ``manage.py runconcierge`` (the README's run command, on
the embedded defaults) in a temporary folder. It identifies a client, PUTs a
generated file as a stream, GETs it back (optionally reading at a fixed rate),
samples the server's RSS every 20 ms and prints one JSON object:
``{"size_bytes", "upload": {"seconds", "peak_rss_mib", "mib_per_s"}, "download": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHUNK = 1024 * 1024


class RssSampler:
    """Samples the RSS of a process (and its children) in a thread; keeps the peak.

    The children are listed again every ``rescan`` seconds, not at every sample:
    psutil finds them by reading every process in /proc (1.5 ms here), and three
    samplers at 50 Hz took a quarter of a core from the transfer they measured.
    """

    def __init__(self, pid: int, interval: float = 0.02, rescan: float = 0.5) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.rescan = rescan
        self.peak = 0
        self._children: list[psutil.Process] = []
        self._scanned_at = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        if time.monotonic() - self._scanned_at >= self.rescan:
            self._children = self.process.children(recursive=True)
            self._scanned_at = time.monotonic()
        total = self.process.memory_info().rss
        for child in self._children:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._rss())
            except psutil.NoSuchProcess:
                return
            time.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pattern(size: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        sent += len(piece)
        yield piece


async def apattern(size: int) -> AsyncIterator[bytes]:
    for piece in pattern(size):
        yield piece


@contextmanager
def local_server() -> Iterator[tuple[str, int]]:
    """The run command's server on the embedded defaults, in a temporary folder."""
    from tests.support.server import base_env, manage, start_server

    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        data_dir = Path(tmp)
        env = base_env(data_dir)
        manage(env, "migrate", "-v0")
        process = start_server(env, data_dir)
        try:
            yield process.url, process.pid
        finally:
            process.stop()


async def measure(url: str, pid: int, size: int, read_rate: float | None) -> dict[str, object]:
    ws_url = url.replace("http", "ws", 1) + "/ws"
    async with websockets.connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "IDENTIFY", "name": f"bench_{os.getpid()}", "version": "0.2.0"}))
        hello = json.loads(await ws.recv())
        key, name = hello["uuid"], hello["client"]["name"]
        headers = {"Authorization": key}
        result: dict[str, object] = {"size_bytes": size}
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            with RssSampler(pid) as sampler:
                started = time.monotonic()
                response = await http.put(f"/fs/{name}/big.bin", content=apattern(size), headers=headers)
                elapsed = time.monotonic() - started
            assert response.status_code == 201, response.text
            result["upload"] = _figures(elapsed, sampler.peak, size)
            digest = hashlib.sha256()
            with RssSampler(pid) as sampler:
                started = time.monotonic()
                received = 0
                async with http.stream("GET", f"/fs/{name}/big.bin", headers=headers) as download:
                    assert download.status_code == 202
                    async for chunk in download.aiter_raw(CHUNK):
                        received += len(chunk)
                        digest.update(chunk)
                        if read_rate:
                            lag = received / (read_rate * 1e6) - (time.monotonic() - started)
                            if lag > 0:
                                await asyncio.sleep(lag)
                elapsed = time.monotonic() - started
            assert received == size
            assert digest.hexdigest() == response.json()["sha256"]
            result["download"] = _figures(elapsed, sampler.peak, size)
    return result


def _figures(seconds: float, peak: int, size: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "mib_per_s": round(size / 2**20 / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--read-rate-mbps", type=float, default=None, help="download reading rate, MB/s")
    parser.add_argument("--url", help="an already running server")
    parser.add_argument("--pid", type=int, help="its process id (for RSS)")
    args = parser.parse_args()
    size = args.size_mib * 2**20
    if args.url:
        print(json.dumps(asyncio.run(measure(args.url, args.pid, size, args.read_rate_mbps))))
        return
    with local_server() as (url, pid):
        print(json.dumps(asyncio.run(measure(url, pid, size, args.read_rate_mbps))))


if __name__ == "__main__":
    main()
