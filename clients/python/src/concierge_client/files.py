"""The file API over HTTP: upload (PUT or tus), download (streamed, resumed), list, delete; checksums verified."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from concierge_client.errors import ChecksumMismatch, HttpError, TransferAborted
from concierge_client.events import FileEntry, FileListing
from concierge_client.tus import PIECE, Progress, TusUpload, UrlStore, http_error
from concierge_client.urls import Endpoints

DEFAULT_CHUNK = 16 * 1024 * 1024
"""tus PATCH size (the server's limit is 64 MiB by default); files larger than this go by tus."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Uploaded:
    """A stored file: its path in the folder, size, SHA-256 (verified), file id and URL."""

    path: str
    size: int
    sha256: str
    url: str
    file_id: int | None = None
    resumable: bool = False
    resumed_from: int = 0
    """For a tus upload, the offset this call started from (more than 0: an earlier upload was resumed)."""


@dataclass(frozen=True)
class Downloaded:
    """A downloaded file: where it was written, its size and SHA-256, and whether that was checked."""

    path: Path
    size: int
    sha256: str
    verified: bool
    """The SHA-256 matched one the server announced (False: it announced none yet)."""
    resumed_from: int = 0
    """Bytes of an earlier partial download that were kept (a Range request continued it)."""


def split_remote(remote: str) -> tuple[str, str]:
    """``"client/path/in/folder"`` -> ``("client", "path/in/folder")``."""
    client, _, path = remote.strip("/").partition("/")
    if not client or not path:
        raise ValueError(f"expected CLIENT/PATH, got {remote!r}")
    return client, path


def _expected_sha256(response: httpx.Response) -> str | None:
    """The SHA-256 the server announces for the whole file: the ETag, or a sha-256 (Repr-/Content-)Digest."""
    etag = response.headers.get("ETag", "").strip()
    if etag.startswith('"') and _HEX64.fullmatch(etag.strip('"')):
        return str(etag.strip('"'))
    for name in ("Repr-Digest", "X-Checksum-SHA256"):
        value = response.headers.get(name)
        if not value:
            continue
        if name == "X-Checksum-SHA256" and _HEX64.fullmatch(value.strip().lower()):
            return str(value.strip().lower())
        match = re.search(r"sha-256=:([A-Za-z0-9+/=]+):", value)
        if match:
            return base64.b64decode(match.group(1)).hex()
    return None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * PIECE):
            digest.update(block)
    return digest.hexdigest()


def _hash_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * PIECE):
            digest.update(block)
    return digest


def _write_and_hash(handle: IO[bytes], digest: hashlib._Hash, block: bytes) -> None:
    handle.write(block)
    digest.update(block)


