"""Clients written for the original ERT Concierge work against this server unchanged.

Under the run command (``manage.py runconcierge``) and the production recipe (nginx in
front of it), and where it applies under plain ``daphne concierge_site.asgi:application``:

* any ``Sec-WebSocket-Protocol`` offer upgrades (the original's Python services offer
  ``e, r, t, -, c, o, n, c, i, e, r, g, e``), and ``ert-concierge`` is selected only
  when offered whole;
* a service written as the original's are streams to its subscribers, answers
  requests and downloads another client's file with its own key (``x-fs-key``);
* CORS on ``/fs/`` and ``/tus/`` (any origin by default, a list restricts), never on
  the dashboard or the admin;
* a path that is not UTF-8 once percent-decoded is refused, for every method, and
  nothing is stored, replaced or deleted;
* every refusal under ``/fs/`` and ``/tus/`` is the one-line JSON error, the server's
  own ones included;
* a front-end folder is served same-origin (``FILESHARE_FRONTEND_DIR``).

The browser side (a page on another origin and the same page served by the server)
is tests/test_ert_compat_browser.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from fileshare.server.daphne_requests import merged_offer
from tests.support.clients import Client, connect, identify_payload
from tests.support.ert import KINDS, Deployment, start_deployment
from tests.support.raw_http import RawResponse, exchange, handshake_bytes, request_bytes

ORIGIN = "http://127.0.0.1:1"  # a page on another origin (no server needs to listen there)


# -- Fixtures --------------------------------------------------------------------------------


def write_frontend(folder: Path) -> Path:
    """A small front-end folder: an index, a script, a style sheet, a sub-folder with its index."""
    (folder / "js").mkdir(parents=True)
    (folder / "sub").mkdir()
    (folder / "index.html").write_text("<!doctype html><title>front</title><p>front page</p>\n")
    (folder / "js" / "app.js").write_text("console.log('app');\n")
    (folder / "style.css").write_text("body { color: black; }\n")
    (folder / "model.wasm").write_bytes(bytes(range(256)) * 4)
    (folder / "sub" / "index.html").write_text("<!doctype html><title>sub</title>\n")
    return folder


@pytest.fixture(scope="module", params=KINDS)
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp(f"ert-{request.param}")
    frontend = write_frontend(tmp_path_factory.mktemp("frontend"))
    started = start_deployment(request.param, root, FILESHARE_FRONTEND_DIR=str(frontend))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def plain_daphne(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    started = start_deployment("plain_daphne", tmp_path_factory.mktemp("plain-daphne"))
    yield started
    started.stop()


@pytest.fixture
async def owner(deployment: Deployment, name: str) -> AsyncIterator[Client]:
    client = await connect(deployment.ws_url, name)
    yield client
    await client.close()


@pytest.fixture
async def http(deployment: Deployment) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=deployment.url, timeout=60) as client:
        yield client


def raw(
    deployment: Deployment, method: str, target: bytes, headers: dict[str, str] | None = None, body: bytes = b""
) -> RawResponse:
    """A request whose target reaches the server byte for byte."""
    return exchange(
        deployment.host, deployment.port, request_bytes(method, target, deployment.authority, headers, body)
    )


def assert_json_error(response: RawResponse, status: int, error: str) -> None:
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert response.body.count(b"\n") <= 1
    payload = response.json()
    assert payload["error"] == error and payload["detail"], payload


# -- 1. Any subprotocol offer connects ---------------------------------------------------------

OFFERS = [
    pytest.param(["e, r, t, -, c, o, n, c, i, e, r, g, e"], None, id="one-character-items"),
    pytest.param(["ert-concierge, ert-concierge"], "ert-concierge", id="duplicate-whole-token"),
    pytest.param(["ert-concierge", "ert-concierge"], "ert-concierge", id="two-header-lines"),
    pytest.param(["x, , ert-concierge,"], "ert-concierge", id="empty-items-around-the-token"),
    pytest.param([", , ,"], None, id="only-empty-items"),
    pytest.param(["chat, superchat, chat"], None, id="unknown-names-duplicated"),
    pytest.param(["ert-concierge-v2, ert, concierge"], None, id="no-whole-token"),
    pytest.param([], None, id="no-offer"),
]


@pytest.mark.parametrize(("offer", "selected"), OFFERS)
def test_any_subprotocol_offer_upgrades_and_only_the_whole_token_is_selected(
    deployment: Deployment, offer: list[str], selected: str | None
) -> None:
    answer = exchange(
        deployment.host, deployment.port, handshake_bytes(deployment.authority, protocol_lines=offer), upgrade=True
    )
    assert answer.status == 101, (answer.status, answer.reason)
    assert answer.headers.get("sec-websocket-protocol") == selected


async def test_the_originals_python_service_offer_identifies(deployment: Deployment, name: str) -> None:
    # websockets.connect(uri, subprotocols="ert-concierge") in the original's services: the
    # websockets client they were written for offered each character (today's refuses a str).
    async with websockets.connect(deployment.ws_url, subprotocols=list("ert-concierge")) as ws:  # type: ignore[arg-type]
        assert ws.request is not None
        assert ws.request.headers["Sec-WebSocket-Protocol"] == "e, r, t, -, c, o, n, c, i, e, r, g, e"
        assert ws.subprotocol is None
        await ws.send(json.dumps(identify_payload(name)))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "HELLO" and hello["client"]["name"] == name


@pytest.mark.parametrize(("offer", "selected"), OFFERS[:4])
def test_plain_daphne_accepts_any_subprotocol_offer_too(
    plain_daphne: Deployment, offer: list[str], selected: str | None
) -> None:
    answer = exchange(
        plain_daphne.host,
        plain_daphne.port,
        handshake_bytes(plain_daphne.authority, protocol_lines=offer),
        upgrade=True,
    )
    assert answer.status == 101, (answer.status, answer.reason)
    assert answer.headers.get("sec-websocket-protocol") == selected


async def test_plain_daphne_serves_the_originals_service_offer(plain_daphne: Deployment, name: str) -> None:
    async with websockets.connect(plain_daphne.ws_url, subprotocols=list("ert-concierge")) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps(identify_payload(name)))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "HELLO"


def test_merged_offer_keeps_each_item_once_in_order_without_empty_ones() -> None:
    assert merged_offer([b"e, r, t, -, c, o, n, c, i, e, r, g, e"]) == b"e, r, t, -, c, o, n, i, g"
    assert merged_offer([b"ert-concierge", b" ert-concierge ,x"]) == b"ert-concierge, x"
    assert merged_offer([b", ,", b""]) == b""


def test_canary_autobahn_still_refuses_duplicate_offers_so_the_merge_is_needed() -> None:
    """When this fails, autobahn accepts duplicates itself: TolerantOfferRequest.process can go."""
    import txaio

    txaio.use_twisted()
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from twisted.internet.testing import StringTransport

    class Transport(StringTransport):
        def unregisterProducer(self) -> None:
            self.producer = None

    def answer(offer: str) -> bytes:
        factory = WebSocketServerFactory()
        factory.protocol = WebSocketServerProtocol
        protocol = factory.buildProtocol(None)
        transport = Transport()
        protocol.makeConnection(transport)
        protocol.dataReceived(handshake_bytes("127.0.0.1", protocol_lines=[offer]))
        return bytes(transport.value())

    assert answer("e, r, t, -, c, o, n, c, i, e, r, g, e").startswith(b"HTTP/1.1 400 duplicate protocol")
    assert answer("e, r, t, -, c, o, n, i, g").startswith(b"HTTP/1.1 101")


# -- 6a. A service written the way the original's Python services are --------------------------


class OriginalStyleService:
    """A service as the original's Python services are written: the subprotocol given as a
    string (offered as one-character items), a reader task and a streaming task, replies
    to subscribers' requests with SERVICE_CLIENT_UUID, files fetched with ``x-fs-key``."""

    def __init__(self, server_url: str, ws_url: str, name: str, service: str) -> None:
        self.server_url, self.ws_url, self.name, self.service = server_url, ws_url, name, service
        self.key = ""
        self.sent = 0
        self.oks = 0
        self.downloads: list[tuple[int, bytes]] = []
        self.ws: Any = None

    async def start(self) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=list(SUBPROTOCOL_AS_OLD_CLIENTS_SENT))  # type: ignore[arg-type]
        await self.ws.send(json.dumps({"type": "IDENTIFY", "name": self.name, "version": "0.2.0", "tags": ["service"]}))
        hello = json.loads(await self.ws.recv())
        assert hello["type"] == "HELLO", hello
        self.key = hello["uuid"]  # the original's services use HELLO's uuid as their file key
        await self.ws.send(json.dumps({"type": "SERVICE_CREATE", "service": self.service, "nickname": "Stream"}))
        while True:
            created = json.loads(await self.ws.recv())
            if created["type"] == "SERVICE_CREATE_RESULT" and created.get("seq") == 0:
                assert created["successful"], created
                return

    async def stream(self, count: int, per_second: float = 50) -> None:
        for tick in range(count):
            target = {"type": "SERVICE", "service": self.service}
            await self.ws.send(json.dumps({"type": "MESSAGE", "target": target, "data": {"tick": tick}}))
            self.sent += 1
            await asyncio.sleep(1 / per_second)

    async def serve(self) -> None:
        async for frame in self.ws:
            payload = json.loads(frame)
            kind = payload["type"]
            if kind == "OK":
                self.oks += 1
            elif kind == "MESSAGE" and "request" in payload["data"]:
                await self.answer(payload["origin"]["uuid"], payload["data"])

    async def answer(self, requester: str, data: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"answer": data["request"]}
        if "file" in data:
            async with httpx.AsyncClient(timeout=30) as http:
                got = await http.get(self.server_url + data["file"], headers={"x-fs-key": self.key})
            self.downloads.append((got.status_code, got.content))
            reply["sha256"] = hashlib.sha256(got.content).hexdigest()
        target = {"type": "SERVICE_CLIENT_UUID", "service": self.service, "uuid": requester}
        await self.ws.send(json.dumps({"type": "MESSAGE", "target": target, "data": reply}))
        self.sent += 1


