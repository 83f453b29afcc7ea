"""Client files on S3, streamed both ways at bounded memory.

django-storages' ``S3Storage`` keeps the naming, configuration, ``exists``,
``size`` and presigned ``url``; this subclass changes the paths that would
otherwise buffer whole files or walk them one request at a time:

- ``_save`` hands boto3's ``upload_fileobj`` a non-seekable reader, so s3transfer
  reads it in part-sized pieces and uploads them as a multipart upload. Its
  ``TransferConfig`` here bounds what is held in memory: at most
  ``upload_concurrency`` parts (plus the one being read) of ``part_size`` bytes.
  s3transfer's own default allows ten 8 MiB parts in memory for such a body.
- ``open_range`` streams one ranged GET (botocore's ``StreamingBody``); the
  inherited ``open()`` would download the whole object into a
  ``SpooledTemporaryFile`` that, with the default ``max_memory_size`` of 0,
  never rolls over to disk.
- ``delete_prefix`` deletes by prefix in ``DeleteObjects`` batches of 1,000;
  ``iter_keys`` lists by prefix (used by ``fileshare_reconcile``).

botocore errors are translated here, as django-storages does in ``_open``: a
missing object is ``FileNotFoundError``, anything else is re-raised unchanged.

Why this module is long: django-storages' S3Storage with streamed multipart uploads, a shared session and listing; each piece depends on the others' state.
"""

from __future__ import annotations

import ctypes
import io
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, cast

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
DEFAULT_UPLOAD_CONCURRENCY = 2
MIN_PART_SIZE = 5 * MIB
"""S3 refuses multipart parts below 5 MiB (all but the last)."""
MAX_PART_SIZE = 5 * 1024 * MIB
DELETE_BATCH = 1000
"""The most keys one ``DeleteObjects`` request may name."""
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
MMAP_THRESHOLD = 1 * MIB
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
_heap_pinned = False


