"""Resumable uploads over HTTP: tus 1.0 core with creation, termination, checksum and expiration.

Spec: https://tus.io/protocols/resumable-upload (version 1.0.0). The wire format,
with this server's choices, is in docs/resumable.md. The URL space is ``/tus/``,
outside ``/fs/``, so no client file path can collide with it:

* ``OPTIONS /tus/`` (or any URL below): what the server supports; no key needed;
* ``POST /tus/<client>/``: create an upload (``Upload-Length``, ``Upload-Metadata``
  with ``filename`` = the target path in the folder, optionally ``filetype``);
* ``HEAD``, ``PATCH``, ``DELETE /tus/<client>/<upload id>``: offset, append, terminate.

Every request but OPTIONS carries the owner's key, as in the file API, and
``Tus-Resumable: 1.0.0``. The views only parse and answer: the state and the
assembly of the file are in ``fileshare.tus.resumable``, and every refusal is an
exception mapped to a status and a one-line JSON body by ``fileshare.fileapi.http``.
The Authorization header is the credential of these views, not a session
cookie, so they are exempt from CSRF.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from fileshare import conf
from fileshare.exceptions import BadRequest, NotFound, TooLarge, UnsupportedMediaType, VersionMismatch
from fileshare.fileapi import auth
from fileshare.fileapi.http import AsyncView, json_errors
from fileshare.store import paths
from fileshare.tus import resumable

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,checksum,expiration"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
MAX_METADATA_CHARS = 8192
_DIGITS = re.compile(r"[0-9]{1,19}")
# RFC 6838 restricted names: type/subtype; parameters are dropped.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


def tus_endpoint(view: AsyncView) -> AsyncView:
    """Decorate a tus view: CSRF-exempt, JSON errors, and ``Tus-Resumable`` on every answer."""
    inner = json_errors(view)

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = await inner(request, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        if response.status_code == 412:
            response["Tus-Version"] = TUS_VERSION
        elif response.status_code == 460:
            response.reason_phrase = "Checksum Mismatch"
        return response

    return csrf_exempt(wrapper)


def effective_method(request: HttpRequest) -> str:
    """The request's method, or the one ``X-HTTP-Method-Override`` names (tus core requires it)."""
    override = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
    return override or str(request.method)


def options_response() -> HttpResponse:
    """The discovery answer: versions, extensions and limits."""
    response = HttpResponse(status=204)
    response["Tus-Version"] = TUS_VERSION
    response["Tus-Extension"] = EXTENSIONS
    response["Tus-Max-Size"] = str(conf.max_upload_bytes())
    response["Tus-Checksum-Algorithm"] = ",".join(resumable.CHECKSUM_ALGORITHMS)
    # Not part of tus: the largest PATCH body this server accepts (413 above).
    response["Tus-Max-Chunk-Size"] = str(conf.tus_max_chunk_bytes())
    return response


def _method_not_allowed(method: str, allowed: str) -> HttpResponse:
    response = JsonResponse(
        {"error": "method_not_allowed", "detail": f"{method} is not supported here; use {allowed}"}, status=405
    )
    response["Allow"] = allowed
    return response


def require_version(request: HttpRequest) -> None:
    """Raise VersionMismatch (412) unless the request carries ``Tus-Resumable: 1.0.0``."""
    value = request.headers.get("Tus-Resumable")
    if value is None:
        raise VersionMismatch(f"missing the Tus-Resumable header; this server speaks tus {TUS_VERSION}")
    if value.strip() != TUS_VERSION:
        raise VersionMismatch(f"Tus-Resumable {value.strip()!r} is not supported; this server speaks tus {TUS_VERSION}")


def _number(request: HttpRequest, header: str) -> int | None:
    raw = request.headers.get(header)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw.strip()):
        raise BadRequest(f"{header} {raw!r} is not a non-negative whole number")
    return int(raw.strip())


