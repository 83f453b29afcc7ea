"""The file API's single mapping from FileshareError to an HTTP response.

Every refusal is a status code and a one-line JSON body
``{"error": "<short code>", "detail": "<what was wrong>"}``; an unexpected
exception is logged and answered with a JSON 500, never a traceback.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from fileshare.exceptions import FileshareError, InsufficientStorage
from fileshare.observe import metrics
from fileshare.store import paths
from fileshare.store.storage import is_full_disk

logger = logging.getLogger(__name__)

AsyncView = Callable[..., Awaitable[HttpResponse]]


def error_response(exc: FileshareError) -> JsonResponse:
    """The one-line JSON error for ``exc``."""
    metrics.count_refusal(exc)
    response = JsonResponse({"error": exc.error, "detail": exc.detail}, status=exc.http_status)
    if exc.http_status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="concierge"'
    return response


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _internal_error(request: HttpRequest) -> JsonResponse:
    """The 500 for an unexpected failure (logged with its traceback), saying truthfully what is known."""
    logger.exception("%s %s failed", request.method, request.path)
    if request.method in SAFE_METHODS:
        return error_response(FileshareError("internal error (logged on the server); nothing was changed"))
    return error_response(
        FileshareError(
            "internal error (logged on the server); the request may have taken effect, "
            "in part or in full: check the folder before retrying"
        )
    )


def json_errors(view: AsyncView) -> AsyncView:
    """Decorate an async view so that every exception becomes a JSON error.

    A request whose path is not UTF-8 once percent-decoded is refused first (400
    ``invalid_path``), from the path as it reached the server (``paths.require_utf8``).
    """

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            paths.require_utf8(getattr(request, "scope", {}).get("raw_path"))
            return await view(request, *args, **kwargs)
        except FileshareError as exc:
            return error_response(exc)
        except OSError as exc:
            if not is_full_disk(exc):
                return _internal_error(request)
            logger.error("%s %s: the disk is full (%s); nothing was stored", request.method, request.path, exc.strerror)
            return error_response(InsufficientStorage("the server's disk is full; nothing was stored"))
        except Exception:
            return _internal_error(request)

    return wrapper
