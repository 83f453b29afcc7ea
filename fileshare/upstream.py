"""Every part of a dependency the concierge patches, copies or reads privately, in one list.

The run command's speed and flow control come from reaching into daphne, autobahn,
Twisted, channels, channels_redis, Django and django-storages (fileshare/server/,
fileshare/layers/, fileshare/store/s3.py). A ``pip install -U`` could rename what they
rely on and silently switch a feature off (a renamed ``_tempDataLen`` would read as 0 and
turn backpressure off). So each such part is listed here, and the system check
``fileshare.E101``/``E102`` (``manage.py check``, and every start of ``runconcierge``)
fails when one is missing or its source changed, naming the part and what to do.

A part is named ``module:qualname``. ``digest`` is the first 16 hex digits of the SHA-256
of its source (``inspect.getsource``) as last reviewed: for code that was copied and
changed, or that an override depends on line by line. ``mentions`` lists names that must
still appear in its source (attributes set in ``__init__`` and read here). docs/patches.md
explains each part; ``python -m fileshare.upstream`` prints the digests of the installed
versions, for a reviewer who has checked an upgrade.

This module imports nothing it guards: parts are resolved by name, when checked.

Why this module is long: most of it is the data table of guarded parts (PARTS); the code is some 60 lines.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class Part:
    """One upstream part the concierge relies on beyond its public API."""

    name: str
    """``module:qualname`` (``module`` alone for a module)."""
    where: str
    """The concierge code that relies on it."""
    how: str
    """What is relied on, in a few words: replaced, copied, overridden, read."""
    digest: str = ""
    """First 16 hex digits of the SHA-256 of its source as reviewed; empty: not compared."""
    mentions: tuple[str, ...] = ()
    """Names its source must still contain (attributes set there and read by the concierge)."""


TESTED_WITH = {
    "daphne": "4.2.3",
    "autobahn": "26.11.1",
    "twisted": "26.10.0",
    "channels": "4.3.2",
    "channels-redis": "4.3.0",
    "django": "5.2.19",
    "django-storages": "1.14.6",
}
"""Distribution versions the parts below were reviewed against (pinned in requirements.txt)."""

PARTS: tuple[Part, ...] = (
    # -- daphne --------------------------------------------------------------------------
    Part(
        "daphne.server:Server.create_application",
        "fileshare.server.daphne_support.FlowControlServer.create_application",
        "copied, with LazyBodyQueue and the send-file and send-now scope extensions",
        digest="f1e300b4ecf636c8",
    ),
    Part(
        "daphne.server:Server.handle_reply",
        "fileshare.server.daphne_support.FlowControlServer.handle_reply",
        "overridden: runs before daphne's, then waits for the socket to drain",
        digest="9d9dbaea6de0657a",
        mentions=("connections",),
    ),
    Part(
        "daphne.server:HTTPFactory",
        "fileshare.server.daphne_support.install",
        "module global replaced by SpoolingHTTPFactory (what Server.run builds)",
    ),
    Part(
        "daphne.server:WebSocketFactory",
        "fileshare.server.daphne_support.install",
        "module global replaced by ReasonedWebSocketFactory (what Server.run builds)",
    ),
    Part(
        "daphne.ws_protocol:WebSocketProtocol.handle_reply",
        "fileshare.server.daphne_support.ReasonedWebSocketProtocol.handle_reply",
        "overridden: a close keeps its reason (daphne drops it)",
        digest="5331423b1cf2016a",
    ),
    Part(
        "daphne.ws_protocol:WebSocketProtocol.serverSend",
        "fileshare.server.daphne_support.ReasonedWebSocketProtocol.serverSend",
        "overridden: checks the unsent bytes after each frame",
    ),
    Part(
        "daphne.http_protocol:WebRequest.__init__",
        "fileshare.server.daphne_support.SpoolingRequest",
        "subclassed: passes parsePOSTFormSubmission=False through to Twisted",
    ),
    # -- autobahn ------------------------------------------------------------------------
    Part(
        "autobahn.websocket.protocol:WebSocketProtocol.sendData",
        "fileshare.server.daphne_support.ReasonedWebSocketProtocol.sendData",
        "overridden with its bookkeeping copied (send_queue, trafficStats, states)",
        digest="5dcca425b048b07e",
        mentions=("send_queue", "trafficStats", "outgoingOctetsWireLevel", "preopenOutgoingOctetsWireLevel"),
    ),
    Part(
        "autobahn.websocket.protocol:pformat",
        "fileshare.server.daphne_support.install",
        "module global replaced by FormattedWhenLogged (made only when logged)",
    ),
    Part(
        "autobahn.websocket.protocol:Timings.__str__",
        "fileshare.server.daphne_support.install",
        "replaced: keeps the real pformat (it must return a str)",
        mentions=("_timings",),
    ),
    # -- Twisted -------------------------------------------------------------------------
    Part(
        "twisted.internet.abstract:FileDescriptor.write",
        "fileshare.server.daphne_support.write_now, buffered_bytes",
        "read: the unsent bytes of a transport (_tempDataBuffer, _tempDataLen, dataBuffer, offset)",
        mentions=("_tempDataBuffer", "_tempDataLen"),
    ),
    Part(
        "twisted.internet.abstract:FileDescriptor.doWrite",
        "fileshare.server.daphne_support.write_now, buffered_bytes",
        "read: dataBuffer and offset are what doWrite sends from",
        mentions=("dataBuffer", "offset", "_tempDataBuffer"),
    ),
    Part(
        "twisted.internet.tcp:Connection",
        "fileshare.server.daphne_support.write_now",
        "read: the socket and TLS attributes of a plain TCP connection",
    ),
    Part(
        "twisted.web.http:Request.gotLength",
        "fileshare.server.daphne_support.SpoolingRequest.gotLength",
        "overridden: where Twisted chooses the body's file (self.content)",
        mentions=("content",),
    ),
    Part(
        "twisted.web.http:HTTPChannel.allHeadersReceived",
        "fileshare.server.http_channel.GuardedHTTPChannel.allHeadersReceived",
        "overridden: a request with a body is judged on its headers before Twisted reads the body",
        digest="979a9a8410f41ad9",
        mentions=("length", "_version", "requests"),
    ),
    Part(
        "twisted.web.http:HTTPChannel.allContentReceived",
        "fileshare.server.http_channel.GuardedHTTPChannel",
        "read: _command, _path and _savedTimeOut, which it sets and restores",
        mentions=("_command", "_path", "_savedTimeOut"),
    ),
    Part(
        "twisted.web.http:HTTPChannel.rawDataReceived",
        "fileshare.server.http_channel.GuardedHTTPChannel.rawDataReceived",
        "overridden: body bytes held until the verdict, dropped after a refusal",
        digest="e31f4ed81196fab0",
    ),
    Part(
        "twisted.web.http:HTTPChannel.requestDone",
        "fileshare.server.http_channel.GuardedHTTPChannel.requestDone",
        "overridden: the keep-alive timeout is what Twisted restores between requests (_savedTimeOut)",
        mentions=("_savedTimeOut",),
    ),
    Part(
        "twisted.web.http:HTTPChannel.connectionMade",
        "fileshare.server.http_channel.GuardedHTTPChannel",
        "read: _networkProducer, paused while a request is judged",
        mentions=("_networkProducer",),
    ),
    Part(
        "twisted.web.http:HTTPChannel._send100Continue",
        "fileshare.server.http_channel.GuardedHTTPChannel._judged",
        "called: 100 Continue only once the request is admitted",
    ),
    Part(
        "twisted.web.http:HTTPChannel._respondToBadRequestAndDisconnect",
        "fileshare.server.daphne_requests.json_bad_requests",
        "replaced per channel: an unparsable request gets the JSON 400",
    ),
    Part(
        "twisted.web.http:_GenericHTTPChannelProtocol",
        "fileshare.server.http_channel.guarded_channel_protocol",
        "built around a GuardedHTTPChannel; its _channel read",
        mentions=("_channel",),
    ),
    Part(
        "daphne.http_protocol:WebRequest.process",
        "fileshare.server.daphne_requests.TolerantOfferRequest.process",
        "overridden: the subprotocol offer is merged before daphne hands the upgrade to autobahn",
        digest="e9babd1c97ce710b",
        mentions=("requestHeaders",),
    ),
    # -- Django --------------------------------------------------------------------------
    Part(
        "django.core.handlers.asgi:ASGIHandler.read_body",
        "fileshare.server.asgi_handler.SpooledBodyHandler.read_body",
        "overridden in a subclass (concierge_site/asgi.py serves with it): a spooled body becomes the body file",
    ),
    # -- channels ------------------------------------------------------------------------
    Part(
        "channels.consumer:AsyncConsumer.__call__",
        "fileshare.ws.consumers.ClientConsumer.__call__",
        "copied, with dispatch_each in place of await_many_dispatch",
        digest="e52238720872dbc3",
    ),
    Part(
        "channels.layers:InMemoryChannelLayer._clean_expired",
        "fileshare.layers.memory_layer.ConciergeMemoryLayer",
        "called, and its channels/groups dicts read and written",
    ),
    # -- channels_redis ------------------------------------------------------------------
    Part(
        "channels_redis.core:RedisChannelLayer.non_local_name",
        "fileshare.layers.redis_layer.ConciergeRedisLayer",
        "relied on: channels_redis' key layout (prefix, process channels, consistent hashing)",
    ),
    Part(
        "channels_redis.core:RedisChannelLayer.consistent_hash",
        "fileshare.layers.redis_layer.ConciergeRedisLayer",
        "relied on: the same shard for a channel as channels_redis' own code",
    ),
    Part(
        "channels_redis.core:RedisChannelLayer.create_pool",
        "fileshare.layers.redis_layer.ConciergeRedisLayer.create_pool",
        "overridden: a pool that waits for a free connection",
    ),
    # -- django-storages -----------------------------------------------------------------
    Part(
        "storages.backends.s3:S3Storage._save",
        "fileshare.store.s3.StreamingS3Storage._save",
        "overridden: the body is read in bounded parts",
    ),
    Part(
        "storages.backends.s3:S3Storage._create_session",
        "fileshare.store.s3.StreamingS3Storage.connection",
        "called: one boto3 session per storage, shared by threads",
    ),
    Part(
        "storages.backends.s3:S3Storage._normalize_name",
        "fileshare.store.s3.StreamingS3Storage._key",
        "called: the object key of a file name under the storage's location",
    ),
    Part(
        "storages.backends.s3:S3Storage.__init__",
        "fileshare.store.s3.StreamingS3Storage.connection",
        "read and written: the per-thread connection cache (_connections)",
        mentions=("_connections",),
    ),
)


class Missing(LookupError):
    """An upstream part is gone."""


def resolve(name: str) -> Any:
    """The object ``module:qualname`` names; Missing if the module or an attribute is gone."""
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise Missing(f"module {module_name} cannot be imported ({exc})") from exc
    for attribute in qualname.split(".") if qualname else ():
        try:
            obj = getattr(obj, attribute)
        except AttributeError as exc:
            raise Missing(f"{module_name} has no {qualname}") from exc
    return obj


def source_of(obj: Any) -> str:
    """The source of ``obj``, or "" where Python keeps none (attributes, C code)."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def digest_of(obj: Any) -> str:
    return hashlib.sha256(source_of(obj).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    part: Part
    changed: bool
    """False: missing; True: present but its source is not the reviewed one."""
    detail: str


def problems(parts: tuple[Part, ...] = PARTS) -> list[Problem]:
    """What is missing or changed among ``parts`` in the installed packages."""
    found: list[Problem] = []
    for part in parts:
        if importlib.util.find_spec(part.name.split(".", 1)[0].split(":", 1)[0]) is None:
            continue  # an optional library not installed (channels_redis, django-storages): nothing to patch
        try:
            obj = resolve(part.name)
        except Missing as exc:
            found.append(Problem(part, False, str(exc)))
            continue
        source = source_of(obj) if (part.digest or part.mentions) else ""
        gone = [name for name in part.mentions if name not in source]
        if gone:
            found.append(Problem(part, False, f"its source no longer mentions {', '.join(gone)}"))
        elif part.digest and digest_of(obj) != part.digest:
            found.append(Problem(part, True, f"its source changed (digest {digest_of(obj)}, reviewed {part.digest})"))
    return found


def installed_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for distribution in TESTED_WITH:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions


def main() -> None:
    """Print each part with its current digest (for a reviewer updating PARTS after an upgrade)."""
    for part in PARTS:
        try:
            obj = resolve(part.name)
        except Missing as exc:
            print(f"MISSING {part.name}: {exc}")
            continue
        mark = "" if not part.digest or digest_of(obj) == part.digest else "  <- changed"
        print(f"{digest_of(obj)}  {part.name}{mark}")
    for distribution, version in installed_versions().items():
        print(f"{distribution} {version} (reviewed with {TESTED_WITH[distribution]})")


if __name__ == "__main__":
    main()
