"""Transfers in flight in this process, for the dashboard: uploads being received, downloads being sent.

The run command's server tells this module about large bodies: a request body it
spools (PUT and multipart POST under ``/fs/``, tus POST and PATCH under ``/tus/``;
``SpoolingRequest``) and a file it sends itself (``FlowControlServer._send_file``).
Bodies under ``TRACKED_FROM`` bytes end within a moment and are not tracked.

The hot paths only add to a transfer's byte count (an integer in memory). Nothing is
sent from them: the dashboard's sampler (``fileshare.dashboard.rates``) takes a
``snapshot`` once a second, with each transfer's rate over that second, and the
transfers that ended since, and sends it with its counters. A page shows the
transfers of every process, each process's list replaced by its latest sample.

Everything here runs on the event loop's thread (Twisted's callbacks and the sampler
share it): no lock.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

TRACKED_FROM = 100_000
"""Bodies at least this large (or of unknown length) are tracked (the spooling threshold)."""

SHOWN = 50
"""At most this many transfers of one process in a sample (the longest-running first)."""

ENDED_KEPT = 20
"""At most this many ended transfers wait for the next sample."""

MAX_PATH = 300
"""A path longer than this is cut (with an ellipsis) in a sample."""


@dataclass
class Transfer:
    """One upload or download in progress."""

    kind: str
    """``"upload"`` or ``"download"``."""
    method: str
    client: str
    """The folder: the uploading client, or the owner of the file downloaded."""
    path: str
    total: int | None
    done: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.time)
    ended: float | None = None
    outcome: str = ""
    """``"finished"`` or ``"failed"`` once ended."""
    detail: str = ""
    _seen: int = 0
    _seen_at: float = 0.0

    def row(self, now: float) -> dict[str, Any]:
        """The transfer as the page shows it; ``rate``: bytes per second since the last row."""
        since = self._seen_at or self.started
        end = self.ended or now
        rate = (self.done - self._seen) / (end - since) if end > since else 0.0
        self._seen, self._seen_at = self.done, end
        path = self.path if len(self.path) <= MAX_PATH else self.path[: MAX_PATH - 1] + "…"
        row: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "client": self.client,
            "path": path,
            "done": self.done,
            "total": self.total,
            "rate": max(rate, 0.0),
            "started": self.started,
        }
        if self.ended is not None:
            lasted = self.ended - self.started
            row.update(
                ended=self.ended,
                outcome=self.outcome,
                detail=self.detail,
                average=self.done / lasted if lasted > 0 else 0.0,
            )
        return row


class Tracker:
    """This process's transfers (``current``)."""

    def __init__(self) -> None:
        self.active: dict[str, Transfer] = {}
        self.ended: list[Transfer] = []
        self.wire = False
        """True when the server counts HTTP body bytes as they move (the run command's does)."""
        self.body_bytes_in = 0
        """Bytes of HTTP request bodies received (every route, every size), when ``wire``."""
        self.body_bytes_out = 0
        """Bytes of HTTP response bodies sent (every route, files included), when ``wire``."""

    def start(self, kind: str, method: str, target: bytes, total: int | None) -> Transfer | None:
        """Track a transfer to or from ``target`` (``/fs/<client>/<path>`` or ``/tus/<client>/<id>``).

        None for a body too small to track or a target outside ``/fs/`` and ``/tus/``.
        """
        if total is not None and total < TRACKED_FROM:
            return None
        folder_path = folder_and_path(target)
        if folder_path is None:
            return None
        transfer = Transfer(kind, method, folder_path[0], folder_path[1], total)
        self.active[transfer.id] = transfer
        return transfer

    def end(self, transfer: Transfer, outcome: str, detail: str = "") -> None:
        """Move ``transfer`` to the ended ones (once: later calls are ignored)."""
        if self.active.pop(transfer.id, None) is None:
            return
        transfer.ended, transfer.outcome, transfer.detail = time.time(), outcome, detail
        self.ended.append(transfer)
        del self.ended[:-ENDED_KEPT]

    def snapshot(self, now: float) -> dict[str, list[dict[str, Any]]] | None:
        """The transfers in flight and those ended since the last snapshot; None if there are none."""
        if not self.active and not self.ended:
            return None
        running = sorted(self.active.values(), key=lambda t: t.started)[:SHOWN]
        ended, self.ended = self.ended, []
        return {"active": [t.row(now) for t in running], "ended": [t.row(now) for t in ended]}


def folder_and_path(target: bytes) -> tuple[str, str] | None:
    """``(client, path)`` of a ``/fs/`` or ``/tus/`` request target; None for any other."""
    raw = target.split(b"?", 1)[0].decode("latin-1")
    for api in ("/fs/", "/tus/"):
        if raw.startswith(api):
            folder, _, rest = unquote(raw[len(api) :]).partition("/")
            if folder:
                return folder, rest if api == "/fs/" else f"tus upload {rest}" if rest else "tus upload"
    return None


current = Tracker()
"""This process's transfers."""
