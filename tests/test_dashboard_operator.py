"""``manage.py ensure_operator``: the first operator account, idempotently."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import Account, Spawn, login_form
from tests.support.server import base_env, manage


def fresh_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = base_env(tmp_path, **overrides)
    manage(env, "migrate", "-v0")
    return env


def test_creates_an_operator_with_a_generated_password_printed_once(tmp_path: Path, spawn: Spawn) -> None:
    server = spawn()
    first = manage(server.env, "ensure_operator").stdout
    match = re.search(r"Created the operator account 'admin' with the password: (\w+)", first)
    assert match, first
    password = match.group(1)
    assert len(password) >= 20
    assert "http://127.0.0.1:64209/login/" in first

    again = manage(server.env, "ensure_operator").stdout
    assert "Created" not in again and password not in again
    assert "existing operator" in again and "'admin'" in again

    with httpx.Client(base_url=server.url) as http:
        http.get("/login/")
        response = http.post("/login/", data=login_form(Account("admin", password), http.cookies["csrftoken"]))
        assert response.status_code == 302 and response.headers["Location"] == "/dashboard/"
        assert http.get("/dashboard/").status_code == 200
    # Only the hash is stored.
    dump = manage(
        server.env, "shell", "-c", "from django.contrib.auth.models import User; print(User.objects.get().password)"
    )
    assert password not in dump.stdout
    assert dump.stdout.strip().splitlines()[-1].startswith(("pbkdf2", "argon2", "bcrypt", "scrypt"))


def test_takes_name_and_password_from_the_environment(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, CONCIERGE_OPERATOR_USERNAME="boss", CONCIERGE_OPERATOR_PASSWORD="a long enough secret")
    out = manage(env, "ensure_operator", "--base-url", "https://concierge.example/").stdout
    assert "Created the operator account 'boss' with the password from $CONCIERGE_OPERATOR_PASSWORD" in out
    assert "a long enough secret" not in out
    assert "https://concierge.example/login/" in out
    check = manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; u = User.objects.get(username='boss'); "
        "print(u.is_staff, u.is_superuser, u.check_password('a long enough secret'))",
    )
    assert check.stdout.strip().splitlines()[-1] == "True True True"


def test_refuses_a_weak_password_and_a_name_taken_by_a_non_operator(tmp_path: Path) -> None:
    env = fresh_env(tmp_path, CONCIERGE_OPERATOR_PASSWORD="short")
    with pytest.raises(RuntimeError, match="too weak"):
        manage(env, "ensure_operator")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_user('admin', password='x' * 12)",
    )
    env["CONCIERGE_OPERATOR_PASSWORD"] = "a long enough secret"
    with pytest.raises(RuntimeError, match="exists but is not one"):
        manage(env, "ensure_operator")
    env["CONCIERGE_OPERATOR_USERNAME"] = "operator"
    assert "Created" in manage(env, "ensure_operator").stdout
