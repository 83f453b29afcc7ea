"""The dashboard's and admin's HTTP security: Secure cookies, login throttling, CSP headers."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.conftest import Account, Spawn, create_account, login_form
from tests.support.server import ServerProcess


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header of ``response`` by cookie name."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def secure(header: str) -> bool:
    return re.search(r";\s*secure\b", header, re.IGNORECASE) is not None


async def log_in(server: ServerProcess, account: Account, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST the login form as ``account`` (fetching the form first for its CSRF cookie)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers or {}) as http:
        form = await http.get("/login/")
        assert form.status_code == 200
        # Sent by hand: httpx keeps a Secure cookie from going back over this plain connection
        # (the "HTTPS" is only the forwarded header).
        token = form.cookies["csrftoken"]
        http.cookies.clear()
        return await http.post("/login/", data=login_form(account, token), headers={"Cookie": f"csrftoken={token}"})


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A server that trusts X-Forwarded-Proto, as behind the nginx recipe."""
    from tests.support.server import base_env, manage, start_server

    data_dir = tmp_path_factory.mktemp("proxied")
    env = base_env(data_dir, CONCIERGE_TRUST_FORWARDED_PROTO="true")
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process  # type: ignore[misc]
    process.stop()


async def test_cookies_are_secure_on_https_requests_and_not_on_plain_http(proxied: ServerProcess) -> None:
    account = create_account(proxied, f"op_{uuid.uuid4().hex[:6]}", staff=True)
    https = {
        "X-Forwarded-Proto": "https",
        "Origin": f"https://{proxied.host}:{proxied.port}",
        "Referer": f"https://{proxied.host}:{proxied.port}/login/",
    }
    answer = await log_in(proxied, account, https)
    assert answer.status_code == 302, answer.text
    cookies = set_cookies(answer)
    assert secure(cookies["sessionid"]) and secure(cookies["csrftoken"]), cookies

    plain = await log_in(proxied, account)
    assert plain.status_code == 302
    cookies = set_cookies(plain)
    assert not secure(cookies["sessionid"]) and not secure(cookies["csrftoken"]), cookies


async def test_a_forwarded_proto_is_not_believed_unless_the_setting_says_so(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert not secure(set_cookies(page)["csrftoken"])


async def test_the_secure_cookies_setting_marks_them_secure_even_on_plain_http(spawn: Spawn) -> None:
    process = spawn(CONCIERGE_SECURE_COOKIES="true")
    async with httpx.AsyncClient(base_url=process.url) as http:
        page = await http.get("/login/")
    assert secure(set_cookies(page)["csrftoken"])


async def test_logins_are_throttled_per_username_and_address_after_repeated_failures(spawn: Spawn) -> None:
    process = spawn(CONCIERGE_LOGIN_FAILURE_LIMIT="3")
    target = create_account(process, f"op_{uuid.uuid4().hex[:6]}", staff=True)
    bystander = create_account(process, f"op_{uuid.uuid4().hex[:6]}", staff=True)
    wrong = Account(target.username, "not-the-password")
    for _ in range(2):
        failed = await log_in(process, wrong)
        assert failed.status_code == 200 and "sessionid" not in set_cookies(failed)
    locked = await log_in(process, wrong)
    assert locked.status_code == 429, locked.status_code
    # Now even the right password is refused for that username from this address...
    refused = await log_in(process, target)
    assert refused.status_code == 429 and "sessionid" not in set_cookies(refused)
    assert "too many" in refused.text.lower()
    # ...while another operator still logs in.
    assert (await log_in(process, bystander)).status_code == 302
    assert "Traceback" not in process.log()


async def test_pages_carry_a_content_security_policy_without_inline_script(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path in ("/login/", "/admin/login/", "/dashboard/"):
            policy = (await http.get(path)).headers.get("content-security-policy", "")
            assert "script-src 'self'" in policy and "default-src 'self'" in policy, (path, policy)
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, (path, policy)
            assert "frame-ancestors 'none'" in policy
