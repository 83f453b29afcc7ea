"""The dashboard's live charts in real headless Chromium, against a real concierge process.

With ``UPDATE_DOCS_SCREENSHOT=1`` the test also writes ``docs/dashboard-charts.png``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
