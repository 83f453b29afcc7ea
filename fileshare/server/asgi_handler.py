"""Django's ASGI handler, taking a request body the run command's server spooled as the body file.

The run command's server (``fileshare.server.daphne_support``) writes a large request body
once, hashed as it arrives, and its input queue (``LazyBodyQueue``) offers that file with
``take_body()``. Django's own handler would read the body from the queue and copy it to a
file of its own; ``SpooledBodyHandler.read_body`` takes the spooled file instead. Under any
other server the queue has no ``take_body`` and this is Django's handler exactly.

This module imports neither the app's models nor daphne, so an ``asgi.py`` can import it
before Django is set up (``spooled_body_application()`` sets it up, as
``django.core.asgi.get_asgi_application()`` does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler


class SpooledBodyHandler(ASGIHandler):
    async def read_body(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
        take_body = getattr(getattr(receive, "__self__", None), "take_body", None)
        if take_body is not None and (body := take_body()) is not None:
            return body
        return await super().read_body(receive)


def spooled_body_application() -> SpooledBodyHandler:
    """``django.core.asgi.get_asgi_application()``, with SpooledBodyHandler."""
    django.setup(set_prefix=False)
    return SpooledBodyHandler()
