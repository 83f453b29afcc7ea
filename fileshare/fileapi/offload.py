"""File bytes handed to the front proxy (deploy/nginx.conf) or to the run command's server
(``fileshare.server.daphne_support``) instead of passing through the views.

* **Downloads** (``FILESHARE_ACCEL_REDIRECT``): the view checks the key and finds the
  file as usual, then answers a whole-file GET with the file's headers and
  ``X-Accel-Redirect``; nginx sends the blob from the storage root itself (sendfile).
  Local-disk storage only; HEAD, ranges and conditional requests are answered here.
* **Uploads** (``FILESHARE_TRUSTED_UPLOAD_HEADER``): nginx writes a PUT body to a file
  in ``FILESHARE_TRUSTED_UPLOAD_DIR`` and sends the application that file's path
  instead of the body. The upload adopts the file: it is read once to count and hash
  it, then renamed into the storage root when both are on one filesystem (no second
  copy), or streamed into any other backend.

The header is honoured only when configured, and only for files inside the trusted
directory: a client must never be able to name a server path (nginx overwrites the
header on every request; the application ports must be reachable by nginx alone).

The run command's server does the same for itself, through two ASGI scope extensions
that only it sets (so no client can reach them):

* **Uploads** (``SPOOLED_BODY``): it writes a request body over 100 kB into an unnamed
  file in the storage root, counting and hashing it as it arrives (SpooledBody), and
  hands that file to Django as the body itself. A PUT then gives the file a name in
  storage (a link: no copy, no second read) and answers with the hash already made.
* **Downloads** (``SEND_FILE``): a whole-file GET puts the open blob in the extension's
  dict and answers with the headers and no body; the server sends the bytes itself, in
  large blocks read in a worker thread, woken when the socket drains.

Why this module is long: the three ways a file's bytes skip the application (nginx's adopted uploads, spooled bodies, server-sent downloads) share the blob and linking helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import stat
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header, http_date

from fileshare import conf
from fileshare.exceptions import BadRequest, NotFound, TooLarge
from fileshare.models import StoredFile
from fileshare.store import storage

logger = logging.getLogger(__name__)

HASH_BLOCK = 1024 * 1024
"""Bytes per read while hashing an adopted file."""
CHECK_EVERY = 16 * 1024 * 1024
"""Bytes between checks that the uploading client is still connected."""

SPOOLED_BODY = "fileshare.spooled_body"
"""ASGI scope extension: the request's body file is this SpooledBody (set by the run command's server)."""
SEND_FILE = "fileshare.send_file"
"""ASGI scope extension: a dict; a FileBody put under ``"body"`` is sent by the server as the response body."""


# Requests whose answer depends on more than the whole file (304, 412, 206, 416) stay
# with fileshare.fileapi.downloads, which decides them exactly (RFC 9110); only the plain
# whole-file GET, the one that moves the bytes, goes to nginx.
_DECIDED_BY_THE_APP = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range")


def _whole_file(request: HttpRequest) -> bool:
    """Whether ``request`` is a plain GET of a whole file (no range, no precondition)."""
    return request.method == "GET" and not any(name in request.headers for name in _DECIDED_BY_THE_APP)


def _whole_file_headers(row: StoredFile) -> dict[str, str]:
    headers = {
        "Content-Disposition": content_disposition_header(True, row.path.rsplit("/", 1)[-1]),
        "Last-Modified": http_date(row.modified_at.timestamp()),
        "Accept-Ranges": "bytes",  # a Range request is answered by fileshare.fileapi.downloads
        "Cache-Control": "private, no-cache",
    }
    if row.entity_tag is not None:  # else still being computed (files.fill_checksum)
        headers["ETag"] = row.entity_tag
    return headers


def accel_response(request: HttpRequest, row: StoredFile) -> HttpResponse | None:
    """A whole-file GET of ``row`` handed to nginx with X-Accel-Redirect, or ``None``.

    ``None`` (stream it here) unless FILESHARE_ACCEL_REDIRECT is set and client files
    are on local disk, and for HEAD, ranges and conditional requests. nginx keeps
    these headers (deploy/nginx.conf) and sends ``<storage root>/<blob>``.
    """
    prefix = conf.accel_redirect()
    if prefix is None or not _whole_file(request) or not isinstance(storage.get_storage(), FileSystemStorage):
        return None
    headers = _whole_file_headers(row)
    # nginx percent-decodes the target before it opens the file.
    headers["X-Accel-Redirect"] = f"{prefix}/{quote(row.blob, safe='/')}"
    return HttpResponse(status=202, content_type=row.content_type or "application/octet-stream", headers=headers)


@dataclass(frozen=True)
class FileBody:
    """A response body for the server to send: ``count`` bytes of ``file`` from its position.

    The server closes ``file`` once sent (or when the client is gone).
    """

    file: IO[bytes]
    count: int


async def server_sent_response(request: HttpRequest, row: StoredFile) -> HttpResponse | None:
    """A whole-file GET of ``row`` whose bytes the server sends itself (SEND_FILE), or ``None``.

    ``None`` for HEAD, ranges and conditional requests (``fileshare.fileapi.downloads`` decides
    those, and hands their bytes to the server the same way), and when the server
    cannot send the file (see ``hand_to_server``).
    """
    if not _whole_file(request) or not await hand_to_server(request, row, 0, row.size):
        return None
    headers = {**_whole_file_headers(row), "Content-Length": str(row.size)}
    return StreamingHttpResponse(
        no_content(), status=202, content_type=row.content_type or "application/octet-stream", headers=headers
    )


async def hand_to_server(request: HttpRequest, row: StoredFile, start: int, count: int) -> bool:
    """Have the server send ``count`` bytes of ``row``'s blob from ``start`` as the response
    body (SEND_FILE); the response itself must then have no content (``no_content()``).

    False (stream it through the view) when the server offers no SEND_FILE (plain
    daphne, tests) or client files are not on local disk. The blob is opened here, so
    that a missing blob is a 404 and not a cut stream.
    """
    slot = _extension(request, SEND_FILE)
    if not isinstance(slot, dict) or not isinstance(storage.get_storage(), FileSystemStorage):
        return False
    try:
        handle = await sync_to_async(storage.open_blob, thread_sensitive=False)(row.blob, start)
    except FileNotFoundError:
        raise missing_blob(row) from None
    slot["body"] = FileBody(handle, count)
    return True


def missing_blob(row: StoredFile) -> NotFound:
    """The 404 for a file whose index row names a blob that is not in storage (logged)."""
    logger.warning("file %s of client %s is indexed but its blob %s is missing", row.path, row.owner_id, row.blob)
    return NotFound(
        "the file is listed but its bytes are missing from storage; "
        "the operator's fileshare_reconcile removes such entries"
    )


async def no_content() -> AsyncIterator[bytes]:
    """A response body with nothing in it: the server sends the bytes (``hand_to_server``)."""
    return
    yield b""  # an async generator that yields nothing


def _extension(request: HttpRequest, name: str) -> Any:
    scope = getattr(request, "scope", None)  # ASGIRequest only
    return scope.get("extensions", {}).get(name) if isinstance(scope, dict) else None


@dataclass(frozen=True)
class LocalFile:
    """A request body the front proxy already wrote to local disk, adopted as the upload."""

    path: str

    def open(self) -> io.FileIO:
        """Open it for reading; BadRequest unless it is a regular file (never a symlink)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise BadRequest(f"the proxy's upload file cannot be opened ({exc.strerror})") from None
        handle = io.FileIO(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            handle.close()
            raise BadRequest("the proxy's upload file is not a regular file")
        return handle


class SpooledBody(io.FileIO):
    """A request body written to a file with no name as it arrives, counted and hashed.

    The run command's server makes one per request body over 100 kB (Twisted writes
    the body into it) and hands it to Django as the body file. It lies in the storage
    root when client files are on local disk, made with O_TMPFILE where the filesystem
    has it, so that :func:`adopt_spooled` can give it a name there; else it is created
    and unlinked at once. Either way it is gone with its last descriptor: an aborted or
    refused upload leaves nothing behind, even if the process is killed.

    Django closes it when the request ends, also while a view's worker thread still
    uses it (the client went away): that thread works on its own descriptor
    (:meth:`duplicate`), never on one that may be closed and reused under it.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._closing = threading.Lock()
        super().__init__(_unnamed_file(directory or tempfile.gettempdir()), "r+b")
        self.size = 0
        self._digest = hashlib.sha256()

    def close(self) -> None:
        with self._closing:
            super().close()

    def duplicate(self) -> io.FileIO:
        """The same file on a descriptor of its own; ValueError once this one is closed."""
        with self._closing:
            if self.closed:
                raise ValueError("the request body is closed")
            return io.FileIO(os.dup(self.fileno()), "rb")

    def write(self, data: Any) -> int:
        """Append ``data`` (the body arrives in order) and hash it."""
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            written += super().write(view[written:]) or 0
        self._digest.update(view)
        self.size += written
        return written

    @property
    def sha256(self) -> str:
        """The SHA-256 (lowercase hex) of everything written."""
        return self._digest.hexdigest()


def _unnamed_file(directory: str) -> int:
    """A descriptor of a new empty file with no name, on ``directory``'s filesystem."""
    with contextlib.suppress(AttributeError, OSError):  # no O_TMPFILE here: the fallback below
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fd, path = tempfile.mkstemp(dir=directory)
    os.unlink(path)
    return fd


def spool_directory() -> str | None:
    """Where request bodies are spooled: the storage root when client files are on local
    disk (an upload is then adopted without a copy), else None (the temporary folder)."""
    backend = storage.get_storage()
    if not isinstance(backend, FileSystemStorage):
        return None
    root = str(backend.location)
    os.makedirs(root, exist_ok=True)
    return root


def upload_source(request: HttpRequest) -> HttpRequest | LocalFile | SpooledBody:
    """What a PUT's body is: the file the trusted proxy wrote, the file the server
    spooled it to (SPOOLED_BODY), or else the request itself.

    Raises BadRequest when the header names a path outside FILESHARE_TRUSTED_UPLOAD_DIR.
    No I/O here: the file is opened later, in a worker thread.
    """
    header = conf.trusted_upload_header()
    value = request.headers.get(header) if header else None
    if not value:
        spooled = _extension(request, SPOOLED_BODY)
        return spooled if isinstance(spooled, SpooledBody) and not spooled.closed else request
    directory = conf.trusted_upload_dir()
    path = os.path.normpath(value)
    if (
        directory is None
        or not os.path.isabs(value)
        or path == directory
        or os.path.commonpath([directory, path]) != directory
    ):
        raise BadRequest(f"{header} must name a file inside the proxy's upload directory")
    return LocalFile(path)


@dataclass(frozen=True)
class Adopted:
    """An adopted upload: its size in bytes and its SHA-256 (lowercase hex; None if not computed)."""

    size: int
    sha256: str | None


def adopt(
    name: str, local: LocalFile, limit: int, still_wanted: Callable[[], None], *, hash_now: bool = True
) -> Adopted:
    """Make ``local`` the blob ``name`` (sync; runs in a worker thread).

    On a local-disk storage on the same filesystem the file is renamed into place,
    after one read that counts against ``limit`` and hashes it, unless ``hash_now``
    is false: then nothing is read and the SHA-256 is left to ``files.fill_checksum``.
    Otherwise its bytes are streamed into the storage in a single read, counted and
    hashed. Raises TooLarge or BadRequest, or what ``still_wanted`` raises (it is
    called every 16 MiB); nothing is stored then, and the file is left for the proxy
    to delete.
    """
    with local.open() as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise TooLarge(f"{size} bytes is over the limit of {limit} bytes")
        target = _same_filesystem_path(name, handle)
        if target is None:
            reader = storage.CountingReader(handle, limit, still_wanted)
            storage.save_blob(name, reader)
            return Adopted(reader.count, reader.sha256.hexdigest())
        adopted = _hash(handle, limit, still_wanted) if hash_now else Adopted(size, None)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(local.path, target)
    mode = getattr(storage.get_storage(), "file_permissions_mode", None)
    if mode is not None:
        os.chmod(target, mode)
    return adopted


def adopt_spooled(name: str, body: SpooledBody, limit: int, still_wanted: Callable[[], None]) -> Adopted:
    """Make the spooled request ``body`` the blob ``name`` (sync; runs in a worker thread).

    On local-disk storage, when the body was spooled there with O_TMPFILE, the file is
    linked into place and its size and hash are the ones counted as it arrived: no
    byte is read again. Otherwise it is streamed into the storage (counted and hashed
    again). Raises TooLarge, BadRequest if the request is over (the client left), or
    what ``still_wanted`` raises; nothing is stored then.
    """
    if body.size > limit:
        raise TooLarge(f"{body.size} bytes is over the limit of {limit} bytes")
    try:
        handle = body.duplicate()
    except ValueError:
        raise BadRequest("the request ended before its body was stored") from None
    with handle:
        target = _same_filesystem_path(name, handle)
        if target is not None and _link(handle, target):
            mode = getattr(storage.get_storage(), "file_permissions_mode", None)
            if mode is not None:
                os.chmod(target, mode)
            return Adopted(body.size, body.sha256)
        handle.seek(0)
        reader = storage.CountingReader(handle, limit, still_wanted)
        storage.save_blob(name, reader)
        return Adopted(reader.count, reader.sha256.hexdigest())


def _link(handle: io.FileIO, target: str) -> bool:
    """Give the file with no name behind ``handle`` the name ``target``; False if it cannot
    have one (not made with O_TMPFILE, or no /proc)."""
    directory, base = os.path.split(target)
    os.makedirs(directory, exist_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # linkat(AT_FDCWD, "/proc/self/fd/N", dir_fd, base, AT_SYMLINK_FOLLOW): open(2)'s way to name an O_TMPFILE.
        os.link(f"/proc/self/fd/{handle.fileno()}", base, dst_dir_fd=dir_fd, follow_symlinks=True)
    except FileExistsError:
        raise
    except OSError:
        return False
    finally:
        os.close(dir_fd)
    return True


def sha256_of(path: str) -> str:
    """The SHA-256 of the file at ``path``, read once (sync)."""
    with open(path, "rb", buffering=0) as handle:
        digest = _hash(handle, sys.maxsize, lambda: None).sha256
    assert digest is not None
    return digest


def _hash(handle: io.FileIO, limit: int, still_wanted: Callable[[], None]) -> Adopted:
    # readinto() one reused buffer: no allocation or copy per block, so the hash runs
    # near OpenSSL's speed (it releases the GIL for each block).
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    count, next_check = 0, CHECK_EVERY
    while read := handle.readinto(buffer):
        count += read
        if count > limit:
            raise TooLarge(f"the body is over the limit of {limit} bytes")
        if count >= next_check:
            next_check += CHECK_EVERY
            still_wanted()
        digest.update(view[:read])
    return Adopted(count, digest.hexdigest())


def _same_filesystem_path(name: str, handle: io.FileIO) -> str | None:
    """Where blob ``name`` lives if storage is local disk on ``handle``'s filesystem, else None."""
    backend = storage.get_storage()
    if not isinstance(backend, FileSystemStorage):
        return None
    root = str(backend.location)
    os.makedirs(root, exist_ok=True)
    if os.stat(root).st_dev != os.fstat(handle.fileno()).st_dev:
        return None
    return str(backend.path(name))
