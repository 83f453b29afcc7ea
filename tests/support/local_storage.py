"""Client files on local disk for in-process tests (Django's ``override_settings``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_file_storage(location: Path) -> Iterator[Path]:
    """The ``fileshare`` storage as a FileSystemStorage at ``location`` while the block runs."""
    from django.conf import settings
    from django.test import override_settings

    storages = {
        **settings.STORAGES,
        "fileshare": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "allow_overwrite": True},
        },
    }
    with override_settings(STORAGES=storages):
        yield location
