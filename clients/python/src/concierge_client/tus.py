"""Resumable uploads over tus 1.0, with the upload URLs remembered on disk across process restarts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx

from concierge_client.errors import HttpError, TransferAborted

TUS_VERSION = "1.0.0"
PIECE = 1024 * 1024
"""Bytes handed to the socket (and reported to the progress callback) at a time."""

Progress = Callable[[int, int | None], None]
"""A progress callback: ``(bytes done, total bytes or None)``."""


def default_store_path() -> Path:
    """``$XDG_STATE_HOME/concierge/tus-urls.json`` (``~/.local/state/...`` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "concierge" / "tus-urls.json"


class UrlStore:
    """A small JSON file mapping an upload (server folder, local file, size, mtime, target path) to its tus URL."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tus-urls.", dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def set(self, key: str, url: str) -> None:
        data = self._load()
        data[key] = url
        self._save(data)

    def remove(self, key: str) -> None:
        data = self._load()
        if data.pop(key, None) is not None:
            self._save(data)


def fingerprint(folder_url: str, source: Path, target: str) -> str:
    """The store's key for uploading ``source`` (as it is now: size and mtime) to ``target`` under ``folder_url``."""
    stat = source.stat()
    return f"{folder_url} {source.resolve()} {stat.st_size} {stat.st_mtime_ns} {target}"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def _hash_prefix(path: Path, size: int) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        left = size
        while left > 0:
            block = handle.read(min(8 * PIECE, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest


def _sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def _pieces(chunk: bytes, done: int, total: int, progress: Progress | None) -> AsyncIterator[bytes]:
    view = memoryview(chunk)
    for start in range(0, len(chunk), PIECE):
        piece = bytes(view[start : start + PIECE])
        yield piece
        if progress is not None:
            progress(done + start + len(piece), total)


class TusUpload:
    """One resumable upload of a local file into ``client``'s folder at ``target``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        folder_url: str,
        key: str,
        source: Path,
        target: str,
        *,
        chunk_size: int,
        store: UrlStore | None,
        content_type: str | None = None,
        retries: int = 5,
    ) -> None:
        self.http = http
        self.folder_url = folder_url
        self.source = source
        self.target = target
        self.chunk_size = chunk_size
        self.store = store
        self.content_type = content_type
        self.retries = retries
        self.headers = {"Authorization": key, "Tus-Resumable": TUS_VERSION}
        self.size = source.stat().st_size
        self.store_key = fingerprint(folder_url, source, target)
        self.url: str | None = None
        self.resumed_from = 0
        """The offset this run started from (0: a new upload)."""

    async def run(self, progress: Progress | None = None) -> str:
        """Upload (or finish) the file; returns its SHA-256 (hex), computed from the local bytes."""
        offset = await self._start()
        self.resumed_from = offset
        digest = await asyncio.to_thread(_hash_prefix, self.source, offset)
        if progress is not None:
            progress(offset, self.size)
        failures = 0
        while offset < self.size:
            length = min(self.chunk_size, self.size - offset)
            chunk = await asyncio.to_thread(_read_at, self.source, offset, length)
            if len(chunk) != length:
                raise TransferAborted(f"{self.source} changed while it was being uploaded")
            try:
                new_offset = await self._patch(offset, chunk, progress)
            except (httpx.TransportError, _Retry) as exc:
                failures += 1
                if failures > self.retries:
                    raise TransferAborted(f"upload of {self.source} failed {failures} times: {exc}") from exc
                await asyncio.sleep(min(10.0, 0.5 * 2**failures))
                new_offset = await self._offset()
            else:
                failures = 0
            if new_offset > offset:
                await asyncio.to_thread(digest.update, memoryview(chunk)[: new_offset - offset])
                if new_offset - offset < len(chunk):  # the server kept part of it: rehash from the start
                    digest = await asyncio.to_thread(_hash_prefix, self.source, new_offset)
            elif new_offset < offset:
                digest = await asyncio.to_thread(_hash_prefix, self.source, new_offset)
            offset = new_offset
            if progress is not None:
                progress(offset, self.size)
        if self.store is not None:
            self.store.remove(self.store_key)
        return digest.hexdigest()

    async def _start(self) -> int:
        """The offset to go on from: the stored upload's, or 0 for a new upload."""
        url = self.store.get(self.store_key) if self.store is not None else None
        if url is not None:
            response = await self.http.head(url, headers=self.headers)
            length = response.headers.get("Upload-Length")
            if response.status_code == 200 and length is not None and int(length) == self.size:
                self.url = url
                return int(response.headers["Upload-Offset"])
            if self.store is not None:  # gone (expired, its owner left, terminated): start again
                self.store.remove(self.store_key)
        metadata = f"filename {_b64(self.target)}"
        if self.content_type:
            metadata += f",filetype {_b64(self.content_type)}"
        response = await self.http.post(
            self.folder_url,
            headers={**self.headers, "Upload-Length": str(self.size), "Upload-Metadata": metadata},
        )
        if response.status_code != 201:
            raise http_error(response)
        self.url = urljoin(self.folder_url, response.headers["Location"])
        if self.store is not None and self.size > 0:
            self.store.set(self.store_key, self.url)
        return int(response.headers.get("Upload-Offset", "0"))

    async def _offset(self) -> int:
        assert self.url is not None
        response = await self.http.head(self.url, headers=self.headers)
        if response.status_code != 200:
            raise http_error(response)
        return int(response.headers["Upload-Offset"])

    async def _patch(self, offset: int, chunk: bytes, progress: Progress | None) -> int:
        assert self.url is not None
        checksum = base64.b64encode(await asyncio.to_thread(_sha256_digest, chunk)).decode()
        response = await self.http.patch(
            self.url,
            content=_pieces(chunk, offset, self.size, progress),
            headers={
                **self.headers,
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(len(chunk)),
                "Upload-Offset": str(offset),
                "Upload-Checksum": f"sha256 {checksum}",
            },
        )
        if response.status_code == 204:
            return int(response.headers["Upload-Offset"])
        if response.status_code in (409, 423, 460) or response.status_code >= 500:
            raise _Retry(str(http_error(response)))  # HEAD tells where to go on
        raise http_error(response)


class _Retry(Exception):
    """A PATCH answer after which the upload goes on from the server's offset."""


def http_error(response: httpx.Response) -> HttpError:
    """The HttpError for a refusal (the body must have been read)."""
    error, detail = "http_error", response.reason_phrase
    try:
        body = response.json()
        if isinstance(body, dict):
            error, detail = str(body.get("error", error)), str(body.get("detail", detail))
    except (ValueError, httpx.ResponseNotRead):
        pass
    return HttpError(response.status_code, error, detail)
