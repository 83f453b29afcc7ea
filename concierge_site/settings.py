"""Settings for the concierge site.

Every value that an operator may change is read from an environment variable here,
and only here. Each variable, its default and its meaning are listed in the README
("Settings"). The defaults are the embedded ones: SQLite, the in-memory channel
layer and local-disk storage under ``var/``, so that a fresh clone runs as it is.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    """The environment variable ``name``, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = env(name, "1" if default else "0").strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: expected true or false")


def env_number(name: str, default: float) -> float:
    value = env(name, str(default))
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number") from None


def env_int(name: str, default: int) -> int:
    value = env_number(name, default)
    if value != int(value):
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number")
    return int(value)


# -- Core Django ------------------------------------------------------------------

DATA_DIR = Path(env("CONCIERGE_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)
DEBUG = env_bool("DJANGO_DEBUG", False)
# An embedded default key is fine for the loopback default; production sets its own.
SECRET_KEY = env("DJANGO_SECRET_KEY", "concierge-insecure-default-key-set-DJANGO_SECRET_KEY")
ALLOWED_HOSTS = [h.strip() for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "corsheaders",
    "fileshare",
]

MIDDLEWARE = [
    # Outermost: counts every request, refusals included (docs/metrics.md).
    "fileshare.observe.middleware.RequestMetricsMiddleware",
    # CORS on /fs/ and /tus/ only (fileshare/fileapi/cors.py): preflights answered before any view.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # FILESHARE_FRONTEND_DIR served at FILESHARE_FRONTEND_URL (fileshare/fileapi/frontend.py); removes itself when unset.
    "fileshare.fileapi.frontend.FrontendMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "concierge_site.urls"
ASGI_APPLICATION = "concierge_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default. WAL and IMMEDIATE transactions let several server processes
# share the file without "database is locked" on concurrent writers.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'concierge.sqlite3'}"),
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "fileshare:dashboard"
LOGOUT_REDIRECT_URL = "login"

# -- Channel layer ------------------------------------------------------------------

REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "fileshare.layers.redis_layer.ConciergeRedisLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, which aborts the
                # blocking BZPOPMIN that channels_redis waits on (channels_redis
                # issue 422): every idle consumer would die with 1011.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "socket_connect_timeout": 5}],
                # Lab clients stay connected for days: a group membership must not
                # expire under them (channels_redis' default is 24 h).
                "group_expiry": env_int("CONCIERGE_GROUP_EXPIRY", 10 * 365 * 24 * 3600),
                # Messages queued per consumer before senders are told it is full.
                "capacity": env_int("CONCIERGE_CHANNEL_CAPACITY", 100),
                # At least the resume grace: a held session's frames must outlive it (docs/sessions.md).
                "expiry": max(60, int(env_number("FILESHARE_RESUME_GRACE", 60)) + 1),
                # Lets several concierges (or test runs) share one Redis.
                "prefix": env("CONCIERGE_CHANNEL_PREFIX", "concierge"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "fileshare.layers.memory_layer.ConciergeMemoryLayer",
            "CONFIG": {
                "group_expiry": env_int("CONCIERGE_GROUP_EXPIRY", 10 * 365 * 24 * 3600),
                "capacity": env_int("CONCIERGE_CHANNEL_CAPACITY", 100),
            },
        }
    }

# -- File storage ---------------------------------------------------------------------

FILESHARE_S3_BUCKET = env("FILESHARE_S3_BUCKET", "")
if FILESHARE_S3_BUCKET:
    _files_storage = {
        "BACKEND": "fileshare.store.s3.StreamingS3Storage",
        "OPTIONS": {
            "bucket_name": FILESHARE_S3_BUCKET,
            "endpoint_url": env("FILESHARE_S3_ENDPOINT_URL", "") or None,
            "region_name": env("FILESHARE_S3_REGION", "") or None,
            "access_key": env("FILESHARE_S3_ACCESS_KEY_ID", "") or None,
            "secret_key": env("FILESHARE_S3_SECRET_ACCESS_KEY", "") or None,
            "location": env("FILESHARE_S3_PREFIX", ""),
            "addressing_style": env("FILESHARE_S3_ADDRESSING_STYLE", "") or None,
            "signature_version": env("FILESHARE_S3_SIGNATURE_VERSION", "s3v4"),
            # Multipart uploads hold at most UPLOAD_CONCURRENCY parts of PART_SIZE
            # bytes in memory (docs/storage.md).
            "part_size": env_int("FILESHARE_S3_PART_SIZE", 8 * 1024 * 1024),
            "upload_concurrency": env_int("FILESHARE_S3_UPLOAD_CONCURRENCY", 2),
            "file_overwrite": True,
            "default_acl": None,
            # Lifetime of presigned URLs (FILESHARE_S3_REDIRECT_DOWNLOADS).
            "querystring_expire": env_int("FILESHARE_S3_URL_EXPIRE", 300),
        },
    }
else:
    _files_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env("FILESHARE_STORAGE_ROOT", str(DATA_DIR / "files")),
            # A PUT replaces a file; without this Django silently renames on collision.
            "allow_overwrite": True,
        },
    }

