from __future__ import annotations

from django.apps import AppConfig


class FileshareConfig(AppConfig):
    name = "fileshare"
    verbose_name = "Concierge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fileshare import checks  # noqa: F401  (registers the system checks)