def is_missing(error: ClientError) -> bool:
    """Whether a botocore error means "no such object" (not a missing bucket)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _MISSING_CODES or (status == 404 and code != "NoSuchBucket")


class StreamingS3Storage(S3Storage):
    """``S3Storage`` with streaming multipart uploads, ranged reads and deletes by prefix.

    Extra OPTIONS: ``part_size`` (bytes per multipart part, default 8 MiB, at
    least 5 MiB) and ``upload_concurrency`` (parts uploaded at once and held in
    memory, default 2). An explicit ``transfer_config`` option wins over both.
    """

    part_size: int
    upload_concurrency: int

    def get_default_settings(self) -> dict[str, Any]:
        """django-storages' settings plus ``part_size`` and ``upload_concurrency``."""
        defaults: dict[str, Any] = super().get_default_settings()
        defaults["part_size"] = DEFAULT_PART_SIZE
        defaults["upload_concurrency"] = DEFAULT_UPLOAD_CONCURRENCY
        return defaults

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.part_size = int(self.part_size)
        self.upload_concurrency = int(self.upload_concurrency)
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ImproperlyConfigured(
                f"part_size={self.part_size}: S3 multipart parts must be between 5 MiB and 5 GiB"
            )
        if self.upload_concurrency < 1:
            raise ImproperlyConfigured(f"upload_concurrency={self.upload_concurrency}: must be at least 1")
        if settings.get("transfer_config") is None:
            self.transfer_config = bounded_transfer_config(self.part_size, self.upload_concurrency)
        self._session: Any = None
        self._session_lock = threading.Lock()
        pin_mmap_threshold()

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state.pop("_session", None)
        state.pop("_session_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._session = None
        self._session_lock = threading.Lock()

    @property
    def connection(self) -> Any:
        """This thread's boto3 S3 resource, made from one session shared by every thread.

        django-storages makes a new session per thread, and each session loads and
        keeps its own copy of botocore's S3 model (10-17 MiB a thread); clients made
        from one session share it. Resources are not thread-safe, hence one per thread;
        creating them from the shared session is serialised.
        """
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            with self._session_lock:
                if self._session is None:
                    self._session = self._create_session()
                connection = self._session.resource(
                    "s3",
                    region_name=self.region_name,
                    use_ssl=self.use_ssl,
                    endpoint_url=self.endpoint_url,
                    config=self.client_config,
                    verify=self.verify,
                )
            self._connections.connection = connection
        return connection

    # -- Writes --------------------------------------------------------------------------

    def _save(self, name: str, content: Any) -> str:
        """Upload ``content`` as ``name``, reading it once, front to back, ``part_size`` at a time."""
        return cast(str, super()._save(name, _PartReader(content)))

    # -- Reads ---------------------------------------------------------------------------

    def open_range(self, name: str, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A binary reader over bytes ``[start, end)`` of ``name`` (to the end if ``end`` is None).

        One GET with a ``Range`` header; the body is read from the socket as the
        caller reads. Raises FileNotFoundError when the object is missing. A
        start at or past the end of the object gives an empty reader.
        """
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        if end is not None and end == start:
            return io.BytesIO(b"")  # an empty range has no Range header
        params: dict[str, Any] = {"Bucket": self.bucket_name, "Key": self._key(name)}
        if start or end is not None:
            params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = self.connection.meta.client.get_object(**params)
        except ClientError as error:
            if is_missing(error):
                raise FileNotFoundError(f"no such object: {name}") from error
            if error.response.get("Error", {}).get("Code") == "InvalidRange":
                return io.BytesIO(b"")  # start is at or past the end of the object
            raise
        return cast(IO[bytes], response["Body"])

    def download_url(self, name: str, filename: str, content_type: str, expire: int | None = None) -> str:
        """A presigned GET URL for ``name`` that S3 answers as an attachment called ``filename``.

        Valid for ``expire`` seconds (default: the ``querystring_expire`` option).
        """
        parameters = {
            "ResponseContentDisposition": content_disposition_header(True, filename),
            "ResponseContentType": content_type,
        }
        return cast(str, self.url(name, parameters=parameters, expire=expire))

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int, datetime]]:
        """Every object under ``prefix`` as ``(name, size, last_modified)``, name relative to ``location``.

        Paginated ``ListObjectsV2``: 1,000 keys per request, never all in memory.
        """
        key_prefix = self._key(prefix) if prefix else self._location_prefix()
        strip = len(self._location_prefix())
        paginator = self.connection.meta.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=key_prefix):
            for item in page.get("Contents", ()):
                yield item["Key"][strip:], int(item["Size"]), item["LastModified"]

    def iter_uploads(self, prefix: str = "") -> Iterator[tuple[str, str, datetime]]:
        """Multipart uploads begun and never completed nor aborted, as ``(name, upload_id, initiated)``.

        A process killed mid-upload leaves one; S3 keeps (and bills) its parts
        until it is aborted. ``fileshare_reconcile`` aborts the stale ones.
        """
        key_prefix = self._key(prefix) if prefix else self._location_prefix()
        strip = len(self._location_prefix())
        paginator = self.connection.meta.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=key_prefix):
            for upload in page.get("Uploads", ()):
                yield upload["Key"][strip:], upload["UploadId"], upload["Initiated"]

    def abort_upload(self, name: str, upload_id: str) -> None:
        """Abort one multipart upload; one already gone is not an error."""
        try:
            self.connection.meta.client.abort_multipart_upload(
                Bucket=self.bucket_name, Key=self._key(name), UploadId=upload_id
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NoSuchUpload" and not is_missing(error):
                raise

    # -- Deletes -------------------------------------------------------------------------

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose name starts with ``prefix``; returns how many went.

        Lists with ``ListObjectsV2`` and deletes each batch of up to 1,000 keys with
        one ``DeleteObjects`` request. Raises OSError naming the first key S3
        refused to delete. An empty prefix is refused (ValueError): it would be
        the whole bucket.
        """
        if not prefix.strip("/"):
            raise ValueError("refusing to delete by an empty prefix")
        client = self.connection.meta.client
        paginator = client.get_paginator("list_objects_v2")
        deleted = 0
        batch: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self._key(prefix)):
            for item in page.get("Contents", ()):
                batch.append(item["Key"])
                if len(batch) == DELETE_BATCH:
                    deleted += self._delete_keys(batch)
                    batch = []
        if batch:
            deleted += self._delete_keys(batch)
        return deleted

    def _delete_keys(self, keys: list[str]) -> int:
        response = self.connection.meta.client.delete_objects(
            Bucket=self.bucket_name,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 refused to delete {len(errors)} of {len(keys)} objects; first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
        return len(keys)

    # -- Names ---------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        """The object key of a storage name (``location`` prefixed, normalised)."""
        return cast(str, self._normalize_name(clean_name(name)))

    def _location_prefix(self) -> str:
        location = str(self.location or "").strip("/")
        return f"{location}/" if location else ""


def pin_mmap_threshold() -> None:
    """Make glibc serve every allocation of 1 MiB or more with its own mmap, returned on free.

    Uploads allocate part-sized buffers in one thread and free them in another.
    glibc's default threshold slides up to the largest block freed, after which
    such buffers come from per-thread heaps that keep the memory: about 10 MiB
    more resident per upload in ``bench/s3_storage_rss.py``. Setting it
    (``MALLOC_MMAP_THRESHOLD_`` in the environment does the same) stops the
    sliding. Once per process; a no-op off glibc.
    """
    global _heap_pinned
    if _heap_pinned or not sys.platform.startswith("linux"):
        return
    _heap_pinned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def bounded_transfer_config(part_size: int, concurrency: int) -> TransferConfig:
    """A ``TransferConfig`` holding at most ``concurrency`` parts of ``part_size`` in memory.

    A non-seekable body cannot be re-read, so s3transfer copies each part into
    memory before uploading it; ``max_in_memory_upload_chunks`` (default 10, not
    a constructor argument) caps how many such parts may wait or be in flight.
    """
    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=concurrency,
        use_threads=True,
        preferred_transfer_client="classic",  # never the CRT client, which has its own buffers
    )
    config.max_in_memory_upload_chunks = concurrency
    return config


class _PartReader:
    """What s3transfer reads: ``read(n)`` returns exactly ``n`` bytes until the end.

    s3transfer takes a short read as the end of a part, and a part under 5 MiB
    before the last makes S3 refuse the upload, so reads are topped up from the
    source (whose own ``read(n)`` is what is called, e.g. a CountingReader's).
    ``read()`` with no size drains the source; s3transfer only does that once a
    read came back short of the multipart threshold, i.e. at the end.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self.content_type = getattr(source, "content_type", None)
        self._thread = threading.get_ident()

    def read(self, size: int | None = -1) -> bytes:
        try:
            if size is None or size < 0:
                return b"".join(iter(lambda: self._read(DEFAULT_PART_SIZE), b""))
            return self._read(size)
        finally:
            if threading.get_ident() != self._thread:
                # s3transfer reads the body in its own worker thread, which ends with
                # the transfer. A source that queries the database (the upload's
                # "is the owner still connected" check) would leave that thread's
                # connection open until garbage collection; close it now.
                connections.close_all()

    def _read(self, size: int) -> bytes:
        first = self.source.read(size)
        if not isinstance(first, bytes):
            first = bytes(first)
        if len(first) >= size or not first:
            return first
        pieces = [first]
        got = len(first)
        while got < size:
            more = self.source.read(size - got)
            if not more:
                break
            pieces.append(bytes(more))
            got += len(more)
        return b"".join(pieces)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        """The caller owns the source; s3transfer must not close it."""
