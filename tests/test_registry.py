"""Registration's database step (fileshare/registry.py), in-process on the test database.

The handshake over a real socket is covered in test_handshake.py; here, that the
written-out INSERT saves exactly the row the ORM would, on either path.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from fileshare import registry
from fileshare.exceptions import DuplicateName
from fileshare.models import LiveClient, ServerInstance

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
