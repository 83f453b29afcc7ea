"""The operator dashboard in real headless Chromium, against a real concierge process.

Browser tests are plain sync tests (Playwright's sync API owns this thread's
event loop), so the websocket test clients run on an asyncio loop in a thread
of their own (``ClientLoop``). Every test saves a screenshot under
``artifacts/screenshots/``; with ``UPDATE_DOCS_SCREENSHOT=1`` the showcase test
also writes ``docs/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

from tests.conftest import Account, Spawn, create_account
from tests.support.browser import REPO_ROOT, launch_browser, require_chromium, save_screenshot
from tests.support.clients import Client, close_code, connect
from tests.support.server import ServerProcess, manage
from tests.test_dashboard import BULK

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

T = TypeVar("T")
"""The dashboard promises updates within 1 s of an event."""


class ClientLoop:
    """An asyncio loop in a thread, for websocket clients beside Playwright's sync API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


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


def log_in(browser: Browser, server: ServerProcess, account: Account, width: int = 1440, height: int = 900) -> Page:
    """A page logged in as ``account`` through the login form, on the live dashboard."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(server.url + "/dashboard/")
    page.fill("#id_username", account.username)
    page.fill("#id_password", account.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    page.wait_for_selector("body[data-live=on]", timeout=10_000)
    return page


def upload(server: ServerProcess, client: Client, path: str, body: bytes) -> None:
    response = httpx.put(f"{server.url}/fs/{client.name}/{path}", content=body, headers={"Authorization": client.key})
    assert response.status_code == 201, response.text


def row(page: Page, table: str, key: str) -> str:
    attribute = "data-path" if table == "files" else "data-name"
    return f'#{table}-table tbody tr[{attribute}="{key}"]'


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:6]}"


# -- access --------------------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_the_login_page(browser: Browser, server: ServerProcess) -> None:
    page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
    page.goto(server.url + "/dashboard/")
    assert page.url == server.url + "/login/?next=/dashboard/"
    assert page.locator("h1").text_content() == "Operator login"
    save_screenshot(page, "dashboard_login")
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator(".alert").is_visible()
    page.context.close()


def test_a_user_who_is_not_staff_is_refused(browser: Browser, server: ServerProcess) -> None:
    account = create_account(server, unique("visitor"), staff=False)
    page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
    page.goto(server.url + "/login/")
    page.fill("#id_username", account.username)
    page.fill("#id_password", account.password)
    with page.expect_response("**/dashboard/") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 403
    assert page.locator("h1").text_content() == "Operators only"
    code = page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/dashboard/ws`);
            ws.onclose = (event) => resolve(event.code);
        })"""
    )
    assert code == 4403
    save_screenshot(page, "dashboard_refused")
    page.context.close()


# -- live updates and actions ----------------------------------------------------------------------