def parse_metadata(raw: str) -> dict[str, str]:
    """``Upload-Metadata`` (``key base64,key base64,key``) decoded to text; raises BadRequest."""
    if len(raw) > MAX_METADATA_CHARS:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    found: dict[str, str] = {}
    for pair in raw.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not key:
            if pair.strip():
                raise BadRequest("Upload-Metadata has an empty key")
            continue
        if key in found:
            raise BadRequest(f"Upload-Metadata names {key!r} twice")
        try:
            found[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return found


def media_type(value: str | None) -> str:
    """The ``filetype`` metadata as a bare media type, or ``""`` (guess from the name) if unusable."""
    bare = (value or "").split(";", 1)[0].strip().lower()
    return bare if _MEDIA_TYPE.fullmatch(bare) else ""


def parse_checksum(raw: str | None) -> resumable.Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; raises BadRequest when unusable."""
    if raw is None:
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in resumable.CHECKSUM_ALGORITHMS:
        supported = ", ".join(resumable.CHECKSUM_ALGORITHMS)
        raise BadRequest(f"Upload-Checksum algorithm {algorithm!r} is not supported; use one of {supported}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum is not '<algorithm> <base64 digest>'") from None
    if len(digest) != resumable.CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise BadRequest(f"Upload-Checksum is not a {algorithm} digest (wrong length)")
    return resumable.Checksum(algorithm, digest)


async def _owner(request: HttpRequest, client_name: str) -> resumable.Owner:
    client = await auth.requester(request)
    auth.require_owner(client, client_name)
    return resumable.Owner(client.pk, client.name, client.folder)


def _upload_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{raw!r} is not an upload id") from None


def _with_state(response: HttpResponse, state: resumable.UploadState) -> HttpResponse:
    response["Upload-Offset"] = str(state.offset)
    if not state.completed:
        response["Upload-Expires"] = http_date(state.expires_at.timestamp())
    return response


@tus_endpoint
async def discovery_view(request: HttpRequest) -> HttpResponse:
    """``/tus/``: OPTIONS tells what the server supports."""
    method = effective_method(request)
    if method == "OPTIONS":
        return options_response()
    return _method_not_allowed(method, "OPTIONS")


@tus_endpoint
async def creation_view(request: HttpRequest, client_name: str) -> HttpResponse:
    """``/tus/<client>/``: POST creates an upload into the client's folder (owner only)."""
    method = effective_method(request)
    if method == "OPTIONS":
        return options_response()
    if method != "POST":
        return _method_not_allowed(method, "OPTIONS, POST")
    require_version(request)
    owner = await _owner(request, client_name)
    length = _number(request, "Upload-Length")
    if length is None:
        if request.headers.get("Upload-Defer-Length") is not None:
            raise BadRequest("Upload-Defer-Length is not supported: send Upload-Length")
        raise BadRequest("missing Upload-Length")
    if length > conf.max_upload_bytes():
        raise TooLarge(f"Upload-Length {length} is over the limit of {conf.max_upload_bytes()} bytes (Tus-Max-Size)")
    raw_metadata = request.headers.get("Upload-Metadata", "").strip()
    metadata = parse_metadata(raw_metadata)
    if not metadata.get("filename"):
        raise BadRequest("Upload-Metadata must carry filename: the file's path in the folder")
    path = paths.clean(metadata["filename"])
    state = await resumable.create(owner, path, length, raw_metadata, media_type(metadata.get("filetype")))
    response = HttpResponse(status=201)
    response["Location"] = request.build_absolute_uri(
        reverse("fileshare:tus-upload", args=[client_name, str(state.id)])
    )
    return _with_state(response, state)


@tus_endpoint
async def upload_view(request: HttpRequest, client_name: str, upload_id: str) -> HttpResponse:
    """``/tus/<client>/<id>``: HEAD the offset, PATCH a chunk, DELETE (owner only)."""
    method = effective_method(request)
    if method == "OPTIONS":
        return options_response()
    if method not in {"HEAD", "PATCH", "DELETE"}:
        return _method_not_allowed(method, "OPTIONS, HEAD, PATCH, DELETE")
    require_version(request)
    owner = await _owner(request, client_name)
    ident = _upload_id(upload_id)
    if method == "HEAD":
        state = await resumable.status(owner, ident)
        response = HttpResponse(status=200)
        response["Upload-Length"] = str(state.length)
        if state.metadata:
            response["Upload-Metadata"] = state.metadata
        response["Cache-Control"] = "no-store"
        return _with_state(response, state)
    if method == "DELETE":
        await resumable.terminate(owner, ident)
        return HttpResponse(status=204)
    if request.content_type.lower() != OFFSET_OCTET_STREAM:
        raise UnsupportedMediaType(f"a PATCH body must be sent as Content-Type: {OFFSET_OCTET_STREAM}")
    offset = _number(request, "Upload-Offset")
    if offset is None:
        raise BadRequest("missing Upload-Offset")
    state = await resumable.append(
        owner,
        ident,
        offset,
        request,
        declared_length=_number(request, "Content-Length"),
        checksum=parse_checksum(request.headers.get("Upload-Checksum")),
    )
    return _with_state(HttpResponse(status=204), state)
