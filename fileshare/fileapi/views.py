"""The file API over HTTP (PROTOCOL.md section 3): thin views, auth -> files -> response.

The Authorization header is the credential of these views, not a session cookie,
so they are exempt from CSRF (and only they are).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import Resolver404, resolve
from django.utils.http import content_disposition_header, http_date
from django.views.decorators.csrf import csrf_exempt

from fileshare import conf
from fileshare.exceptions import BadRequest, InvalidPath, NotFound, ReadOnly, TooLarge
from fileshare.fileapi import auth, downloads, multipart, offload
from fileshare.fileapi.http import json_errors
from fileshare.models import StoredFile
from fileshare.observe import metrics
from fileshare.pw import listing, published
from fileshare.store import files, paths
from fileshare.ws import relay

ALLOWED = "GET, HEAD, PUT, POST, DELETE"

logger = logging.getLogger(__name__)


def _method_not_allowed(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(
        {"error": "method_not_allowed", "detail": f"{request.method} is not supported here; use {ALLOWED}"},
        status=405,
    )
    response["Allow"] = ALLOWED
    return response


def _declared_length(request: HttpRequest) -> int | None:
    raw = request.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"Content-Length {raw!r} is not a number") from None


def _check_length(request: HttpRequest) -> None:
    length = _declared_length(request)
    if length is not None and length > conf.max_upload_bytes():
        raise TooLarge(f"{length} bytes is over the limit of {conf.max_upload_bytes()} bytes")


def expected_sha256(request: HttpRequest) -> str | None:
    """The SHA-256 the request declares for its body, as lowercase hex, if any.

    Accepts ``X-Checksum-SHA256: <hex>`` and RFC 9530 ``Content-Digest: sha-256=:<base64>:``.
    """
    hex_value = request.headers.get("X-Checksum-SHA256")
    if hex_value:
        value = hex_value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise BadRequest("X-Checksum-SHA256 must be 64 hex digits")
        return value
    digest = request.headers.get("Content-Digest")
    if digest:
        for part in digest.split(","):
            algorithm, _, encoded = part.strip().partition("=")
            if algorithm.strip().lower() == "sha-256":
                try:
                    raw = base64.b64decode(encoded.strip().strip(":"), validate=True)
                except (binascii.Error, ValueError):
                    raise BadRequest("Content-Digest sha-256 is not valid base64") from None
                if len(raw) != 32:
                    raise BadRequest("Content-Digest sha-256 must be 32 bytes")
                return raw.hex()
        raise BadRequest("Content-Digest carries no sha-256 value; only sha-256 is supported")
    return None


async def _parse_files(request: HttpRequest) -> Any:
    """``request.FILES`` with names as sent, parsed in a worker thread; BadRequest or TooLarge
    for a body the parser cannot take (``fileshare.fileapi.multipart``)."""
    return await multipart.files_of(request)


async def tell_dashboard(client_name: str, path: str) -> None:
    """Tell open dashboards a file changed; best effort: the change is made already, so a
    failing channel layer is logged and the client still gets the true answer."""
    try:
        await relay.notify_dashboard("file_changed", client=client_name, path=path)
    except Exception as exc:
        logger.warning("dashboards were not told that %s/%s changed: %r", client_name, path, exc)


def _file_json(row: StoredFile, folder_name: str) -> dict[str, Any]:
    return {
        "client": folder_name,
        "path": row.path,
        "size": row.size,
        "sha256": row.sha256 or None,  # None: computed after the answer (conf.checksum_after_answer)
        "content_type": row.content_type,
        "file_id": row.file_id,
    }


async def _store(request: HttpRequest, client_name: str, raw_path: str, source: Any) -> dict[str, Any]:
    client = await auth.requester(request)
    path = paths.clean(raw_path)
    auth.require_owner(client, client_name)
    upload = files.Upload(
        owner_id=client.pk,
        folder=client.folder,
        path=path,
        limit=conf.max_upload_bytes(),
        expected_sha256=expected_sha256(request),
    )
    row = await files.store(upload, source)
    await tell_dashboard(client_name, path)
    return _file_json(row, client_name)


async def _download(request: HttpRequest, client_name: str, raw_path: str) -> HttpResponse:
    await auth.requester(request)
    path = paths.clean(raw_path)
    row = await files.find(client_name, path)
    if (offloaded := offload.accel_response(request, row)) is not None:
        metrics.DOWNLOADED.inc(row.size)
        return offloaded  # nginx sends the bytes (FILESHARE_ACCEL_REDIRECT, deploy/README.md)
    if (offloaded := await offload.server_sent_response(request, row)) is not None:
        metrics.DOWNLOADED.inc(row.size)
        return offloaded  # the run command's server sends the bytes (fileshare.server.daphne_support)
    # Validators, conditional requests, byte ranges and redirects: fileshare/fileapi/downloads.py.
    return await downloads.respond(request, row, path)


def _created(body: dict[str, Any]) -> JsonResponse:
    """201 for a stored file; ``X-File-Id`` repeats its pw_file id (the resource id a
    pw_transfer write names: docs/pw_file.md)."""
    response = JsonResponse(body, status=201)
    response["X-File-Id"] = str(body["file_id"])
    return response


@csrf_exempt
@json_errors
async def file_view(request: HttpRequest, client_name: str, file_path: str) -> HttpResponse:
    """``/fs/<client>/<path>``: GET/HEAD download, PUT or POST upload, DELETE."""
    if request.method in {"GET", "HEAD"}:
        return await _download(request, client_name, file_path)
    if request.method == "PUT":
        _check_length(request)
        body = await _store(request, client_name, file_path, offload.upload_source(request))
        return _created(body)
    if request.method == "POST":
        _check_length(request)
        await auth.requester(request)  # 401 before the multipart body is parsed
        uploads = list((await _parse_files(request)).values())
        if len(uploads) != 1:
            raise BadRequest(f"POST to a file path takes exactly one file in a multipart body, not {len(uploads)}")
        body = await _store(request, client_name, file_path, uploads[0])
        return _created(body)
    if request.method == "DELETE":
        client = await auth.requester(request)
        path = paths.clean(file_path)
        auth.require_owner(client, client_name)
        await files.remove(client.pk, path)
        await tell_dashboard(client_name, path)
        return JsonResponse({"client": client_name, "path": path, "deleted": True}, status=200)
    return _method_not_allowed(request)


@csrf_exempt
@json_errors
async def folder_view(request: HttpRequest, client_name: str) -> HttpResponse:
    """``/fs/<client>/``: GET lists the folder (docs/pw_file.md); POST several files (multipart),
    saved under their form file names."""
    if request.method == "GET":
        return await _listing(request, client_name)
    if request.method == "POST":
        _check_length(request)
        client = await auth.requester(request)
        auth.require_owner(client, client_name)
        parsed = await _parse_files(request)
        uploads = [f for name in parsed for f in parsed.getlist(name)]
        if not uploads:
            raise BadRequest("POST to a folder takes one or more files in a multipart body")
        named = [(_form_path(multipart.sent_name(upload)), upload) for upload in uploads]
        stored = [await _store(request, client_name, path, upload) for path, upload in named]
        return JsonResponse({"files": stored}, status=201)
    return _method_not_allowed(request)


def _form_path(name: str | None) -> str:
    """A form file name as a path in the folder: stored there if it is a plain relative path
    (``sub/dir/x.txt`` too), else InvalidPath saying why; never changed."""
    try:
        return paths.clean(name or "")
    except InvalidPath as exc:
        raise InvalidPath(f"the form file name {name!r} is not usable as a path: {exc.detail}") from None


# -- pw_file listings and the published files (docs/pw_file.md) ------------------------------


async def _listing(request: HttpRequest, raw_path: str) -> HttpResponse:
    client = await auth.requester(request)
    found = await listing.list_path(client, raw_path)
    return JsonResponse({"path": found.path, "entries": [entry.as_json() for entry in found.entries]})


@csrf_exempt
@json_errors
async def root_view(request: HttpRequest) -> HttpResponse:
    """``/fs/``: GET lists the live clients' folders (and the published folder)."""
    if request.method == "GET":
        return await _listing(request, "")
    response = JsonResponse({"error": "method_not_allowed", "detail": "/fs/ is a listing: use GET"}, status=405)
    response["Allow"] = "GET"
    return response


