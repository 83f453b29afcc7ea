"""The one module that reads ``FILESHARE_*`` settings.

Values are read at call time, never at import, so ``override_settings`` works in
tests. Each function documents its default; the README's settings table repeats them.

Why this module is long: one small function per setting, each with its default and documentation (the one place settings are read).
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
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


def login_url() -> str:
    """Where the dashboard sends a visitor who is not logged in: the project's own
    ``LOGIN_URL`` when it sets one, else the app's login page (``fileshare:login``,
    ``/dashboard/login/``), so that including ``fileshare.urls`` is enough."""
    if settings.is_overridden("LOGIN_URL"):
        return str(settings.LOGIN_URL)
    return "fileshare:login"


def logout_redirect_url() -> str:
    """Where the dashboard's logout leads: the project's ``LOGOUT_REDIRECT_URL`` when it
    sets one, else the login page (:func:`login_url`)."""
    value = _get("LOGOUT_REDIRECT_URL", None)
    return str(value) if value else login_url()


def host() -> str:
    """Address ``runconcierge`` binds to when given no ``--host``: the project's
    ``CONCIERGE_HOST``. Default ``127.0.0.1``."""
    return str(_get("CONCIERGE_HOST", "127.0.0.1"))


def port() -> int:
    """Port ``runconcierge`` listens on when given no ``--port``: the project's
    ``CONCIERGE_PORT``. Default 64209."""
    return int(_get("CONCIERGE_PORT", 64209))


def asgi_application() -> str:
    """Dotted path of the ASGI application ``runconcierge`` serves: the project's
    ``ASGI_APPLICATION`` (which channels and daphne read too). No default: a project
    without it must name one with ``runconcierge --asgi``."""
    return str(_get("ASGI_APPLICATION", "") or "")


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


def leave_retry_seconds() -> float:
    """Seconds a leave that failed part way may go without its retrier renewing it
    before any process's sweeper finishes it (``FILESHARE_LEAVE_RETRY_SECONDS``).
    Default 30. The process where it failed retries it on every heartbeat
    (``FILESHARE_LEASE_SECONDS / 3``) and renews it each time; this is for when that
    process died (docs/operations.md)."""
    value = float(_get("FILESHARE_LEAVE_RETRY_SECONDS", 30))
    if value <= 0:
        raise ImproperlyConfigured(f"FILESHARE_LEAVE_RETRY_SECONDS={value}: must be positive")
    return value


def public_id_is_key() -> bool:
    """Restore the original's behaviour: the public id *is* the secret key. Default off."""
    return bool(_get("FILESHARE_PUBLIC_ID_IS_KEY", False))


def max_name_length() -> int:
    """Longest client or service name accepted. Default 64."""
    return int(_get("FILESHARE_MAX_NAME_LENGTH", 64))


def chunk_size() -> int:
    """Bytes read or written per step when streaming files. Default 256 KiB."""
    return int(_get("FILESHARE_CHUNK_SIZE", 256 * 1024))


def transfer_chunk_bytes() -> int:
    """Largest data in one pw_transfer chunk, either way: a read sends at most this
    much per chunk (less if the client asks), a write asks for chunks of this size.
    Default 256 KiB; kept below FILESHARE_MAX_FRAME_BYTES (docs/pw_file.md)."""
    value = int(_get("FILESHARE_TRANSFER_CHUNK_BYTES", 256 * 1024))
    if value < 1:
        raise ImproperlyConfigured(f"FILESHARE_TRANSFER_CHUNK_BYTES={value}: must be at least 1")
    return value


def transfer_window_bytes() -> int:
    """Bytes a pw_transfer write asks the client for at a time (its window). Default 4 MiB."""
    value = int(_get("FILESHARE_TRANSFER_WINDOW_BYTES", 4 * 1024 * 1024))
    if value < 1:
        raise ImproperlyConfigured(f"FILESHARE_TRANSFER_WINDOW_BYTES={value}: must be at least 1")
    return value


def transfer_timeout() -> float:
    """Seconds a pw_transfer waits for the client's next chunk before sending its last one
    again. Default 5."""
    value = float(_get("FILESHARE_TRANSFER_TIMEOUT", 5))
    if value <= 0:
        raise ImproperlyConfigured(f"FILESHARE_TRANSFER_TIMEOUT={value}: must be positive")
    return value


def transfer_retries() -> int:
    """Timeouts in a row after which a pw_transfer ends with DEADLINE_EXCEEDED and frees
    its file. Default 3."""
    return max(0, int(_get("FILESHARE_TRANSFER_RETRIES", 3)))


