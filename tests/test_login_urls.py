"""fileshare.urls brings the dashboard's login, logout and static files; a project's own auth URLs keep working."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough password"


@pytest.fixture
def operator() -> User:
    return User.objects.create_user("op", password=PASSWORD, is_staff=True)


def log_in(client: Client, url: str) -> str:
    client.get(url)
    answer = client.post(url, {"username": "op", "password": PASSWORD})
    assert answer.status_code == 302
    return str(answer["Location"])


@override_settings(ROOT_URLCONF="tests.support.urls_with_auth", LOGIN_URL="/accounts/login/")
def test_a_project_with_django_auth_urls_keeps_them_and_the_dashboard_uses_its_login_url(operator: User) -> None:
    client = Client()
    assert reverse("login") == "/accounts/login/"
    assert reverse("fileshare:login") == "/dashboard/login/"
    assert client.get("/dashboard/")["Location"] == "/accounts/login/?next=/dashboard/"
    # The app's own login page works beside the project's, and leads to the dashboard.
    assert log_in(client, "/dashboard/login/") == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert 'action="/dashboard/logout/"' in page.content.decode()
    assert client.get("/static/fileshare/dashboard.css").status_code == 200


@override_settings(ROOT_URLCONF="tests.support.urls_with_auth", LOGIN_URL="/accounts/login/", LOGOUT_REDIRECT_URL=None)
def test_the_dashboard_logout_leads_to_the_login_page_when_the_project_names_no_other(operator: User) -> None:
    client = Client()
    log_in(client, "/dashboard/login/")
    answer = client.post("/dashboard/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"
    assert client.get("/dashboard/").status_code == 302


def test_this_sites_logout_redirect_url_wins(operator: User) -> None:
    client = Client()
    log_in(client, "/login/")
    answer = client.post("/dashboard/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/login/"