# GET of a client file answers 302 to a presigned S3 URL instead of streaming it.
FILESHARE_S3_REDIRECT_DOWNLOADS = bool(FILESHARE_S3_BUCKET) and env_bool("FILESHARE_S3_REDIRECT_DOWNLOADS", False)

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "fileshare": _files_storage,
}

# -- The concierge (read by fileshare/conf.py, which holds the defaults) ---------------

CONCIERGE_HOST = env("CONCIERGE_HOST", "127.0.0.1")
CONCIERGE_PORT = env_int("CONCIERGE_PORT", 64209)

FILESHARE_SECRET = env("FILESHARE_SECRET", "") or None
FILESHARE_IDENTIFY_TIMEOUT = env_number("FILESHARE_IDENTIFY_TIMEOUT", 5)
FILESHARE_MAX_UPLOAD_BYTES = env_int("FILESHARE_MAX_UPLOAD_BYTES", 8 * 1024**3)
FILESHARE_MAX_FRAME_BYTES = env_int("FILESHARE_MAX_FRAME_BYTES", 1024 * 1024)
FILESHARE_MAX_OUTBOUND_BYTES = env_int("FILESHARE_MAX_OUTBOUND_BYTES", 16 * 1024 * 1024)
FILESHARE_SEND_TIMEOUT = env_number("FILESHARE_SEND_TIMEOUT", 10)
FILESHARE_PING_INTERVAL = env_number("FILESHARE_PING_INTERVAL", 5)
FILESHARE_PING_TIMEOUT = env_number("FILESHARE_PING_TIMEOUT", 10)
FILESHARE_LEASE_SECONDS = env_number("FILESHARE_LEASE_SECONDS", 15)
FILESHARE_LEAVE_RETRY_SECONDS = env_number("FILESHARE_LEAVE_RETRY_SECONDS", 30)
# Resumable sessions (docs/sessions.md): seconds one is held after its socket dropped, frames kept for it.
FILESHARE_RESUME_GRACE = env_number("FILESHARE_RESUME_GRACE", 60)
FILESHARE_RESUME_BUFFER = env_int("FILESHARE_RESUME_BUFFER", 1000)
FILESHARE_PUBLIC_ID_IS_KEY = env_bool("FILESHARE_PUBLIC_ID_IS_KEY", False)
# Browser pages of these origins may use /fs/ and /tus/ (comma-separated); "*" any (fileshare/fileapi/cors.py).
FILESHARE_CORS_ORIGINS = env("FILESHARE_CORS_ORIGINS", "*")
# A browser front-end served same-origin: a folder, and its URL prefix (fileshare/fileapi/frontend.py).
FILESHARE_FRONTEND_DIR = env("FILESHARE_FRONTEND_DIR", "") or None
FILESHARE_FRONTEND_URL = env("FILESHARE_FRONTEND_URL", "/app/")
# Per-client caps on the websocket, docs/protocol-limits.md.
FILESHARE_MAX_SERVICES_PER_CLIENT = env_int("FILESHARE_MAX_SERVICES_PER_CLIENT", 1000)
FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT = env_int("FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT", 1000)
FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE = env_int("FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE", 10000)
FILESHARE_MAX_NICKNAME_LENGTH = env_int("FILESHARE_MAX_NICKNAME_LENGTH", 255)
FILESHARE_MAX_TAGS = env_int("FILESHARE_MAX_TAGS", 32)
FILESHARE_MAX_TAG_LENGTH = env_int("FILESHARE_MAX_TAG_LENGTH", 64)
# Resumable (tus) uploads, docs/resumable.md: the largest PATCH body, and how long an
# unfinished upload is kept after its last PATCH (seconds).
FILESHARE_TUS_MAX_CHUNK_BYTES = env_int("FILESHARE_TUS_MAX_CHUNK_BYTES", 64 * 1024 * 1024)
FILESHARE_TUS_EXPIRY = env_number("FILESHARE_TUS_EXPIRY", 24 * 3600)
# /metrics (docs/metrics.md): who may read it without the token, and the token.
FILESHARE_METRICS_ALLOW = env("FILESHARE_METRICS_ALLOW", "127.0.0.0/8,::1")
FILESHARE_METRICS_TOKEN = env("FILESHARE_METRICS_TOKEN", "")
# pw_transfer on /ws (docs/pw_file.md).
FILESHARE_TRANSFER_CHUNK_BYTES = env_int("FILESHARE_TRANSFER_CHUNK_BYTES", 256 * 1024)
FILESHARE_TRANSFER_WINDOW_BYTES = env_int("FILESHARE_TRANSFER_WINDOW_BYTES", 4 * 1024 * 1024)
FILESHARE_TRANSFER_TIMEOUT = env_number("FILESHARE_TRANSFER_TIMEOUT", 5)
FILESHARE_TRANSFER_RETRIES = env_int("FILESHARE_TRANSFER_RETRIES", 3)

