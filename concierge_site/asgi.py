"""ASGI entry point: HTTP through Django, ``/ws`` through the concierge consumer."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "concierge_site.settings")

from fileshare.server.asgi_handler import spooled_body_application  # noqa: E402

# Django must be set up before anything imports models (consumers do). Django's handler,
# taking a request body the run command's server spooled as the body file (no copy).
django_asgi_app = spooled_body_application()

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
