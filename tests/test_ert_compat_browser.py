"""A browser front-end written as the original ERT Concierge's works unchanged, in real Chromium.

The page (tests/browser_js/page/) connects to ``/ws``, identifies, uploads a form with
``fetch`` + ``FormData`` + ``x-fs-key``, PUTs, GETs with ``Range``, GETs, DELETEs and
runs tus-js-client (from npm, tests/browser_js/package.json). It is served

* from another origin: a static HTTP server of the test on a second loopback port,
  so every request to the concierge is cross-origin and the browser enforces CORS
  (no request is intercepted: Playwright would answer preflights itself);
* from the concierge itself (``FILESHARE_FRONTEND_DIR``, under ``/app/``): same origin.

Under the run command and the production recipe (nginx). And the other way round: a
concierge that lists other origins (``FILESHARE_CORS_ORIGINS``) is not usable from
the page's origin, and the browser sends nothing there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.browser import launch_browser, require_chromium
from tests.support.ert import BROWSER_JS, FRONTEND_URL, KINDS, TUS_BUNDLE, Deployment, StaticSite, start_deployment

pytestmark = pytest.mark.browser

PAGE_TIMEOUT_MS = 120_000


def require_js_assets() -> None:
    """Skip (on a laptop) or fail (in CI) when tus-js-client is not installed."""
    if TUS_BUNDLE.is_file():
        return
    message = f"{TUS_BUNDLE} is missing: run scripts/install-js-deps.sh (npm ci in tests/browser_js)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module", params=KINDS)
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_chromium()
    require_js_assets()
    started = start_deployment(
        request.param, tmp_path_factory.mktemp(f"browser-{request.param}"), FILESHARE_FRONTEND_DIR=str(BROWSER_JS)
    )
    yield started
    started.stop()


@pytest.fixture(scope="module")
def other_origin() -> Iterator[StaticSite]:
    site = StaticSite(BROWSER_JS)
    yield site
    site.close()


def run_page(url: str) -> tuple[dict[str, Any], list[str]]:
    """Open ``url`` in Chromium; the page's ``window.results`` and its console errors."""
    errors: list[str] = []
    with launch_browser() as browser:
        page = browser.new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        page.wait_for_function("window.results && window.results.done === true", timeout=PAGE_TIMEOUT_MS)
        results: dict[str, Any] = page.evaluate("window.results")
    return results, errors


def page_url(deployment: Deployment, served_from: str, other_origin: StaticSite, name: str) -> str:
    if served_from == "another origin":
        return f"{other_origin.origin}/page/index.html?{urlencode({'server': deployment.url, 'name': name})}"
    return f"{deployment.url}{FRONTEND_URL}page/index.html?{urlencode({'name': name})}"


@pytest.mark.parametrize("served_from", ["another origin", "the concierge"])
def test_the_originals_kind_of_front_end_uses_the_socket_the_file_api_and_tus(
    deployment: Deployment, other_origin: StaticSite, served_from: str
) -> None:
    name = f"b_{uuid.uuid4().hex[:10]}"
    results, errors = run_page(page_url(deployment, served_from, other_origin, name))

    assert "error" not in results, (results, errors)
    assert results["hello"] == {"subprotocol": "ert-concierge", "keyIsPublicId": False}
    assert results["ownMessage"] == {"originIsPublicId": True, "originIsKey": False}
    assert results["post"]["status"] == 201 and results["post"]["body"]["path"] == "uploads/form.txt"
    put = results["put"]
    assert put["status"] == 201 and put["body"]["size"] == 1000
    assert put["body"]["sha256"] in {put["checksum"], None}  # None behind nginx until computed
    expected = [i % 251 for i in range(10, 20)]
    assert results["range"] == {
        "status": 206,
        "contentRange": "bytes 10-19/1000",
        "etag": results["range"]["etag"],
        "bytes": expected,
    }
    assert results["range"]["etag"], "ETag must be exposed to the page"
    got = results["get"]
    assert got["status"] == 202 and got["text"] == "hello from a form" and got["length"] == "17"
    assert got["disposition"].startswith("attachment")
    assert results["delete"] == {"status": 200}
    assert results["afterDelete"] == {"status": 404, "error": "not_found"}
    assert results["tus"]["ok"], results["tus"]
    assert results["tusGet"] == {"status": 202, "same": True}
    assert results["listing"]["status"] == 200
    assert not [e for e in errors if "CORS" in e or "Access-Control" in e], errors


def test_a_concierge_listing_other_origins_is_not_usable_from_this_one(
    other_origin: StaticSite, tmp_path: Path
) -> None:
    require_chromium()
    require_js_assets()
    started = start_deployment("run_command", tmp_path, FILESHARE_CORS_ORIGINS="https://lab.example.org")
    try:
        name = f"b_{uuid.uuid4().hex[:10]}"
        results, errors = run_page(page_url(started, "another origin", other_origin, name))
        # The socket is not subject to CORS; the first fetch is blocked by the browser.
        assert results["hello"]["subprotocol"] == "ert-concierge"
        assert "post" not in results and "Failed to fetch" in results["error"], results
        assert any("Access-Control-Allow-Origin" in e for e in errors), errors
    finally:
        started.stop()
