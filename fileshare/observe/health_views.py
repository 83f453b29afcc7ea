"""``/healthz`` (liveness), ``/readyz`` (readiness) and ``/openapi.json`` (the HTTP API's description).

No key is needed and nothing secret is in them: the readiness answer names each
backend's kind (``postgresql``, ``redis``, ``s3``...) and, when one fails, the class of
the error, never an address, a bucket or a message from the backend (those go to the
server log). See docs/health.md.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from fileshare.observe import health

logger = logging.getLogger("fileshare.health")

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.json"
"""The OpenAPI 3.1 document of the HTTP API, shipped in the package."""

NO_STORE = {"Cache-Control": "no-store"}


@require_safe
def liveness(request: HttpRequest) -> HttpResponse:
    """``/healthz``: 200 ``{"status": "ok"}`` while the process answers HTTP; touches no backend."""
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


@require_safe
async def readiness(request: HttpRequest) -> HttpResponse:
    """``/readyz``: 200 when the database, the channel layer and the storage all answer, else 503."""
    probes = await health.readiness(get_channel_layer())
    ready = all(probe.ok for probe in probes)
    for probe in probes:
        if not probe.ok:
            logger.warning(
                "readiness: the %s (%s) failed: %s: %s", probe.name, probe.backend, probe.error, probe.detail
            )
    body = {"status": "ready" if ready else "unavailable", "checks": {p.name: p.as_json() for p in probes}}
    return JsonResponse(body, status=200 if ready else 503, headers=NO_STORE)


@cache
def _openapi_document() -> bytes:
    return OPENAPI_PATH.read_bytes()


@require_safe
def openapi(request: HttpRequest) -> HttpResponse:
    """``/openapi.json``: the OpenAPI 3.1 description of ``/fs/``, ``/tus/`` and the health endpoints."""
    return HttpResponse(_openapi_document(), content_type="application/json")
