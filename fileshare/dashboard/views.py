"""The operator dashboard over HTTP: the page, its JSON endpoints and its actions.

Every view here checks that the user is logged in and is staff: the page sends an
anonymous visitor to the login page, the JSON endpoints and actions answer 401 or
403 in the file API's one-line JSON error shape. Actions are POST and go through
Django's CSRF check (the page sends the token in ``X-CSRFToken``); only the
``/fs/`` views are CSRF-exempt, since their credential is a header.

An operator has no client key, so the download view finds the file with
``files.find`` and answers with the file API's own ``downloads.respond`` (which
streams it with ``files.read_chunks``), behind the staff check instead of a key.
No response of this module carries a client's key.

``static_file`` serves ``/static/`` for the whole site (the dashboard's script and
style, the admin's CSS), since daphne serves no static files.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators import http as http_decorators

from fileshare import conf
from fileshare.dashboard import state as dashboard
from fileshare.exceptions import BadRequest, FileshareError, Forbidden, NotFound, Unauthorized
from fileshare.fileapi import downloads
from fileshare.fileapi.http import error_response, json_errors
from fileshare.presence import lifecycle
from fileshare.presence.registry import db
from fileshare.protocol import CloseCode
from fileshare.store import files, paths
from fileshare.ws import relay

logger = logging.getLogger(__name__)

AsyncView = Callable[..., Awaitable[HttpResponse]]
View = TypeVar("View", bound=Callable[..., Any])


def methods(*allowed: str) -> Callable[[View], View]:
    """Django's ``require_http_methods`` (405 for any other method), typed for mypy."""
    return cast("Callable[[View], View]", http_decorators.require_http_methods(list(allowed)))


def _refusal(user: Any) -> FileshareError | None:
    if not user.is_authenticated:
        return Unauthorized("log in as an operator (a staff user) first")
    if not user.is_staff:
        return Forbidden("operators only: this account is not a staff user")
    return None


def operator_api(view: AsyncView) -> AsyncView:
    """Decorate an async JSON view or action: 401/403 JSON unless a staff user asks."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await request.auser()
        refusal = _refusal(user)
        if refusal is not None:
            return error_response(refusal)
        request.user = user
        return await view(request, *args, **kwargs)

    return wrapper


def _forbidden_page(request: HttpRequest) -> HttpResponse:
    return render(request, "fileshare/forbidden.html", status=403)


# -- the page -----------------------------------------------------------------------------


@methods("GET")
def page(request: HttpRequest) -> HttpResponse:
    """``/dashboard/``: the live dashboard (the data comes from the JSON endpoints)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), conf.login_url())
    if not request.user.is_staff:
        return _forbidden_page(request)
    config = {
        "urls": {
            "clients": reverse("fileshare:dashboard-clients"),
            "services": reverse("fileshare:dashboard-services"),
            # The page substitutes a client name for the placeholder segment.
            "files": reverse("fileshare:dashboard-files", args=["__client__"]),
            "disconnect": reverse("fileshare:dashboard-disconnect"),
            "delete_file": reverse("fileshare:dashboard-delete-file"),
            "socket": "/dashboard/ws",
        },
        "per_page": {
            "clients": dashboard.CLIENTS_PER_PAGE,
            "files": dashboard.FILES_PER_PAGE,
            "services": dashboard.SERVICES_PER_PAGE,
        },
        "csrf_token": get_token(request),
    }
    return render(request, "fileshare/dashboard.html", {"config": config})


@methods("GET", "HEAD")
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """``/static/<path>``: a file from the apps' static folders (the dashboard's, the admin's).

    Daphne serves no static files and whitenoise is not a dependency, so the site
    serves them itself, found by the staticfiles finders as ``runserver`` does in
    DEBUG (no ``collectstatic`` needed; nothing outside the static folders can be
    named). They are small, so each is sent whole and revalidated by ETag.
    """
    found = finders.find(path)
    if not isinstance(found, str) or not os.path.isfile(found):
        return HttpResponse(status=404, content_type="text/plain")
    stat = os.stat(found)
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"ETag": etag, "Last-Modified": http_date(stat.st_mtime), "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified(headers=headers)
    content_type = mimetypes.guess_type(found)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith(("javascript", "json", "svg+xml")):
        content_type += "; charset=utf-8"
    body = b"" if request.method == "HEAD" else Path(found).read_bytes()
    return HttpResponse(body, content_type=content_type, headers={**headers, "Content-Length": str(stat.st_size)})


