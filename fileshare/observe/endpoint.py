"""``GET /metrics``: the Prometheus text format, for the addresses and token the operator allows.

Served without a token only to the addresses in ``FILESHARE_METRICS_ALLOW`` (loopback by
default); from anywhere else, only with ``Authorization: Bearer <FILESHARE_METRICS_TOKEN>``
(and never when no token is set). The storage gauges are read from the file index at
each scrape.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from fileshare import conf
from fileshare.exceptions import Forbidden
from fileshare.fileapi.http import error_response
from fileshare.models import StoredFile
from fileshare.observe import metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def allowed(request: HttpRequest) -> bool:
    """True if ``request`` comes from an allowed address or carries the metrics token."""
    token = conf.metrics_token()
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in conf.metrics_allow())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return error_response(
            Forbidden(
                "metrics are served to the addresses in FILESHARE_METRICS_ALLOW, or with "
                "'Authorization: Bearer <FILESHARE_METRICS_TOKEN>'"
            )
        )
    held = StoredFile.objects.aggregate(files=Count("pk"), bytes=Sum("size"))
    metrics.STORAGE_FILES.set(held["files"] or 0)
    metrics.STORAGE_BYTES.set(held["bytes"] or 0)
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE)
