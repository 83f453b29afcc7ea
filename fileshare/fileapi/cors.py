"""CORS on the file API and tus (``/fs/``, ``/tus/``), by django-cors-headers.

Browser pages on other origins upload and download with the key in a header
(``x-fs-key``, ``Authorization``), as the original's front-end and tus-js-client or
Uppy do: their preflights must be answered and the answers must carry
``Access-Control-Allow-Origin``. django-cors-headers' ``CorsMiddleware`` does it
(async, so it costs the file API no thread hop); it answers a preflight itself,
before any view, and adds the headers to every answer of those paths, refusals
included. The dashboard and the admin are outside ``URLS_REGEX``: they stay
same-origin, with CSRF and the session cookie.

The library reads ``CORS_*`` settings. ``library_defaults()`` builds them from the
app's own settings (``fileshare.conf.cors_origins``: any origin unless
``FILESHARE_CORS_ORIGINS`` lists some) and ``configure_library()``, called when the
app loads, sets each one the project has not set itself: a project may still
override any ``CORS_*`` setting. No credentials: no cookie is involved, so
``Access-Control-Allow-Origin: *`` is enough for any origin.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from fileshare import conf

URLS_REGEX = r"^/(fs|tus)(/|$)"
"""The paths that answer CORS (``request.path_info``)."""

ALLOW_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

ALLOW_HEADERS = (
    "accept",
    "authorization",
    "x-fs-key",
    "content-type",
    "content-digest",
    "x-checksum-sha256",
    "range",
    "if-none-match",
    "if-match",
    "if-range",
    "if-modified-since",
    "if-unmodified-since",
    "x-requested-with",
    # tus 1.0 (tus-js-client, Uppy)
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-defer-length",
    "upload-concat",
    "upload-checksum",
    "x-http-method-override",
)
"""Request headers a page may send (the preflight's ``Access-Control-Allow-Headers``)."""

EXPOSE_HEADERS = (
    "etag",
    "content-range",
    "content-disposition",
    "content-length",
    "accept-ranges",
    "location",
    "allow",
    "www-authenticate",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "tus-version",
    "tus-resumable",
    "tus-max-size",
    "tus-extension",
    "tus-checksum-algorithm",
    "tus-max-chunk-size",
)
"""Response headers a page may read, beyond the CORS-safelisted ones."""


def library_defaults() -> dict[str, Any]:
    """django-cors-headers' settings for the file API, from the app's settings."""
    origins = conf.cors_origins()
    return {
        "CORS_URLS_REGEX": URLS_REGEX,
        "CORS_ALLOW_ALL_ORIGINS": origins is None,
        "CORS_ALLOWED_ORIGINS": origins or [],
        "CORS_ALLOW_METHODS": ALLOW_METHODS,
        "CORS_ALLOW_HEADERS": ALLOW_HEADERS,
        "CORS_EXPOSE_HEADERS": EXPOSE_HEADERS,
        "CORS_ALLOW_CREDENTIALS": False,
    }


def configure_library() -> None:
    """Set each of ``library_defaults()`` the project has not set itself."""
    for name, value in library_defaults().items():
        if not hasattr(settings, name):
            setattr(settings, name, value)
