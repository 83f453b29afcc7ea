"""Does the project's ASGI application put the concierge's ``/ws`` behind an origin check?

Programs (not browsers) connect to ``/ws`` and usually send no ``Origin`` header;
channels' ``OriginValidator`` (and ``AllowedHostsOriginValidator``) refuses such a
connection with HTTP 403 unless ``"*"`` is allowed. This module walks the ASGI
application's websocket routing (routers, middleware, validators) to the concierge's
consumer and says whether a refusing validator stands on the way. The system check
``fileshare.E004`` reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from channels.security.websocket import OriginValidator
from django.utils.module_loading import import_string

from fileshare import conf

logger = logging.getLogger("fileshare.checks")

MAX_DEPTH = 32
"""Layers of wrapping followed before the walk gives up (a cycle, or something exotic)."""


def load_asgi_application() -> Any | None:
    """The project's ``ASGI_APPLICATION``, or None when it is unset or cannot be imported
    (``runconcierge`` reports that one itself)."""
    dotted = conf.asgi_application()
    if not dotted:
        return None
    try:
        return import_string(dotted.replace(":", "."))
    except Exception as exc:  # an import error in the project's module is reported elsewhere
        logger.debug("fileshare checks: cannot import %s: %s", dotted, exc)
        return None


def _children(node: Any) -> Iterator[Any]:
    mapping = getattr(node, "application_mapping", None)  # ProtocolTypeRouter
    if isinstance(mapping, dict):
        if "websocket" in mapping:
            yield mapping["websocket"]
        return
    for route in getattr(node, "routes", None) or ():  # URLRouter
        yield getattr(route, "callback", None)
    for attribute in ("application", "inner", "app"):  # validators and middleware
        child = getattr(node, attribute, None)
        if child is not None and child is not node:
            yield child


def _is_concierge(node: Any) -> bool:
    from fileshare.ws.consumers import ConciergeConsumer

    consumer = getattr(node, "consumer_class", None)
    return isinstance(consumer, type) and issubclass(consumer, ConciergeConsumer)


def _refuses_missing_origin(node: Any) -> bool:
    return isinstance(node, OriginValidator) and "*" not in (node.allowed_origins or ())


def concierge_behind_origin_validator(application: Any) -> bool:
    """True if some websocket route to the concierge's consumer passes a validator that
    refuses a connection without an ``Origin`` header."""

    def walk(node: Any, guarded: bool, depth: int) -> bool:
        if node is None or depth > MAX_DEPTH:
            return False
        guarded = guarded or _refuses_missing_origin(node)
        if _is_concierge(node):
            return guarded
        return any(walk(child, guarded, depth + 1) for child in _children(node))

    return walk(application, False, 0)
