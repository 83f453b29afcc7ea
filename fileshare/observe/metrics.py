"""The concierge's Prometheus metrics: every name, in one place (docs/metrics.md).

Names start with ``concierge_``. Labels are bounded sets (a close code, a payload or
target type, a route name, a status): never a client name, a path or a key.

One process serves ``/metrics`` for itself. With several server processes on one machine
behind one scrape target (the recipe in deploy/), set ``PROMETHEUS_MULTIPROC_DIR`` to a
folder they share (prometheus-client's multiprocess mode): each process then writes its
values there, and a scrape of any of them sums counters and histograms over all, and
reports the gauge of connected clients per live process (label ``pid``). The folder must
be emptied before the first process starts (the recipe's unit does it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from fileshare.exceptions import InsufficientStorage, QuotaExceeded

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""True when the values live in PROMETHEUS_MULTIPROC_DIR (read when this module is imported)."""

_FAST = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# -- websocket clients ------------------------------------------------------------------------

CLIENTS = Gauge(
    "concierge_clients_connected",
    "Identified websocket clients served by this process.",
    multiprocess_mode="liveall",
)
HANDSHAKES = Counter(
    "concierge_handshakes_total",
    "Websocket handshakes by outcome: hello, or the close code that refused them.",
    ["outcome"],
)
HANDSHAKE_SECONDS = Histogram(
    "concierge_handshake_seconds",
    "From the IDENTIFY frame to HELLO sent.",
    buckets=_FAST,
)
FRAMES_IN = Counter("concierge_frames_received_total", "Websocket text and binary frames received from clients.")
# Text frames are counted in characters (bytes for the ASCII JSON most clients send), binary ones in bytes.
FRAMES_OUT = Counter("concierge_frames_sent_total", "Websocket frames sent to clients.")
BYTES_IN = Counter("concierge_frame_bytes_received_total", "Bytes of websocket frames received from clients.")
BYTES_OUT = Counter("concierge_frame_bytes_sent_total", "Bytes of websocket frames sent to clients.")
RELAYED = Counter(
    "concierge_messages_relayed_total",
    "MESSAGE payloads accepted for delivery, by target type (NAME, UUID, SERVICE, SERVICE_CLIENT_UUID, ALL).",
    ["target"],
)
REFUSED = Counter(
    "concierge_messages_refused_total",
    "Payloads answered with a refusal (BAD, INVALID_*, ERROR_*), by reply type.",
    ["reply"],
)
EVENTS_DROPPED = Counter(
    "concierge_events_dropped_total",
    "Events not delivered to a client whose queue was full (the client is told it missed some).",
)
DISCONNECTS = Counter(
    "concierge_disconnects_total",
    "Websocket connections of identified clients that ended, by close code (1006: no close frame).",
    ["code"],
)
LEAVES = Counter("concierge_leaves_total", "Leave sequences completed (services, subscriptions, files, CLIENT_LEFT).")
LEAVE_SECONDS = Histogram("concierge_leave_seconds", "Duration of a leave sequence.", buckets=_FAST)

# -- HTTP and files ---------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "concierge_http_requests_total",
    "HTTP requests by route name, method and status.",
    ["route", "method", "status"],
)
UPLOADED = Counter("concierge_uploaded_bytes_total", "Bytes of files stored (PUT, POST forms, tus, pw_transfer).")
DOWNLOADED = Counter("concierge_downloaded_bytes_total", "Bytes of files sent to clients (GET, pw_transfer).")
UPLOADS_IN_PROGRESS = Gauge(
    "concierge_uploads_in_progress",
    "Uploads whose body is being received (PUT, POST forms, tus PATCH).",
    multiprocess_mode="livesum",
)
TUS_UPLOADS = Counter(
    "concierge_tus_uploads_total",
    "tus uploads by event: created, finished, terminated, expired.",
    ["event"],
)
QUOTA_REFUSALS = Counter(
    "concierge_quota_refusals_total",
    "Uploads refused over a quota, by scope: client (413) or store (507).",
    ["scope"],
)
STORAGE_BYTES = Gauge(
    "concierge_storage_bytes",
    "Bytes of the live clients' files, from the file index (at scrape).",
    multiprocess_mode="mostrecent",
)
STORAGE_FILES = Gauge(
    "concierge_storage_files",
    "Files the live clients hold, from the file index (at scrape).",
    multiprocess_mode="mostrecent",
)

# -- pw_rpc, the channel layer, leases --------------------------------------------------------

PW_RPC_CALLS = Counter(
    "concierge_pw_rpc_calls_total",
    "pw_rpc calls by service.method and status (OK, NOT_FOUND, ...).",
    ["method", "status"],
)
LAYER_ERRORS = Counter(
    "concierge_channel_layer_errors_total",
    "Channel layer operations that failed (Redis unreachable, ...), by operation.",
    ["operation"],
)
LEASE_SWEEPS = Counter(
    "concierge_lease_sweeps_total",
    "Server processes whose lapsed lease this process claimed and whose clients it removed.",
)


def count_refusal(exc: Exception) -> None:
    """Count an HTTP refusal that a quota caused (client: 413, store or full disk: 507)."""
    if isinstance(exc, QuotaExceeded):
        QUOTA_REFUSALS.labels("client").inc()
    elif isinstance(exc, InsufficientStorage):
        QUOTA_REFUSALS.labels("store").inc()


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the duration of the ``with`` block in ``histogram``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def exposition() -> bytes:
    """The text format of every metric: this process's, or all processes' in multiprocess mode."""
    if MULTIPROCESS:
        forget_dead_processes()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def forget_dead_processes() -> None:
    """Drop the live gauges of processes that have ended (multiprocess mode).

    A process that stopped, was killed, or only ran a management command (``migrate``
    imports the app too) leaves its files behind; its counters still count in the sums,
    its gauges must not.
    """
    for path in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("gauge_live*_*.db"):
        pid = int(path.stem.rpartition("_")[2]) if path.stem.rpartition("_")[2].isdigit() else None
        if pid is not None and not _alive(pid):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
