"""Bounded Hypothesis runs over the HTTP routes of /fs/ and /tus/ against a real server:
random methods, paths, key headers, ranges, tus headers, raw and multipart bodies.

Asserted for every request: no 5xx; every refusal (4xx) is the documented one-line
JSON error ``{"error", "detail"}`` (HEAD answers have no body); and, at the end of
each run, no traceback in the server's log. The owner's files, checked before and
after, are touched only by the owner's own writes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.clients import Client, identify_payload
from tests.support.server import ServerProcess, base_env, manage, start_server

RUNS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)


@dataclass
class Live:
    """Identified clients kept connected by a loop in a thread of their own."""

    owner: Client
    other: Client
    loop: asyncio.AbstractEventLoop


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    env = base_env(
        data_dir,
        FILESHARE_MAX_UPLOAD_BYTES=str(256 * 1024),
        FILESHARE_TUS_MAX_CHUNK_BYTES=str(64 * 1024),
        FILESHARE_CLIENT_QUOTA_BYTES=str(4 * 1024 * 1024),
    )
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


async def _quiet_client(ws_url: str, name: str) -> Client:
    """An identified client that sends no pings of its own (websockets draws their payload from
    the ``random`` module, which Hypothesis must have to itself); it answers the server's."""
    ws = await websockets.connect(ws_url, ping_interval=None, max_size=None)
    await ws.send(json.dumps(identify_payload(name)))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert hello["type"] == "HELLO", hello
    return Client(ws, hello)


@pytest.fixture(scope="module")
def live(fuzz_server: ServerProcess) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

    owner = run(_quiet_client(fuzz_server.ws_url, "fuzz_owner"))
    other = run(_quiet_client(fuzz_server.ws_url, "fuzz_other"))
    yield Live(owner, other, loop)
    run(owner.close())
    run(other.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def http(fuzz_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_server.url, timeout=60) as client:
        yield client


printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
header_value = printable.map(str.strip)
"""A header value h11 will send (no leading or trailing space)."""
any_text = st.text(max_size=40)
segment = st.one_of(any_text, st.sampled_from(["", " ", "a", "%2e%2e", ".a", "\\", "a\0b", "日本"])).filter(
    lambda s: s == "" or s.strip(".") != ""
)
"""A path segment; never only dots, which httpx resolves itself (tests/test_hostile_paths.py
sends those over a raw socket)."""
methods = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "TRACE"])
digits = st.one_of(st.integers(0, 10**6).map(str), st.integers(4300, 6000).map(lambda n: "9" * n), st.just(""))
ranges = st.one_of(
    st.none(),
    st.builds(lambda a, b: f"bytes={a}-{b}", digits, digits),
    st.builds(lambda a: f"bytes=-{a}", digits),
    header_value,
)


def key_headers(live: Live) -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from(
        [
            {},
            {"Authorization": live.owner.key},
            {"Authorization": f"Bearer {live.owner.key}"},
            {"x-fs-key": live.owner.key},
            {"Authorization": live.other.key},
            {"Authorization": "Bearer 00000000-0000-0000-0000-000000000000"},
            {"Authorization": "Basic abc"},
            {"Authorization": "not a uuid"},
        ]
    )


def assert_answer(response: httpx.Response, method: str) -> None:
    assert response.status_code < 500, (method, str(response.url), response.status_code, response.text[:300])
    if response.status_code >= 400 and method != "HEAD":
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(
                f"not JSON: {method} {response.url} {response.status_code} {response.text[:300]!r}"
            ) from None
        assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
        assert body["detail"] and isinstance(body["error"], str)
        assert "\n" not in response.text.strip()


def owner_files(http: httpx.Client, live: Live) -> list[tuple[str, int]]:
    listing = http.get(f"/fs/{live.owner.name}/", headers={"Authorization": live.owner.key}).json()
    return sorted((e["path"], e["size_bytes"]) for e in listing["entries"] if e["type"] == "FILE")


