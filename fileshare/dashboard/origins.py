"""The dashboard socket's Origin check: the page's own origin, exactly, port included.

Channels' ``AllowedHostsOriginValidator`` compares only the Origin's host name with
``ALLOWED_HOSTS``, so a page served from another port of the same host (another
program on the operator's machine, a development server) could open the dashboard
socket with the operator's cookie. ``ExactOriginValidator`` admits a websocket only
when its ``Origin`` is exactly the origin the socket itself was opened on (scheme,
host and port, from the ``Host`` header, which must be an allowed host) or one listed
in ``CSRF_TRUSTED_ORIGINS`` (``https://concierge.example.org`` behind a proxy). The
scheme is ``https`` when the socket came over TLS or a trusted proxy says so
(``SECURE_PROXY_SSL_HEADER``, as for HTTP requests). Anything else, and a missing
Origin, is refused before the consumer runs (HTTP 403).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin: str) -> str | None:
    """``scheme://host:port`` in lower case with the port always given; None if it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.username:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


def own_origin(scope: dict[str, Any]) -> str | None:
    """The origin the socket was opened on: its scheme and its (allowed) Host header."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if scope.get("scheme") in {"wss", "https"} or forwarded_secure(headers) else "http"
    return normalise(f"{scheme}://{host}")


def forwarded_secure(headers: dict[bytes, bytes]) -> bool:
    """Whether a trusted proxy says the socket came over TLS: ``SECURE_PROXY_SSL_HEADER``,
    read as Django reads it for HTTP requests (``request.is_secure()``)."""
    trusted = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not trusted:
        return False
    meta_name, secure_value = trusted
    name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
    value = headers.get(name, b"").decode("latin-1").split(",", 1)[0].strip()
    return bool(value == secure_value)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the socket's ``Origin`` is its own origin or a trusted one, exactly."""
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"origin")
    if raw is None:
        return False
    origin = normalise(raw.decode("latin-1"))
    if origin is None:
        return False
    trusted = {normalise(o) for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    return origin == own_origin(scope) or origin in trusted


class ExactOriginValidator:
    """ASGI middleware: refuse a websocket whose Origin is not exactly allowed (``origin_allowed``)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
