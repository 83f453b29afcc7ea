"""The dashboard shows each client's use against its quota (docs/limits.md)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import Account, Spawn, create_account, operator_session
from tests.support.clients import connect
from tests.support.server import ServerProcess

QUOTA = 1_000_000


@pytest.fixture
def quota_server(spawn: Spawn) -> ServerProcess:
    return spawn(
        FILESHARE_CLIENT_QUOTA_BYTES=str(QUOTA),
        FILESHARE_CLIENT_QUOTA_FILES="10",
        FILESHARE_STORE_QUOTA_BYTES="5000000",
    )


@pytest.fixture
def staff(quota_server: ServerProcess) -> Account:
    return create_account(quota_server, f"op_{uuid.uuid4().hex[:6]}", staff=True)


async def test_client_rows_carry_use_and_quotas(quota_server: ServerProcess, staff: Account, name: str) -> None:
    client = await connect(quota_server.ws_url, name)
    try:
        async with httpx.AsyncClient(base_url=quota_server.url, timeout=30) as http:
            put = await http.put(f"/fs/{name}/a.bin", content=b"a" * 250_000, headers={"Authorization": client.key})
            assert put.status_code == 201
        session = await operator_session(quota_server, staff)
        try:
            page = (await session.get("/dashboard/api/clients", params={"q": name})).json()
        finally:
            await session.aclose()
        row = page["results"][0]
        assert (row["files"], row["bytes"]) == (1, 250_000)
        assert (row["quota_files"], row["quota_bytes"]) == (10, QUOTA)
        assert page["stats"]["quota_bytes"] == 5_000_000
    finally:
        await client.close()


@pytest.mark.browser
def test_the_page_shows_a_bar_of_use_against_the_quota(quota_server: ServerProcess, staff: Account, name: str) -> None:
    from tests.support.browser import launch_browser, require_chromium, save_screenshot
    from tests.test_dashboard_browser import ClientLoop, log_in, row

    require_chromium()
    loop = ClientLoop()
    try:
        client = loop.run(connect(quota_server.ws_url, name))
        response = httpx.put(
            f"{quota_server.url}/fs/{name}/a.bin", content=b"a" * 250_000, headers={"Authorization": client.key}
        )
        assert response.status_code == 201
        with launch_browser() as chromium:
            page = log_in(chromium, quota_server, staff)
            page.wait_for_selector(row(page, "clients", name))
            meters = page.locator(row(page, "clients", name) + " meter.quota")
            assert meters.count() == 2
            files_bar, bytes_bar = meters.nth(0), meters.nth(1)
            assert (files_bar.get_attribute("max"), files_bar.get_attribute("value")) == ("10", "1")
            assert bytes_bar.get_attribute("max") == str(QUOTA) and bytes_bar.get_attribute("value") == "250000"
            assert "25%" in (bytes_bar.get_attribute("title") or "")
            assert page.locator(row(page, "clients", name)).locator("td.num").first.inner_text().strip() == "1"
            save_screenshot(page, "dashboard_quotas")
            page.context.close()
        loop.run(client.close())
    finally:
        loop.close()
