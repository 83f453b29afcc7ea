"""pw_transfer read and write beside HTTP GET and PUT of the same file, in the same run.

One ``runconcierge`` process (the README's run command). One client PUTs the file
with curl and GETs it back, then writes the same bytes with pw_transfer over its
websocket and reads them back, the server's RSS sampled throughout. The
pw_transfer client here is ``tests/support/transfer_stream.py``: version 2, 256 KiB
chunks, an 8 MiB read window, nothing held in memory, so the figures are the
server's. Pigweed's own Python client is measured too, on a smaller file: it keeps
the whole file in memory and formats every chunk it receives as text for a debug
line, so its reads are bound by the client; each of its transfers also waits one
second before starting (its Manager does). Those figures include that second.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import files
from tests.support.pigweed import PigweedClient
from tests.support.transfer_stream import StreamingTransfers

MIB = 1024 * 1024
READ_CHUNK = 256 * 1024
READ_WINDOW = 8 * MIB


@dataclass(frozen=True)
class Moved:
    """One pw_transfer or HTTP transfer: seconds, bytes, the server's peak RSS (MiB)."""

    seconds: float
    size: int
    peak_rss_mib: float

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds if self.seconds > 0 else 0.0


def _blocks(source: Path) -> Iterator[bytes]:
    with open(source, "rb") as handle:
        while block := handle.read(MIB):
            yield block


async def _streaming(ws_url: str, url: str, pid: int, source: Path, work: Path) -> dict[str, Moved]:
    """HTTP PUT and GET, then pw_transfer write and read, of ``source`` by one client."""
    size = source.stat().st_size
    client = await StreamingTransfers.connect(ws_url, "bench_pwt")
    groups = {"app": [pid]}
    try:
        headers = {"Authorization": client.key}
        file_url = f"{url}/fs/bench_pwt/big.bin"
        answer = work / "put.json"
        put = await asyncio.to_thread(files.upload, file_url, source, headers, groups, answer)
        file_id = int(json.loads(answer.read_text())["file_id"])
        get = await asyncio.to_thread(files.download, file_url, headers, groups)
        moved = {
            "http_put": Moved(put.seconds, put.size, put.peak_rss["app"]),
            "http_get": Moved(get.seconds, get.size, get.peak_rss["app"]),
        }
        os.sync()
        with files.Peaks(groups) as peaks:
            started = time.perf_counter()
            await client.write(file_id, _blocks(source), size)
            seconds = time.perf_counter() - started
        moved["write"] = Moved(seconds, size, peaks.mib()["app"])
        os.sync()
        received = 0

        def count(data: bytes) -> None:
            nonlocal received
            received += len(data)

        with files.Peaks(groups) as peaks:
            started = time.perf_counter()
            await client.read(file_id, count, READ_WINDOW, READ_CHUNK)
            seconds = time.perf_counter() - started
        if received != size:
            raise RuntimeError(f"pw_transfer read {received} bytes of {size}")
        moved["read"] = Moved(seconds, size, peaks.mib()["app"])
    finally:
        await client.close()
    return moved


def _pigweed(ws_url: str, url: str, pid: int, data: bytes) -> dict[str, Moved]:
    """Pigweed's own client writes ``data`` to a fresh file and reads it back (blocking)."""
    import httpx  # noqa: PLC0415 (only this measurement needs it)

    client = PigweedClient(ws_url, "bench_pwt_pigweed")
    groups = {"app": [pid]}
    try:
        response = httpx.put(
            f"{url}/fs/{client.name}/pigweed.bin", content=b"", headers={"Authorization": client.key}, timeout=60
        )
        response.raise_for_status()
        file_id = int(response.headers["X-File-Id"])
        manager = client.manager(chunk=READ_CHUNK, timeout=2.0)
        with files.Peaks(groups) as peaks:
            started = time.perf_counter()
            manager.write(file_id, data)
            write = Moved(time.perf_counter() - started, len(data), peaks.mib()["app"])
        with files.Peaks(groups) as peaks:
            started = time.perf_counter()
            got = manager.read(file_id, max_window_size=READ_WINDOW)
            read = Moved(time.perf_counter() - started, len(data), peaks.mib()["app"])
        if got != data:
            raise RuntimeError("Pigweed's client read back other bytes than it wrote")
    finally:
        client.close()
    return {"pigweed_write": write, "pigweed_read": read}


def measure(server_url: str, ws_url: str, pid: int, source: Path, pigweed_mib: int, work: Path) -> dict[str, Moved]:
    """Every figure of the section, against one running server."""
    moved = asyncio.run(_streaming(ws_url, server_url, pid, source, work))
    with open(source, "rb") as handle:
        data = handle.read(pigweed_mib * MIB)
    moved.update(_pigweed(ws_url, server_url, pid, data))
    return moved
