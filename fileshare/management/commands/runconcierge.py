"""``manage.py runconcierge``: serve the concierge with daphne, configured from settings.

Daphne's own defaults do not fit a meeting point for lab instruments: it closes
every websocket after 24 h (``websocket_timeout``), pings every 20 s and waits 30 s
for the pong. This command runs daphne with no connection time limit, the
original server's 5 s ping and 10 s timeout (FILESHARE_PING_INTERVAL/TIMEOUT),
and FILESHARE_MAX_FRAME_BYTES as the largest websocket message (close 1009 above).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from fileshare import conf

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


class Command(BaseCommand):
    help = "Serve HTTP and websockets with daphne on CONCIERGE_HOST:CONCIERGE_PORT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="bind address (default: CONCIERGE_HOST)")
        parser.add_argument("--port", type=int, default=None, help="port (default: CONCIERGE_PORT; 0 picks one)")
        parser.add_argument("--unix-socket", default=None, help="serve on this Unix socket instead")
        parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For/-Proto (behind nginx)")
        parser.add_argument("--ready-file", default=None, help="write 'host port' here once listening")

    def handle(self, *args: Any, **options: Any) -> None:
        from concierge_site.asgi import application
        from fileshare.server import daphne_support

        daphne_support.install()

        host = options["host"] or settings.CONCIERGE_HOST
        port = settings.CONCIERGE_PORT if options["port"] is None else options["port"]
        if options["unix_socket"]:
            endpoint = f"unix:{options['unix_socket']}:backlog={LISTEN_BACKLOG}"
        else:
            escaped = host.replace(":", r"\:").strip("[]")
            endpoint = f"tcp:port={port}:interface={escaped}:backlog={LISTEN_BACKLOG}"
        ready_file = options["ready_file"]

        def ready() -> None:
            for listener in server.listening_addresses:
                logger.info("concierge listening on %s:%s", listener[0], listener[1])
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
