"""The concierge protocol 0.2 payloads (PROTOCOL.md section 2) against a real server."""

from __future__ import annotations

import json

import pytest

from tests.support.clients import Client, connect
from tests.support.server import ServerProcess


@pytest.fixture
async def trio(server: ServerProcess, name: str):  # type: ignore[no-untyped-def]
    """Three clients: a, b and c, each having seen the others join."""
    clients = [await connect(server.ws_url, f"{name}_{x}") for x in "abc"]
    yield clients
    for client in clients:
        await client.close()


def event_about(kind: str, client_name: str):  # type: ignore[no-untyped-def]
    return lambda p: p["type"] == kind and p.get("client", {}).get("name") == client_name


# -- seq -----------------------------------------------------------------------------------


async def test_replies_carry_the_number_of_the_frame_they_answer(trio: list[Client]) -> None:
    a = trio[0]
    for expected in range(3):
        reply = await a.request({"type": "SELF_FETCH"})
        assert reply["seq"] == expected


async def test_self_set_seq_sets_the_counter(trio: list[Client]) -> None:
    a = trio[0]
    await a.request({"type": "SELF_FETCH"})
    await a.ws.send(json.dumps({"type": "SELF_SET_SEQ", "seq": 100}))
    assert await a.expect("OK") == {"type": "OK", "seq": 100}
    await a.ws.send(json.dumps({"type": "SELF_FETCH"}))
    assert (await a.expect("SELF_FETCH_RESULT"))["seq"] == 101


async def test_errors_keep_the_socket_open_and_still_count(trio: list[Client]) -> None:
    a = trio[0]
    bad_json = await a.request("{nope")
    assert bad_json["type"] == "ERROR_PROTOCOL" and bad_json["desc"] and bad_json["seq"] == 0
    unknown = await a.request({"type": "TELEPORT"})
    assert (unknown["type"], unknown["seq"]) == ("ERROR_UNSUPPORTED", 1)
    shape = await a.request({"type": "SELF_SET_SEQ", "seq": "ten"})
    assert (shape["type"], shape["seq"]) == ("ERROR_PROTOCOL", 2)
    assert (await a.request({"type": "SELF_FETCH"}))["seq"] == 3


# -- MESSAGE ---------------------------------------------------------------------------------


async def test_message_by_name_and_uuid_is_relayed_verbatim_with_a_server_origin(trio: list[Client]) -> None:
    a, b, _ = trio
    data = {"nested": [1, 2.5, None, True, {"é": "ü"}], "big": 2**53}
    for target in ({"type": "NAME", "name": b.name}, {"type": "UUID", "uuid": b.public_id}):
        reply = await a.request({"type": "MESSAGE", "target": target, "data": data, "origin": {"name": "forged"}})
        assert reply == {"type": "OK", "seq": reply["seq"]}
        got = await b.expect("MESSAGE")
        assert got["data"] == data
        assert got["origin"] == a.info
        assert got["target"] == target
        assert "seq" not in got


@pytest.mark.parametrize("data", [None, 0, "text", [1, [2]], {"a": {"b": {}}}])
async def test_any_json_data_is_relayed(trio: list[Client], data: object) -> None:
    a, b, _ = trio
    await a.request({"type": "MESSAGE", "target": {"type": "NAME", "name": b.name}, "data": data})
    assert (await b.expect("MESSAGE"))["data"] == data


async def test_message_to_unknown_targets_names_what_is_missing(trio: list[Client]) -> None:
    a = trio[0]
    by_name = await a.request({"type": "MESSAGE", "target": {"type": "NAME", "name": "ghost"}, "data": 1})
    assert by_name["type"] == "INVALID_NAME" and by_name["name"] == "ghost"
    missing = "00000000-0000-4000-8000-000000000000"
    by_uuid = await a.request({"type": "MESSAGE", "target": {"type": "UUID", "uuid": missing}, "data": 1})
    assert by_uuid["type"] == "INVALID_UUID" and by_uuid["uuid"] == missing
    by_service = await a.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": "nope"}, "data": 1})
    assert by_service["type"] == "INVALID_SERVICE" and by_service["service"] == "nope"
    bad_target = await a.request({"type": "MESSAGE", "target": {"type": "MOON"}, "data": 1})
    assert bad_target["type"] == "ERROR_PROTOCOL"
    no_target = await a.request({"type": "MESSAGE", "data": 1})
    assert no_target["type"] == "ERROR_PROTOCOL"


async def test_the_secret_key_is_not_an_address(trio: list[Client]) -> None:
    a, b, _ = trio
    reply = await a.request({"type": "MESSAGE", "target": {"type": "UUID", "uuid": b.key}, "data": 1})
    assert reply["type"] == "INVALID_UUID"


