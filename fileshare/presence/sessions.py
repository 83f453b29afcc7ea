"""Resumable sessions (docs/sessions.md): their tokens, holds, resumes and the grace's end.

A client that asks for it (IDENTIFY ``"resume": true``) gets a session token; only
its SHA-256 is stored, in its LiveClient row (``session_hash``). When its socket
drops, the row is marked held (``held_until``) instead of leaving: everything it
holds stays, and its channel keeps the frames meant for it. A resume within the
grace adopts the row (and so its channel); otherwise the grace's end starts the
usual leave. Each step is one conditional UPDATE, so that a resume and the grace's
end racing each other cannot both win.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.utils import timezone

from fileshare.models import LiveClient
from fileshare.presence.registry import db

TOKEN_BYTES = 32
"""Random bytes in a session token (``secrets.token_urlsafe``)."""

MAX_TOKEN_LENGTH = 200
"""Longest ``resume`` token an IDENTIFY may carry (longer ones are malformed)."""


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh session token and its digest."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, digest(token)


def _hold(client_id: int, session_hash: str, seconds: float) -> bool:
    until = timezone.now() + timedelta(seconds=seconds)
    rows = LiveClient.objects.filter(
        pk=client_id, session_hash=session_hash, left_at__isnull=True, held_until__isnull=True
    )
    return bool(rows.update(held_until=until))


hold = db(_hold)
"""``await hold(pk, session_hash, seconds)`` -> whether the live session is now held."""


def _resume(name: str, old_hash: str, new_hash: str, instance_id: uuid.UUID) -> LiveClient | None:
    rows = LiveClient.objects.filter(
        name=name, session_hash=old_hash, left_at__isnull=True, held_until__gt=timezone.now()
    )
    if not rows.update(held_until=None, session_hash=new_hash, instance_id=instance_id):
        return None
    return LiveClient.objects.filter(name=name, session_hash=new_hash).first()


resume = db(_resume)
"""``await resume(name, digest(token), new_digest, instance_id)`` -> the held client's row,
now live again under the new token; None if no session of that name is held with that token."""


def _end_hold(client_id: int, session_hash: str) -> bool:
    rows = LiveClient.objects.filter(
        pk=client_id, session_hash=session_hash, left_at__isnull=True, held_until__lte=timezone.now()
    )
    return bool(rows.update(held_until=None))


end_hold = db(_end_hold)
"""``await end_hold(pk, session_hash)`` -> True if the hold ran out unresumed and is now
this caller's to end with the leave (a resume can no longer take it)."""