def assert_clean_log(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()[-4000:]


def test_fuzzed_file_api_requests_get_no_5xx_and_json_refusals(
    fuzz_server: ServerProcess, live: Live, http: httpx.Client
) -> None:
    @RUNS
    @given(
        method=methods,
        folder=st.sampled_from([live.owner.name, live.other.name, "nobody_here", "_published"]),
        path=st.one_of(
            st.just("fixed.bin"),  # a file that exists: its ranges and preconditions are read
            st.lists(segment, max_size=4).map(lambda parts: "/".join(quote(p, safe="") for p in parts)),
        ),
        keys=key_headers(live),
        range_header=ranges,
        body=st.one_of(st.just(b""), st.binary(max_size=2048), st.just(b"z" * 300_000)),
        extra=st.dictionaries(
            st.sampled_from(
                [
                    "If-None-Match",
                    "If-Match",
                    "If-Range",
                    "If-Modified-Since",
                    "X-Checksum-SHA256",
                    "Content-Digest",
                    "Content-Type",
                    "Expect",
                ]
            ),
            header_value,
            max_size=3,
        ),
    )
    def one(
        method: str,
        folder: str,
        path: str,
        keys: dict[str, str],
        range_header: str | None,
        body: bytes,
        extra: dict[str, str],
    ) -> None:
        headers = {**keys, **extra}
        if range_header is not None:
            headers["Range"] = range_header
        if extra.get("Expect"):
            headers.pop("Expect")  # httpx does not speak 100-continue; covered in test_limits_before_body
        response = http.request(method, f"/fs/{folder}/{path}", headers=headers, content=body or None)
        assert_answer(response, method)

    fixed = http.put(f"/fs/{live.owner.name}/fixed.bin", content=b"f" * 1000, headers={"Authorization": live.owner.key})
    assert fixed.status_code == 201
    one()
    assert_clean_log(fuzz_server)


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for field, filename, content in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode("utf-8", "replace") + content + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode("utf-8", "replace")


def test_fuzzed_multipart_uploads_get_no_5xx_and_json_refusals(
    fuzz_server: ServerProcess, live: Live, http: httpx.Client
) -> None:
    boundaries = st.one_of(
        st.just("b0undary"), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
    )
    parts = st.lists(st.tuples(printable, st.one_of(st.none(), any_text, segment), st.binary(max_size=512)), max_size=6)

    @RUNS
    @given(
        boundary=boundaries,
        declared=st.one_of(st.none(), boundaries),
        form=parts,
        garbage=st.one_of(st.just(b""), st.binary(max_size=256)),
        target=st.sampled_from(["", "one.txt", "sub/dir/", "a/b.txt"]),
        content_type=st.sampled_from(["multipart/form-data", "application/x-www-form-urlencoded", "text/plain", ""]),
    )
    def one(
        boundary: str,
        declared: str | None,
        form: list[tuple[str, str | None, bytes]],
        garbage: bytes,
        target: str,
        content_type: str,
    ) -> None:
        body = _multipart(boundary, form) + garbage
        ctype = content_type + (f"; boundary={declared}" if declared is not None else "")
        headers = {"Authorization": live.owner.key}
        if ctype:
            headers["Content-Type"] = ctype
        response = http.post(f"/fs/{live.owner.name}/{target}", content=body, headers=headers)
        assert_answer(response, "POST")
        if response.status_code == 201:  # keep within the quota: remove what was stored
            stored = response.json().get("files") or [response.json()]
            for item in stored:
                http.delete(f"/fs/{live.owner.name}/{quote(item['path'])}", headers=headers)

    before = owner_files(http, live)
    one()
    assert owner_files(http, live) == before
    assert_clean_log(fuzz_server)


def test_fuzzed_tus_requests_get_no_5xx_and_json_refusals(
    fuzz_server: ServerProcess, live: Live, http: httpx.Client
) -> None:
    numbers = st.one_of(
        st.none(), st.integers(-5, 10**6).map(str), st.integers(4300, 5000).map(lambda n: "7" * n), header_value
    )

    @RUNS
    @given(
        method=st.sampled_from(["OPTIONS", "POST", "HEAD", "PATCH", "DELETE", "GET", "PUT"]),
        override=st.one_of(st.none(), st.sampled_from(["PATCH", "DELETE", "HEAD", "OPTIONS", "BREW"])),
        folder=st.sampled_from([live.owner.name, live.other.name, "nobody_here"]),
        upload=st.one_of(
            st.just(""), st.uuids().map(str), printable.filter(lambda s: "/" not in s).map(lambda s: quote(s, safe=""))
        ),
        keys=key_headers(live),
        version=st.one_of(st.none(), st.sampled_from(["1.0.0", "0.2.0", ""])),
        length=numbers,
        offset=numbers,
        metadata=st.one_of(st.none(), header_value, st.just("filename ZmlsZS50eHQ="), st.just("filename Li4vZXRj")),
        checksum=st.one_of(st.none(), header_value, st.just("sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=")),
        content_type=st.one_of(st.none(), st.just("application/offset+octet-stream"), header_value),
        body=st.one_of(st.just(b""), st.binary(max_size=1024)),
    )
    def one(
        method: str,
        override: str | None,
        folder: str,
        upload: str,
        keys: dict[str, str],
        version: str | None,
        length: str | None,
        offset: str | None,
        metadata: str | None,
        checksum: str | None,
        content_type: str | None,
        body: bytes,
    ) -> None:
        headers = dict(keys)
        for name, value in (
            ("X-HTTP-Method-Override", override),
            ("Tus-Resumable", version),
            ("Upload-Length", length),
            ("Upload-Offset", offset),
            ("Upload-Metadata", metadata),
            ("Upload-Checksum", checksum),
            ("Content-Type", content_type),
        ):
            if value is not None:
                headers[name] = value
        response = http.request(method, f"/tus/{folder}/{upload}", headers=headers, content=body or None)
        assert_answer(response, method)  # the method on the wire decides whether a body comes

    one()
    assert_clean_log(fuzz_server)


def test_fuzzed_downloads_of_a_file_get_no_5xx_and_json_refusals(
    fuzz_server: ServerProcess, live: Live, http: httpx.Client
) -> None:
    url = f"/fs/{live.owner.name}/download.bin"
    stored = http.put(url, content=bytes(range(256)) * 4, headers={"Authorization": live.owner.key})
    assert stored.status_code == 201
    validators = st.one_of(
        st.none(), header_value, st.just(f'"{stored.json()["sha256"]}"'), st.just("Thu, 01 Jan 2099 00:00:00 GMT")
    )

    @RUNS
    @given(
        method=st.sampled_from(["GET", "HEAD"]),
        range_header=ranges,
        if_range=validators,
        if_match=validators,
        if_none_match=validators,
        if_modified_since=validators,
    )
    def one(
        method: str,
        range_header: str | None,
        if_range: str | None,
        if_match: str | None,
        if_none_match: str | None,
        if_modified_since: str | None,
    ) -> None:
        headers = {"Authorization": live.other.key}
        for name, value in (
            ("Range", range_header),
            ("If-Range", if_range),
            ("If-Match", if_match),
            ("If-None-Match", if_none_match),
            ("If-Modified-Since", if_modified_since),
        ):
            if value is not None:
                headers[name] = value
        response = http.request(method, url, headers=headers)
        assert_answer(response, method)
        if response.status_code == 206:
            assert len(response.content) == int(response.headers["content-length"]) <= 1024

    one()
    assert_clean_log(fuzz_server)