def test_clients_and_files_come_and_go_live_without_refetching(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    page = log_in(browser, server, operator)
    name = unique("live")
    client = clients.run(connect(server.ws_url, name, nickname="Spectrometer", tags=["lab"]))
    page.wait_for_selector(row(page, "clients", name), timeout=5000)
    assert "Spectrometer" in page.locator(row(page, "clients", name)).inner_text()

    page.click(row(page, "clients", name))
    page.wait_for_selector("#files-empty:has-text('No files yet')")
    api_calls: list[str] = []
    page.on("request", lambda request: api_calls.append(request.url) if "/dashboard/api/" in request.url else None)

    upload(server, client, "spectra/run1.csv", b"wavelength,intensity\n500,0.2\n")
    page.wait_for_selector(row(page, "files", "spectra/run1.csv"), timeout=5000)
    client_row = page.locator(row(page, "clients", name))
    assert client_row.locator("td.num").first.inner_text() == "1"
    assert page.locator("#stat-clients").inner_text() != "–"
    save_screenshot(page, "dashboard_live_file")

    clients.run(client.close())
    page.wait_for_selector(row(page, "clients", name), state="detached", timeout=5000)
    page.wait_for_selector(f"#files-empty:has-text('{name} has left')", timeout=5000)
    assert page.locator(row(page, "files", "spectra/run1.csv")).count() == 0
    assert api_calls == [], f"events must patch the page, not refetch it: {api_calls}"
    save_screenshot(page, "dashboard_client_left")
    page.context.close()


def test_operator_downloads_and_deletes_a_file_and_disconnects_a_client(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    name = unique("kick")
    client = clients.run(connect(server.ws_url, name))
    upload(server, client, "keep.txt", b"keep me")
    upload(server, client, "drop.txt", b"drop me")
    page = log_in(browser, server, operator)
    page.fill("#clients-filter", name)
    page.wait_for_selector("#clients-count:text-is('1')")
    page.click(row(page, "clients", name))
    page.wait_for_selector(row(page, "files", "drop.txt"))
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    with page.expect_download() as download:
        page.locator(row(page, "files", "keep.txt")).get_by_title("Download keep.txt").click()
    assert download.value.suggested_filename == "keep.txt"
    assert download.value.path().read_bytes() == b"keep me"

    page.locator(row(page, "files", "drop.txt")).get_by_role("button", name="Delete").click()
    page.wait_for_selector(row(page, "files", "drop.txt"), state="detached", timeout=5000)
    assert dialogs and "Delete drop.txt" in dialogs[-1]
    gone = httpx.get(f"{server.url}/fs/{name}/drop.txt", headers={"Authorization": client.key})
    assert gone.status_code == 404
    save_screenshot(page, "dashboard_file_deleted")

    page.locator(row(page, "clients", name)).get_by_role("button", name="Disconnect").click()
    assert clients.run(close_code(client)) == 4010
    assert "Disconnect " + name in dialogs[-1]
    page.wait_for_selector(row(page, "clients", name), state="detached", timeout=5000)
    page.wait_for_selector("#clients-empty:has-text('No clients match')")
    save_screenshot(page, "dashboard_client_disconnected")
    page.context.close()


def test_dismissing_the_confirmation_changes_nothing(
    browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop
) -> None:
    name = unique("stay")
    client = clients.run(connect(server.ws_url, name))
    page = log_in(browser, server, operator)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.locator(row(page, "clients", name)).get_by_role("button", name="Disconnect").click()
    page.wait_for_timeout(300)
    assert page.locator(row(page, "clients", name)).count() == 1
    clients.run(client.close())
    page.context.close()


# -- the picture in the docs ---------------------------------------------------------------------------


BACKDATE = """
import datetime
from django.utils import timezone
from fileshare.models import LiveClient, StoredFile
now = timezone.now()
ages = {"spectrometer": 190, "vr_headset": 47, "ert_monitor": 1460, "logger_07": 6}
for name, minutes in ages.items():
    LiveClient.objects.filter(name=name).update(connected_at=now - datetime.timedelta(minutes=minutes))
for number, row in enumerate(StoredFile.objects.filter(owner__name__in=ages).order_by("path")):
    StoredFile.objects.filter(pk=row.pk).update(modified_at=now - datetime.timedelta(minutes=3 + 17 * number))
"""


def test_showcase_screenshot(browser: Browser, server: ServerProcess, operator: Account, clients: ClientLoop) -> None:
    """A dashboard with a few clients, files and services; docs/dashboard.png comes from here."""
    crew = [
        ("spectrometer", "Raman spectrometer", ["lab", "optics"]),
        ("vr_headset", "VR rig, room 2", ["vr"]),
        ("ert_monitor", "ERT monitor", ["ert", "lab"]),
        ("logger_07", None, []),
    ]
    connected = {n: clients.run(connect(server.ws_url, n, nickname=nick, tags=tags)) for n, nick, tags in crew}
    owner, viewer, monitor = connected["spectrometer"], connected["vr_headset"], connected["ert_monitor"]
    clients.run(owner.request({"type": "SERVICE_CREATE", "service": "spectra", "nickname": "Live spectra"}))
    clients.run(monitor.request({"type": "SERVICE_CREATE", "service": "ert_alerts"}))
    for fan in (viewer, monitor, connected["logger_07"]):
        clients.run(fan.request({"type": "SELF_SUBSCRIBE", "service": "spectra"}))
    upload(server, owner, "spectra/2026-11-21/run-001.csv", b"x" * 48_213)
    upload(server, owner, "spectra/2026-11-21/run-002.csv", b"x" * 51_877)
    upload(server, owner, "calibration.json", b'{"offset": 0.12}')
    upload(server, owner, "snapshots/bench.png", b"\x89PNG" + b"\0" * 2_400_000)
    upload(server, viewer, "scene.glb", b"\0" * 7_340_032)
    upload(server, monitor, "readings.log", b"r" * 912)
    # Only for the picture: sessions and files of different ages, as on a real day.
    manage(server.env, "shell", "-c", BACKDATE)

    page = log_in(browser, server, operator)
    page.click(row(page, "clients", "spectrometer"))
    page.wait_for_selector(row(page, "files", "calibration.json"))
    page.wait_for_timeout(1800)  # let the new-row highlight fade
    shot = save_screenshot(page, "dashboard_showcase")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):
        shutil.copyfile(shot, REPO_ROOT / "docs" / "dashboard.png")
    for client in connected.values():
        clients.run(client.close())
    page.context.close()


def test_a_thousand_clients_are_paged_filtered_and_patched_in_place(
    browser: Browser, spawn: Spawn, clients: ClientLoop
) -> None:
    server = spawn()
    manage(server.env, "shell", "-c", BULK)
    account = create_account(server, "op", staff=True)
    page = log_in(browser, server, account)
    page.wait_for_selector("#clients-count:text-is('1,000')")
    assert page.locator("#clients-table tbody tr").count() == 50
    assert page.locator("#stat-files").inner_text() == "10,000"
    assert "1–50 of 1,000 · page 1 of 20" in page.locator("#clients-pager").inner_text()
    page.get_by_role("button", name="Next ›").first.click()
    page.wait_for_selector(row(page, "clients", "bulk_0050"))

    page.fill("#clients-filter", "bulk_09")
    page.wait_for_selector("#clients-count:text-is('100')")
    assert page.locator("#clients-table tbody tr").first.get_attribute("data-name") == "bulk_0900"
    api_calls: list[str] = []
    page.on("request", lambda request: api_calls.append(request.url) if "/dashboard/api/" in request.url else None)

    late = clients.run(connect(server.ws_url, "bulk_0905_late"))
    page.wait_for_selector(row(page, "clients", "bulk_0905_late"), timeout=5000)
    page.wait_for_selector("#clients-count:text-is('101')")
    assert page.locator("#clients-table tbody tr").count() == 50  # the page keeps its size
    outsider = clients.run(connect(server.ws_url, "other_client"))
    page.wait_for_selector("#stat-clients:text-is('1,002')")
    assert page.locator(row(page, "clients", "other_client")).count() == 0  # filtered out
    save_screenshot(page, "dashboard_thousand_clients")
    assert api_calls == []
    clients.run(late.close())
    clients.run(outsider.close())
    page.wait_for_selector(row(page, "clients", "bulk_0905_late"), state="detached", timeout=5000)
    page.context.close()
