"""A browser front-end served from the concierge itself (same origin), optional.

The original served its own front-end at ``/babylonjs``. Here ``FILESHARE_FRONTEND_DIR``
names a folder and ``FILESHARE_FRONTEND_URL`` (``/app/``) its prefix; without the
folder the middleware removes itself (``MiddlewareNotUsed``).

WhiteNoise finds the files and builds the answers: it lists the folder once, at
start-up, so only the files that were in it then are served and no URL can reach
outside it (``..``, encoded or not, matches no entry); ``index.html`` answers for a
folder (``/app`` and ``/app/index.html`` redirected to ``/app/``, with their query string); content types come from its table
of extensions; it answers ``ETag``, ``Last-Modified``, ``304`` and ranges. WhiteNoise's
own middleware is synchronous, and would put every request of the server (the file
API's included) through a worker thread under ASGI; this one is asynchronous, opens
and reads the files in worker threads and only looks at paths under the prefix.
Files added to the folder later are served after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

from asgiref.sync import markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from whitenoise.base import WhiteNoise

from fileshare import conf

READ_BLOCK = 256 * 1024


class FrontendMiddleware:
    """Serve ``conf.frontend_dir()`` under ``conf.frontend_url()`` (GET and HEAD)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        folder = conf.frontend_dir()
        if folder is None:
            raise MiddlewareNotUsed("FILESHARE_FRONTEND_DIR is not set")
        self.get_response = get_response
        self.prefix = conf.frontend_url()
        self.files = WhiteNoise(None, root=folder, prefix=self.prefix, index_file=True, allow_all_origins=False)
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if request.method in {"GET", "HEAD"} and (path.startswith(self.prefix) or path == self.prefix[:-1]):
            found = self.files.files.get(path)
            if found is not None:
                return await serve(found, request)
        return await self.get_response(request)


async def serve(found: Any, request: HttpRequest) -> HttpResponseBase:
    """WhiteNoise's answer for ``found`` (a file or a redirect) as a Django response."""
    answer = await asyncio.to_thread(found.get_response, request.method, request.META)
    response: HttpResponseBase
    if answer.file is None:
        response = HttpResponse(status=int(answer.status))
    else:
        response = StreamingHttpResponse(_blocks(answer.file), status=int(answer.status))
    del response["Content-Type"]
    for name, value in answer.headers:
        response[name] = value
    query = request.META.get("QUERY_STRING", "")
    if response.has_header("Location") and query:
        # /app and /app/index.html redirect to /app/: a page's parameters go along.
        response["Location"] = f"{response['Location']}?{query}"
    return response


async def _blocks(file: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while block := await asyncio.to_thread(file.read, READ_BLOCK):
            yield block
    finally:
        await asyncio.to_thread(file.close)
