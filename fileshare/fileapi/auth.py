"""Who is asking: the file API's three key forms mapped to a live client.

Accepted forms (PROTOCOL.md section 3): ``Authorization: <uuid>`` (the seed),
``Authorization: Bearer <uuid>`` and ``x-fs-key: <uuid>``. The key is the HELLO
``uuid``; it is never logged.
"""

from __future__ import annotations

from django.http import HttpRequest

from fileshare.exceptions import Forbidden, Unauthorized
from fileshare.models import LiveClient
from fileshare.presence import registry


def key_from(request: HttpRequest) -> str:
    """The key a request carries; raises Unauthorized when there is none."""
    header = request.headers.get("x-fs-key") or request.headers.get("Authorization")
    if not header or not header.strip():
        raise Unauthorized("missing key: send 'Authorization: <uuid from HELLO>'")
    value = header.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    elif rest:
        raise Unauthorized(f"unsupported Authorization scheme {scheme!r}: use '<uuid>' or 'Bearer <uuid>'")
    return value


async def requester(request: HttpRequest) -> LiveClient:
    """The live client whose key the request carries; raises Unauthorized."""
    return await registry.by_key(key_from(request))


def require_owner(client: LiveClient, folder_name: str) -> None:
    """Raise Forbidden unless ``client`` owns the folder ``folder_name``."""
    if client.name != folder_name:
        raise Forbidden(f"only {folder_name} may write or delete in /fs/{folder_name}/")