async def test_message_to_all_reaches_every_client(trio: list[Client]) -> None:
    a, b, c = trio
    await a.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "hi all"})
    for client in (a, b, c):
        got = await client.expect("MESSAGE")
        assert (got["data"], got["origin"]["name"]) == ("hi all", a.name)


async def test_service_messages_follow_owner_and_subscriber_rules(trio: list[Client], name: str) -> None:
    owner, sub, outsider = trio
    service = f"svc_{name}"
    await owner.request({"type": "SERVICE_CREATE", "service": service, "nickname": "Service"})
    await sub.request({"type": "SELF_SUBSCRIBE", "service": service})
    await owner.request({"type": "SELF_SUBSCRIBE", "service": service})

    # From the owner: every subscriber except the owner.
    await owner.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": "news"})
    got = await sub.expect("MESSAGE")
    assert got["origin"]["service"]["name"] == service
    assert got["origin"]["name"] == owner.name
    await owner.quiet("MESSAGE")
    await outsider.quiet("MESSAGE")

    # From a subscriber: the owner only.
    await sub.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": "question"})
    assert (await owner.expect("MESSAGE"))["data"] == "question"
    await sub.quiet("MESSAGE")

    # From neither: BAD.
    bad = await outsider.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": service}, "data": 1})
    assert bad["type"] == "BAD" and bad["desc"]


async def test_service_client_uuid_target_is_for_the_owner_only(trio: list[Client], name: str) -> None:
    owner, sub, outsider = trio
    service = f"svc_{name}"
    await owner.request({"type": "SERVICE_CREATE", "service": service})
    target = {"type": "SERVICE_CLIENT_UUID", "service": service, "uuid": sub.public_id}
    assert (await owner.request({"type": "MESSAGE", "target": target, "data": "direct"}))["type"] == "OK"
    got = await sub.expect("MESSAGE")
    assert got["data"] == "direct" and got["origin"]["service"]["name"] == service
    refused = await outsider.request({"type": "MESSAGE", "target": target, "data": "spoof"})
    assert refused["type"] == "BAD"
    await sub.quiet("MESSAGE")


# -- services ----------------------------------------------------------------------------------


async def test_service_lifecycle_payloads_and_broadcasts(trio: list[Client], name: str) -> None:
    a, b, c = trio
    service = f"svc_{name}"
    created = await a.request({"type": "SERVICE_CREATE", "service": service, "nickname": "Nick"})
    info = {"name": service, "nickname": "Nick", "owner_uuid": a.public_id, "subscribers": []}
    assert created == {"type": "SERVICE_CREATE_RESULT", "successful": True, "service": info, "seq": 0}
    for client in (b, c):
        assert await client.expect("SERVICE_CREATE_RESULT") == {
            "type": "SERVICE_CREATE_RESULT",
            "successful": True,
            "service": info,
        }

    again = await b.request({"type": "SERVICE_CREATE", "service": service})
    assert again["type"] == "SERVICE_CREATE_RESULT" and again["successful"] is False

    sub = await b.request({"type": "SELF_SUBSCRIBE", "service": service})
    assert sub["type"] == "SELF_SUBSCRIBE_RESULT" and sub["successful"] is True
    assert sub["service"]["subscribers"] == [b.public_id]
    assert (await b.request({"type": "SELF_SUBSCRIBE", "service": service}))["successful"] is False
    fetched = await c.request({"type": "SERVICE_FETCH", "service": service})
    assert fetched["service"]["subscribers"] == [b.public_id]
    everything = await c.request({"type": "SERVICE_FETCH_ALL"})
    assert service in [s["name"] for s in everything["services"]]
    assert (await b.request({"type": "SELF_FETCH"}))["subscriptions"] == [service]
    client_view = await c.request({"type": "CLIENT_FETCH", "uuid": b.public_id})
    assert client_view == {
        "type": "CLIENT_FETCH_RESULT",
        "client": b.info,
        "subscriptions": [service],
        "seq": client_view["seq"],
    }

    unsub = await b.request({"type": "SELF_UNSUBSCRIBE", "service": service})
    assert unsub["successful"] is True and unsub["service"]["subscribers"] == []
    assert (await b.request({"type": "SELF_UNSUBSCRIBE", "service": service}))["successful"] is False

    refused = await b.request({"type": "SERVICE_DELETE", "service": service})
    assert refused["type"] == "BAD" and "seq" in refused
    deleted = await a.request({"type": "SERVICE_DELETE", "service": service})
    assert deleted["type"] == "SERVICE_DELETE_RESULT" and deleted["service"]["name"] == service
    assert (await c.expect("SERVICE_DELETE_RESULT"))["service"]["name"] == service
    for kind in ("SERVICE_FETCH", "SERVICE_DELETE", "SELF_SUBSCRIBE", "SELF_UNSUBSCRIBE"):
        missing = await c.request({"type": kind, "service": service})
        assert missing == {"type": "INVALID_SERVICE", "service": service, "seq": missing["seq"]}