SUBPROTOCOL_AS_OLD_CLIENTS_SENT = "ert-concierge"


async def test_a_service_written_like_the_originals_streams_answers_and_downloads_with_its_own_key(
    deployment: Deployment, name: str
) -> None:
    service = OriginalStyleService(deployment.url, deployment.ws_url, f"{name}_svc", f"{name}_stream")
    await service.start()
    serving = asyncio.create_task(service.serve())
    viewer = await connect(deployment.ws_url, f"{name}_viewer")
    uploader = await connect(deployment.ws_url, f"{name}_up")
    try:
        for client in (viewer, uploader):
            joined = await client.request({"type": "SELF_SUBSCRIBE", "service": service.service})
            assert joined["successful"], joined
        ticks = 100
        streaming = asyncio.create_task(service.stream(ticks))

        # Meanwhile the uploader stores a file and names it in a MESSAGE to the service.
        body = os.urandom(300_000)
        async with httpx.AsyncClient(base_url=deployment.url, timeout=60) as http:
            put = await http.put(
                f"/fs/{uploader.name}/scans/run 1.bin", content=body, headers={"x-fs-key": uploader.key}
            )
        assert put.status_code == 201, put.text
        to_service = {"type": "SERVICE", "service": service.service}
        asked = await uploader.request(
            {
                "type": "MESSAGE",
                "target": to_service,
                "data": {"request": "load", "file": f"/fs/{uploader.name}/scans/run%201.bin"},
            }
        )
        assert asked["type"] == "OK", asked
        asked = await viewer.request({"type": "MESSAGE", "target": to_service, "data": {"request": "status"}})
        assert asked["type"] == "OK", asked

        load = await uploader.expect(lambda p: p.get("type") == "MESSAGE" and "answer" in p["data"], timeout=30)
        assert load["data"] == {"answer": "load", "sha256": hashlib.sha256(body).hexdigest()}
        assert load["origin"]["name"] == service.name and load["origin"]["service"]["name"] == service.service
        status = await viewer.expect(lambda p: p.get("type") == "MESSAGE" and "answer" in p["data"], timeout=30)
        assert status["data"] == {"answer": "status"}
        assert service.downloads == [(202, body)]

        await streaming
        for client in (viewer, uploader):
            got = []
            while len(got) < ticks:
                message = await client.expect(lambda p: p.get("type") == "MESSAGE" and "tick" in p["data"], timeout=30)
                got.append(message["data"]["tick"])
            assert got == list(range(ticks))
        async with asyncio.timeout(30):
            while service.oks < service.sent:
                await asyncio.sleep(0.05)
        assert service.oks == ticks + 2
    finally:
        serving.cancel()
        await service.ws.close()
        await viewer.close()
        await uploader.close()


