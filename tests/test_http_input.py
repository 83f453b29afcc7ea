"""No HTTP 500 from a client's input: malformed multipart bodies, huge Range numbers, form
file names (docs/limits.md), against a real server."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.support.clients import Client
from tests.support.server import ServerProcess


def assert_refused(response: httpx.Response, *statuses: int) -> dict[str, str]:
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    return body


def assert_no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()[-3000:]


def _parts(boundary: str, parts: list[tuple[str, bytes]]) -> bytes:
    out = b""
    for headers, content in parts:
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode("latin-1") + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _file_part(name: str = "a.txt", field: str = "file") -> tuple[str, bytes]:
    return (f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\nContent-Type: text/plain', b"x")


B = "b0undary"
MALFORMED: dict[str, tuple[str, bytes]] = {
    "no boundary": ("multipart/form-data", _parts(B, [_file_part()])),
    "empty boundary": ("multipart/form-data; boundary=", _parts(B, [_file_part()])),
    "1000-character boundary": ("multipart/form-data; boundary=" + "b" * 1000, _parts("b" * 1000, [_file_part()])),
    "101 files": (f"multipart/form-data; boundary={B}", _parts(B, [_file_part(f"f{i}.txt") for i in range(101)])),
    "10,000 fields": (
        f"multipart/form-data; boundary={B}",
        _parts(B, [(f'Content-Disposition: form-data; name="f{i}"', b"v") for i in range(10_000)]),
    ),
    "a 3 MB field": (
        f"multipart/form-data; boundary={B}",
        _parts(B, [('Content-Disposition: form-data; name="big"', b"v" * 3_000_000), _file_part()]),
    ),
    "a 1 MB part header": (
        f"multipart/form-data; boundary={B}",
        _parts(
            B, [(f'Content-Disposition: form-data; name="file"; filename="a.txt"\r\nX-Pad: {"p" * 1_000_000}', b"x")]
        ),
    ),
    "garbage": (f"multipart/form-data; boundary={B}", os.urandom(50_000)),
    "10,000 urlencoded fields": (
        "application/x-www-form-urlencoded",
        "&".join(f"f{i}=v" for i in range(10_000)).encode(),
    ),
    "a part with no name": (f"multipart/form-data; boundary={B}", _parts(B, [("Content-Type: text/plain", b"x")])),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_form_to_a_folder_is_a_json_400_or_413(
    server: ServerProcess, http: httpx.AsyncClient, owner: Client, case: str
) -> None:
    content_type, body = MALFORMED[case]
    for target in (f"/fs/{owner.name}/", f"/fs/{owner.name}/one.txt"):
        response = await http.post(
            target, content=body, headers={"Authorization": owner.key, "Content-Type": content_type}
        )
        assert_refused(response, 400, 413)
    assert_no_traceback(server)


@pytest.mark.parametrize("digits", [5000, 4301, 20])
async def test_range_numbers_of_thousands_of_digits_are_answered_not_500(
    server: ServerProcess, http: httpx.AsyncClient, owner: Client, digits: int
) -> None:
    data = os.urandom(1000)
    url = f"/fs/{owner.name}/r.bin"
    assert (await http.put(url, content=data, headers={"Authorization": owner.key})).status_code == 201
    huge = "9" * digits
    past_the_end = await http.get(url, headers={"Authorization": owner.key, "Range": f"bytes={huge}-"})
    assert_refused(past_the_end, 416)
    assert past_the_end.headers["content-range"] == "bytes */1000"
    to_any_end = await http.get(url, headers={"Authorization": owner.key, "Range": f"bytes=10-{huge}"})
    assert (to_any_end.status_code, to_any_end.content) == (206, data[10:])
    suffix = await http.get(url, headers={"Authorization": owner.key, "Range": f"bytes=-{huge}"})
    assert (suffix.status_code, suffix.content) == (206, data)
    zeros = await http.get(url, headers={"Authorization": owner.key, "Range": f"bytes={'0' * digits}5-6"})
    assert (zeros.status_code, zeros.content) == (206, data[5:7])
    assert_no_traceback(server)


async def test_a_form_file_name_with_folders_is_stored_at_that_path(http: httpx.AsyncClient, owner: Client) -> None:
    files = [("file", ("sub/dir/x.txt", b"deep", "text/plain")), ("file", ("top.txt", b"top", "text/plain"))]
    response = await http.post(f"/fs/{owner.name}/", files=files, headers={"Authorization": owner.key})
    assert response.status_code == 201, response.text
    assert sorted(f["path"] for f in response.json()["files"]) == ["sub/dir/x.txt", "top.txt"]
    got = await http.get(f"/fs/{owner.name}/sub/dir/x.txt", headers={"Authorization": owner.key})
    assert (got.status_code, got.content) == (202, b"deep")


@pytest.mark.parametrize("raw_name", [b"a\x00b.txt", b"../x.txt", b"/etc/x.txt", b"a\\b.txt", b"sub//x.txt", b"."])
async def test_a_form_file_name_that_is_no_plain_path_is_refused_not_changed(
    server: ServerProcess, http: httpx.AsyncClient, owner: Client, raw_name: bytes
) -> None:
    body = (
        f'--{B}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + raw_name
        + f'"\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n'.encode()
    )
    response = await http.post(
        f"/fs/{owner.name}/",
        content=body,
        headers={"Authorization": owner.key, "Content-Type": f"multipart/form-data; boundary={B}"},
    )
    refusal = assert_refused(response, 400)
    assert refusal["error"] in {"invalid_path", "bad_request"}
    listing = await http.get(f"/fs/{owner.name}/", headers={"Authorization": owner.key})
    assert listing.json()["entries"] == []
    assert_no_traceback(server)
