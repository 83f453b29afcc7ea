"""The one module that reads ``FILESHARE_*`` settings.

Values are read at call time, never at import, so ``override_settings`` works in
tests. Each function documents its default; the README's settings table repeats them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SERVER_VERSION = "0.2.3"
"""The protocol version this server speaks (semver, compatible with ``^0.2.0``)."""

SUBPROTOCOL = "ert-concierge"


def _get(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def storage_alias() -> str:
    """Key in ``STORAGES`` used for client files. Default ``"fileshare"``."""
    return str(_get("FILESHARE_STORAGE_ALIAS", "fileshare"))


def secret() -> str | None:
    """Shared secret every IDENTIFY must carry; ``None`` (default) accepts any."""
    value = _get("FILESHARE_SECRET", None)
    return str(value) if value else None


def identify_timeout() -> float:
    """Seconds a new socket has to send IDENTIFY before close 4004. Default 5."""
    return float(_get("FILESHARE_IDENTIFY_TIMEOUT", 5))


def max_upload_bytes() -> int:
    """Largest file accepted by PUT/POST (413 above). Default 8 GiB."""
    return int(_get("FILESHARE_MAX_UPLOAD_BYTES", 8 * 1024**3))


def max_frame_bytes() -> int:
    """Largest websocket message accepted (close 1009 above). Default 1 MiB."""
    return int(_get("FILESHARE_MAX_FRAME_BYTES", 1024 * 1024))


def max_outbound_bytes() -> int:
    """Bytes that may wait to be sent to one websocket client before it is dropped
    as too slow (the slow-consumer policy). Default 16 MiB."""
    return int(_get("FILESHARE_MAX_OUTBOUND_BYTES", 16 * 1024 * 1024))


def send_timeout() -> float:
    """Seconds a websocket client may leave over 1 MiB unread before it is dropped
    as too slow. Default 10."""
    return float(_get("FILESHARE_SEND_TIMEOUT", 10))


def ping_interval() -> float:
    """Seconds between protocol pings the server sends. Default 5 (the original's)."""
    return float(_get("FILESHARE_PING_INTERVAL", 5))


def ping_timeout() -> float:
    """Seconds without a pong before the server drops a socket. Default 10."""
    return float(_get("FILESHARE_PING_TIMEOUT", 10))


def lease_seconds() -> float:
    """Seconds a server process's lease lasts without renewal. Default 15.

    A process renews its lease every third of this; another process removes the
    clients of a process whose lease has lapsed, so ghosts go within 2x this.
    """
    return float(_get("FILESHARE_LEASE_SECONDS", 15))


def public_id_is_key() -> bool:
    """Restore the original's behaviour: the public id *is* the secret key. Default off."""
    return bool(_get("FILESHARE_PUBLIC_ID_IS_KEY", False))


def max_name_length() -> int:
    """Longest client or service name accepted. Default 64."""
    return int(_get("FILESHARE_MAX_NAME_LENGTH", 64))


def chunk_size() -> int:
    """Bytes read or written per step when streaming files. Default 256 KiB."""
    return int(_get("FILESHARE_CHUNK_SIZE", 256 * 1024))


def published_files() -> list[tuple[str, str]]:
    """The flat file system: ``(name, absolute local path)`` pairs, in order. Default none.

    ``FILESHARE_PUBLISHED`` may be such a list or a dict (its order is kept). A
    position fixes the entry's file id and an empty name hides the entry without
    renumbering the rest (``fileshare.published``; docs/pw_file.md).
    """
    value = _get("FILESHARE_PUBLISHED", ())
    items = list(value.items()) if isinstance(value, dict) else list(value or ())
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, str) for v in item)):
            raise ImproperlyConfigured(f"FILESHARE_PUBLISHED: {item!r} is not a (name, path) pair of strings")
        pairs.append((item[0], item[1]))
    return pairs


def s3_redirect_downloads() -> bool:
    """GET of a client file answers 302 to a presigned S3 URL instead of streaming the
    bytes through the server. Only with S3 storage; default off (docs/storage.md)."""
    return bool(_get("FILESHARE_S3_REDIRECT_DOWNLOADS", False))


def tus_max_chunk_bytes() -> int:
    """Largest body one tus PATCH may carry (413 above); advertised as
    ``Tus-Max-Chunk-Size``. Default 64 MiB (docs/resumable.md)."""
    value = int(_get("FILESHARE_TUS_MAX_CHUNK_BYTES", 64 * 1024 * 1024))
    if value < 1:
        raise ImproperlyConfigured(f"FILESHARE_TUS_MAX_CHUNK_BYTES={value}: must be at least 1")
    return value


def tus_expiry() -> float:
    """Seconds an unfinished tus upload is kept after its creation or last PATCH
    (and a finished one is remembered). Default 24 h (docs/resumable.md)."""
    value = float(_get("FILESHARE_TUS_EXPIRY", 24 * 3600))
    if value <= 0:
        raise ImproperlyConfigured(f"FILESHARE_TUS_EXPIRY={value}: must be positive")
    return value


