"""The Django admin shows the concierge's tables read-only, and never a client's key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Account, operator_session
from tests.support.clients import connect
from tests.support.server import ServerProcess

MODELS = ["serverinstance", "liveclient", "service", "subscription", "storedfile"]


@pytest.fixture
async def admin_http(server: ServerProcess, operator: Account) -> AsyncIterator[httpx.AsyncClient]:
    client = await operator_session(server, operator)
    yield client
    await client.aclose()


async def test_every_table_is_listed_and_none_can_be_added(
    server: ServerProcess, admin_http: httpx.AsyncClient
) -> None:
    index = await admin_http.get("/admin/")
    assert index.status_code == 200
    for model in MODELS:
        listing = await admin_http.get(f"/admin/fileshare/{model}/")
        assert listing.status_code == 200, model
        assert (await admin_http.get(f"/admin/fileshare/{model}/add/")).status_code == 403, model
    assert "/admin/fileshare/liveclient/add/" not in index.text


async def test_a_live_client_is_shown_without_its_key_and_cannot_be_changed(
    server: ServerProcess, admin_http: httpx.AsyncClient, name: str
) -> None:
    client = await connect(server.ws_url, name, nickname="Shown")
    async with httpx.AsyncClient(base_url=server.url) as fs:
        put = await fs.put(f"/fs/{name}/a.txt", content=b"a", headers={"Authorization": client.key})
        assert put.status_code == 201
    listing = await admin_http.get("/admin/fileshare/liveclient/", params={"q": name})
    assert name in listing.text
    (pk,) = set(re.findall(r"/admin/fileshare/liveclient/(\d+)/change/", listing.text))
    page = await admin_http.get(f"/admin/fileshare/liveclient/{pk}/change/")
    assert page.status_code == 200
    assert client.public_id in page.text and "Shown" in page.text
    assert client.key not in page.text
    assert 'name="_save"' not in page.text  # view-only: no save button
    changed = await admin_http.post(
        f"/admin/fileshare/liveclient/{pk}/change/",
        data={"name": "renamed", "csrfmiddlewaretoken": admin_http.cookies["csrftoken"]},
    )
    assert changed.status_code == 403
    deleted = await admin_http.get(f"/admin/fileshare/liveclient/{pk}/delete/")
    assert deleted.status_code == 403
    for model in MODELS:
        assert client.key not in (await admin_http.get(f"/admin/fileshare/{model}/")).text
    files = await admin_http.get("/admin/fileshare/storedfile/", params={"q": name})
    assert "a.txt" in files.text
    await client.close()