async def test_subscribe_events_go_to_subscribers_and_the_owner_only_if_subscribed(
    trio: list[Client], name: str
) -> None:
    owner, first, second = trio
    service = f"svc_{name}"
    await owner.request({"type": "SERVICE_CREATE", "service": service})
    await first.request({"type": "SELF_SUBSCRIBE", "service": service})
    await second.request({"type": "SELF_SUBSCRIBE", "service": service})
    event = await first.expect(event_about("SERVICE_CLIENT_SUBSCRIBED", second.name))
    assert event["service"]["name"] == service
    await owner.quiet("SERVICE_CLIENT_SUBSCRIBED")
    await owner.request({"type": "SELF_SUBSCRIBE", "service": service})
    await second.request({"type": "SELF_UNSUBSCRIBE", "service": service})
    assert (await owner.expect(event_about("SERVICE_CLIENT_UNSUBSCRIBED", second.name)))["service"]["name"] == service
    assert await first.expect(event_about("SERVICE_CLIENT_UNSUBSCRIBED", second.name))


async def test_service_names_must_be_valid(trio: list[Client]) -> None:
    reply = await trio[0].request({"type": "SERVICE_CREATE", "service": "bad name!"})
    assert reply["type"] == "ERROR_PROTOCOL"


# -- clients -------------------------------------------------------------------------------------


async def test_client_fetch_of_an_unknown_uuid_answers_invalid_uuid(trio: list[Client]) -> None:
    for value in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
        reply = await trio[0].request({"type": "CLIENT_FETCH", "uuid": value})
        assert reply == {"type": "INVALID_UUID", "uuid": value, "seq": reply["seq"]}


async def test_client_fetch_all_lists_public_info_only(trio: list[Client]) -> None:
    a, b, c = trio
    reply = await a.request({"type": "CLIENT_FETCH_ALL"})
    listed = {client["name"]: client for client in reply["clients"]}
    for client in trio:
        assert listed[client.name] == client.info
    for client in trio:
        assert client.key not in json.dumps(reply)


# -- leaving ---------------------------------------------------------------------------------------


async def test_a_leaving_client_triggers_the_leave_sequence_in_order(server: ServerProcess, name: str) -> None:
    leaver = await connect(server.ws_url, f"{name}_leaver")
    owner = await connect(server.ws_url, f"{name}_owner")
    watcher = await connect(server.ws_url, f"{name}_watcher")
    own = f"own_{name}"
    joined = f"joined_{name}"
    untouched = f"untouched_{name}"
    await leaver.request({"type": "SERVICE_CREATE", "service": own})
    await owner.request({"type": "SERVICE_CREATE", "service": joined})
    await owner.request({"type": "SERVICE_CREATE", "service": untouched})
    for service in (joined, untouched):
        await watcher.request({"type": "SELF_SUBSCRIBE", "service": service})
    await leaver.request({"type": "SELF_SUBSCRIBE", "service": joined})
    await watcher.request({"type": "SELF_FETCH"})  # flush
    watcher.backlog.clear()

    await leaver.close()
    left = await watcher.expect(event_about("CLIENT_LEFT", leaver.name))
    seen = [p["type"] for p in watcher.backlog] + [left["type"]]
    relevant = [t for t in seen if t in {"SERVICE_DELETE_RESULT", "SERVICE_CLIENT_UNSUBSCRIBED", "CLIENT_LEFT"}]
    assert relevant == ["SERVICE_DELETE_RESULT", "SERVICE_CLIENT_UNSUBSCRIBED", "CLIENT_LEFT"]
    unsub = next(p for p in watcher.backlog if p["type"] == "SERVICE_CLIENT_UNSUBSCRIBED")
    assert unsub["service"]["name"] == joined  # only the service it had joined
    deleted = next(p for p in watcher.backlog if p["type"] == "SERVICE_DELETE_RESULT")
    assert deleted["service"]["name"] == own
    await owner.quiet(lambda p: p["type"] == "SERVICE_CLIENT_UNSUBSCRIBED" and p["service"]["name"] == untouched)
    await owner.close()
    await watcher.close()