def accel_redirect() -> str | None:
    """Internal nginx location prefix for X-Accel-Redirect downloads (``/_concierge_accel``).

    When set and client files are on local disk, GET/HEAD of a file answers with
    its headers and ``X-Accel-Redirect: <prefix>/<blob>`` and no body: nginx sends
    the bytes (deploy/nginx.conf). Only behind such an nginx. Default ``None``.
    """
    value = _get("FILESHARE_ACCEL_REDIRECT", None)
    if not value:
        return None
    prefix = str(value).rstrip("/")
    if not prefix.startswith("/"):
        raise ImproperlyConfigured(f"FILESHARE_ACCEL_REDIRECT={value!r}: expected a path such as /_concierge_accel")
    return prefix


def trusted_upload_header() -> str | None:
    """Request header in which the front proxy names a PUT body it already wrote to disk
    (``X-Upload-File``); the file is adopted as the upload. Default ``None`` (never honoured).

    Only for a proxy that sets or clears this header on every request, so that a
    client can never name a server path itself (deploy/nginx.conf does).
    Requires ``FILESHARE_TRUSTED_UPLOAD_DIR``.
    """
    value = _get("FILESHARE_TRUSTED_UPLOAD_HEADER", None)
    if not value:
        return None
    if not trusted_upload_dir():
        raise ImproperlyConfigured("FILESHARE_TRUSTED_UPLOAD_HEADER needs FILESHARE_TRUSTED_UPLOAD_DIR")
    return str(value)


def checksum_after_answer() -> bool:
    """Whether a PUT adopted from the front proxy's file is answered before its SHA-256
    is known (``FILESHARE_CHECKSUM_AFTER_ANSWER``). Default ``False``.

    Then the 201 says ``"sha256": null``, the file is readable at once, and its
    checksum (and so its ``ETag``) follows from a worker thread, about a second per
    GiB later. A PUT that declares a checksum is still verified before the answer.
    Only adopted uploads (``FILESHARE_TRUSTED_UPLOAD_HEADER``) on local disk: the
    other paths compute the hash while the bytes pass anyway.
    """
    return bool(_get("FILESHARE_CHECKSUM_AFTER_ANSWER", False))


def trusted_upload_dir() -> str | None:
    """The directory the front proxy writes request bodies to (nginx's
    ``client_body_temp_path``); only regular files inside it are adopted. Default ``None``."""
    value = _get("FILESHARE_TRUSTED_UPLOAD_DIR", None)
    if not value:
        return None
    if not str(value).startswith("/"):
        raise ImproperlyConfigured(f"FILESHARE_TRUSTED_UPLOAD_DIR={value!r}: expected an absolute path")
    return str(value).rstrip("/") or "/"


# -- Hardening: quotas, limits before the body, timeouts (docs/limits.md). ------------------


def _positive_or_none(name: str, default: int | None) -> int | None:
    value = _get(name, default)
    if value is None or value == "" or int(value) <= 0:
        return None
    return int(value)


def client_quota_bytes() -> int | None:
    """Bytes one client may hold: its files plus the declared lengths of its unfinished tus
    uploads (413 ``quota_exceeded`` above). Default 16 GiB; 0 or ``None``: no limit."""
    return _positive_or_none("FILESHARE_CLIENT_QUOTA_BYTES", 16 * 1024**3)


def client_quota_files() -> int | None:
    """Files one client may hold, unfinished tus uploads included (413 ``quota_exceeded``
    above). Default 100,000; 0 or ``None``: no limit."""
    return _positive_or_none("FILESHARE_CLIENT_QUOTA_FILES", 100_000)


def store_quota_bytes() -> int | None:
    """Bytes all clients together may hold (507 ``insufficient_storage`` above). Default
    ``None``: only the disk's free space limits it (a full disk also answers 507)."""
    return _positive_or_none("FILESHARE_STORE_QUOTA_BYTES", None)


def other_body_bytes() -> int:
    """Largest body of a request that is not an upload (a login or dashboard form, a body
    sent with GET or DELETE): 413 above, checked before the body is read. Default 1 MiB."""
    return int(_get("FILESHARE_MAX_OTHER_BODY_BYTES", 1024 * 1024))


def http_header_timeout() -> float:
    """Seconds a request's header block may take from its first byte to its end under the
    run command (a slowloris trickle is cut at this, with 408). Default 60 (nginx's
    client_header_timeout)."""
    return float(_get("FILESHARE_HTTP_HEADER_TIMEOUT", 60))


def http_body_timeout() -> float:
    """Seconds a request body may stall (no byte arrives) under the run command before the
    connection is cut with 408. Default 60 (nginx's client_body_timeout)."""
    return float(_get("FILESHARE_HTTP_BODY_TIMEOUT", 60))


def http_keepalive_timeout() -> float:
    """Seconds an idle HTTP connection is kept open between requests under the run command.
    Default 75 (nginx's keepalive_timeout)."""
    return float(_get("FILESHARE_HTTP_KEEPALIVE_TIMEOUT", 75))
