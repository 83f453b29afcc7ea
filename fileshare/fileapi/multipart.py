"""Multipart form bodies for the file API: parse errors as refusals, file names kept as sent.

Django's parser changes a form file name silently (``sub/dir/x.txt`` becomes
``x.txt``, ``a\\0b.txt`` becomes ``ab.txt``, HTML entities are decoded); here the name
is kept exactly as sent, and the views check it with ``fileshare.store.paths`` like any
other path: a plain relative path is stored at that path inside the folder, anything
else is refused with 400 saying why (docs/limits.md).

Every way the parser can fail on a client's body is a refusal, never a 500:
limits (``DATA_UPLOAD_MAX_NUMBER_FILES``, ``DATA_UPLOAD_MAX_NUMBER_FIELDS``,
``DATA_UPLOAD_MAX_MEMORY_SIZE``) are 413, anything malformed is 400.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.encoding import force_str

from fileshare.exceptions import BadRequest, TooLarge


class ExactNameParser(MultiPartParser):
    """Django's multipart parser, keeping each file's name as sent in ``exact_name`` (Django's
    ``UploadedFile.name`` keeps only the last segment); the views check it."""

    _sent_name: str | None = None

    def sanitize_file_name(self, file_name: str) -> str | None:
        self._sent_name = file_name
        return file_name or None

    def handle_file_complete(self, old_field_name: str, counters: list[int]) -> None:
        super().handle_file_complete(old_field_name, counters)
        stored = self._files.getlist(force_str(old_field_name, self._encoding, errors="replace"))
        if stored and self._sent_name is not None:
            stored[-1].exact_name = self._sent_name


def sent_name(upload: Any) -> str:
    """The file name a form part was sent with, unchanged (``""`` if none)."""
    return str(getattr(upload, "exact_name", None) or upload.name or "")


def _parse_file_upload(request: HttpRequest, meta: Any, post_data: Any) -> Any:
    # HttpRequest.parse_file_upload, with ExactNameParser.
    parser = ExactNameParser(meta, post_data, request.upload_handlers, request.encoding)
    return parser.parse()


def _files(request: HttpRequest) -> Any:
    request.parse_file_upload = lambda meta, data: _parse_file_upload(request, meta, data)
    try:
        return request.FILES
    except (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
        raise TooLarge(f"the form is over a limit: {_brief(exc)}") from None
    except (MultiPartParserError, SuspiciousOperation, UnicodeError, ValueError) as exc:
        raise BadRequest(f"the multipart body is malformed: {_brief(exc)}") from None


def _brief(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


async def files_of(request: HttpRequest) -> Any:
    """``request.FILES`` (a MultiValueDict of uploaded files), parsed in a worker thread (the
    parser reads and writes files); raises BadRequest or TooLarge for a body it cannot take."""
    return await sync_to_async(_files, thread_sensitive=False)(request)
