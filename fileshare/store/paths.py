"""The only sanitiser of user-supplied file paths.

A path in the file API is a plain relative POSIX path inside the client's folder.
Anything else is refused with InvalidPath (400), never "resolved": ``..`` and ``.``
segments, empty segments (``a//b``, a leading or trailing ``/``), backslashes, NUL
and other control or invisible format characters, segments that a Unicode
normalisation would turn into ``.``, ``..`` or a separator, and over-long names.
The URL has been percent-decoded exactly once by the server before it gets here;
it is never decoded again, so ``%2e%2e`` arriving double-encoded stays a literal
(and harmless) name.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes

from fileshare.exceptions import InvalidPath

MAX_PATH_CHARS = 1024
MAX_SEGMENT_BYTES = 255
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean(raw: str) -> str:
    """Return ``raw`` unchanged if it is a safe relative path; raise InvalidPath otherwise."""
    if not raw:
        raise InvalidPath("the path is empty")
    if len(raw) > MAX_PATH_CHARS:
        raise InvalidPath(f"the path is longer than {MAX_PATH_CHARS} characters")
    if raw.startswith("/"):
        raise InvalidPath("the path must be relative, not absolute")
    if "\\" in raw:
        raise InvalidPath("backslashes are not allowed in paths")
    for char in raw:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidPath(f"control or invisible character U+{ord(char):04X} in the path")
    for segment in raw.split("/"):
        _check_segment(segment)
    return raw


def _check_segment(segment: str) -> None:
    if segment == "":
        raise InvalidPath("empty path segment (a leading, trailing or doubled '/')")
    if segment in {".", ".."}:
        raise InvalidPath(f"'{segment}' segments are not allowed")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise InvalidPath(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes")
    folded = unicodedata.normalize("NFKC", segment)
    if folded in {".", ".."} or "/" in folded or "\\" in folded:
        raise InvalidPath(f"the segment {segment!r} is a look-alike of '.', '..' or a separator")
    if folded.strip(" .") == "":
        raise InvalidPath("a path segment may not be only dots and spaces")


def require_utf8(raw_path: bytes | None) -> None:
    """Refuse a request path whose percent-decoded bytes are not valid UTF-8 (InvalidPath).

    ``raw_path`` is the path as it reached the server (the ASGI scope's ``raw_path``),
    before any decoding: the server's own decoding replaces invalid bytes with U+FFFD,
    so ``%ff%fe.txt`` and ``%fe%ff.txt`` would name the same file. Overlong forms
    (``%c0%ae``, ".") and encoded surrogates are invalid UTF-8 too. ``None`` (a server
    that does not give ``raw_path``) is not checked.
    """
    if raw_path is None:
        return
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPath(
            f"the path is not valid UTF-8 once percent-decoded (byte {exc.start}); "
            "names are stored byte-exact and never replaced"
        ) from None


def parents(path: str) -> list[str]:
    """The folders above ``path``: ``a/b/c`` -> ``["a", "a/b"]``."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}$")


def blob_suffix(path: str) -> str:
    """A harmless file extension taken from ``path`` for its storage name, or ``""``."""
    match = _SAFE_SUFFIX.search(path.rsplit("/", 1)[-1])
    return match.group(0).lower() if match else ""
