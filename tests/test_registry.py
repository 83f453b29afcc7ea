"""Registration's database step (fileshare/presence/registry.py), in-process on the test database.

The handshake over a real socket is covered in test_handshake.py; here, that the
written-out INSERT saves exactly the row the ORM would, on either path, and that
registrations arriving together are saved together, each with its own answer.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from django.db import connection, connections
from django.utils import timezone

from fileshare.exceptions import DuplicateName
from fileshare.models import LiveClient, ServerInstance
from fileshare.presence import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instance_id() -> uuid.UUID:
    return ServerInstance.objects.create(hostname="h", pid=1, heartbeat_at=timezone.now()).pk


def register(name: str, instance_id: uuid.UUID) -> LiveClient:
    identity = registry.Identity(name=name, nickname="Nick", version="0.2.1", tags=["vr", "bot"])
    return registry._register(identity, f"channel-{uuid.uuid4().hex}", instance_id)


def fields_of(client: LiveClient) -> dict[str, object]:
    return {field.attname: getattr(client, field.attname) for field in LiveClient._meta.concrete_fields}


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "orm-save"])
def test_a_registered_client_is_the_row_the_orm_reads_back(
    instance_id: uuid.UUID, returning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", returning)

    client = register("reader", instance_id)

    assert client.pk is not None and not client._state.adding
    stored = LiveClient.objects.get(pk=client.pk)
    assert fields_of(stored) == fields_of(client)
    assert stored.tags == ["vr", "bot"] and stored.left_at is None
    assert stored.key != stored.public_id
    assert stored.folder.startswith("reader.")


def test_a_taken_name_raises_duplicate_name_and_saves_nothing(instance_id: uuid.UUID) -> None:
    register("taken", instance_id)

    with pytest.raises(DuplicateName, match="taken"):
        register("taken", instance_id)
    assert LiveClient.objects.filter(name="taken").count() == 1


def identity(name: str) -> registry.Identity:
    return registry.Identity(name=name, nickname=None, version="0.2.0", tags=[])


async def test_registrations_arriving_together_are_saved_in_one_trip_and_each_gets_its_own_answer(
    instance_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    insert_many = registry._insert_many

    def counted(clients: list[LiveClient]) -> list[Exception | None]:
        batches.append(len(clients))
        return insert_many(clients)

    monkeypatch.setattr(registry, "_insert_many", counted)
    names = [f"crowd{i}" for i in range(30)] + ["crowd3", "crowd3"]  # two of them ask for a taken name
    outcomes = await asyncio.gather(
        *(registry.register(identity(name), f"channel-{i}", instance_id) for i, name in enumerate(names)),
        return_exceptions=True,
    )

    assert sum(batches) == len(names) and len(batches) < len(names) / 4, batches
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 2 and all(isinstance(o, DuplicateName) for o in refused)
    saved = [o for o in outcomes if isinstance(o, LiveClient)]
    stored = {c.pk: (c.name, c.channel_name) async for c in LiveClient.objects.filter(name__startswith="crowd")}
    assert stored == {c.pk: (c.name, c.channel_name) for c in saved}
    assert sorted(name for name, _ in stored.values()) == sorted(set(names))


async def test_a_registration_alone_makes_its_trip_in_its_callers_task_and_later_arrivals_batch_behind_it(
    instance_id: uuid.UUID,
) -> None:
    registrar = registry.Registrar()

    alone = await registrar.register(identity("solo"), "channel-solo", instance_id)
    assert alone.pk is not None and registrar._writer is None

    first, *rest = await asyncio.gather(
        *(registrar.register(identity(f"queued{i}"), f"channel-q{i}", instance_id) for i in range(5))
    )
    assert all(client.pk is not None for client in [first, *rest])
    assert registrar._writer is not None  # the four that came while the first was on its way


async def test_orm_work_runs_on_the_one_database_thread_never_on_the_event_loop() -> None:
    here = threading.current_thread().name
    names = await asyncio.gather(*(registry.db(lambda: threading.current_thread().name)() for _ in range(3)))

    assert len(set(names)) == 1 and names[0] != here and names[0].startswith("fileshare-db")


async def test_the_database_thread_health_checks_its_connection_only_after_it_sat_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CONN_HEALTH_CHECKS costs a query on PostgreSQL: once per request in Django, and a
    trip is far smaller than a request. A connection in steady use is not checked; one
    that sat idle (here: any pause, with the threshold at 0) is, before the trip's query."""
    checks: list[str] = []

    def arm() -> None:
        conn = connections["default"]
        conn.ensure_connection()
        monkeypatch.setattr(conn, "health_check_enabled", True)
        monkeypatch.setattr(conn, "is_usable", lambda: checks.append(threading.current_thread().name) or True)

    def query() -> int:
        return LiveClient.objects.count()

    await registry.db(arm)()
    for _ in range(5):
        await registry.db(query)()
    assert checks == []

    monkeypatch.setattr(registry, "CHECK_AFTER_IDLE", 0.0)
    await registry.db(query)()
    assert len(checks) == 1 and checks[0].startswith("fileshare-db")


async def test_one_registration_alone_is_written_at_once_and_a_failed_trip_fails_its_batch_only(
    instance_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = await registry.register(identity("alone"), "channel-alone", instance_id)
    assert alone.pk is not None

    def broken(clients: list[LiveClient]) -> list[Exception | None]:
        raise RuntimeError("database gone")

    monkeypatch.setattr(registry, "_insert_many", broken)
    with pytest.raises(RuntimeError, match="database gone"):
        await registry.register(identity("unlucky"), "channel-unlucky", instance_id)
    monkeypatch.undo()
    after = await registry.register(identity("after"), "channel-after", instance_id)
    assert after.pk is not None


async def test_a_registration_left_waiting_by_an_ended_event_loop_does_not_stop_the_next_ones(
    instance_id: uuid.UUID,
) -> None:
    ended = asyncio.new_event_loop()
    stale = registry._new_client(identity("stale"), "channel-stale", instance_id)
    registry.registrar._waiting.append((stale, ended.create_future()))
    ended.close()

    fresh = await registry.register(identity("fresh"), "channel-fresh", instance_id)

    assert fresh.pk is not None and registry.registrar._waiting == []
    assert not await LiveClient.objects.filter(name="stale").aexists()
