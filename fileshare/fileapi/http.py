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

from fileshare.exceptions import FileshareError
from fileshare.store import paths

logger = logging.getLogger(__name__)

AsyncView = Callable[..., Awaitable[HttpResponse]]


def error_response(exc: FileshareError) -> JsonResponse:
    """The one-line JSON error for ``exc``."""
    response = JsonResponse({"error": exc.error, "detail": exc.detail}, status=exc.http_status)
    if exc.http_status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="concierge"'
    return response


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
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            return error_response(FileshareError("internal error; nothing was changed"))

    return wrapper