# -- 2. CORS on /fs/ and /tus/ --------------------------------------------------------------

REQUEST_HEADERS = (
    "authorization, x-fs-key, content-type, range, if-none-match, if-match, if-range, x-checksum-sha256, "
    "content-digest, tus-resumable, upload-length, upload-offset, upload-metadata, upload-defer-length, "
    "upload-concat, x-http-method-override"
)
EXPOSED = {
    "etag", "content-range", "content-disposition", "content-length", "location", "upload-offset",
    "upload-length", "upload-metadata", "tus-version", "tus-resumable", "tus-max-size", "tus-extension",
    "accept-ranges",
}  # fmt: skip


def listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/fs/alice/scans/a.png", "POST"), ("/fs/alice/", "POST"), ("/fs/alice/a.bin", "PUT"), ("/fs/alice/a.bin", "DELETE"),
     ("/fs/", "GET"), ("/tus/alice/", "POST"), (f"/tus/alice/{uuid.uuid4().hex}", "PATCH")],
)  # fmt: skip
def test_a_preflight_is_answered_with_the_key_range_checksum_and_tus_headers_allowed(
    deployment: Deployment, path: str, method: str
) -> None:
    answer = raw(
        deployment,
        "OPTIONS",
        path.encode(),
        {"Origin": ORIGIN, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": REQUEST_HEADERS},
    )
    assert answer.status in {200, 204}, (answer.status, answer.body[:200])
    assert answer.headers["access-control-allow-origin"] == "*"
    assert listed(REQUEST_HEADERS) <= listed(answer.headers.get("access-control-allow-headers"))
    assert {"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"} <= {
        m.upper() for m in listed(answer.headers.get("access-control-allow-methods"))
    }
    assert "access-control-allow-credentials" not in answer.headers


async def test_answers_and_refusals_under_fs_and_tus_carry_cors_headers(http: httpx.AsyncClient, owner: Client) -> None:
    cross = {"Origin": ORIGIN, "x-fs-key": owner.key}

    def cors_ok(response: httpx.Response) -> None:
        assert response.headers.get("access-control-allow-origin") == "*", (
            response.status_code,
            dict(response.headers),
        )
        assert listed(response.headers.get("access-control-expose-headers")) >= EXPOSED

    put = await http.put(f"/fs/{owner.name}/a.txt", content=b"0123456789", headers=cross)
    assert put.status_code == 201
    cors_ok(put)
    whole = await http.get(f"/fs/{owner.name}/a.txt", headers=cross)  # behind nginx: sent by nginx (X-Accel)
    assert whole.status_code == 202 and whole.content == b"0123456789"
    assert whole.headers["content-disposition"].startswith("attachment") and whole.headers["etag"]
    cors_ok(whole)
    part = await http.get(f"/fs/{owner.name}/a.txt", headers={**cross, "Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == b"2345"
    cors_ok(part)
    listing = await http.get(f"/fs/{owner.name}/", headers=cross)
    assert listing.status_code == 200
    cors_ok(listing)
    created = await http.post(
        f"/tus/{owner.name}/",
        headers={**cross, "Tus-Resumable": "1.0.0", "Upload-Length": "3", "Upload-Metadata": "filename dHVzLnR4dA=="},
    )
    assert created.status_code == 201 and created.headers["location"]
    cors_ok(created)
    refused = await http.get(f"/fs/{owner.name}/a.txt", headers={"Origin": ORIGIN, "x-fs-key": str(uuid.uuid4())})
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    cors_ok(refused)
    missing = await http.get(f"/fs/{owner.name}/nope.txt", headers=cross)
    assert missing.status_code == 404
    cors_ok(missing)
    deleted = await http.delete(f"/fs/{owner.name}/a.txt", headers=cross)
    assert deleted.status_code == 200
    cors_ok(deleted)


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/actions/disconnect", "/admin/login/", "/login/"])
def test_the_dashboard_and_admin_stay_same_origin(deployment: Deployment, path: str) -> None:
    preflight = raw(deployment, "OPTIONS", path.encode(), {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    plain = raw(deployment, "GET", path.encode(), {"Origin": ORIGIN})
    for answer in (preflight, plain):
        assert not any(header.startswith("access-control-") for header in answer.headers), answer.headers


def test_a_list_of_origins_restricts_cors(tmp_path: Path) -> None:
    allowed = "http://127.0.0.1:8111"
    started = start_deployment("run_command", tmp_path, FILESHARE_CORS_ORIGINS=f"{allowed},https://lab.example.org")
    try:
        for origin, expected in (
            (allowed, allowed),
            ("https://lab.example.org", "https://lab.example.org"),
            (ORIGIN, None),
        ):
            preflight = raw(
                started, "OPTIONS", b"/fs/alice/a.bin", {"Origin": origin, "Access-Control-Request-Method": "PUT"}
            )
            answer = raw(started, "GET", b"/fs/", {"Origin": origin})
            for response in (preflight, answer):
                assert response.headers.get("access-control-allow-origin") == expected, (origin, response.headers)
        assert answer.status == 401  # the refusal itself is unchanged
    finally:
        started.stop()


# -- 4. Byte-exact paths ------------------------------------------------------------------

REPLACED = "%EF%BF%BD%EF%BF%BD.txt"  # U+FFFD twice: what "%ff%fe.txt" became when decoded with replacement
NOT_UTF8 = [
    pytest.param(b"%ff%fe.txt", id="ff-fe"),
    pytest.param(b"%c0%ae%c0%ae", id="overlong-dot-dot"),
    pytest.param(b"%C0%AE%C0%AE/x.txt", id="overlong-dot-dot-folder"),
    pytest.param(b"dir%ed%a0%80/x.txt", id="encoded-surrogate"),
    pytest.param(b"caf%e9.txt", id="latin-1"),
]
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]


@pytest.mark.parametrize("bad", NOT_UTF8)
async def test_a_path_that_is_not_utf8_is_refused_for_every_method_and_nothing_changes(
    deployment: Deployment, http: httpx.AsyncClient, owner: Client, bad: bytes
) -> None:
    key = {"x-fs-key": owner.key}
    original = await http.put(f"/fs/{owner.name}/{REPLACED}", content=b"keep me", headers=key)
    assert original.status_code == 201
    name = owner.name.encode()
    targets = [b"/fs/" + name + b"/" + bad, b"/fs/" + name + bad + b"/x.txt", b"/fs/" + name + b"/sub/" + bad + b"/"]
    targets += [b"/tus/" + name + bad + b"/", b"/tus/" + name + b"/" + bad]
    for target in targets:
        for method in METHODS:
            body = b"replaced!" if method in {"PUT", "POST", "PATCH"} else b""
            headers = {**key, "Content-Type": "application/offset+octet-stream", "Tus-Resumable": "1.0.0",
                       "Upload-Length": "9", "Upload-Offset": "0"}  # fmt: skip
            answer = raw(deployment, method, target, headers, body)
            assert answer.status == 400, (method, target, answer.status, answer.body[:200])
            if method != "HEAD":
                assert_json_error(answer, 400, "invalid_path")
                assert "UTF-8" in answer.json()["detail"]
    kept = await http.get(f"/fs/{owner.name}/{REPLACED}", headers=key)
    assert kept.status_code == 202 and kept.content == b"keep me"
    listing = await http.get(f"/fs/{owner.name}/", headers=key)
    assert [entry["path"] for entry in listing.json()["entries"]] == ["\ufffd\ufffd.txt"]


async def test_a_valid_utf8_name_is_stored_exactly(http: httpx.AsyncClient, owner: Client) -> None:
    key = {"x-fs-key": owner.key}
    put = await http.put(f"/fs/{owner.name}/caf%C3%A9/%F0%9F%93%84.txt", content=b"ok", headers=key)
    assert put.status_code == 201 and put.json()["path"] == "caf\u00e9/\U0001f4c4.txt"


# -- 5. Every refusal under /fs/ and /tus/ is the JSON error ----------------------------------


@pytest.mark.parametrize(
    "target", [b"/fs//x", b"/fs//", b"/tus/a/b/c", b"/tus/a/b/c/", b"/tus//"], ids=lambda t: t.decode()
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_route_under_fs_or_tus_answers_the_json_404(
    deployment: Deployment, target: bytes, method: str
) -> None:
    assert_json_error(raw(deployment, method, target), 404, "not_found")


def test_a_folder_named_without_its_slash_still_redirects(deployment: Deployment) -> None:
    answer = raw(deployment, "GET", b"/fs/alice?x=1")
    assert answer.status == 301 and answer.headers["location"].endswith("/fs/alice/?x=1")


@pytest.mark.parametrize("target", [b"/fs/a/b\xffc", b"/fs/a b", b"/fs/a\x00b", b"/tus/a\tb/"], ids=repr)
def test_a_request_line_the_server_cannot_parse_answers_the_json_400(deployment: Deployment, target: bytes) -> None:
    # Twisted (run command) or nginx (recipe) refuses these before the application runs.
    assert_json_error(raw(deployment, "GET", target), 400, "bad_request")


def test_a_header_name_the_server_cannot_parse_answers_json(deployment: Deployment) -> None:
    answer = raw(deployment, "GET", b"/fs/", {"X(A)": "x"})
    if deployment.kind == "recipe":  # nginx drops invalid header names (ignore_invalid_headers)
        assert_json_error(answer, 401, "unauthorized")
    else:
        assert_json_error(answer, 400, "bad_request")


@pytest.mark.parametrize("target", [b"/fs/a/b\xffc", b"/fs/a b", b"/fs/a\x00b"], ids=repr)
def test_plain_daphne_answers_an_unparsable_request_line_with_the_json_400(
    plain_daphne: Deployment, target: bytes
) -> None:
    assert_json_error(raw(plain_daphne, "GET", target), 400, "bad_request")


# -- 3. The front-end folder, same-origin -------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "status", "content_type", "starts"),
    [
        (b"/app/", 200, "text/html", b"<!doctype html><title>front</title>"),
        (b"/app/js/app.js", 200, "text/javascript", b"console.log"),
        (b"/app/style.css", 200, "text/css", b"body"),
        (b"/app/model.wasm", 200, "application/wasm", bytes(range(16))),
        (b"/app/sub/", 200, "text/html", b"<!doctype html><title>sub</title>"),
    ],
)
def test_the_frontend_folder_is_served_with_content_types_and_index_files(
    deployment: Deployment, target: bytes, status: int, content_type: str, starts: bytes
) -> None:
    answer = raw(deployment, "GET", target)
    assert answer.status == status
    assert answer.headers["content-type"].split(";")[0] == content_type
    assert answer.body.startswith(starts)
    head = raw(deployment, "HEAD", target)
    assert head.status == status and head.body == b""


@pytest.mark.parametrize(
    ("target", "location"),
    [(b"/app", "/app/"), (b"/app/sub", "/app/sub/"), (b"/app/index.html", "/app/"),
     (b"/app/index.html?server=http%3A%2F%2Fh&name=n", "/app/?server=http%3A%2F%2Fh&name=n")],
)  # fmt: skip
def test_a_frontend_folder_redirects_to_its_index_with_the_query(
    deployment: Deployment, target: bytes, location: str
) -> None:
    answer = raw(deployment, "GET", target)
    assert answer.status in {301, 302}
    resolved = httpx.URL(deployment.url + target.decode()).join(answer.headers["location"])
    assert str(resolved).removeprefix(deployment.url) == location


@pytest.mark.parametrize(
    "target",
    [b"/app/../manage.py", b"/app/%2e%2e/manage.py", b"/app/..%2fmanage.py", b"/app/%2e%2e%2fconcierge_site/settings.py",
     b"/app/js/../../manage.py", b"/app/nope.html", b"/app/js/", b"/app//etc/passwd", b"/app/%2fetc%2fpasswd"],
)  # fmt: skip
def test_the_frontend_never_serves_a_file_outside_its_folder(deployment: Deployment, target: bytes) -> None:
    answer = raw(deployment, "GET", target)
    assert answer.status in {301, 302, 400, 404}, (target, answer.status)
    assert (
        b"SECRET_KEY" not in answer.body
        and b"root:" not in answer.body
        and b"execute_from_command_line" not in answer.body
    )


# -- The settings and the UTF-8 check, in-process ----------------------------------------------


@given(st.binary(max_size=40))
def test_require_utf8_refuses_exactly_the_byte_strings_that_are_not_utf8(name: bytes) -> None:
    from urllib.parse import quote_from_bytes

    from fileshare.exceptions import InvalidPath
    from fileshare.store.paths import require_utf8

    try:
        name.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    raw_path = b"/fs/alice/" + quote_from_bytes(name, safe="/").encode()
    if valid:
        require_utf8(raw_path)
    else:
        with pytest.raises(InvalidPath):
            require_utf8(raw_path)


def test_cors_origins_default_to_any_and_a_list_restricts(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from fileshare import conf
    from fileshare.fileapi import cors

    settings.FILESHARE_CORS_ORIGINS = "*"
    assert conf.cors_origins() is None
    assert cors.library_defaults()["CORS_ALLOW_ALL_ORIGINS"] is True
    settings.FILESHARE_CORS_ORIGINS = "https://lab.example.org/, http://127.0.0.1:8000"
    assert conf.cors_origins() == ["https://lab.example.org", "http://127.0.0.1:8000"]
    defaults = cors.library_defaults()
    assert defaults["CORS_ALLOW_ALL_ORIGINS"] is False and defaults["CORS_ALLOW_CREDENTIALS"] is False
    assert defaults["CORS_ALLOWED_ORIGINS"] == ["https://lab.example.org", "http://127.0.0.1:8000"]
    settings.FILESHARE_CORS_ORIGINS = ["lab.example.org"]
    with pytest.raises(ImproperlyConfigured):
        conf.cors_origins()


def test_the_frontend_prefix_is_a_path_of_its_own(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from fileshare import conf

    settings.FILESHARE_FRONTEND_URL = "/babylonjs"
    assert conf.frontend_url() == "/babylonjs/"
    for taken in ("/fs/", "/tus", "/", "app/"):
        settings.FILESHARE_FRONTEND_URL = taken
        with pytest.raises(ImproperlyConfigured):
            conf.frontend_url()
