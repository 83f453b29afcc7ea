"""What is decided on a request's headers, before its body is read (docs/limits.md).

The run command's server (``fileshare.server.http_channel``) asks :func:`admit` when the
headers of a request with a body have arrived, and reads the body only if it
answers with an :class:`Admission`; a refusal is answered at once with the file
API's JSON error and the body is never read into memory or spooled to disk. An
``Expect: 100-continue`` gets ``100 Continue`` only once admitted.

What is checked, with the view's own rules (the views check it all again, so the
answers are the same under any server):

* under ``/fs/`` and ``/tus/`` (tus discovery aside): a live client's key (401);
* an upload (PUT or POST under ``/fs/<name>/``, POST or PATCH under
  ``/tus/<name>/``): the key's client owns the folder (403); the declared
  ``Content-Length`` (or tus ``Upload-Length``) is within the upload limit, the
  client's quota and the store's (413, 413 ``quota_exceeded``, 507);
* any other request: a body of at most FILESHARE_MAX_OTHER_BODY_BYTES (413).

The admission carries the most bytes the body may have; a body of undeclared
length (chunked) is cut at that many with the same 413 or 507.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from django.urls import Resolver404, resolve

from fileshare import conf
from fileshare.exceptions import BadRequest, FileshareError, Forbidden, InsufficientStorage, QuotaExceeded, TooLarge
from fileshare.fileapi import auth
from fileshare.models import LiveClient
from fileshare.presence import registry
from fileshare.store import paths, quotas

HeaderOf = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Head:
    """A request as known when its headers have arrived."""

    method: str
    target: bytes
    """The request target as sent (path and query, percent-encoded)."""
    header: HeaderOf
    """The value of a header by name (case-insensitive), or None."""
    declared: int | None
    """Content-Length, or None for a body of undeclared length (chunked)."""


@dataclass(frozen=True)
class Admission:
    """Go on and read the body: at most ``limit`` bytes, else ``over`` is the answer."""

    limit: int
    over: FileshareError


@dataclass(frozen=True)
class Route:
    """Where a request goes, as far as the gate cares."""

    api: str
    """``"fs"``, ``"tus"`` or ``""`` (anything else)."""
    folder: str | None
    """The client name after ``/fs/`` or ``/tus/``, if any."""
    rest: str
    """What follows ``/<api>/<folder>/``."""


def route(target: bytes) -> Route:
    """The part of ``target`` the gate needs; raises BadRequest if it is not ASCII."""
    raw = target.split(b"?", 1)[0]
    try:
        path = unquote(raw.decode("ascii"))
    except UnicodeDecodeError:
        raise BadRequest("the request target must be ASCII (percent-encode other characters)") from None
    for api in ("fs", "tus"):
        prefix = f"/{api}"
        if path == prefix or path.startswith(prefix + "/"):
            folder, _, rest = path[len(prefix) + 1 :].partition("/")
            return Route(api, folder or None, rest)
    return Route("", None, path)


def is_tus(target: bytes) -> bool:
    """Whether ``target`` is a tus URL (its answers carry ``Tus-Resumable``)."""
    try:
        return route(target).api == "tus"
    except BadRequest:
        return False


def _length(head: Head, name: str) -> int | None:
    raw = (head.header(name) or "").strip()
    if not raw.isdigit() or len(raw) > 19:
        return None  # absent or malformed: the view answers it
    return int(raw)


def _within(head: Head, limit: int, what: str) -> Admission:
    """Admit a body of at most ``limit`` bytes; raise TooLarge if it declares more."""
    if head.declared is not None and head.declared > limit:
        raise TooLarge(f"{what} of {head.declared} bytes is over the limit of {limit} bytes")
    return Admission(limit, TooLarge(f"{what} is over the limit of {limit} bytes"))


def _unknown_route(target: bytes) -> bool:
    """Whether ``target`` reaches no file API or tus view, only the JSON 404 of the app's catch-alls."""
    try:
        match = resolve(unquote(target.split(b"?", 1)[0].decode("ascii", "replace")))
    except Resolver404:
        return True
    return match.url_name in {"fs-unknown", "tus-unknown"}


async def admit(head: Head) -> Admission:
    """Admit a request with a body on its headers, or raise the refusal (a FileshareError)."""
    where = route(head.target)
    method = head.method.upper()
    if where.api == "tus":
        method = (head.header("X-HTTP-Method-Override") or method).strip().upper()
    if not where.api or (where.api == "tus" and method == "OPTIONS") or _unknown_route(head.target):
        # No upload view answers it (an unknown route answers its JSON 404 before any key).
        return _within(head, conf.other_body_bytes(), "the body of a request that is not an upload")
    paths.require_utf8(head.target.split(b"?", 1)[0])  # 400 invalid_path before the key, as the views
    key = auth.key_from_headers(head.header)  # 401 first, as the views answer
    uploading = where.folder is not None and (
        (where.api == "fs" and method in {"PUT", "POST"}) or (where.api == "tus" and method in {"POST", "PATCH"})
    )
    if not uploading:
        admission = _within(head, conf.other_body_bytes(), "the body of a request that is not an upload")
        await registry.by_key(key)
        return admission
    if where.api == "tus" and method == "PATCH":
        admission = _within(head, conf.tus_max_chunk_bytes(), "a PATCH body (Tus-Max-Chunk-Size)")
    elif where.api == "tus":
        admission = _within(head, conf.other_body_bytes(), "the body of a tus creation request")
    else:
        admission = _within(head, conf.max_upload_bytes(), "the body")
    tus_length = _length(head, "Upload-Length") if where.api == "tus" and method == "POST" and not where.rest else None
    if tus_length is not None and tus_length > conf.max_upload_bytes():
        raise TooLarge(
            f"Upload-Length {tus_length} is over the limit of {conf.max_upload_bytes()} bytes (Tus-Max-Size)"
        )
    room: Room | None = await registry.db(_judge)(key, where, tus_length, head.declared)
    if room is not None and room.left < admission.limit:
        return Admission(max(room.left, 0), room.over)
    return admission


@dataclass(frozen=True)
class Room:
    """Bytes the quotas leave for a body, and the answer to a body that outgrows them."""

    left: int
    over: FileshareError


def _judge(key: str, where: Route, tus_length: int | None, declared: int | None) -> Room | None:
    """The database's part (on the registry's thread): the key, the owner, the quotas.

    Returns the room the quotas leave for the body (None: no quota applies).
    """
    client: LiveClient = registry._by_key(key)  # noqa: SLF001 (by_key, already on the database thread)
    if client.name != where.folder:
        raise Forbidden(f"only {where.folder} may write or delete in /{where.api}/{where.folder}/")
    if where.api == "tus":
        if tus_length is not None:
            quotas.check(client.pk, tus_length)
        return None  # a PATCH fills the room its upload reserved when it was created
    replacing = where.rest if where.rest and quotas.exists(client.pk, where.rest) else None
    quotas.check(client.pk, declared or 0, replacing=replacing, new_file=replacing is None and bool(where.rest))
    client_left, store_left = quotas.room(client.pk, replacing=replacing)
    if client_left is not None and (store_left is None or client_left <= store_left):
        return Room(
            client_left, QuotaExceeded(f"the body is over the {max(client_left, 0)} bytes left in the client's quota")
        )
    if store_left is not None:
        return Room(
            store_left,
            InsufficientStorage(f"the body is over the {max(store_left, 0)} bytes left in the store's quota"),
        )
    return None
