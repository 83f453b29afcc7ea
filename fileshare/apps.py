from __future__ import annotations

import sys

from django.apps import AppConfig


class FileshareConfig(AppConfig):
    name = "fileshare"
    verbose_name = "Concierge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fileshare import checks  # noqa: F401  (checks: registers the system checks)
        from fileshare.fileapi import cors

        cors.configure_library()  # django-cors-headers on /fs/ and /tus/, unless the project set CORS_*

        # Inside a plain `daphne` process (its server is loaded before the application):
        # accept any websocket subprotocol offer, as the original server did, and refuse
        # malformed requests in JSON (fileshare/server/daphne_requests.py).
        if "daphne.server" in sys.modules:
            from fileshare.server.daphne_requests import accept_any_subprotocol_offer

            accept_any_subprotocol_offer()
