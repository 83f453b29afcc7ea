"""pw_file's List and Delete over the file index, shared by HTTP, websocket and pw_rpc.

PROTOCOL.md section 4 and docs/pw_file.md. The tree is read from the StoredFile
index (never the storage bucket): the root holds one folder per live client plus
the published folder; below a client's folder, sub-folders are the path prefixes
of its files. Paths are exact and case-sensitive; a leading ``/`` is optional.

- List of a folder gives its immediate children, ``path`` relative to the folder.
  List of a file gives that one file, ``path`` being its base name.
- Delete removes one file, only in the asking client's own folder. Folders are
  never deleted (IsDirectory; pw_rpc's UNIMPLEMENTED): delete their files.
- Permissions are for the asking client: READ|WRITE in its own folder, READ
  elsewhere (published files included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fileshare.exceptions import BadName, IsDirectory, NotFound, ReadOnly
from fileshare.models import LiveClient, StoredFile
from fileshare.presence.registry import db
from fileshare.pw import published
from fileshare.store import files, paths
from fileshare.ws import relay

READ = 1
WRITE = 2
READ_AND_WRITE = READ | WRITE

RESERVED_NAMES = frozenset({published.FOLDER})
"""Top-level folder names that are not clients' folders; IDENTIFY must refuse them."""


def check_client_name(name: str) -> None:
    """Raise BadName (close 4008) for a name reserved by the file tree, such as ``_published``.

    Called during IDENTIFY, after the usual name checks.
    """
    if name in RESERVED_NAMES:
        raise BadName(f"the name {name!r} is reserved")


