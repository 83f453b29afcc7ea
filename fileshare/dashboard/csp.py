"""django-csp's middleware without its thread hops on async requests.

``csp.middleware.CSPMiddleware`` is a ``MiddlewareMixin``: on an async request Django
runs its ``process_request`` and ``process_response`` each through ``sync_to_async``,
two trips to a worker thread for every request, file transfers included. Both only
set an attribute and build a header (no I/O), so here they run on the event loop.
The policy is django-csp's, from ``CONTENT_SECURITY_POLICY``.
"""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware
from django.http import HttpRequest


class AsyncCSPMiddleware(CSPMiddleware):
    """``CSPMiddleware`` whose async path calls its (I/O-free) hooks directly."""

    async def __acall__(self, request: HttpRequest) -> Any:
        self.process_request(request)
        response = await self.get_response(request)
        return self.process_response(request, response)
