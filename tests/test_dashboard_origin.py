"""The dashboard socket admits its page's own origin exactly: scheme, host and port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests.conftest import Account, Spawn, create_account, operator_session
from tests.support.server import ServerProcess


@pytest.fixture
async def http(server: ServerProcess, operator: Account) -> AsyncIterator[httpx.AsyncClient]:
    client = await operator_session(server, operator)
    yield client
    await client.aclose()


def ws_url(server: ServerProcess) -> str:
    return f"ws://{server.host}:{server.port}/dashboard/ws"


async def test_the_dashboard_socket_admits_its_own_origin_and_refuses_another_port_or_scheme(
    server: ServerProcess, http: httpx.AsyncClient
) -> None:
    cookie = f"sessionid={http.cookies['sessionid']}"
    other_port = server.port + 1 if server.port < 65535 else server.port - 1
    for origin in (server.url, f"HTTP://{server.host}:{server.port}"):  # schemes are case-insensitive
        async with websockets.connect(ws_url(server), additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
            assert '"ready"' in await asyncio.wait_for(ws.recv(), 5)
    foreign = [
        f"http://{server.host}:{other_port}",  # the same host, another port
        f"http://{server.host}",  # port 80
        f"https://{server.host}:{server.port}",  # another scheme
        f"http://localhost:{server.port}",  # an allowed host, but not the one the page is on
        "null",
        f"http://{server.host}.evil.example:{server.port}",
    ]
    for origin in foreign:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(server), additional_headers={"Cookie": cookie, "Origin": origin})
        assert refused.value.response.status_code == 403, origin


async def test_behind_a_trusted_tls_proxy_the_https_origin_is_the_pages_own(spawn: Spawn) -> None:
    """With CONCIERGE_TRUST_FORWARDED_PROTO, X-Forwarded-Proto: https makes the socket's own
    origin https://host:port (as Django's CSRF check sees the login form's); without the
    header that origin is another scheme's."""
    server = spawn(CONCIERGE_TRUST_FORWARDED_PROTO="true")
    account = create_account(server, "op_tls", staff=True)
    http = await operator_session(server, account)
    try:
        headers = {"Cookie": f"sessionid={http.cookies['sessionid']}", "Origin": f"https://{server.host}:{server.port}"}
        async with websockets.connect(
            ws_url(server), additional_headers={**headers, "X-Forwarded-Proto": "https"}
        ) as ws:
            assert '"ready"' in await asyncio.wait_for(ws.recv(), 5)
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(server), additional_headers=headers)
        assert refused.value.response.status_code == 403
    finally:
        await http.aclose()
