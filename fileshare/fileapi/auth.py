"""Who is asking: the file API's three key forms mapped to a live client.

Accepted forms (PROTOCOL.md section 3): ``Authorization: <uuid>`` (the seed),
``Authorization: Bearer <uuid>`` and ``x-fs-key: <uuid>``. The key is the HELLO
``uuid``; it is never logged.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

from fileshare.exceptions import Forbidden, Unauthorized
from fileshare.models import LiveClient
from fileshare.presence import registry


def key_from(request: HttpRequest) -> str:
    """The key a request carries; raises Unauthorized when there is none."""
    return key_from_headers(request.headers.get)


def key_from_headers(header_of: Callable[[str], str | None]) -> str:
    """The key in the headers ``header_of(name)`` returns (case-insensitive names);
    raises Unauthorized when there is none. Also used before a body is read (``fileshare.fileapi.gate``)."""
    header = header_of("x-fs-key") or header_of("Authorization")
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
