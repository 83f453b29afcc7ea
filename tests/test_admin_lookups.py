"""The admin's query string cannot filter on a client's secret key, on any model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Account, operator_session
from tests.support.clients import connect
from tests.support.server import ServerProcess


@pytest.fixture
async def admin_http(server: ServerProcess, operator: Account) -> AsyncIterator[httpx.AsyncClient]:
    client = await operator_session(server, operator)
    yield client
    await client.aclose()


async def test_lookups_on_a_clients_key_are_refused_on_every_admin_page(
    server: ServerProcess, admin_http: httpx.AsyncClient, name: str
) -> None:
    client = await connect(server.ws_url, name)
    service = await client.request({"type": "SERVICE_CREATE", "service": f"svc_{name}"})
    assert service["successful"]
    async with httpx.AsyncClient(base_url=server.url) as fs:
        put = await fs.put(f"/fs/{name}/a.txt", content=b"a", headers={"Authorization": client.key})
        assert put.status_code == 201
    key = client.key
    own = {
        "key__startswith": key[:1],
        "key__istartswith": key[:8],
        "key__exact": key,
        "key": key,
        "key__regex": f"^{key[:2]}",
        "key__gt": "00000000-0000-0000-0000-000000000000",
        "key__in": key,
        "key__contains": key[-4:],
    }
    related = {
        "service": ["owner__key__startswith", "owner__key"],
        "storedfile": ["owner__key__startswith", "owner__key__exact"],
        "subscription": ["client__key__startswith", "service__owner__key__startswith"],
        "resumableupload": ["owner__key__startswith"],
        "serverinstance": ["clients__key__startswith"],
    }
    pages = [("liveclient", lookup, value) for lookup, value in own.items()]
    pages += [(model, lookup, key[:1]) for model, lookups in related.items() for lookup in lookups]
    for model, lookup, value in pages:
        answer = await admin_http.get(f"/admin/fileshare/{model}/", params={lookup: value})
        assert answer.status_code == 400, (model, lookup, answer.status_code)
        assert name not in answer.text
    # The page itself still filters on what it may (the name search).
    listing = await admin_http.get("/admin/fileshare/liveclient/", params={"q": name})
    assert listing.status_code == 200 and name in listing.text
    await client.close()


def test_no_admin_lists_searches_filters_or_orders_by_a_secret_field() -> None:
    from django.contrib import admin

    from fileshare.admin import SECRET_FIELDS, touches_secret

    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "fileshare":
            continue
        named = [
            *(model_admin.list_display or ()),
            *(model_admin.list_filter or ()),
            *(model_admin.search_fields or ()),
            *(model_admin.ordering or ()),
            *(model_admin.fields or ()),
            *(model_admin.readonly_fields or ()),
        ]
        for entry in named:
            text = entry if isinstance(entry, str) else str(entry)
            assert not touches_secret(text.lstrip("-^=@")), (model.__name__, entry)
        assert not model_admin.lookup_allowed("key__startswith", "0", None), model.__name__
    assert "key" in SECRET_FIELDS
