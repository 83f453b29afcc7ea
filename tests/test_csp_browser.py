"""The Content-Security-Policy in real Chromium: the dashboard and the admin work under it
with no violation, and an injected inline script does not run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conftest import Account
from tests.support.browser import launch_browser, require_chromium
from tests.support.server import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

WATCH_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""
"""Runs before every page's own scripts (through the DevTools protocol, not subject to CSP)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with launch_browser() as chromium:
        yield chromium


def violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("() => window.__csp")
    return found


def test_the_dashboard_and_the_admin_run_under_the_policy_without_a_violation(
    browser: Browser, server: ServerProcess, operator: Account
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    page.goto(server.url + "/dashboard/")
    assert violations(page) == []
    page.fill("#id_username", operator.username)
    page.fill("#id_password", operator.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")
    # The script ran and its websocket is live: the policy lets the page work.
    page.wait_for_selector("body[data-live=on]", timeout=10_000)
    assert violations(page) == []

    for path in (
        "/admin/",
        "/admin/fileshare/liveclient/",
        "/admin/fileshare/storedfile/?q=x",
        "/admin/fileshare/serverinstance/",
        "/admin/password_change/",
    ):
        response = page.goto(server.url + path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("load")
        assert violations(page) == [], path
    assert not [text for text in console if "Content Security Policy" in text], console

    # The policy is enforced: an inline script injected into the page does not run.
    page.goto(server.url + "/dashboard/")
    page.wait_for_selector("body[data-live=on]", timeout=10_000)
    ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__injected = true;";
            document.body.appendChild(script);
            return window.__injected === true;
        }"""
    )
    assert ran is False
    page.wait_for_function("() => window.__csp.length > 0")
    assert any(entry.startswith("script-src") for entry in violations(page)), violations(page)
    context.close()