# -- JSON endpoints ---------------------------------------------------------------------------


def _filter(request: HttpRequest) -> str:
    try:
        return dashboard.clean_filter(request.GET.get("q"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _per_page(request: HttpRequest, default: int) -> int:
    return dashboard.page_number(request.GET.get("per_page", default))


@methods("GET")
@operator_api
@json_errors
async def clients(request: HttpRequest) -> HttpResponse:
    """``/dashboard/api/clients?q=&page=&per_page=``: a page of live clients and the totals."""
    body = await db(dashboard.client_page)(
        _filter(request), dashboard.page_number(request.GET.get("page")), _per_page(request, dashboard.CLIENTS_PER_PAGE)
    )
    return JsonResponse(body)


@methods("GET")
@operator_api
@json_errors
async def client_files(request: HttpRequest, client_name: str) -> HttpResponse:
    """``/dashboard/api/clients/<name>/files?q=&page=``: a client's details and a page of its files."""
    body = await db(dashboard.file_page)(
        client_name,
        _filter(request),
        dashboard.page_number(request.GET.get("page")),
        _per_page(request, dashboard.FILES_PER_PAGE),
    )
    return JsonResponse(body)


@methods("GET")
@operator_api
@json_errors
async def services(request: HttpRequest) -> HttpResponse:
    """``/dashboard/api/services?q=&page=``: a page of services with owners and subscribers."""
    body = await db(dashboard.service_page)(
        _filter(request),
        dashboard.page_number(request.GET.get("page")),
        _per_page(request, dashboard.SERVICES_PER_PAGE),
    )
    return JsonResponse(body)


# -- download and actions ----------------------------------------------------------------------


@methods("GET", "HEAD")
@json_errors
async def download(request: HttpRequest, client_name: str, file_path: str) -> HttpResponse:
    """``/dashboard/files/<client>/<path>``: stream a client's file to an operator."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), conf.login_url())
    if not user.is_staff:
        raise Forbidden("operators only: this account is not a staff user")
    path = paths.clean(file_path)
    row = await files.find(client_name, path)
    logger.info("operator %s downloads %s/%s", user.get_username(), client_name, path)
    # The file API's own answer (validators, ranges, a 404 for a missing blob),
    # reached through the staff check instead of a client key.
    return await downloads.respond(request, row, path)


def _required(request: HttpRequest, name: str) -> str:
    value = request.POST.get(name, "")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"the form field {name!r} is required")
    return value


def _live_client(public_id: uuid.UUID) -> tuple[int, str, str]:
    client = dashboard.live_clients().filter(public_id=public_id).values_list("pk", "name", "channel_name").first()
    if client is None:
        raise NotFound("that client is no longer connected")
    return int(client[0]), str(client[1]), str(client[2])


async def _find_client(request: HttpRequest) -> tuple[int, str, str]:
    """(pk, name, channel) of the live client whose public id is the form's ``client``."""
    try:
        public_id = uuid.UUID(_required(request, "client"))
    except ValueError:
        raise BadRequest("'client' must be a client's public id") from None
    found: tuple[int, str, str] = await db(_live_client)(public_id)
    return found


@methods("POST")
@operator_api
@json_errors
async def delete_file(request: HttpRequest) -> HttpResponse:
    """POST ``client`` (public id) and ``path``: delete one of a client's files."""
    pk, name, _ = await _find_client(request)
    path = paths.clean(_required(request, "path"))
    await files.remove(pk, path)
    logger.info("operator %s deleted %s/%s", request.user.get_username(), name, path)
    await relay.notify_dashboard("file_changed", client=name, path=path)
    return JsonResponse({"client": name, "path": path, "deleted": True})


@methods("POST")
@operator_api
@json_errors
async def disconnect(request: HttpRequest) -> HttpResponse:
    """POST ``client`` (public id): run the leave sequence, then close its socket with 4010."""
    pk, name, channel_name = await _find_client(request)
    operator = request.user.get_username()
    logger.info("operator %s disconnects %s", operator, name)
    await lifecycle.leave(pk, f"disconnected by operator {operator}")
    await relay.kick(channel_name, CloseCode.KICKED, "disconnected by an operator")
    return JsonResponse({"client": name, "disconnected": True})
