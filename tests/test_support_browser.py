"""Smoke test for tests/support/browser.py: real headless Chromium on a loopback page."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.support.browser import launch_browser, require_chromium, save_screenshot

PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Browser smoke test</title>
<style>
  body { font-family: "DejaVu Sans", sans-serif; margin: 2em; }
  button { font-size: 20px; padding: 0.5em 1em; }
  #status { font-size: 24px; margin-top: 1em; }
</style></head>
<body>
  <h1>Browser smoke test</h1>
  <button id="go" onclick="document.getElementById('status').textContent = 'Clicked!'">
    Click me
  </button>
  <p id="status">Not clicked yet</p>
</body>
</html>
"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serve PAGE for every GET; stay quiet in the test output."""

    def do_GET(self) -> None:  # noqa: N802 (stdlib naming)
        """Answer any GET with the test page."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silence the default per-request stderr logging."""


@contextlib.contextmanager
def _serve_page() -> Iterator[str]:
    """Serve PAGE on 127.0.0.1 (ephemeral port) in a thread; yield its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.browser
def test_button_click_changes_text() -> None:
    """Chromium loads a loopback page, a click changes the text, a screenshot is saved."""
    require_chromium()
    with _serve_page() as url, launch_browser() as browser:
        page = browser.new_page(viewport={"width": 640, "height": 360})
        page.goto(url, timeout=30_000)
        status = page.locator("#status")
        assert status.text_content() == "Not clicked yet"
        page.click("#go")
        page.wait_for_function("document.getElementById('status').textContent === 'Clicked!'", timeout=10_000)
        assert status.text_content() == "Clicked!"
        shot = save_screenshot(page, "test_support_browser_click")
        page.close()
    assert shot.is_file() and shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
