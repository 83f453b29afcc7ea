"""Probes of the three backends the concierge needs: the database, the channel layer, the storage.

Each probe reaches its backend for real (a ``SELECT 1``; a Redis ``PING`` or, for an
in-process layer, a message sent to and received from a fresh channel; an S3
``HeadBucket`` or a look-up in the storage) and returns a :class:`Probe` naming the
backend, never its address or credentials. ``/readyz`` (``fileshare.observe.health_views``)
and ``runconcierge``'s start-up self-check both use them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer, channel_layers
from django.db import connections

from fileshare.presence import registry
from fileshare.store import storage

PROBE_TIMEOUT = 5.0
"""Seconds a probe may take before its backend counts as unreachable."""


class BackendUnavailable(Exception):
    """A backend the concierge needs could not be reached; the message says which and why."""


@dataclass(frozen=True)
class Probe:
    """The outcome of one probe: ``backend`` names the kind (e.g. ``postgresql``, ``redis``)."""

    name: str
    backend: str
    ok: bool
    error: str | None = None
    detail: str | None = None
    """The error's message, for the server log only (it may name a host)."""

    def as_json(self) -> dict[str, Any]:
        """``{"backend": ..., "ok": ...}`` plus ``"error"`` (a class name, never a detail) when failed."""
        body: dict[str, Any] = {"backend": self.backend, "ok": self.ok}
        if self.error is not None:
            body["error"] = self.error
        return body


def database_backend(alias: str = "default") -> str:
    """The database's vendor (``sqlite``, ``postgresql``, ...)."""
    return str(connections[alias].vendor)


def probe_database(alias: str = "default") -> None:
    """Run ``SELECT 1`` on the database (synchronous: call it from a thread). Raises on failure."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def layer_backend(layer: BaseChannelLayer | None) -> str:
    """``redis`` for a channels_redis layer, ``in-memory`` for an in-process one, else its class name."""
    if layer is None:
        return "none"
    if hasattr(layer, "ring_size") and hasattr(layer, "connection"):
        return "redis"
    if "Memory" in type(layer).__name__:
        return "in-memory"
    return type(layer).__name__


async def probe_layer(layer: BaseChannelLayer | None) -> None:
    """Reach the channel layer: ``PING`` every Redis host, or send a message to a fresh
    channel and receive it. Raises BackendUnavailable (or the layer's error) on failure."""
    if layer is None:
        raise BackendUnavailable("no channel layer is configured (CHANNEL_LAYERS)")
    if layer_backend(layer) == "redis":
        for index in range(int(layer.ring_size)):
            await asyncio.wait_for(layer.connection(index).ping(), PROBE_TIMEOUT)
        return
    channel = await layer.new_channel("health.")
    await asyncio.wait_for(layer.send(channel, {"type": "health.probe"}), PROBE_TIMEOUT)
    received = await asyncio.wait_for(layer.receive(channel), PROBE_TIMEOUT)
    if received.get("type") != "health.probe":
        raise BackendUnavailable(f"the channel layer returned {received.get('type')!r} instead of the probe")


def storage_backend() -> str:
    """``s3`` for an S3 storage, ``filesystem`` for a local one, else the class name."""
    backend = storage.get_storage()
    if hasattr(backend, "bucket_name"):
        return "s3"
    if hasattr(backend, "location") and hasattr(backend, "path"):
        return "filesystem"
    return type(backend).__name__


def probe_storage() -> None:
    """Reach the storage (synchronous): S3 ``HeadBucket`` (the bucket must exist), a local
    folder that exists (created if missing) and is writable, or any backend's ``exists``."""
    backend = storage.get_storage()
    kind = storage_backend()
    if kind == "s3":
        backend.connection.meta.client.head_bucket(Bucket=backend.bucket_name)
        return
    if kind == "filesystem":
        location = str(backend.location)
        os.makedirs(location, exist_ok=True)
        if not os.access(location, os.W_OK | os.X_OK):
            raise BackendUnavailable(f"the storage folder {location} is not writable by this user")
        return
    backend.exists("fileshare-health-probe")


async def readiness(layer: BaseChannelLayer | None) -> list[Probe]:
    """Probe the three backends (the database on the app's own database thread, the storage
    in a worker thread); failures are recorded, not raised."""

    async def run(name: str, backend: str, probe: Any) -> Probe:
        try:
            await asyncio.wait_for(probe(), PROBE_TIMEOUT * 2)
        except Exception as exc:  # any failure means "not ready", reported by class name only
            return Probe(name, backend, False, type(exc).__name__, str(exc))
        return Probe(name, backend, True)

    return list(
        await asyncio.gather(
            run("database", database_backend(), lambda: registry.db(probe_database)()),
            run("channel_layer", layer_backend(layer), lambda: probe_layer(layer)),
            run("storage", storage_backend(), lambda: asyncio.to_thread(probe_storage)),
        )
    )


def self_check(layer_alias: str = "default") -> str:
    """Reach every backend once, before serving; return one line naming them, or raise
    BackendUnavailable saying which one failed and why (``runconcierge`` calls it)."""
    try:
        probe_database()
    except Exception as exc:
        raise BackendUnavailable(f"the database ({database_backend()}) is unreachable: {exc}") from exc
    finally:
        connections.close_all()
    layer = channel_layers.make_backend(layer_alias) if layer_alias in channel_layers.configs else None
    try:
        asyncio.run(_probe_and_close(layer))
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise BackendUnavailable(
            f"the channel layer ({layer_backend(layer)}) is unreachable: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        probe_storage()
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise BackendUnavailable(
            f"the storage ({storage_backend()}) is unreachable: {type(exc).__name__}: {exc}"
        ) from exc
    return f"backends: database {database_backend()}, channel layer {layer_backend(layer)}, storage {storage_backend()}"


async def _probe_and_close(layer: BaseChannelLayer | None) -> None:
    try:
        await probe_layer(layer)
    finally:
        close = getattr(layer, "close_pools", None)
        if close is not None:
            await close()
