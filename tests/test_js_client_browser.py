"""The JavaScript client in real Chromium, imported by a plain page served from another origin.

A static server on a second loopback port serves a page that imports the built ES module
(clients/js/dist, no bundler, nothing from a CDN); the concierge runs on its own port, so
every request of the page is cross-origin. The websocket works across origins as is; the
file API and tus need the server's CORS headers (the real-clients issue).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import launch_browser, require_chromium, save_screenshot
from tests.support.js_client import JS_CLIENT, build_js_client
from tests.support.server import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>concierge-client in a plain page</title>
<script src="/tus/tus.min.js"></script>
<pre id="log"></pre>
<script type="module">
  import { ConciergeClient, ReplyError } from "/client/index.js";
  const log = (line) => (document.getElementById("log").textContent += line + "\\n");

  // Everything the test checks, as plain data for page.evaluate.
  window.session = async (server, name) => {
    const client = new ConciergeClient(server, { name, tags: ["browser"] });
    window.client = client;
    const hello = await client.connect();
    log(`HELLO ${hello.client.name}`);
    const events = [];
    const reading = (async () => {
      for await (const event of client) {
        if (event.type === "MESSAGE") events.push(event.data);
        if (events.length === 2) return;
      }
    })();
    await client.sendTo(name, "to myself");
    await client.broadcast("to everyone");
    await reading;
    let refused = null;
    try {
      await client.sendTo("nobody_here_at_all", 1);
    } catch (error) {
      refused = error instanceof ReplyError ? error.type : String(error);
    }
    const clients = (await client.fetchClients()).map((info) => info.name);
    log(`events ${events.join(", ")}`);
    return { origin: location.origin, hello: hello.type, name: hello.client.name, events, refused, clients };
  };

  window.files = async (size) => {
    const client = window.client;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i * 7) % 251;
    const up = [];
    const stored = await client.files.upload("browser/data.bin", new Blob([data]), { onProgress: (l, t) => up.push([l, t]) });
    const down = [];
    const blob = await client.files.download("browser/data.bin", { onProgress: (l, t) => down.push([l, t]) });
    const back = new Uint8Array(await blob.arrayBuffer());
    const same = back.length === data.length && back.every((byte, i) => byte === data[i]);
    const listing = (await client.files.list("browser")).entries.map((entry) => entry.path);
    await client.files.delete("browser/data.bin");
    log(`files: uploaded ${stored.size}, downloaded ${back.length}`);
    return { stored: stored.size, up, down, same, listing };
  };

  window.resumable = async (size) => {
    const client = window.client;
    const data = new Uint8Array(size).fill(42);
    const progress = [];
    await client.files.uploadResumable("browser/tus.bin", new Blob([data]), {
      tus: window.tus, chunkSize: 64 * 1024, onProgress: (l, t) => progress.push([l, t]),
    });
    const blob = await client.files.download("browser/tus.bin");
    return { size: blob.size, progress };
  };
  window.ready = true;
</script>
"""


class PageHandler(SimpleHTTPRequestHandler):
    """Serves the page at /, the built module at /client/ and tus-js-client's browser build at /tus/."""

    def __init__(self, *args: Any, page_dir: Path, **kwargs: Any) -> None:
        self.page_dir = page_dir
        super().__init__(*args, directory=str(page_dir), **kwargs)

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0]
        for prefix, root in (
            ("/client/", JS_CLIENT / "dist"),
            ("/tus/", JS_CLIENT / "node_modules/tus-js-client/dist"),
        ):
            if clean.startswith(prefix):
                return str(root / clean[len(prefix) :])
        return super().translate_path(path)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static server on its own loopback port: another origin than the concierge's."""
    build_js_client()
    page_dir = tmp_path_factory.mktemp("page")
    (page_dir / "index.html").write_text(PAGE)
    http = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(PageHandler, page_dir=page_dir))
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with launch_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser, page_origin: str, server: ServerProcess, name: str) -> Iterator[Page]:
    """The page, loaded from its origin, with a connected client named after the test."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{page_origin}/")
    page.wait_for_function("window.ready === true", timeout=20_000)
    assert page.evaluate("location.origin") != server.url
    yield page
    assert not errors, errors
    context.close()


def test_a_page_on_another_origin_connects_calls_and_gets_events(page: Page, server: ServerProcess, name: str) -> None:
    result = page.evaluate("([server, name]) => window.session(server, name)", [server.url, name])
    assert result["hello"] == "HELLO" and result["name"] == name
    assert result["events"] == ["to myself", "to everyone"]
    assert result["refused"] == "INVALID_NAME"
    assert name in result["clients"]
    save_screenshot(page, "js-client-session")


def test_a_page_on_another_origin_uploads_and_downloads_with_progress(
    page: Page, server: ServerProcess, name: str
) -> None:
    """Needs CORS on /fs/ (the real-clients issue): without it the browser blocks the requests."""
    page.evaluate("([server, name]) => window.session(server, name)", [server.url, name])
    size = 2 * 1024 * 1024 + 3
    result = page.evaluate("(size) => window.files(size)", size)
    assert result["stored"] == size and result["same"]
    assert result["listing"] == ["data.bin"]
    for progress in (result["up"], result["down"]):
        assert progress, "no progress was reported"
        loaded = [step[0] for step in progress]
        assert loaded == sorted(loaded) and loaded[-1] == size
        assert progress[-1][1] == size
    save_screenshot(page, "js-client-files")


def test_a_page_on_another_origin_uploads_through_tus(page: Page, server: ServerProcess, name: str) -> None:
    """tus-js-client's browser build passed as `tus`; needs CORS on /tus/ and /fs/."""
    page.evaluate("([server, name]) => window.session(server, name)", [server.url, name])
    result = page.evaluate("(size) => window.resumable(size)", 300_000)
    assert result["size"] == 300_000
    assert result["progress"][-1] == [300_000, 300_000]
