"""fileshare/openapi.json stays true: it covers the app's HTTP routes, the server serves it, and
schemathesis, generating requests from it against a live server, finds no 5xx and no answer
(status, content type, headers, JSON body) that contradicts it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from django.urls import URLPattern, URLResolver
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks
from websockets.sync.client import ClientConnection, connect

from fileshare import urls as fileshare_urls
from fileshare.observe.health_views import OPENAPI_PATH
from tests.support.server import ServerProcess

DOCUMENT = json.loads(OPENAPI_PATH.read_text())
NOT_IN_THE_DOCUMENT = ("dashboard/", "static/", "openapi.json", "metrics", "_concierge/")
"""Routes for browsers (the dashboard, its login and static files), not programs; the document
itself; Prometheus' scrape (docs/metrics.md); nginx's internal admission check (docs/limits.md)."""

schema = schemathesis.openapi.from_dict(DOCUMENT)


@schemathesis.serializer("application/offset+octet-stream")
def tus_chunk(ctx: Any, value: Any) -> bytes:
    """A tus PATCH body is raw bytes, as application/octet-stream."""
    return value if isinstance(value, bytes) else str(value).encode()


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def template(route: str) -> str:
    """A Django route or regex as an OpenAPI path template with its parameters blanked: ``/fs/{}/``."""
    route = route.removeprefix("^").removesuffix("$").replace("/?", "/")
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "{}", route)
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "{}", route)


def routes(patterns: list[URLPattern | URLResolver]) -> set[str]:
    return {
        template(str(p.pattern)) for p in patterns if not str(p.pattern).lstrip("^").startswith(NOT_IN_THE_DOCUMENT)
    }


def test_the_document_is_openapi_3_1_and_describes_every_route_for_programs() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    documented = {re.sub(r"\{\w+\}", "{}", path) for path in DOCUMENT["paths"]}
    assert routes(fileshare_urls.urlpatterns) == documented - {"/openapi.json"}


def test_the_document_version_is_the_package_version() -> None:
    import fileshare

    assert DOCUMENT["info"]["version"] == fileshare.__version__


def test_every_documented_error_code_is_one_the_server_has() -> None:
    from fileshare import exceptions

    statuses = {
        cls.http_status for cls in vars(exceptions).values() if isinstance(cls, type) and hasattr(cls, "http_status")
    }
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for code, answer in operation["responses"].items():
                if answer.get("content", {}).get("application/json", {}).get("schema") == {
                    "$ref": "#/components/schemas/Error"
                }:
                    assert int(code) in statuses, f"{method.upper()} {path}: {code} is no FileshareError's status"


def test_the_server_serves_the_document(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json() == DOCUMENT


@pytest.mark.parametrize("path", ["/fs/schemathesis/", "/fs/schemathesis/one.txt"])
def test_a_multipart_post_without_a_boundary_is_a_400(identified: Identified, path: str) -> None:
    response = httpx.post(
        identified.url + path,
        content=b"x",
        headers={"Authorization": identified.key, "Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request" and "multipart" in response.json()["detail"]


@dataclass
class Identified:
    """A client that stays identified over /ws (a background thread answers the pings)."""

    url: str
    name: str
    key: str
    socket: ClientConnection


@pytest.fixture(scope="module")
def identified(server: ServerProcess) -> Iterator[Identified]:
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "IDENTIFY", "name": "schemathesis", "version": "0.2.0"}))
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "HELLO"
        reader = threading.Thread(target=_drain, args=(ws,), daemon=True)
        reader.start()
        yield Identified(server.url, hello["client"]["name"], hello["uuid"], ws)
    # Whatever the generated requests were, none left a traceback in the server's log.
    assert "Traceback" not in server.log()


def _drain(ws: ClientConnection) -> None:
    """Read the events the server sends (CLIENT_JOINED and the like) so that none piles up."""
    try:
        for _ in ws:
            pass
    except Exception:  # the socket closes when the module's tests end
        return


@pytest.mark.slow
# schemathesis 4.32 draws from the `random` module inside some strategies; Hypothesis warns.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_live_answers_match_the_document(case: Any, identified: Identified) -> None:
    # Requests act as the identified client in its own folder, so that successes are
    # exercised as well as refusals; the key is the one its HELLO gave.
    if "client" in (case.path_parameters or {}):
        case.path_parameters["client"] = identified.name
    case.headers = {**(case.headers or {}), "Authorization": identified.key}
    case.call_and_validate(base_url=identified.url, checks=CHECKS, timeout=30)