def _discard(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _complete(part: Path, meta: Path, target: Path) -> None:
    os.replace(part, target)
    meta.unlink(missing_ok=True)


async def _read_file(path: Path, size: int, progress: Progress | None) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        done = 0
        while piece := await asyncio.to_thread(handle.read, PIECE):
            yield piece
            done += len(piece)
            if progress is not None:
                progress(done, size)
    finally:
        handle.close()


class FileApi:
    """The file API of one server, with the key of one live client.

    ``key`` and ``owner`` may be callables, so that a reconnected client's new key is used.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        key: str | Callable[[], str],
        owner: str | Callable[[], str],
        timeout: float = 60.0,
    ) -> None:
        self.endpoints = endpoints
        self._key = key
        self._owner = owner
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    @property
    def key(self) -> str:
        return self._key() if callable(self._key) else self._key

    @property
    def owner(self) -> str:
        """The client whose folder uploads go to."""
        return self._owner() if callable(self._owner) else self._owner

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout, connect=10.0))
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": self.key}

    def url(self, path: str, client: str | None = None) -> str:
        """The URL of ``path`` in ``client``'s folder (default: the owner's)."""
        return self.endpoints.file(client or self.owner, path)

    # -- Upload ---------------------------------------------------------------------------------

    async def upload(
        self,
        source: str | os.PathLike[str],
        path: str | None = None,
        *,
        progress: Progress | None = None,
        resumable: bool | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        url_store: UrlStore | None = None,
        content_type: str | None = None,
    ) -> Uploaded:
        """Upload a local file to ``path`` in the owner's folder (default: its base name).

        ``resumable``: True for tus, False for one PUT, None to choose by size (tus above
        ``chunk_size``). A tus upload remembers its URL in ``url_store`` (default: a JSON file
        under ``$XDG_STATE_HOME/concierge``), so running it again, even from a new process,
        goes on from where the server got to, as long as the owner's folder still lives.
        Raises ChecksumMismatch if the server stored other bytes than the file's.
        """
        source = Path(source)
        target = path if path is not None else source.name
        size = source.stat().st_size
        use_tus = size > chunk_size if resumable is None else resumable
        if use_tus:
            return await self._upload_tus(source, target, size, progress, chunk_size, url_store, content_type)
        sha256 = await asyncio.to_thread(_sha256_file, source)
        headers = {**self._auth(), "X-Checksum-SHA256": sha256, "Content-Length": str(size)}
        if content_type:
            headers["Content-Type"] = content_type
        if progress is not None:
            progress(0, size)
        url = self.url(target)
        response = await self.http.put(url, content=_read_file(source, size, progress), headers=headers)
        if response.status_code != 201:
            raise http_error(response)
        body = response.json()
        stored = body.get("sha256")
        if stored is not None and stored != sha256:
            raise ChecksumMismatch(target, sha256, str(stored))
        return Uploaded(str(body.get("path", target)), int(body.get("size", size)), sha256, url, body.get("file_id"))

    async def _upload_tus(
        self,
        source: Path,
        target: str,
        size: int,
        progress: Progress | None,
        chunk_size: int,
        url_store: UrlStore | None,
        content_type: str | None,
    ) -> Uploaded:
        store = url_store if url_store is not None else UrlStore()
        upload = TusUpload(
            self.http,
            self.endpoints.tus_folder(self.owner),
            self.key,
            source,
            target,
            chunk_size=chunk_size,
            store=store,
            content_type=content_type,
        )
        sha256 = await upload.run(progress)
        url = self.url(target)
        head = await self.http.head(url, headers=self._auth())
        if head.status_code != 202:
            raise http_error(head)
        announced = _expected_sha256(head)
        if announced is not None and announced != sha256:
            raise ChecksumMismatch(target, sha256, announced)
        return Uploaded(target, size, sha256, url, None, resumable=True, resumed_from=upload.resumed_from)

    # -- Download ---------------------------------------------------------------------------

    async def download(
        self,
        remote: str,
        dest: str | os.PathLike[str] | None = None,
        *,
        progress: Progress | None = None,
        resume: bool = True,
    ) -> Downloaded:
        """Download ``client/path`` to ``dest`` (default: the file's base name in the current folder; a
        folder: the base name in it).

        The bytes go to ``<dest>.part`` first (its ETag kept in ``<dest>.part.json``); an interrupted
        download is continued from there with ``Range`` and ``If-Range`` (a file changed meanwhile is
        fetched whole). The SHA-256 is checked against the server's ETag before ``dest`` is replaced.
        """
        client, path = split_remote(remote)
        name = path.rsplit("/", 1)[-1]
        target = Path(dest) if dest is not None else Path(name)
        if await asyncio.to_thread(target.is_dir):
            target = target / name
        part = target.with_name(target.name + ".part")
        meta = target.with_name(target.name + ".part.json")
        url = self.url(path, client)
        start, etag = 0, None
        if resume and part.exists():
            try:
                saved = json.loads(meta.read_text())
                if saved.get("url") == url and saved.get("etag"):
                    start, etag = part.stat().st_size, str(saved["etag"])
            except (OSError, ValueError, AttributeError):
                start = 0
        headers = self._auth()
        if start > 0 and etag is not None:
            headers |= {"Range": f"bytes={start}-", "If-Range": etag}
        async with self.http.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code == 416 and start > 0:
                await response.aread()
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                if total.isdigit() and int(total) == start:  # the partial file is already whole
                    return await self._finish(part, meta, target, etag, start, start, None)
                raise http_error(response)
            if response.status_code == 206:
                begin = int(response.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
                if begin != start:
                    raise TransferAborted(f"asked for bytes from {start}, the server sent from {begin}")
                mode = "ab"
                digest = await asyncio.to_thread(_hash_of, part)
            elif response.status_code in (200, 202):
                start, mode, digest = 0, "wb", hashlib.sha256()
            else:
                await response.aread()
                raise http_error(response)
            etag = response.headers.get("ETag")
            expected = _expected_sha256(response)
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            target.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(meta.write_text, json.dumps({"url": url, "etag": etag}))
            done = start
            if progress is not None:
                progress(done, total)
            handle: IO[bytes] = await asyncio.to_thread(part.open, mode)
            try:
                pending: list[bytes] = []
                size = 0
                async for block in response.aiter_bytes():  # as received; written in batches of about PIECE
                    pending.append(block)
                    size += len(block)
                    if size >= PIECE:
                        await asyncio.to_thread(_write_and_hash, handle, digest, b"".join(pending))
                        done += size
                        pending, size = [], 0
                        if progress is not None:
                            progress(done, total)
                if pending:
                    await asyncio.to_thread(_write_and_hash, handle, digest, b"".join(pending))
                    done += size
                    if progress is not None:
                        progress(done, total)
            finally:
                await asyncio.to_thread(handle.close)
            if total is not None and done != total:
                raise TransferAborted(f"the download of {remote} stopped at byte {done} of {total}")
        return await self._finish(part, meta, target, expected, done, start, digest.hexdigest())

    async def _finish(
        self,
        part: Path,
        meta: Path,
        target: Path,
        expected: str | None,
        size: int,
        resumed_from: int,
        actual: str | None,
    ) -> Downloaded:
        announced = expected.strip('"') if expected is not None else None
        if announced is not None and not _HEX64.fullmatch(announced):
            announced = None
        if actual is None:
            actual = await asyncio.to_thread(_sha256_file, part)
        if announced is not None and actual != announced:
            await asyncio.to_thread(_discard, part, meta)
            raise ChecksumMismatch(str(target), announced, actual)
        await asyncio.to_thread(_complete, part, meta, target)
        return Downloaded(target, size, actual, announced is not None, resumed_from)

    # -- Listing and deleting ------------------------------------------------------------------

    async def list(self, path: str = "") -> FileListing:
        """The HTTP listing of a pw_file path: ``""`` the live clients' folders, ``client``, ``client/folder``."""
        response = await self.http.get(self.endpoints.listing(path), headers=self._auth())
        if response.status_code != 200:
            raise http_error(response)
        body = response.json()
        return FileListing(str(body.get("path", path)), tuple(FileEntry.from_json(e) for e in body.get("entries", ())))

    async def delete(self, path: str, client: str | None = None) -> None:
        """Delete ``path`` in ``client``'s folder (default: the owner's; only the owner may)."""
        response = await self.http.delete(self.url(path, client), headers=self._auth())
        if response.status_code != 200:
            raise http_error(response)

    async def exists(self, remote: str) -> bool:
        """Whether ``client/path`` is a file (HEAD)."""
        client, path = split_remote(remote)
        response = await self.http.head(self.url(path, client), headers=self._auth())
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 202):
            raise http_error(response)
        return True


__all__ = ["DEFAULT_CHUNK", "Downloaded", "FileApi", "HttpError", "Uploaded", "split_remote"]
