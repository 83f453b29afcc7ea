"""Cookies marked ``Secure`` on HTTPS requests (the session and CSRF cookies above all).

Django's ``SESSION_COOKIE_SECURE`` and ``CSRF_COOKIE_SECURE`` are all or nothing: set,
a plain-HTTP dashboard (the loopback default) could not log in; unset, a login over
HTTPS gets cookies that the browser would also send over plain HTTP. This middleware
marks every cookie of a response ``Secure`` when the request came over HTTPS
(``request.is_secure()``, which behind nginx needs ``SECURE_PROXY_SSL_HEADER``:
``CONCIERGE_TRUST_FORWARDED_PROTO``); ``CONCIERGE_SECURE_COOKIES`` marks them always.
Put it first in ``MIDDLEWARE``, so that it sees the cookies every other middleware set.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase


def mark_secure(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """Mark the response's cookies ``Secure`` if the request came over HTTPS."""
    if response.cookies and request.is_secure():
        for morsel in response.cookies.values():
            morsel["secure"] = True
    return response


class SecureCookiesMiddleware:
    """``mark_secure`` on every response; sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return mark_secure(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        pending: Awaitable[HttpResponseBase] = self.get_response(request)
        return mark_secure(request, await pending)
