"""File bytes handed to the front proxy (deploy/nginx.conf) instead of passing through daphne.

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
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest, HttpResponse
from django.utils.http import content_disposition_header, http_date

from fileshare import conf, storage
from fileshare.exceptions import BadRequest, TooLarge
from fileshare.models import StoredFile

HASH_BLOCK = 1024 * 1024
"""Bytes per read while hashing an adopted file."""
CHECK_EVERY = 16 * 1024 * 1024
"""Bytes between checks that the uploading client is still connected."""


# Requests whose answer depends on more than the whole file (304, 412, 206, 416) stay
# with fileshare.downloads, which decides them exactly (RFC 9110); only the plain
# whole-file GET, the one that moves the bytes, goes to nginx.
_DECIDED_BY_THE_APP = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range")


def accel_response(request: HttpRequest, row: StoredFile) -> HttpResponse | None:
    """A whole-file GET of ``row`` handed to nginx with X-Accel-Redirect, or ``None``.

    ``None`` (stream it here) unless FILESHARE_ACCEL_REDIRECT is set and client files
    are on local disk, and for HEAD, ranges and conditional requests. nginx keeps
    these headers (deploy/nginx.conf) and sends ``<storage root>/<blob>``.
    """
    prefix = conf.accel_redirect()
    if (
        prefix is None
        or request.method != "GET"
        or any(name in request.headers for name in _DECIDED_BY_THE_APP)
        or not isinstance(storage.get_storage(), FileSystemStorage)
    ):
        return None
    headers = {
        "Content-Disposition": content_disposition_header(True, row.path.rsplit("/", 1)[-1]),
        "ETag": f'"{row.sha256}"',
        "Last-Modified": http_date(row.modified_at.timestamp()),
        "Accept-Ranges": "bytes",  # a Range request is answered by fileshare.downloads
        "Cache-Control": "private, no-cache",
        # nginx percent-decodes the target before it opens the file.
        "X-Accel-Redirect": f"{prefix}/{quote(row.blob, safe='/')}",
    }
    return HttpResponse(status=202, content_type=row.content_type or "application/octet-stream", headers=headers)


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


def upload_source(request: HttpRequest) -> HttpRequest | LocalFile:
    """What a PUT's body is: the file the trusted proxy wrote, or else the request itself.

    Raises BadRequest when the header names a path outside FILESHARE_TRUSTED_UPLOAD_DIR.
    No I/O here: the file is opened later, in a worker thread.
    """
    header = conf.trusted_upload_header()
    value = request.headers.get(header) if header else None
    if not value:
        return request
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
    """An adopted upload: its size in bytes and its SHA-256 (lowercase hex)."""

    size: int
    sha256: str


def adopt(name: str, local: LocalFile, limit: int, still_wanted: Callable[[], None]) -> Adopted:
    """Make ``local`` the blob ``name`` (sync; runs in a worker thread).

    The file is read once, counting against ``limit`` and hashing. On a local-disk
    storage on the same filesystem it is then renamed into place; otherwise its bytes
    are streamed into the storage in that same single read. Raises TooLarge or
    BadRequest, or what ``still_wanted`` raises (it is called every 16 MiB); nothing
    is stored then, and the file is left for the proxy to delete.
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
        adopted = _hash(handle, limit, still_wanted)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(local.path, target)
    mode = getattr(storage.get_storage(), "file_permissions_mode", None)
    if mode is not None:
        os.chmod(target, mode)
    return adopted


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