def published_files() -> list[tuple[str, str]]:
    """The flat file system: ``(name, absolute local path)`` pairs, in order. Default none.

    ``FILESHARE_PUBLISHED`` may be such a list or a dict (its order is kept). A
    position fixes the entry's file id and an empty name hides the entry without
    renumbering the rest (``fileshare.pw.published``; docs/pw_file.md).
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


def metrics_token() -> str:
    """Bearer token that lets any address read ``/metrics``; "" (default) means none does."""
    return str(_get("FILESHARE_METRICS_TOKEN", "") or "")


def metrics_allow() -> list[IPv4Network | IPv6Network]:
    """Networks that read ``/metrics`` without the token: ``FILESHARE_METRICS_ALLOW``, a list
    or comma-separated string of addresses or CIDRs. Default loopback (127.0.0.0/8, ::1)."""
    value = _get("FILESHARE_METRICS_ALLOW", "127.0.0.0/8,::1")
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [ip_network(item.strip(), strict=False) for item in items if item.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"FILESHARE_METRICS_ALLOW: {exc}") from exc


def cors_origins() -> list[str] | None:
    """Origins whose browser pages may use the file API and tus (``/fs/``, ``/tus/``).

    ``None`` (the default, or a list holding ``"*"``) allows any origin, as the
    original server did: the key in a header is the credential, no cookie is involved.
    A list of origins (``"https://lab.example.org"``) allows only those
    (``FILESHARE_CORS_ORIGINS``; fileshare/fileapi/cors.py).
    """
    value = _get("FILESHARE_CORS_ORIGINS", None)
    if value is None:
        return None
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    origins = [str(item).rstrip("/") for item in value]
    if "*" in origins:
        return None
    for origin in origins:
        if origin != "null" and "://" not in origin:
            raise ImproperlyConfigured(f"FILESHARE_CORS_ORIGINS: {origin!r} is not an origin such as https://host:port")
    return origins


def frontend_dir() -> str | None:
    """A folder of browser front-end files served same-origin under ``frontend_url()``
    (``FILESHARE_FRONTEND_DIR``, an absolute path). Default ``None``: nothing served."""
    value = _get("FILESHARE_FRONTEND_DIR", None)
    if not value:
        return None
    if not str(value).startswith("/"):
        raise ImproperlyConfigured(f"FILESHARE_FRONTEND_DIR={value!r}: expected an absolute path")
    return str(value)


def frontend_url() -> str:
    """URL prefix of the front-end folder (``FILESHARE_FRONTEND_URL``). Default ``"/app/"``."""
    value = str(_get("FILESHARE_FRONTEND_URL", "/app/") or "/app/")
    if not value.startswith("/"):
        raise ImproperlyConfigured(f"FILESHARE_FRONTEND_URL={value!r}: expected a path such as /app/")
    prefix = value.rstrip("/") + "/"
    if prefix in {"/", "/fs/", "/tus/", "/ws/", "/dashboard/", "/admin/"}:
        raise ImproperlyConfigured(f"FILESHARE_FRONTEND_URL={value!r}: that prefix belongs to the server itself")
    return prefix


# -- Per-client caps on the websocket (docs/protocol-limits.md) ---------------------------------

NICKNAME_COLUMN = 255
"""Characters the database keeps of a nickname (client and service): the caps below cannot exceed it."""


def _positive(name: str, default: int, most: int | None = None) -> int:
    value = int(_get(name, default))
    if value < 1 or (most is not None and value > most):
        bound = f" and at most {most}" if most is not None else ""
        raise ImproperlyConfigured(f"{name}={value}: must be at least 1{bound}")
    return value


def max_services_per_client() -> int:
    """Services one client may own at a time (SERVICE_CREATE answers BAD above). Default 1,000."""
    return _positive("FILESHARE_MAX_SERVICES_PER_CLIENT", 1000)


def max_subscriptions_per_client() -> int:
    """Services one client may have joined at a time (SELF_SUBSCRIBE answers BAD above). Default 1,000."""
    return _positive("FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT", 1000)


def max_subscribers_per_service() -> int:
    """Subscribers one service may have (SELF_SUBSCRIBE answers BAD above), which bounds the
    size of a service's info in every frame that carries it (about 40 bytes a subscriber).
    Default 10,000."""
    return _positive("FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE", 10000)


def max_nickname_length() -> int:
    """Longest nickname, in characters, of a client (IDENTIFY closes 4002 above) or a service
    (SERVICE_CREATE answers ERROR_PROTOCOL above). Default and most 255 (the database column)."""
    return _positive("FILESHARE_MAX_NICKNAME_LENGTH", NICKNAME_COLUMN, NICKNAME_COLUMN)


def max_tags() -> int:
    """Tags one client may carry (IDENTIFY closes 4002 above). Default 32."""
    return _positive("FILESHARE_MAX_TAGS", 32)


def max_tag_length() -> int:
    """Longest tag, in characters (IDENTIFY closes 4002 above). Default 64."""
    return _positive("FILESHARE_MAX_TAG_LENGTH", 64)


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


def resume_grace() -> float:
    """Seconds a resumable session is held after its socket dropped
    (``FILESHARE_RESUME_GRACE``). Default 60 (docs/sessions.md)."""
    value = float(_get("FILESHARE_RESUME_GRACE", 60))
    if value <= 0:
        raise ImproperlyConfigured(f"FILESHARE_RESUME_GRACE={value}: must be positive")
    return value


def resume_buffer() -> int:
    """Frames kept for a held session (``FILESHARE_RESUME_BUFFER``); past that a MESSAGE
    to it is refused with BAD and the resumed client learns ``"recovered": false``.
    Default 1000 (docs/sessions.md)."""
    return _positive("FILESHARE_RESUME_BUFFER", 1000)