# -- Logging: one line per event, never a key. --------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "fileshare.observe.jsonlog.JsonFormatter"},
    },
    # CONCIERGE_LOG_FORMAT=json: one JSON object per line, for log shippers.
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if env("CONCIERGE_LOG_FORMAT", "plain") == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("CONCIERGE_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# -- pw_file's flat file system (docs/pw_file.md) --------------------------------------


def env_published(name: str) -> list[tuple[str, str]]:
    """``name=/abs/path,other=/abs/path2`` -> ordered (name, path) pairs; ``=/path`` is unnamed."""
    pairs: list[tuple[str, str]] = []
    for item in env(name, "").split(","):
        if not item.strip():
            continue
        entry_name, sep, local_path = (part.strip() for part in item.partition("="))
        if not sep or not os.path.isabs(local_path):
            raise ImproperlyConfigured(f"{name}: {item.strip()!r} is not name=/absolute/path")
        if entry_name and ("/" in entry_name or entry_name in {n for n, _ in pairs}):
            raise ImproperlyConfigured(f"{name}: {entry_name!r} is used twice or contains '/'")
        pairs.append((entry_name, local_path))
    return pairs


FILESHARE_PUBLISHED = env_published("FILESHARE_PUBLISHED")

# -- Behind nginx (deploy/nginx.conf, deploy/README.md) ---------------------------------

# Downloads from local disk are handed to nginx: X-Accel-Redirect to this internal prefix.
FILESHARE_ACCEL_REDIRECT = env("FILESHARE_ACCEL_REDIRECT", "") or None
# A PUT body nginx already wrote to FILESHARE_TRUSTED_UPLOAD_DIR, named in this header,
# is adopted (moved into storage) instead of sent again. nginx must set or clear the
# header on every request: a client must never name a server path.
FILESHARE_TRUSTED_UPLOAD_HEADER = env("FILESHARE_TRUSTED_UPLOAD_HEADER", "") or None
FILESHARE_TRUSTED_UPLOAD_DIR = env("FILESHARE_TRUSTED_UPLOAD_DIR", "") or None
# Such an adopted PUT is answered before its SHA-256 is computed (the recipe sets it).
FILESHARE_CHECKSUM_AFTER_ANSWER = env_bool("FILESHARE_CHECKSUM_AFTER_ANSWER", False)

# -- The dashboard's and the admin's security (docs/operations.md) ----------------------
# Kept apart from the lists above: each line adds one thing.

# Content-Security-Policy (django-csp; its middleware without thread hops, fileshare.dashboard.csp):
# scripts, styles and everything else only from the site itself, no inline script, no framing.
MIDDLEWARE = [*MIDDLEWARE, "fileshare.dashboard.csp.AsyncCSPMiddleware"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Secure cookies: on every HTTPS request (fileshare.dashboard.secure_cookies), or always.
MIDDLEWARE = ["fileshare.dashboard.secure_cookies.SecureCookiesMiddleware", *MIDDLEWARE]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("CONCIERGE_SECURE_COOKIES", False)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (deploy/nginx.conf does).
if env_bool("CONCIERGE_TRUST_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Login throttling (django-axes): after CONCIERGE_LOGIN_FAILURE_LIMIT failed logins for
# one username from one address, that pair is refused (429) for CONCIERGE_LOGIN_LOCKOUT seconds.
INSTALLED_APPS = [*INSTALLED_APPS, "axes"]
MIDDLEWARE = [*MIDDLEWARE, "axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("CONCIERGE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env_number("CONCIERGE_LOGIN_LOCKOUT", 900))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# -- Hardening (docs/limits.md): quotas, the limit on other bodies, the run command's timeouts.

FILESHARE_CLIENT_QUOTA_BYTES = env_int("FILESHARE_CLIENT_QUOTA_BYTES", 16 * 1024**3)
FILESHARE_CLIENT_QUOTA_FILES = env_int("FILESHARE_CLIENT_QUOTA_FILES", 100_000)
FILESHARE_STORE_QUOTA_BYTES = env_int("FILESHARE_STORE_QUOTA_BYTES", 0) or None
FILESHARE_MAX_OTHER_BODY_BYTES = env_int("FILESHARE_MAX_OTHER_BODY_BYTES", 1024 * 1024)
FILESHARE_HTTP_HEADER_TIMEOUT = env_number("FILESHARE_HTTP_HEADER_TIMEOUT", 60)
FILESHARE_HTTP_BODY_TIMEOUT = env_number("FILESHARE_HTTP_BODY_TIMEOUT", 60)
FILESHARE_HTTP_KEEPALIVE_TIMEOUT = env_number("FILESHARE_HTTP_KEEPALIVE_TIMEOUT", 75)
