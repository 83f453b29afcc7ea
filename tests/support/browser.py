"""Headless Chromium for browser tests, driven by Playwright's sync API.

We use Debian's Chromium (``/usr/bin/chromium``, installed by
``scripts/install-system-deps.sh``) rather than Playwright's own browser
download, which does not work on our machines.

Rules for browser tests
-----------------------
* Write them as plain **sync** test functions (no ``async def``, no
  ``@pytest.mark.asyncio``): Playwright's sync API refuses to start inside a
  running asyncio event loop.  :func:`launch_browser` checks this up front and
  raises a clear error.
* Do ORM work **before entering or after leaving** ``with launch_browser()``,
  never inside the block or inside Playwright callbacks (``page.on(...)``,
  ``page.route(...)``, ``expose_function``...).  While the sync API is active
  it runs an asyncio loop in the test's thread, so Django sees a "running
  event loop" and raises ``SynchronousOnlyOperation``.  Do not work around
  this with ``DJANGO_ALLOW_ASYNC_UNSAFE``.  (The live server that the browser
  talks to runs in its own thread and may use the ORM freely.)
* Only loopback addresses may be contacted: serve pages from 127.0.0.1 /
  localhost.  :data:`CHROMIUM_ARGS` turn off Chromium's background traffic.
* Mark them ``@pytest.mark.browser``.  When Chromium is missing, skip them
  locally but fail under CI (``$CI`` set) - see :func:`require_chromium`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright is imported lazily so this module imports without it.
    from playwright.sync_api import Browser, Page

CHROMIUM_PATH = "/usr/bin/chromium"

#: Chromium ``--host-resolver-rules`` value that lets only loopback through.
#: Note ``::1`` without brackets: ``[::1]`` does not match.
LOOPBACK_ONLY_RESOLVER_RULES = "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE *.localhost , EXCLUDE 127.* , EXCLUDE ::1"

#: Extra switches on top of Playwright's own defaults (which already add
#: ``--headless`` and, among others, ``--disable-extensions`` and
#: ``--disable-default-apps``).  Don't pass ``--disable-features`` here: it
#: would replace the list Playwright sets.
CHROMIUM_ARGS: list[str] = [
    "--no-sandbox",  # we run as root; the sandbox refuses to start then
    "--disable-gpu",  # no GPU on these machines
    "--disable-dev-shm-usage",  # CI's /dev/shm may be small
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # Loopback-only guard: every host, IP literals included, fails with
    # net::ERR_NAME_NOT_RESOLVED (and no DNS query is sent) except these.
    f"--host-resolver-rules={LOOPBACK_ONLY_RESOLVER_RULES}",
]

#: Default launch timeout, in milliseconds (cold start on a 2-core machine).
LAUNCH_TIMEOUT_MS = 60_000

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"

_SCREENSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def chromium_available() -> bool:
    """Return True if Chromium and the Playwright package are both usable here."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def chromium_missing_reason() -> str:
    """Explain why :func:`chromium_available` is False (for skip/fail messages)."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        found = shutil.which("chromium")
        extra = f" (found {found}, but tests use {CHROMIUM_PATH})" if found else ""
        return f"Chromium not found at {CHROMIUM_PATH}{extra}; run scripts/install-system-deps.sh as root"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed; pip install -r requirements-dev.txt"
    return "Chromium is available"


def require_chromium() -> None:
    """Skip the calling test if Chromium is missing; fail instead when ``$CI`` is set."""
    if chromium_available():
        return
    import pytest

    reason = chromium_missing_reason()
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _refuse_running_event_loop() -> None:
    """Raise a clear error if called from inside a running asyncio event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "launch_browser() uses Playwright's sync API, which cannot run inside a "
        "running asyncio event loop; write the browser test as a plain sync test "
        "(no async def / @pytest.mark.asyncio)."
    )


@contextlib.contextmanager
def launch_browser(*, extra_args: list[str] | None = None, timeout_ms: float = LAUNCH_TIMEOUT_MS) -> Iterator[Browser]:
    """Launch headless Debian Chromium with Playwright's sync API and yield the Browser.

    The browser and the Playwright driver are shut down on exit.  Do no ORM
    work inside the ``with`` block (see the module docstring).
    """
    _refuse_running_event_loop()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=[*CHROMIUM_ARGS, *(extra_args or [])],
            timeout=timeout_ms,
        )
        try:
            yield browser
        finally:
            browser.close()


def save_screenshot(page: Page, name: str) -> pathlib.Path:
    """Save a full-page screenshot to ``artifacts/screenshots/<name>.png`` and return its path.

    ``name`` may contain letters, digits, ``.``, ``_`` and ``-`` only.
    """
    if not _SCREENSHOT_NAME.fullmatch(name):
        raise ValueError(f"invalid screenshot name {name!r}: use [A-Za-z0-9._-]")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