@dataclass(frozen=True)
class Entry:
    """One child in a listing; ``path`` is relative to the listed path."""

    path: str
    kind: Literal["file", "directory"]
    permissions: int
    size: int | None = None
    file_id: int | None = None
    content_type: str | None = None
    modified: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as the HTTP and websocket listings send it (true size, never clamped)."""
        return {
            "path": self.path,
            "type": self.kind,
            "permissions": self.permissions,
            "size_bytes": self.size,
            "file_id": self.file_id,
            "content_type": self.content_type,
            "modified": self.modified.isoformat() if self.modified else None,
        }


@dataclass(frozen=True)
class Listing:
    """The children of ``path`` (absolute, normalised: ``/``, ``/alice``, ``/alice/sub``)."""

    path: str
    entries: list[Entry]


def split(raw: str) -> tuple[str, str] | None:
    """``""`` or ``/`` -> None (the root); ``/alice/a/b`` -> ``("alice", "a/b")``.

    One leading ``/`` is optional; the rest must pass ``paths.clean`` (InvalidPath).
    """
    rest = raw[1:] if raw.startswith("/") else raw
    if rest == "":
        return None
    paths.clean(rest)
    folder, _, sub = rest.partition("/")
    return folder, sub


def _absolute(parts: tuple[str, str] | None) -> str:
    if parts is None:
        return "/"
    folder, sub = parts
    return f"/{folder}/{sub}" if sub else f"/{folder}"


def _live_client(name: str) -> LiveClient:
    client: LiveClient | None = LiveClient.objects.filter(name=name, left_at__isnull=True).first()
    if client is None:
        raise NotFound(f"no live client is named {name!r}")
    return client


def _root(asker_id: int) -> list[Entry]:
    entries = [
        Entry(path=name, kind="directory", permissions=READ_AND_WRITE if pk == asker_id else READ)
        for pk, name in LiveClient.objects.filter(left_at__isnull=True).values_list("pk", "name")
        if name not in RESERVED_NAMES
    ]
    if published.is_configured():
        entries.append(Entry(path=published.FOLDER, kind="directory", permissions=READ))
    return sorted(entries, key=lambda e: e.path)


def _published_entry(entry: published.PublishedFile) -> Entry:
    return Entry(
        path=entry.name,
        kind="file",
        permissions=READ,
        size=entry.size,
        file_id=entry.file_id,
        content_type=entry.content_type,
        modified=entry.modified,
    )


def _list_published(sub: str) -> list[Entry]:
    if not published.is_configured():
        raise NotFound("nothing is published")
    if not sub:
        return [_published_entry(entry) for entry in published.available()]
    return [_published_entry(published.find(sub))]


def _file_entry(name: str, row: dict[str, Any], permissions: int) -> Entry:
    return Entry(
        path=name,
        kind="file",
        permissions=permissions,
        size=row["size"],
        file_id=row["file_id"],
        content_type=row["content_type"],
        modified=row["modified_at"],
    )


_ROW_FIELDS = ("file_id", "path", "size", "content_type", "modified_at")


def _list_client(asker_id: int, folder: str, sub: str) -> list[Entry]:
    owner = _live_client(folder)
    permissions = READ_AND_WRITE if owner.pk == asker_id else READ
    rows = StoredFile.objects.filter(owner=owner)
    if sub:
        exact = rows.filter(path=sub).values(*_ROW_FIELDS).first()
        if exact is not None:
            return [_file_entry(sub.rsplit("/", 1)[-1], exact, permissions)]
        prefix = sub + "/"
        # SQLite's LIKE ignores ASCII case: startswith narrows, the Python check decides.
        rows = rows.filter(path__startswith=prefix)
    else:
        prefix = ""
    found_any = False
    children: dict[str, Entry] = {}
    folders: dict[str, datetime] = {}  # sub-folder -> newest modification inside it
    for row in rows.values(*_ROW_FIELDS).iterator(chunk_size=2000):
        if not row["path"].startswith(prefix):
            continue
        found_any = True
        head, slash, _ = row["path"][len(prefix) :].partition("/")
        if slash:
            folders[head] = max(folders.get(head, row["modified_at"]), row["modified_at"])
        else:
            children[head] = _file_entry(head, row, permissions)
    if sub and not found_any:
        raise NotFound(f"{folder} has no file or folder {sub!r}")
    for head, newest in folders.items():
        # A name is never both (files.store refuses it); if a race made it so, the file wins.
        children.setdefault(head, Entry(path=head, kind="directory", permissions=permissions, modified=newest))
    return sorted(children.values(), key=lambda e: e.path)


def _list(asker_id: int, raw: str) -> Listing:
    parts = split(raw)
    if parts is None:
        entries = _root(asker_id)
    elif parts[0] == published.FOLDER:
        entries = _list_published(parts[1])
    else:
        entries = _list_client(asker_id, *parts)
    return Listing(path=_absolute(parts), entries=entries)


async def list_path(asker: LiveClient, raw: str) -> Listing:
    """pw_file List: the children of ``raw`` as ``asker`` sees them.

    Raises InvalidPath (400) for a malformed path and NotFound (404) when nothing
    has exactly that path.
    """
    return await db(_list)(asker.pk, raw)


def _delete_target(asker_id: int, raw: str) -> tuple[str, str]:
    """Check that ``raw`` names one of the asker's files; return (folder, path)."""
    parts = split(raw)
    if parts is None:
        raise IsDirectory("the root is a folder; folders are not deleted")
    folder, sub = parts
    if folder == published.FOLDER:
        if sub:
            published.find(sub)  # NotFound first, for a name that was never published
        raise ReadOnly("published files are read-only")
    owner = _live_client(folder)
    if owner.pk != asker_id:
        raise ReadOnly(f"only {folder} may delete in /{folder}")
    if not sub:
        raise IsDirectory(f"/{folder} is a folder; folders are not deleted")
    rows = StoredFile.objects.filter(owner=owner)
    if rows.filter(path=sub).exists():
        return folder, sub
    prefix = sub + "/"
    below = rows.filter(path__startswith=prefix).values_list("path", flat=True).iterator()
    if any(p.startswith(prefix) for p in below):
        raise IsDirectory(f"/{folder}/{sub} is a folder; folders are not deleted")
    raise NotFound(f"{folder} has no file {sub!r}")


async def delete_path(asker: LiveClient, raw: str) -> str:
    """pw_file Delete: remove the asker's file at ``raw``; returns its absolute path.

    Raises InvalidPath, NotFound, ReadOnly (someone else's folder or a published
    file: 403) or IsDirectory (a folder). Storage and index go together (files.remove).
    """
    folder, path = await db(_delete_target)(asker.pk, raw)
    await files.remove(asker.pk, path)
    await relay.notify_dashboard("file_changed", client=folder, path=path)
    return f"/{folder}/{path}"