@csrf_exempt
@json_errors
async def directory_view(request: HttpRequest, client_name: str, dir_path: str) -> HttpResponse:
    """``/fs/<client>/<sub>/``: GET lists the sub-folder; other methods are the file API's."""
    if request.method == "GET":
        return await _listing(request, f"{client_name}/{dir_path}")
    # Unchanged behaviour for everything else: a path ending in "/" is refused as a file path.
    return await file_view(request, client_name, f"{dir_path}/")


@csrf_exempt
@json_errors
async def published_file_view(request: HttpRequest, name: str) -> HttpResponse:
    """``/fs/_published/<name>``: GET/HEAD download for any live client; read-only."""
    if request.method in {"PUT", "POST", "DELETE"}:
        await auth.requester(request)
        raise ReadOnly("published files are read-only")
    if request.method not in {"GET", "HEAD"}:
        return _method_not_allowed(request)
    await auth.requester(request)
    entry = await sync_to_async(published.find, thread_sensitive=False)(name)
    headers = {
        "Content-Length": str(entry.size),
        "Content-Disposition": content_disposition_header(True, entry.name),
        "Last-Modified": http_date(entry.modified.timestamp()),
        "Cache-Control": "private, no-cache",
    }
    if request.method == "HEAD":
        return HttpResponse(status=202, content_type=entry.content_type, headers=headers)
    return StreamingHttpResponse(
        published.read_chunks(entry), status=202, content_type=entry.content_type, headers=headers
    )


@csrf_exempt
@json_errors
async def unknown_route_view(request: HttpRequest) -> HttpResponse:
    """Any other URL under ``/fs/`` or ``/tus/``: the JSON 404, not Django's HTML page.

    A GET or HEAD that names a folder without its final ``/`` (``/fs/alice``) is still
    redirected to it, as Django's ``APPEND_SLASH`` did before this route caught it.
    """
    if request.method in {"GET", "HEAD"} and not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not unknown_route_view:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    raise NotFound(
        "no such route; the file API answers /fs/, /fs/<client>/, /fs/<client>/<path>, "
        "and tus /tus/<client>/ and /tus/<client>/<upload id>"
    )
