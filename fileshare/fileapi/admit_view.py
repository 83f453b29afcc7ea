"""``/_concierge/admit``: the gate (``fileshare.fileapi.gate``) for nginx's ``auth_request``.

Behind the production recipe (deploy/nginx.conf) nginx, not the application, reads
request bodies. Before it reads the body of an upload it asks this view, with the
request's headers and no body, whether the request is admitted: the key, the owner
and the declared size (against the limits and quotas) are judged exactly as the run
command judges them. nginx passes the original method, target and length in
``X-Original-Method``, ``X-Original-URI`` and ``X-Original-Content-Length``.

``auth_request`` understands only 2xx (go on), 401 and 403 (refuse with that
status); so a refusal is answered 401 or 403, with the status the client must get in
``X-Concierge-Status`` and the file API's JSON error in ``X-Concierge-Refusal``,
which nginx sends back (``@concierge_refused`` in the recipe).
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from fileshare.exceptions import BadRequest, FileshareError
from fileshare.fileapi import gate


def _declared(raw: str | None) -> int | None:
    value = (raw or "").strip()
    if not value:
        return None  # no length: a chunked body
    if not value.isdigit() or len(value) > 19:
        raise BadRequest(f"Content-Length {value[:40]!r} is not a number")
    return int(value)


@csrf_exempt
async def admit(request: HttpRequest) -> HttpResponse:
    """204 if the original request may send its body; else the refusal for nginx to relay."""
    try:
        head = gate.Head(
            method=request.headers.get("X-Original-Method", "GET"),
            target=request.headers.get("X-Original-URI", "/").encode("latin-1", "replace"),
            header=request.headers.get,
            declared=_declared(request.headers.get("X-Original-Content-Length")),
        )
        await gate.admit(head)
    except FileshareError as exc:
        response = HttpResponse(status=401 if exc.http_status == 401 else 403)
        response["X-Concierge-Status"] = str(exc.http_status)
        response["X-Concierge-Refusal"] = json.dumps({"error": exc.error, "detail": exc.detail})
        return response
    return HttpResponse(status=204)
