"""The dashboard's own login and logout pages, so that including ``fileshare.urls`` is enough.

A project that has its own (``django.contrib.auth.urls``, ``LOGIN_URL``) keeps them:
the dashboard sends visitors to ``LOGIN_URL`` when the project sets it
(``fileshare.conf.login_url``), and these views stay reachable under ``/dashboard/``
with namespaced names (``fileshare:login``, ``fileshare:logout``) that collide with none.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.shortcuts import resolve_url

from fileshare import conf


class LoginView(auth_views.LoginView):
    """Django's login with the app's page; without a ``next``, it leads to the dashboard."""

    template_name = "fileshare/login.html"
    next_page = "fileshare:dashboard"


class LogoutView(auth_views.LogoutView):
    """Django's logout (POST); then the project's ``LOGOUT_REDIRECT_URL``, else the login page."""

    def get_default_redirect_url(self) -> str:
        return str(resolve_url(conf.logout_redirect_url()))
