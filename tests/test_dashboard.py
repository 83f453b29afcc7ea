"""The operator dashboard over HTTP and its websocket, against real daphne processes.

The browser side is in test_dashboard_browser.py; this module checks the seams:
who may see what, CSRF on actions, the JSON endpoints (paged and filtered, at
1,000 clients and 10,000 files), and that one event yields one small delta.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import Account, Cluster, Spawn, create_account, operator_session
from tests.support.clients import Client, close_code, connect, identify_payload
from tests.support.server import ServerProcess, manage

Payload = dict[str, Any]


# -- helpers -----------------------------------------------------------------------------


def dashboard_ws_url(server: ServerProcess) -> str:
    return f"ws://{server.host}:{server.port}/dashboard/ws"


class Dashboard:
    """A dashboard socket logged in through an httpx session's cookies."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[str] = []

    async def next(self, wait: float = 5, metrics: bool = False) -> Payload:
        """The next frame; the processes' chart samples (``metrics``) are skipped unless asked for."""
        async with asyncio.timeout(wait):
            while True:
                text = await self.ws.recv()
                assert isinstance(text, str)
                payload: Payload = json.loads(text)
                if payload["type"] != "metrics" or metrics:
                    self.frames.append(text)
                    return payload

    async def delta_where(self, predicate: Any, wait: float = 5) -> Payload:
        """The next delta matching ``predicate``; earlier ones are skipped."""
        async with asyncio.timeout(wait):
            while True:
                payload = await self.next(wait)
                if payload["type"] == "delta" and predicate(payload):
                    return payload

    async def view(self, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": "view", **fields}))


async def open_dashboard(server: ServerProcess, http: httpx.AsyncClient, origin: str | None = None) -> Dashboard:
    headers = {"Cookie": f"sessionid={http.cookies['sessionid']}", "Origin": origin or server.url}
    ws = await websockets.connect(dashboard_ws_url(server), additional_headers=headers)
    dashboard = Dashboard(ws)
    assert (await dashboard.next())["type"] == "ready"
    return dashboard


def client_names(section: Payload) -> list[str]:
    return [row["name"] for row in section["upsert"]]


@pytest.fixture
async def http(server: ServerProcess, operator: Account) -> AsyncIterator[httpx.AsyncClient]:
    client = await operator_session(server, operator)
    yield client
    await client.aclose()


@pytest.fixture
async def dashboard(server: ServerProcess, http: httpx.AsyncClient) -> AsyncIterator[Dashboard]:
    socket = await open_dashboard(server, http)
    yield socket
    await socket.ws.close()


async def upload(server: ServerProcess, client: Client, path: str, body: bytes) -> None:
    async with httpx.AsyncClient(base_url=server.url) as fs:
        response = await fs.put(f"/fs/{client.name}/{path}", content=body, headers={"Authorization": client.key})
        assert response.status_code == 201, response.text


# -- who may see what ----------------------------------------------------------------------


async def test_anonymous_visitors_are_sent_to_login_and_the_api_answers_401(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        page = await anonymous.get("/dashboard/")
        assert page.status_code == 302
        assert page.headers["Location"] == "/login/?next=/dashboard/"
        assert (await anonymous.get("/login/")).status_code == 200
        for url in ["/dashboard/api/clients", "/dashboard/api/services", "/dashboard/api/clients/x/files"]:
            response = await anonymous.get(url)
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
        download = await anonymous.get("/dashboard/files/someone/a.txt")
        assert download.status_code == 302 and download.headers["Location"].startswith("/login/")
        # An action without a session is refused before it does anything (CSRF, then auth).
        assert (
            await anonymous.post("/dashboard/actions/disconnect", data={"client": str(uuid.uuid4())})
        ).status_code in {401, 403}


async def test_anonymous_dashboard_socket_is_closed_with_4403(server: ServerProcess) -> None:
    async with websockets.connect(dashboard_ws_url(server), additional_headers={"Origin": server.url}) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_non_staff_users_are_refused_everywhere(server: ServerProcess) -> None:
    account = create_account(server, f"user_{uuid.uuid4().hex[:6]}", staff=False)
    http = await operator_session(server, account)
    try:
        page = await http.get("/dashboard/")
        assert page.status_code == 403
        assert "Operators only" in page.text
        api = await http.get("/dashboard/api/clients")
        assert api.status_code == 403 and api.json()["error"] == "forbidden"
        action = await http.post(
            "/dashboard/actions/disconnect",
            data={"client": str(uuid.uuid4())},
            headers={"X-CSRFToken": http.cookies["csrftoken"]},
        )
        assert action.status_code == 403
        headers = {"Cookie": f"sessionid={http.cookies['sessionid']}", "Origin": server.url}
        async with websockets.connect(dashboard_ws_url(server), additional_headers=headers) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    finally:
        await http.aclose()


async def test_dashboard_socket_refuses_a_foreign_origin(server: ServerProcess, http: httpx.AsyncClient) -> None:
    headers = {"Cookie": f"sessionid={http.cookies['sessionid']}", "Origin": "http://evil.example"}
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(dashboard_ws_url(server), additional_headers=headers)
    assert refused.value.response.status_code == 403
    headers.pop("Origin")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(dashboard_ws_url(server), additional_headers=headers)


async def test_actions_need_the_csrf_token(server: ServerProcess, http: httpx.AsyncClient, name: str) -> None:
    client = await connect(server.ws_url, name)
    form = {"client": client.public_id}
    assert (await http.post("/dashboard/actions/disconnect", data=form)).status_code == 403
    assert (await http.get("/dashboard/actions/disconnect")).status_code == 405
    ok = await http.post("/dashboard/actions/disconnect", data=form, headers={"X-CSRFToken": http.cookies["csrftoken"]})
    assert ok.status_code == 200 and ok.json() == {"client": name, "disconnected": True}
    assert await close_code(client) == 4010


# -- JSON endpoints -----------------------------------------------------------------------------


async def test_client_rows_carry_what_the_operator_needs_and_never_the_key(
    server: ServerProcess, http: httpx.AsyncClient, name: str
) -> None:
    client = await connect(server.ws_url, name, nickname="Nick", tags=["lab", "vr"])
    await upload(server, client, "data/one.txt", b"hello")
    await upload(server, client, "two.bin", b"\0" * 2048)
    body = (await http.get("/dashboard/api/clients", params={"q": name})).json()
    assert body["count"] == 1
    (row,) = body["results"]
    assert row["name"] == name and row["nickname"] == "Nick" and row["tags"] == ["lab", "vr"]
    assert row["files"] == 2 and row["bytes"] == 5 + 2048
    assert row["id"] == client.public_id
    assert row["connected_at"] and ":" in row["server"]
    files = await http.get(f"/dashboard/api/clients/{name}/files")
    listing = files.json()
    assert [f["path"] for f in listing["results"]] == ["data/one.txt", "two.bin"]
    assert listing["results"][0]["type"] == "text/plain"
    assert listing["client"]["name"] == name
    download = await http.get(listing["results"][0]["download"])
    assert download.status_code == 202 and download.content == b"hello"  # the file API's own answer
    assert download.headers["Content-Disposition"] == 'attachment; filename="one.txt"'
    for response in [body, listing, (await http.get("/dashboard/api/services")).json()]:
        assert client.key not in json.dumps(response)
    assert client.key not in (await http.get("/dashboard/")).text
    assert (await http.get(f"/dashboard/api/clients/{name}_nobody/files")).status_code == 404
    await client.close()


async def test_operator_deletes_a_file(server: ServerProcess, http: httpx.AsyncClient, name: str) -> None:
    client = await connect(server.ws_url, name)
    await upload(server, client, "gone.txt", b"x")
    token = {"X-CSRFToken": http.cookies["csrftoken"]}
    deleted = await http.post(
        "/dashboard/actions/delete-file", data={"client": client.public_id, "path": "gone.txt"}, headers=token
    )
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    async with httpx.AsyncClient(base_url=server.url) as fs:
        assert (await fs.get(f"/fs/{name}/gone.txt", headers={"Authorization": client.key})).status_code == 404
    again = await http.post(
        "/dashboard/actions/delete-file", data={"client": client.public_id, "path": "gone.txt"}, headers=token
    )
    assert again.status_code == 404
    bad = await http.post("/dashboard/actions/delete-file", data={"client": "nope", "path": "x"}, headers=token)
    assert bad.status_code == 400
    await client.close()


async def test_services_list_owner_and_subscribers(server: ServerProcess, http: httpx.AsyncClient, name: str) -> None:
    owner = await connect(server.ws_url, name)
    fan = await connect(server.ws_url, name + "_fan")
    service = f"svc_{name}"
    assert (await owner.request({"type": "SERVICE_CREATE", "service": service, "nickname": "Stream"}))["successful"]
    assert (await fan.request({"type": "SELF_SUBSCRIBE", "service": service}))["successful"]
    body = (await http.get("/dashboard/api/services", params={"q": service})).json()
    (row,) = body["results"]
    assert row["owner"] == name and row["nickname"] == "Stream"
    assert row["subscribers"] == [name + "_fan"] and row["subscriber_count"] == 1
    await owner.close()
    await fan.close()


# -- live deltas -------------------------------------------------------------------------------


async def test_one_event_sends_only_the_row_it_touched(server: ServerProcess, dashboard: Dashboard, name: str) -> None:
    bystander = await connect(server.ws_url, name + "_by")
    await dashboard.delta_where(lambda d: name + "_by" in client_names(d.get("clients", {"upsert": []})))
    await dashboard.view(client=name)

    client = await connect(server.ws_url, name)
    joined = await dashboard.delta_where(lambda d: name in client_names(d.get("clients", {"upsert": []})))
    assert client_names(joined["clients"]) == [name]
    assert joined["stats"]["clients"] >= 2

    await upload(server, client, "live.txt", b"12345")
    changed = await dashboard.delta_where(lambda d: "files" in d and d["files"]["upsert"])
    assert [f["path"] for f in changed["files"]["upsert"]] == ["live.txt"]
    assert client_names(changed["clients"]) == [name]
    assert changed["clients"]["upsert"][0]["bytes"] == 5

    await client.close()
    left = await dashboard.delta_where(lambda d: name in d.get("clients", {"remove": []})["remove"])
    assert left["clients"]["upsert"] == []
    assert left["files"]["detail"] is None
    await bystander.close()
    for frame in dashboard.frames:
        assert client.key not in frame and bystander.key not in frame


async def test_a_filtered_view_gets_only_matching_rows(server: ServerProcess, dashboard: Dashboard, name: str) -> None:
    await dashboard.view(clients_q=name + "_yes")
    other = await connect(server.ws_url, name + "_no")
    wanted = await connect(server.ws_url, name + "_yes")
    delta = await dashboard.delta_where(lambda d: name + "_yes" in client_names(d.get("clients", {"upsert": []})))
    assert name + "_no" not in client_names(delta["clients"])
    assert delta["clients"]["count"] == 1
    await other.close()
    await wanted.close()


async def test_bad_view_messages_get_an_error_frame(dashboard: Dashboard) -> None:
    await dashboard.ws.send("not json")
    assert (await dashboard.next())["type"] == "error"
    await dashboard.view(client=5)
    assert (await dashboard.next())["type"] == "error"


async def test_service_events_reach_the_dashboard(server: ServerProcess, dashboard: Dashboard, name: str) -> None:
    owner = await connect(server.ws_url, name)
    service = f"svc_{name}"
    await owner.request({"type": "SERVICE_CREATE", "service": service})
    created = await dashboard.delta_where(lambda d: "services" in d and d["services"]["upsert"])
    assert [s["name"] for s in created["services"]["upsert"]] == [service]
    await owner.request({"type": "SERVICE_DELETE", "service": service})
    deleted = await dashboard.delta_where(lambda d: "services" in d and d["services"]["remove"])
    assert deleted["services"]["remove"] == [service]
    await owner.close()


async def quiet_client(server: ServerProcess, name: str) -> websockets.ClientConnection:
    """A client that never reads its broadcasts (an unbounded queue, so its close is not held up)."""
    ws = await websockets.connect(server.ws_url, max_queue=None)
    await ws.send(json.dumps(identify_payload(name)))
    assert json.loads(await ws.recv())["type"] == "HELLO"
    return ws


async def test_a_burst_of_joins_and_leaves_is_batched(server: ServerProcess, dashboard: Dashboard, name: str) -> None:
    await dashboard.view(clients_q=name)
    crowd = await asyncio.gather(*(quiet_client(server, f"{name}_{i:03d}") for i in range(60)))
    wanted, seen = {f"{name}_{i:03d}" for i in range(60)}, set()
    deltas = 0
    while seen != wanted:
        delta = await dashboard.delta_where(lambda d: "clients" in d)
        seen.update(client_names(delta["clients"]))
        deltas += 1
    assert deltas < 30, "events arriving together share a delta"
    assert delta["clients"]["count"] == 60
    await asyncio.gather(*(ws.close() for ws in crowd))
    while (await dashboard.delta_where(lambda d: "clients" in d))["clients"]["count"] > 0:
        pass


# -- scale: 1,000 clients and 10,000 files -------------------------------------------------------

BULK = """
import datetime, uuid
from django.utils import timezone
from fileshare.models import LiveClient, ServerInstance, StoredFile
now = timezone.now()
# A lease far in the future: no sweeper takes these rows for a dead process's.
instance = ServerInstance.objects.create(hostname="bulk", pid=1, heartbeat_at=now + datetime.timedelta(days=1))
clients = LiveClient.objects.bulk_create(
    LiveClient(
        name=f"bulk_{i:04d}", nickname=f"Instrument {i}" if i % 2 else None, tags=["bulk"], version="0.2.0",
        key=uuid.uuid4(), public_id=uuid.uuid4(), channel_name=f"bulk.{i}", folder=f"bulk_{i:04d}.f", instance=instance,
    )
    for i in range(1000)
)
StoredFile.objects.bulk_create(
    StoredFile(owner=c, path=f"run/{j:02d}.dat", blob=f"{c.folder}/{j}", size=1000 + j, content_type="application/octet-stream",
               sha256="0" * 64, modified_at=now)
    for c in clients for j in range(10)
)
"""


async def test_thousand_clients_page_filter_and_stay_incremental(spawn: Spawn) -> None:
    server = spawn()
    manage(server.env, "shell", "-c", BULK)
    account = create_account(server, "op", staff=True)
    http = await operator_session(server, account)
    try:
        first = (await http.get("/dashboard/api/clients")).json()
        assert first["count"] == 1000 and first["pages"] == 20 and len(first["results"]) == 50
        assert first["stats"]["clients"] == 1000 and first["stats"]["files"] == 10_000
        assert [r["name"] for r in first["results"][:2]] == ["bulk_0000", "bulk_0001"]
        assert first["results"][0]["files"] == 10 and first["results"][0]["bytes"] == sum(1000 + j for j in range(10))

        last = (await http.get("/dashboard/api/clients", params={"page": 20})).json()
        assert last["results"][-1]["name"] == "bulk_0999"
        clamped = (await http.get("/dashboard/api/clients", params={"page": 999})).json()
        assert clamped["page"] == 20

        filtered = (await http.get("/dashboard/api/clients", params={"q": "bulk_09"})).json()
        assert filtered["count"] == 100 and filtered["pages"] == 2
        by_nickname = (await http.get("/dashboard/api/clients", params={"q": "instrument 99"})).json()
        assert {r["name"] for r in by_nickname["results"]} == {"bulk_0099"} | {
            f"bulk_{i:04d}" for i in range(991, 1000, 2)
        }

        files = (await http.get("/dashboard/api/clients/bulk_0500/files", params={"q": "run/0"})).json()
        assert files["count"] == 10 and files["client"]["files"] == 10

        # One more client joins: the open dashboard gets that one row, not the table.
        dashboard = await open_dashboard(server, http)
        client = await connect(server.ws_url, "bulk_late")
        delta = await dashboard.delta_where(lambda d: "clients" in d)
        assert client_names(delta["clients"]) == ["bulk_late"]
        assert delta["clients"]["count"] == 1001
        assert len(dashboard.frames[-1]) < 4000
        await client.close()
        await dashboard.ws.close()
    finally:
        await http.aclose()


# -- across server processes ------------------------------------------------------------------


@pytest.mark.cluster
async def test_a_dashboard_on_one_process_sees_clients_of_another(cluster: Cluster, name: str) -> None:
    a, b = cluster.processes
    account = create_account(a, f"op_{uuid.uuid4().hex[:6]}", staff=True)
    http = await operator_session(a, account)
    try:
        dashboard = await open_dashboard(a, http)
        await dashboard.view(client=name)
        client = await connect(b.ws_url, name)
        joined = await dashboard.delta_where(lambda d: name in client_names(d.get("clients", {"upsert": []})))
        assert joined["clients"]["upsert"][0]["server"].endswith(f":{b.pid}")
        await upload(b, client, "x.txt", b"x")
        await dashboard.delta_where(lambda d: "files" in d and d["files"]["upsert"])
        # Disconnect from A a client served by B: B's consumer closes it with 4010.
        kicked = await http.post(
            "/dashboard/actions/disconnect",
            data={"client": client.public_id},
            headers={"X-CSRFToken": http.cookies["csrftoken"]},
        )
        assert kicked.status_code == 200
        assert await close_code(client) == 4010
        await dashboard.delta_where(lambda d: name in d.get("clients", {"remove": []})["remove"])
        await dashboard.ws.close()
    finally:
        await http.aclose()


# -- the page itself ---------------------------------------------------------------------------


async def test_the_page_loads_nothing_from_the_internet(server: ServerProcess, http: httpx.AsyncClient) -> None:
    page = await http.get("/dashboard/")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/fileshare/dashboard.js" in assets and "/static/fileshare/dashboard.css" in assets
    assert not [url for url in assets if "//" in url], assets
    async with httpx.AsyncClient(base_url=server.url) as anonymous:  # the login page needs them too
        for path, kind in [
            ("fileshare/dashboard.js", "javascript"),
            ("fileshare/dashboard.css", "text/css"),
            ("admin/css/base.css", "text/css"),  # the admin is styled without collectstatic
        ]:
            asset = await anonymous.get(f"/static/{path}")
            assert asset.status_code == 200 and kind in asset.headers["Content-Type"], path
            text = asset.text.replace("http://www.w3.org/2000/svg", "")  # a namespace name, never fetched
            if path.startswith("fileshare/"):
                assert "http://" not in text and "https://" not in text
            cached = await anonymous.get(f"/static/{path}", headers={"If-None-Match": asset.headers["ETag"]})
            assert cached.status_code == 304
        assert (await anonymous.get("/static/fileshare/missing.js")).status_code == 404
        escape = await anonymous.get("/static/fileshare/..%2F..%2Fdashboard_views.py")
        assert escape.status_code in {400, 404} and b"def static_file" not in escape.content


async def test_logging_out_closes_the_dashboard_socket(server: ServerProcess, operator: Account) -> None:
    http = await operator_session(server, operator)
    try:
        dashboard = await open_dashboard(server, http)
        logout = await http.post("/logout/", headers={"X-CSRFToken": http.cookies["csrftoken"]})
        assert logout.status_code == 302
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(dashboard.ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        assert (await http.get("/dashboard/api/clients")).status_code == 401
    finally:
        await http.aclose()
