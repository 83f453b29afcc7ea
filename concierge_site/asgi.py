"""ASGI entry point: HTTP through Django, ``/ws`` through the concierge consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "concierge_site.settings")
# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from fileshare.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Programs, not browsers, connect to /ws, often with no Origin header, so
        # there is no origin check here; IDENTIFY (and FILESHARE_SECRET) admit them.
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
