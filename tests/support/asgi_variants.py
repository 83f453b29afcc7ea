"""ASGI applications wired the ways a project might wire the concierge (for fileshare.E004)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.core.asgi import get_asgi_application

from fileshare.routing import websocket_urlpatterns

http = get_asgi_application()

# The usual Channels tutorial: every websocket behind the Origin check.
behind_validator = ProtocolTypeRouter(
    {"http": http, "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))}
)

# An explicit OriginValidator inside the middleware.
nested_behind_validator = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AuthMiddlewareStack(OriginValidator(URLRouter(websocket_urlpatterns), ["https://example.org"])),
    }
)

# A validator that lets any origin (and none) through refuses no program.
validator_allowing_any = ProtocolTypeRouter(
    {"http": http, "websocket": OriginValidator(URLRouter(websocket_urlpatterns), ["*"])}
)

# What docs/install.md says: the concierge's routes outside the validator.
concierge_outside_validator = ProtocolTypeRouter(
    {"http": http, "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns))}
)
