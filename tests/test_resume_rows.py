"""Resumable sessions in the tables (fileshare/presence/sessions.py): holds, resumes and
the grace's end are conditional updates that cannot both win; the lease sweeper leaves a
held row of a dead process alone until its grace ends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from fileshare.models import LiveClient, ServerInstance
from fileshare.presence import sessions
from fileshare.presence.instance import _claim_expired

pytestmark = pytest.mark.django_db(transaction=True)


def row(
    instance: ServerInstance, name: str, session_hash: str | None = None, held_for: float | None = None
) -> LiveClient:
    return LiveClient.objects.create(
        name=name,
        version="0.2.0",
        key=uuid.uuid4(),
        public_id=uuid.uuid4(),
        channel_name=f"ch.{name}",
        folder=f"{name}.f",
        instance=instance,
        session_hash=session_hash,
        held_until=None if held_for is None else timezone.now() + timedelta(seconds=held_for),
    )


def dead_instance() -> ServerInstance:
    return ServerInstance.objects.create(hostname="h", pid=1, heartbeat_at=timezone.now() - timedelta(hours=1))


def test_the_token_is_stored_only_as_its_sha256() -> None:
    token, digest = sessions.new_token()
    assert digest == sessions.digest(token) and len(digest) == 64 and token not in digest


def test_a_resume_and_the_graces_end_cannot_both_win() -> None:
    instance = dead_instance()
    held = row(instance, "held", sessions.digest("t"), held_for=30)
    assert sessions._resume("held", sessions.digest("wrong"), "n", instance.pk) is None
    assert not sessions._end_hold(held.pk, sessions.digest("t"))  # the grace has not ended
    adopted = sessions._resume("held", sessions.digest("t"), sessions.digest("t2"), instance.pk)
    assert adopted is not None and adopted.pk == held.pk and adopted.held_until is None
    assert sessions._resume("held", sessions.digest("t"), "n", instance.pk) is None  # the old token is spent

    expired = row(instance, "expired", sessions.digest("e"), held_for=-1)
    assert sessions._resume("expired", sessions.digest("e"), "n", instance.pk) is None
    assert sessions._end_hold(expired.pk, sessions.digest("e"))
    assert not sessions._end_hold(expired.pk, sessions.digest("e"))  # once


def test_the_lease_sweeper_holds_resumable_sessions_and_leaves_a_held_row_alone_until_its_grace_ends() -> None:
    instance = dead_instance()
    live = row(instance, "live")
    resumable = row(instance, "resumable", "r")
    held = row(instance, "held", "h", held_for=30)
    over = row(instance, "over", "o", held_for=-1)
    [(claimed_instance, client_ids)] = _claim_expired(None)
    assert claimed_instance == instance.pk
    assert sorted(client_ids) == sorted([live.pk, over.pk])
    resumable.refresh_from_db()
    assert resumable.held_until is not None and resumable.held_until > timezone.now() + timedelta(seconds=30)

    LiveClient.objects.filter(pk=held.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    ServerInstance.objects.filter(pk=instance.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    [(_, client_ids)] = _claim_expired(None)
    assert held.pk in client_ids
