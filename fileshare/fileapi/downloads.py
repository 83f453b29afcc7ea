"""GET and HEAD of a client file: validators, conditional requests and byte ranges.

RFC 9110 decides each answer:

- Every answer carries the validators ``ETag`` (the strong ``"<sha256>"``) and
  ``Last-Modified``, and ``Accept-Ranges: bytes``.
- Preconditions are evaluated in the order of section 13.2.2 (Django's
  ``get_conditional_response``): a failed ``If-Match``/``If-Unmodified-Since`` is
  412; a matching ``If-None-Match`` (or, without it, an ``If-Modified-Since`` not
  older than the file) is 304.
- ``Range`` (section 14.2) on GET: one range ``bytes=a-b``, ``a-`` or ``-n`` is
  206 with ``Content-Range``; a range starting past the end (or ``-0``) is 416
  with ``Content-Range: bytes */<size>`` and the JSON error body. Several ranges,
  another unit, a malformed header, a failed ``If-Range`` (section 13.1.5) or an
  empty file: the whole file, as the server MAY ignore ``Range``. HEAD ignores it.
- The whole file is the seed's 202 Accepted.

Under the run command the bytes of a 202 or 206 are sent by the server itself, from
the open blob (``offload.hand_to_server``); elsewhere they stream through here.

With ``FILESHARE_S3_REDIRECT_DOWNLOADS`` a GET that would send bytes is instead
a 302 to a presigned S3 URL (``fileshare.store.storage.download_url``); S3 then
answers ``Range`` and the conditional headers itself.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

from fileshare import conf
from fileshare.exceptions import PreconditionFailed, RangeNotSatisfiable
from fileshare.fileapi import offload
from fileshare.fileapi.http import error_response
from fileshare.models import StoredFile
from fileshare.observe import metrics
from fileshare.store import files, storage

_RANGE_SPEC = re.compile(r"(\d*)-(\d*)")
_BEYOND_ANY_FILE = 10**18
"""A range position with more digits than this has is past the end of any file."""


def _position(digits: str) -> int:
    """A range position from its digits; a number of thousands of digits (which ``int``
    refuses to parse) is simply past any end, as RFC 9110 reads it."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 18 else _BEYOND_ANY_FILE


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of a file of ``size`` bytes (``end`` exclusive, unlike HTTP)."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 for this range."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None to send the whole file.

    None when there is no header, the unit is not ``bytes``, the header is
    malformed, it names several ranges or the file is empty (RFC 9110 section
    14.2 lets a server ignore ``Range``). Raises RangeNotSatisfiable when the one
    range starts at or past the end of the file, or is the suffix ``-0``.
    """
    if not header or size <= 0:
        return None
    unit, sep, ranges = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",") if spec.strip()]
    if len(specs) != 1:
        return None  # none, or several: answer with the whole file
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last n bytes
        length = _position(last)
        if length == 0:
            raise RangeNotSatisfiable(f"the range bytes=-0 selects no bytes of this {size}-byte file")
        return ByteRange(max(0, size - length), size, size)
    start = _position(first)
    if last != "" and _position(last) < start:
        return None  # an invalid range-spec: the header is ignored
    if start >= size:
        raise RangeNotSatisfiable(f"the range starts at byte {start}, past the end of this {size}-byte file")
    end = size if last == "" else min(_position(last) + 1, size)
    return ByteRange(start, end, size)


def if_range_holds(header: str | None, etag: str | None, last_modified: int) -> bool:
    """Whether ``If-Range`` lets the ``Range`` apply (RFC 9110 section 13.1.5).

    True without the header. An entity tag must match by strong comparison (a
    weak tag never does); a date must equal ``Last-Modified`` exactly.
    """
    if header is None:
        return True
    value = header.strip()
    if value.startswith('"') or value.startswith("W/"):
        return etag is not None and value == etag and not etag.startswith("W/")
    date = parse_http_date_safe(value)
    return date is not None and date == last_modified


async def respond(request: HttpRequest, row: StoredFile, path: str) -> HttpResponse:
    """The answer to a GET or HEAD of the file ``row`` at ``path`` (see the module docstring).

    Raises NotFound when the index lists the file but its blob is gone.
    """
    size = row.size
    etag = row.entity_tag
    last_modified = int(row.modified_at.timestamp())
    content_type = row.content_type or files.guess_type(path)
    filename = path.rsplit("/", 1)[-1]
    headers = {
        "Last-Modified": http_date(last_modified),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
    }
    if etag is not None:
        headers["ETag"] = etag

    decided = get_conditional_response(
        request, etag=etag, last_modified=last_modified, response=HttpResponse(status=202, headers=headers)
    )
    if decided.status_code == 412:
        current = (
            f"the file's current ETag is {etag}"
            if etag
            else "the file has no ETag yet (its checksum is being computed)"
        )
        return error_response(PreconditionFailed(current))
    if decided.status_code == 304:
        return _not_modified(headers)

    byte_range = None
    if request.method == "GET" and if_range_holds(request.headers.get("If-Range"), etag, last_modified):
        try:
            byte_range = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable as exc:
            refused = error_response(exc)
            refused["Content-Range"] = f"bytes */{size}"
            for name, value in headers.items():
                refused[name] = value
            return refused

    headers["Content-Disposition"] = content_disposition_header(True, filename)
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return HttpResponse(status=202, content_type=content_type, headers=headers)

    if conf.s3_redirect_downloads():
        url = await sync_to_async(storage.download_url, thread_sensitive=False)(row.blob, filename, content_type)
        if url is not None:
            return HttpResponse(status=302, headers={"Location": url, "Cache-Control": "private, no-store"})

    start, end = (0, size) if byte_range is None else (byte_range.start, byte_range.end)
    if await offload.hand_to_server(request, row, start, end - start):
        chunks = offload.no_content()  # the run command's server sends the bytes itself
    else:
        chunks = await _open_stream(row, start, end)
    headers["Content-Length"] = str(end - start)
    metrics.DOWNLOADED.inc(end - start)
    status = 202
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = byte_range.content_range()
    return StreamingHttpResponse(chunks, status=status, content_type=content_type, headers=headers)


def _not_modified(headers: dict[str, str]) -> HttpResponse:
    # A streaming response, so that CommonMiddleware adds no "Content-Length: 0",
    # which a 304 must not carry for a non-empty file (RFC 9110 section 8.6).
    response = StreamingHttpResponse(offload.no_content(), status=304, headers=headers)
    del response["Content-Type"]
    return response


async def _open_stream(row: StoredFile, start: int, end: int) -> AsyncIterator[bytes]:
    """Open the blob and read its first chunk now, so that a missing blob is a 404, not a cut stream."""
    chunks = files.read_chunks(row.blob, start, end)
    try:
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise offload.missing_blob(row) from None
    return _chain(first, chunks)


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
