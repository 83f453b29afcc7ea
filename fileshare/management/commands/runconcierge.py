"""``manage.py runconcierge``: serve the concierge with daphne, configured from settings.

Daphne's own defaults do not fit a meeting point for lab instruments: it closes
every websocket after 24 h (``websocket_timeout``), pings every 20 s and waits 30 s
for the pong. This command runs daphne with no connection time limit, the
original server's 5 s ping and 10 s timeout (FILESHARE_PING_INTERVAL/TIMEOUT),
and FILESHARE_MAX_FRAME_BYTES as the largest websocket message (close 1009 above).

It serves the project's ``ASGI_APPLICATION`` (or ``--asgi module:attribute``), on
``CONCIERGE_HOST``/``CONCIERGE_PORT`` when the project defines them (127.0.0.1 and
64209 otherwise). Before it listens it reaches the database, the channel layer and
the storage once and prints one line naming them, or stops with a CommandError
saying which one failed (``fileshare.observe.health.self_check``; ``--no-self-check`` skips it).
Once listening it prints the dashboard's login URL: the bound port, or ``--base-url``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from fileshare import conf
from fileshare.observe import health

logger = logging.getLogger("fileshare.server")

LISTEN_BACKLOG = 1024
"""Connections the kernel queues before the server accepts them. Twisted's default
is 50: a burst of clients beyond it would be dropped and have to retry. As uvicorn
(2048) or nginx (511); the kernel caps it at net.core.somaxconn."""


def settle_startup_heap() -> None:
    """Keep what startup built out of the garbage collector's way, for good.

    Django, channels, daphne and the project leave about 90,000 objects behind at
    startup, alive until the process ends. Python's full collections scan each of them
    again; serving clients triggers one every few hundred handshakes, which took 50-70 ms
    (a pause for every client) and about a tenth of a handshake's CPU on average.
    ``gc.freeze()`` moves them to a generation the collector ignores: the full
    collections then scan only what serving created (docs/performance.md).
    """
    gc.collect()
    gc.freeze()


def load_application(dotted: str | None) -> Any:
    """The ASGI application at ``dotted`` (``package.module.attribute`` or ``package.module:attribute``),
    else the project's ``ASGI_APPLICATION``; CommandError when there is none or it cannot be imported."""
    path = dotted or conf.asgi_application()
    if not path:
        raise CommandError(
            "no ASGI application to serve: set ASGI_APPLICATION in your settings "
            "(e.g. 'mysite.asgi.application') or pass --asgi mysite.asgi:application"
        )
    try:
        return import_string(path.replace(":", "."))
    except ImportError as exc:
        raise CommandError(f"cannot import the ASGI application {path!r}: {exc}") from exc


def login_links(base_url: str) -> str:
    """``Dashboard: <url> (log in at <url>)`` under ``base_url``."""
    base = base_url.rstrip("/")
    try:
        dashboard = reverse("fileshare:dashboard")
        login = resolve_url(conf.login_url())
    except NoReverseMatch:
        return f"Dashboard: not routed (include fileshare.urls in {base}'s URLconf)"
    return f"Dashboard: {base}{dashboard} (log in at {base}{login})"


def local_base_url(host: str, port: int) -> str:
    """``http://host:port`` for a bound address; a wildcard bind is shown as loopback."""
    if host in {"0.0.0.0", "", "::", "[::]"}:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = "Serve HTTP and websockets with daphne on CONCIERGE_HOST:CONCIERGE_PORT (default 127.0.0.1:64209)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="bind address (default: CONCIERGE_HOST, else 127.0.0.1)")
        parser.add_argument(
            "--port", type=int, default=None, help="port (default: CONCIERGE_PORT, else 64209; 0 picks one)"
        )
        parser.add_argument(
            "--asgi", default=None, help="the ASGI application, module:attribute (default: ASGI_APPLICATION)"
        )
        parser.add_argument(
            "--base-url", default=None, help="the site's public URL in the printed login link (behind a proxy)"
        )
        parser.add_argument(
            "--no-self-check", action="store_true", help="serve without first reaching the database, layer and storage"
        )
        parser.add_argument("--unix-socket", default=None, help="serve on this Unix socket instead")
        parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For/-Proto (behind nginx)")
        parser.add_argument("--ready-file", default=None, help="write 'host port' here once listening")

    def handle(self, *args: Any, **options: Any) -> None:
        from fileshare.dashboard import rates
        from fileshare.server import daphne_support

        application = load_application(options["asgi"])
        if not options["no_self_check"]:
            try:
                self.stdout.write(health.self_check())
            except health.BackendUnavailable as exc:
                raise CommandError(f"not serving: {exc}") from None
        daphne_support.install()

        host = options["host"] or conf.host()
        port = conf.port() if options["port"] is None else options["port"]
        base_url = options["base_url"]
        if options["unix_socket"]:
            endpoint = f"unix:{options['unix_socket']}:backlog={LISTEN_BACKLOG}"
        else:
            escaped = host.replace(":", r"\:").strip("[]")
            endpoint = f"tcp:port={port}:interface={escaped}:backlog={LISTEN_BACKLOG}"
        ready_file = options["ready_file"]

        def ready() -> None:
            # The reactor's asyncio loop: the dashboard's charts sample from the start.
            asyncio.get_event_loop().call_soon(rates.current.ensure_started)
            for listener in server.listening_addresses:
                logger.info("concierge listening on %s:%s", listener[0], listener[1])
            if base_url or server.listening_addresses:
                bound = server.listening_addresses[0] if server.listening_addresses else ("", 0)
                self.stdout.write(login_links(base_url or local_base_url(str(bound[0]), int(bound[1]))))
                self.stdout.flush()
            if ready_file and server.listening_addresses:
                bound_host, bound_port = server.listening_addresses[0]
                with open(ready_file, "w") as handle:
                    handle.write(f"{bound_host} {bound_port}\n")

        server = daphne_support.FlowControlServer(
            application=application,
            endpoints=[endpoint],
            websocket_timeout=-1,  # never cut a long-lived client off
            ping_interval=conf.ping_interval(),
            ping_timeout=conf.ping_timeout(),
            websocket_max_message_size=conf.max_frame_bytes(),
            websocket_max_frame_size=conf.max_frame_bytes(),
            proxy_forwarded_address_header="X-Forwarded-For" if options["proxy_headers"] else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if options["proxy_headers"] else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if options["proxy_headers"] else None,
            ready_callable=ready,
            verbosity=options["verbosity"],
        )
        self.stdout.write(f"concierge {conf.SERVER_VERSION} starting on {endpoint}")
        settle_startup_heap()
        server.run()
