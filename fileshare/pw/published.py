"""The flat file system of the pw_file seed: files the operator publishes to every client.

``FILESHARE_PUBLISHED`` is a fixed, ordered list of ``(name, local path)`` entries
(``fileshare.conf.published_files``). Named entries appear at the reserved folder
``/_published``, readable by every live client and writable by none; an entry
with an empty name is hidden (the seed's "unnamed entries are considered deleted")
but keeps its place, so blanking one name never renumbers the others.

File ids: entry number ``i`` (counted from 0 over the whole list, named or not)
has ``file_id = ID_BASE + i``. StoredFile ids are a 32-bit signed AutoField, at
most 0x7FFFFFFF, so the two ranges cannot meet; ids stay stable while the list
keeps its order. A named entry whose file is missing or unreadable is hidden too,
with a warning in the log, until the file is back.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured

from fileshare import conf
from fileshare.exceptions import InvalidPath, NotFound
from fileshare.store import paths

logger = logging.getLogger(__name__)

FOLDER = "_published"
"""The reserved top-level folder of the flat file system; no client may take this name."""

ID_BASE = 0xF000_0000
"""Published file ids are ``ID_BASE + position``: above every StoredFile id, within uint32."""

MAX_ENTRIES = 0x1000_0000
"""Positions must keep ``ID_BASE + position`` inside uint32."""


@dataclass(frozen=True)
class PublishedFile:
    """One named, readable entry of the flat file system, as it is right now."""

    name: str
    local_path: str
    file_id: int
    size: int
    modified: datetime

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name, strict=False)[0] or "application/octet-stream"


def _check_name(name: str) -> None:
    try:
        paths.clean(name)
    except InvalidPath as exc:
        raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: bad name {name!r}: {exc.detail}") from None
    if "/" in name:
        raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: the name {name!r} may not contain '/'")


def configured() -> list[tuple[int, str, str]]:
    """``(file_id, name, local_path)`` for every named entry, in configured order.

    Raises ImproperlyConfigured for a bad name, a duplicate name, a relative path
    or too many entries. Does not touch the files.
    """
    entries = conf.published_files()
    if len(entries) > MAX_ENTRIES:
        raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: at most {MAX_ENTRIES} entries")
    seen: set[str] = set()
    out = []
    for position, (name, local_path) in enumerate(entries):
        if not name:
            continue
        _check_name(name)
        if name in seen:
            raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: the name {name!r} is used twice")
        if not os.path.isabs(local_path):
            raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: the path of {name!r} must be absolute")
        seen.add(name)
        out.append((ID_BASE + position, name, local_path))
    return out


def _stat(file_id: int, name: str, local_path: str) -> PublishedFile | None:
    try:
        info = os.stat(local_path)
    except OSError as exc:
        logger.warning("published file %r is hidden: %s", name, exc.strerror or exc)
        return None
    if not stat.S_ISREG(info.st_mode):
        logger.warning("published file %r is hidden: %s is not a regular file", name, local_path)
        return None
    modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
    return PublishedFile(name=name, local_path=local_path, file_id=file_id, size=info.st_size, modified=modified)


def available() -> list[PublishedFile]:
    """The visible entries (named, and their file present), in configured order. Sync."""
    found = (_stat(*entry) for entry in configured())
    return [entry for entry in found if entry is not None]


def find(name: str) -> PublishedFile:
    """The visible entry called exactly ``name``; raises NotFound. Sync."""
    for file_id, entry_name, local_path in configured():
        if entry_name == name:
            entry = _stat(file_id, entry_name, local_path)
            if entry is not None:
                return entry
            break
    raise NotFound(f"nothing is published as {name!r}")


def is_configured() -> bool:
    """True when at least one named entry is configured (the folder is then listed)."""
    return bool(configured())


def _open(local_path: str) -> IO[bytes]:
    return open(local_path, "rb")  # noqa: SIM115 (closed by read_chunks)


async def read_chunks(entry: PublishedFile) -> AsyncIterator[bytes]:
    """Stream at most ``entry.size`` bytes of the file, one worker-thread read per chunk."""
    try:
        handle = await sync_to_async(_open, thread_sensitive=False)(entry.local_path)
    except OSError:
        logger.warning("published file %r vanished before it could be read", entry.name)
        return
    remaining = entry.size
    size = conf.chunk_size()
    try:
        while remaining > 0:
            chunk = await sync_to_async(handle.read, thread_sensitive=False)(min(size, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        await sync_to_async(handle.close, thread_sensitive=False)()
