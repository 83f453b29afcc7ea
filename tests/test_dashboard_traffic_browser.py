"""The dashboard's live charts and transfers in real headless Chromium, against a real concierge process.

With ``UPDATE_DOCS_SCREENSHOT=1`` the tests also write ``docs/dashboard-charts.png`` and
``docs/dashboard-transfers.png``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import Account
from tests.support.browser import REPO_ROOT, launch_browser, require_chromium, save_screenshot
from tests.support.clients import Client, connect
from tests.support.server import ServerProcess
from tests.test_dashboard_browser import ClientLoop, log_in, unique

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with launch_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def clients() -> Iterator[ClientLoop]:
    loop = ClientLoop()
    yield loop
    loop.close()


def wait_for_chart(page: Page, chart: str, condition: str) -> None:
    """Wait until ``condition`` holds for ``v``, the chart's current value (its first line)."""
    page.wait_for_function(
        f"() => {{ const f = document.getElementById('chart-{chart}');"
        f" if (!f || Number(f.dataset.points || 0) < 2) return false;"
        f" const v = Number(f.dataset.current); return {condition}; }}",
        timeout=WAIT_MS,
    )


async def chatter(sender: Client, receiver: Client, stop: asyncio.Event) -> int:
    """Send MESSAGEs from ``sender`` to ``receiver`` until ``stop`` is set; the number sent."""
    sent = 0
    while not stop.is_set():
        await sender.request({"type": "MESSAGE", "target": {"type": "NAME", "name": receiver.name}, "data": sent})
        await receiver.expect("MESSAGE")  # read, or the server drops a receiver that does not
        sent += 1
        await asyncio.sleep(0.02)
    return sent


def test_the_message_rate_chart_rises_while_a_client_sends_and_falls_when_it_stops(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    sender = clients.run(connect(server.ws_url, unique("sender")))
    receiver = clients.run(connect(server.ws_url, unique("receiver")))
    page = log_in(browser, server, operator, height=1100)
    wait_for_chart(page, "messages", "v === 0")
    assert page.locator("#chart-messages .chart-title").inner_text() == "Messages per second"
    assert page.locator("#chart-messages [data-line=relayed] .chart-number").inner_text() == "0 msg/s"
    wait_for_chart(page, "clients", "v >= 2")

    stop = asyncio.Event()
    sending = asyncio.run_coroutine_threadsafe(chatter(sender, receiver, stop), clients.loop)
    try:
        wait_for_chart(page, "messages", "v > 0")
        page.wait_for_function(
            "() => Number(document.getElementById('chart-bytes').dataset.currentUp) > 0", timeout=WAIT_MS
        )
        shown = page.locator("#chart-messages [data-line=relayed] .chart-number").inner_text()
        assert shown.endswith(" msg/s") and shown != "0 msg/s"
        # The line left the baseline: some point of the drawn path sits above y = 120.
        drawn = page.locator("#chart-messages path.stroke.line-0").get_attribute("d") or ""
        heights = [float(step.split()[1]) for step in drawn.replace("M", "L").split("L") if step.strip()]
        assert min(heights) < 120
        docs = bool(os.environ.get("UPDATE_DOCS_SCREENSHOT"))
        page.wait_for_timeout(60_000 if docs else 2500)  # more points for the picture
        shot = save_screenshot(page, "dashboard_charts")
        if docs:
            shutil.copyfile(shot, REPO_ROOT / "docs" / "dashboard-charts.png")
    finally:
        clients.loop.call_soon_threadsafe(stop.set)
    assert sending.result(20) > 0

    wait_for_chart(page, "messages", "v === 0")
    clients.run(sender.close())
    clients.run(receiver.close())
    page.context.close()


# -- transfers in flight ------------------------------------------------------------------------

CHUNK = 256 * 1024


def transfer_row(table: str, path: str) -> str:
    return f'#{table} tbody tr[data-path="{path}"]'


def test_a_slow_uploads_progress_bar_advances_and_it_ends_in_the_recent_list(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    client = clients.run(connect(server.ws_url, unique("uploader")))
    page = log_in(browser, server, operator, height=1300)
    path = "runs/slow.bin"
    gates = [threading.Event() for _ in range(3)]

    def body() -> Iterator[bytes]:
        # Four chunks; before each of the last three the upload waits for the test.
        for gate in [None, *gates]:
            if gate is not None and not gate.wait(60):
                raise TimeoutError("the test did not let the upload go on")
            yield b"u" * CHUNK

    def put() -> httpx.Response:
        headers = {"Authorization": client.key, "Content-Length": str(4 * CHUNK)}
        return httpx.put(f"{server.url}/fs/{client.name}/{path}", content=body(), headers=headers, timeout=60)

    with ThreadPoolExecutor(1) as pool:
        uploading = pool.submit(put)
        try:
            row = transfer_row("transfers-table", path)
            for step, gate in enumerate(gates, start=1):
                page.wait_for_selector(f'{row}[data-done="{step * CHUNK}"]', timeout=WAIT_MS)
                bar = page.locator(f"{row} progress")
                assert float(bar.get_attribute("value") or 0) == step * CHUNK
                assert float(bar.get_attribute("max") or 0) == 4 * CHUNK
                assert page.locator(f"{row} td.client").inner_text() == client.name
                assert f"{25 * step}%" in page.locator(f"{row} td.progress").inner_text()
                if step == 2:
                    shot = save_screenshot(page, "dashboard_transfer_in_flight")
                    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
                        shutil.copyfile(shot, REPO_ROOT / "docs" / "dashboard-transfers.png")
                gate.set()
        finally:
            for gate in gates:
                gate.set()
        assert uploading.result(60).status_code == 201

    ended = transfer_row("transfers-recent", path)
    page.wait_for_selector(f'{ended}[data-outcome="finished"]', timeout=WAIT_MS)
    page.wait_for_selector(transfer_row("transfers-table", path), state="detached", timeout=WAIT_MS)
    assert "1.0 MiB" in page.locator(ended).inner_text()
    clients.run(client.close())
    page.context.close()


def test_a_download_the_client_stops_reading_shows_in_flight_until_it_reads_the_rest(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    client = clients.run(connect(server.ws_url, unique("reader")))
    size = 16 * 1024 * 1024
    put = httpx.put(
        f"{server.url}/fs/{client.name}/big.bin", content=b"d" * size, headers={"Authorization": client.key}
    )
    assert put.status_code == 201
    page = log_in(browser, server, operator, height=1300)
    row = transfer_row("transfers-table", "big.bin")
    with httpx.stream("GET", f"{server.url}/fs/{client.name}/big.bin", headers={"Authorization": client.key}) as got:
        chunks = got.iter_raw(CHUNK)
        received = len(next(chunks))
        # The client reads no more: the server's buffers fill and the download waits, in flight.
        page.wait_for_selector(row, timeout=WAIT_MS)
        assert page.locator(f"{row} .dir").inner_text() == "↓ download"
        done = int(page.locator(row).get_attribute("data-done") or 0)
        assert 0 < done < size
        assert page.locator(row).get_attribute("data-total") == str(size)
        received += sum(len(chunk) for chunk in chunks)
    assert received == size
    ended = transfer_row("transfers-recent", "big.bin")
    page.wait_for_selector(f'{ended}[data-outcome="finished"]', timeout=WAIT_MS)
    clients.run(client.close())
    page.context.close()
