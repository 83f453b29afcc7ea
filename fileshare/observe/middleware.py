"""Counts every HTTP request by route name, method and status (``concierge_http_requests_total``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from fileshare.observe import metrics

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})


def route_of(request: HttpRequest) -> str:
    """The URL pattern's name (``fileshare:file``), or ``unmatched``: a bounded label."""
    match = getattr(request, "resolver_match", None)
    return str(match.view_name) if match is not None and match.url_name else "unmatched"


def count(request: HttpRequest, response: HttpResponseBase) -> None:
    method = request.method if request.method in METHODS else "other"
    metrics.HTTP_REQUESTS.labels(route_of(request), method, str(response.status_code)).inc()


class RequestMetricsMiddleware:
    """Django middleware, async and sync capable."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        count(request, response)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        assert not isinstance(response, HttpResponseBase)
        done = await response
        count(request, done)
        return done
