"""``manage.py ensure_operator``: make sure someone can log in to the dashboard.

When no active staff user exists, it creates one (a superuser, so it can also
use the admin to add more operators) named ``$CONCIERGE_OPERATOR_USERNAME``
(default ``admin``) with the password ``$CONCIERGE_OPERATOR_PASSWORD``. When
that is unset it generates a random password and prints it once, with the login
URL: only its hash is stored. When an operator exists it changes nothing and
prints where to log in. So the run command can call it on every start.

The two variables are read here rather than in settings: they are one-shot
inputs of this command, and a password has no business in ``django.conf.settings``.
"""

from __future__ import annotations

import os
import secrets
import string
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.shortcuts import resolve_url
from django.urls import reverse

from fileshare import conf

USERNAME_ENV = "CONCIERGE_OPERATOR_USERNAME"
PASSWORD_ENV = "CONCIERGE_OPERATOR_PASSWORD"
DEFAULT_USERNAME = "admin"
PASSWORD_ALPHABET = string.ascii_letters + string.digits
"""Generated passwords: 20 of these (about 119 bits), easy to copy from a terminal."""


def site_url(base: str | None = None) -> str:
    """The site's base URL: ``base`` if given, else from CONCIERGE_HOST and CONCIERGE_PORT."""
    if base:
        return base.rstrip("/")
    host, port = conf.host(), conf.port()
    if host in {"0.0.0.0", "", "::", "[::]"}:  # a wildcard bind is reachable locally
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Command(BaseCommand):
    """Create the first operator account if there is none; print how to log in."""

    help = (
        f"Create a staff user from ${USERNAME_ENV} (default {DEFAULT_USERNAME!r}) and ${PASSWORD_ENV} "
        "(random and printed once when unset) unless an active staff user exists. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``--base-url`` for the printed links when the site is behind a proxy."""
        parser.add_argument(
            "--base-url", default=None, help="base URL in the printed links (default: from CONCIERGE_HOST/PORT)"
        )
        parser.add_argument(
            "--no-links", action="store_true", help="print no URLs (runconcierge prints them once it listens)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the operator or report the existing ones; raise CommandError on a bad input."""
        base = site_url(options["base_url"])
        login, dashboard = base + resolve_url(conf.login_url()), base + reverse("fileshare:dashboard")
        user_model = get_user_model()
        field = user_model.USERNAME_FIELD
        with transaction.atomic():
            existing = list(
                user_model.objects.filter(is_staff=True, is_active=True)
                .order_by("pk")
                .values_list(field, flat=True)[:3]
            )
            if existing:
                if options["no_links"]:
                    self.stdout.write(f"Operators exist (e.g. {existing[0]!r}).")
                    return
                self.stdout.write(
                    f"Operator dashboard: {dashboard} (log in at {login} as an existing operator, "
                    f"e.g. {existing[0]!r})."
                )
                return
            username = os.environ.get(USERNAME_ENV, "").strip() or DEFAULT_USERNAME
            password = os.environ.get(PASSWORD_ENV, "")
            generated = not password
            if generated:
                password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(20))
            else:
                try:
                    validate_password(password, user_model(**{field: username}))
                except ValidationError as exc:
                    raise CommandError(f"{PASSWORD_ENV} is too weak: {' '.join(exc.messages)}") from None
            if user_model.objects.filter(**{field: username}).exists():
                raise CommandError(
                    f"there is no active operator, and the user {username!r} exists but is not one; "
                    f"set {USERNAME_ENV} to another name, or give {username!r} staff status "
                    "(manage.py changepassword / the shell)"
                )
            user_model.objects.create_superuser(**{field: username}, email="", password=password)
        if generated:
            self.stdout.write(
                f"Created the operator account {username!r} with the password: {password}\n"
                "  (shown only this once; set it yourself with manage.py changepassword " + username + ")"
            )
        else:
            self.stdout.write(f"Created the operator account {username!r} with the password from ${PASSWORD_ENV}.")
        if not options["no_links"]:
            self.stdout.write(f"Log in at {login} ; the dashboard is at {dashboard}")
