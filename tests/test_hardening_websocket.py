"""Nothing one client sends harms another (issue 20, the websocket side), on a real server.

Each test reproduces a finding of the adversarial review: frames the server could not
re-encode (lone surrogates, NaN), replies and relays over the frame limit, unbounded
caps, events dropped silently, NUL on PostgreSQL, a client that leaves mid-answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets

from tests.support.clients import Client, connect, identify_payload, refused
from tests.support.server import (
    POSTGRES,
    ServerProcess,
    base_env,
    drop_postgres_database,
    manage,
    new_postgres_database,
    require,
    start_server,
)

SURROGATE = "\\ud800"
"""A lone surrogate escape, as JSON text (json.dumps would write the same)."""


@pytest.fixture
async def pair(server: ServerProcess, name: str) -> AsyncIterator[tuple[Client, Client]]:
    """A sender and a bystander that stays connected throughout."""
    bystander = await connect(server.ws_url, f"{name}_b")
    sender = await connect(server.ws_url, f"{name}_s")
    await joined(bystander, sender)
    yield sender, bystander
    await sender.close()
    await bystander.close()


async def joined(bystander: Client, newcomer: Client) -> None:
    """Wait until ``bystander`` hears ``newcomer`` join: then ``bystander`` is in the
    broadcast group (CLIENT_JOINED is a broadcast)."""
    await bystander.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == newcomer.name, timeout=10)


async def in_group(sender: Client, receiver: Client) -> None:
    """Wait until ``receiver`` gets a broadcast from ``sender``: it is in the broadcast group
    (a client joins it only after its HELLO; across processes that may take a moment)."""
    token = f"ready {receiver.name}"
    for _ in range(40):
        await sender.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": token})
        try:
            await receiver.expect(lambda p: p["type"] == "MESSAGE" and p["data"] == token, timeout=0.5)
        except TimeoutError:
            continue
        return
    raise AssertionError(f"{receiver.name} never joined the broadcast group")


async def assert_still_served(sender: Client, bystander: Client) -> None:
    """Both sockets are open and a broadcast still reaches both."""
    reply = await sender.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "still here"})
    assert reply["type"] == "OK"
    for client in (sender, bystander):
        got = await client.expect(lambda p: p["type"] == "MESSAGE" and p["data"] == "still here")
        assert got["origin"]["name"] == sender.name


# -- Item 1: text UTF-8 cannot carry and numbers JSON cannot carry are refused at decode --------


async def test_a_lone_surrogate_broadcast_is_refused_and_disconnects_nobody(pair: tuple[Client, Client]) -> None:
    sender, bystander = pair
    reply = await sender.request('{"type":"MESSAGE","target":{"type":"ALL"},"data":"' + SURROGATE + '"}')
    assert reply["type"] == "ERROR_PROTOCOL" and "surrogate" in reply["desc"] and '"data"' in reply["desc"]
    await bystander.quiet("MESSAGE", 0.3)
    await assert_still_served(sender, bystander)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"MESSAGE","target":{"type":"NAME","name":"x' + SURROGATE + '"},"data":1}',
        '{"type":"MESSAGE","target":{"type":"ALL","' + SURROGATE + '":1},"data":1}',
        '{"type":"MESSAGE","target":{"type":"ALL"},"data":{"deep":[1,{"k":"' + SURROGATE + '"}]}}',
        '{"type":"CLIENT_FETCH","uuid":"' + SURROGATE + '"}',
        '{"type":"FILE_LIST","path":"/' + SURROGATE + '"}',
        '{"type":"FILE_DELETE","path":"/a/' + SURROGATE + '"}',
        '{"type":"SERVICE_CREATE","service":"s","nickname":"' + SURROGATE + '"}',
        '{"type":"SELF_SUBSCRIBE","service":"' + SURROGATE + '"}',
        '{"type":"' + SURROGATE + '"}',
        '{"type":"SELF_FETCH","\\udfff":0}',
    ],
)
async def test_a_lone_surrogate_anywhere_answers_error_protocol_and_keeps_the_socket(
    pair: tuple[Client, Client], frame: str
) -> None:
    sender, bystander = pair
    reply = await sender.request(frame)
    assert reply["type"] == "ERROR_PROTOCOL" and "surrogate" in reply["desc"]
    await assert_still_served(sender, bystander)


async def test_across_processes_a_lone_surrogate_is_refused_at_decode_not_an_internal_error(cluster, name: str) -> None:  # type: ignore[no-untyped-def]
    """With Redis the sender used to get ERROR_INTERNAL (the layer could not serialise the frame)."""
    a, b = cluster.processes
    bystander = await connect(b.ws_url, f"{name}_b")
    sender = await connect(a.ws_url, f"{name}_s")
    await in_group(sender, bystander)
    for target in ({"type": "ALL"}, {"type": "NAME", "name": bystander.name}):
        frame = '{"type":"MESSAGE","target":' + json.dumps(target) + ',"data":["' + SURROGATE + '"]}'
        reply = await sender.request(frame)
        assert reply["type"] == "ERROR_PROTOCOL" and "surrogate" in reply["desc"]
    await assert_still_served(sender, bystander)
    await sender.close()
    await bystander.close()


async def test_a_surrogate_pair_written_as_escapes_is_text_and_relayed(pair: tuple[Client, Client]) -> None:
    sender, bystander = pair
    frame = '{"type":"MESSAGE","target":{"type":"NAME","name":"' + bystander.name + '"},"data":"\\ud83d\\ude00"}'
    assert (await sender.request(frame))["type"] == "OK"
    assert (await bystander.expect("MESSAGE"))["data"] == "\U0001f600"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400 + ".0"])
async def test_numbers_json_cannot_carry_are_refused_and_never_relayed(
    pair: tuple[Client, Client], number: str
) -> None:
    sender, bystander = pair
    reply = await sender.request('{"type":"MESSAGE","target":{"type":"ALL"},"data":[' + number + "]}")
    assert reply["type"] == "ERROR_PROTOCOL" and reply["desc"]
    await bystander.quiet("MESSAGE", 0.3)
    await assert_still_served(sender, bystander)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nickname", '"' + SURROGATE + '"'),
        ("tags", '["ok","' + SURROGATE + '"]'),
        ("name", '"a' + SURROGATE + '"'),
        ("nickname", "NaN"),
    ],
)
async def test_an_identify_that_cannot_be_decoded_closes_4002(
    server: ServerProcess, name: str, field: str, value: str
) -> None:
    frame = json.dumps(identify_payload(name))[:-1] + f',"{field}":{value}}}'
    code, reason = await refused(server.ws_url, frame)
    assert code == 4002 and reason


async def test_self_set_seq_with_a_4300_digit_number_is_refused_and_the_next_reply_is_fine(
    pair: tuple[Client, Client],
) -> None:
    sender, bystander = pair
    huge = "9" * 4300
    reply = await sender.request('{"type":"SELF_SET_SEQ","seq":' + huge + "}")
    assert reply["type"] == "ERROR_PROTOCOL" and "2**53" in reply["desc"]
    assert (await sender.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"
    over = await sender.request({"type": "SELF_SET_SEQ", "seq": 2**53})
    assert over["type"] == "ERROR_PROTOCOL"
    await sender.ws.send(json.dumps({"type": "SELF_SET_SEQ", "seq": 2**53 - 1}))
    assert await sender.expect("OK") == {"type": "OK", "seq": 2**53 - 1}
    await sender.ws.send(json.dumps({"type": "SELF_FETCH"}))
    assert (await sender.expect("SELF_FETCH_RESULT"))["seq"] == 2**53
    sender.seq = 2**53 + 1
    await assert_still_served(sender, bystander)


async def test_frames_nested_deeper_than_64_levels_are_refused(pair: tuple[Client, Client]) -> None:
    sender, bystander = pair
    deep = "[" * 900 + "]" * 900
    reply = await sender.request('{"type":"MESSAGE","target":{"type":"ALL"},"data":' + deep + "}")
    assert reply["type"] == "ERROR_PROTOCOL" and "64" in reply["desc"]
    fine = "[" * 60 + "]" * 60
    assert (await sender.request('{"type":"MESSAGE","target":{"type":"ALL"},"data":' + fine + "}"))["type"] == "OK"
    await assert_still_served(sender, bystander)


# -- Item 2: every outgoing frame within the frame limit ---------------------------------------------


async def test_a_message_that_would_exceed_the_frame_limit_with_its_origin_gets_bad_and_reaches_nobody(
    server: ServerProcess, name: str
) -> None:
    # websockets' default limit (1 MiB), the README's example client: a frame over it closes 1009.
    ws = await websockets.connect(server.ws_url)
    await ws.send(json.dumps(identify_payload(f"{name}_b")))
    bystander = Client(ws, json.loads(await ws.recv()))
    sender = await connect(server.ws_url, f"{name}_s")
    await joined(bystander, sender)
    data = "x" * (2**20 - 120)
    frame = json.dumps({"type": "MESSAGE", "target": {"type": "ALL"}, "data": data})
    assert len(frame) <= 2**20
    reply = await sender.request(frame, timeout=20)
    assert reply["type"] == "BAD" and "frame limit" in reply["desc"] and "origin" in reply["desc"]
    await assert_still_served(sender, bystander)
    await sender.close()
    await bystander.close()


@pytest.fixture(scope="module")
def small_frames(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a 16 KiB frame limit, so that long replies need several frames."""
    data_dir = tmp_path_factory.mktemp("small_frames")
    env = base_env(data_dir, FILESHARE_MAX_FRAME_BYTES=str(16 * 1024))
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


async def collect_pages(
    client: Client, payload: dict[str, object], kind: str, key: str
) -> tuple[list[object], list[int]]:
    """Send a request; gather the items of every page of its reply, and each page's size in bytes."""
    number = await client.send(payload)
    items: list[object] = []
    sizes: list[int] = []
    async with asyncio.timeout(20):
        while True:
            text = await client.ws.recv()
            page = json.loads(text)
            if page.get("seq") != number:
                continue
            assert page["type"] == kind, page
            sizes.append(len(text.encode()))
            items.extend(page[key])
            if page["done"]:
                return items, sizes


async def test_service_fetch_all_is_paged_within_the_frame_limit(small_frames: ServerProcess, name: str) -> None:
    owner = await connect(small_frames.ws_url, name)
    names = [f"svc_{name}_{i:03d}" for i in range(300)]
    for service in names:
        await owner.send({"type": "SERVICE_CREATE", "service": service, "nickname": "n" * 100})
    for _ in names:
        await owner.expect(lambda p: p["type"] == "SERVICE_CREATE_RESULT" and "seq" in p, timeout=20)
    services, sizes = await collect_pages(owner, {"type": "SERVICE_FETCH_ALL"}, "SERVICE_FETCH_ALL_RESULT", "services")
    assert len(sizes) > 1 and max(sizes) <= 16 * 1024
    assert sorted(s["name"] for s in services if s["name"].startswith(f"svc_{name}")) == names  # type: ignore[index]
    assert (await owner.request({"type": "SELF_FETCH"}))["type"] == "SELF_FETCH_RESULT"  # in step after the pages
    await owner.close()


async def test_client_fetch_all_is_paged_within_the_frame_limit(small_frames: ServerProcess, name: str) -> None:
    crowd = [
        await connect(small_frames.ws_url, f"{name}_{i:02d}", nickname="N" * 255, tags=["t" * 64] * 8)
        for i in range(25)
    ]
    asker = crowd[0]
    clients, sizes = await collect_pages(asker, {"type": "CLIENT_FETCH_ALL"}, "CLIENT_FETCH_ALL_RESULT", "clients")
    assert len(sizes) > 1 and max(sizes) <= 16 * 1024
    assert {c.name for c in crowd} <= {c["name"] for c in clients}  # type: ignore[index]
    for client in crowd:
        await client.close()


async def test_a_reply_that_fits_is_one_frame_with_done(pair: tuple[Client, Client]) -> None:
    sender, _ = pair
    reply = await sender.request({"type": "CLIENT_FETCH_ALL"})
    assert reply["done"] is True and sender.name in {c["name"] for c in reply["clients"]}
    assert (await sender.request({"type": "SERVICE_FETCH_ALL"}))["done"] is True


# -- Caps -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"nickname": "n" * 256},
        {"tags": ["t"] * 33},
        {"tags": ["t" * 65]},
        {"nickname": "a\u0000b"},
        {"tags": ["lab", "x\u0000"]},
        {"nickname": "two\nlines"},
    ],
)
async def test_an_identify_with_an_oversized_or_control_character_nickname_or_tags_closes_4002(
    server: ServerProcess, name: str, fields: dict[str, object]
) -> None:
    code, reason = await refused(server.ws_url, json.dumps(identify_payload(name, **fields)))
    assert code == 4002 and ("nickname" in reason or "tags" in reason)


async def test_the_largest_allowed_nickname_and_tags_are_accepted(server: ServerProcess, name: str) -> None:
    client = await connect(server.ws_url, name, nickname="é" * 255, tags=["t" * 64] * 32)
    assert client.info["nickname"] == "é" * 255
    await client.close()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("capped")
    env = base_env(
        data_dir,
        FILESHARE_MAX_SERVICES_PER_CLIENT="3",
        FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT="2",
        FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE="2",
    )
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


async def test_services_owned_over_the_cap_are_refused_with_bad(capped: ServerProcess, name: str) -> None:
    owner = await connect(capped.ws_url, name)
    for i in range(3):
        assert (await owner.request({"type": "SERVICE_CREATE", "service": f"{name}_{i}"}))["successful"]
    over = await owner.request({"type": "SERVICE_CREATE", "service": f"{name}_3"})
    assert over["type"] == "BAD" and "FILESHARE_MAX_SERVICES_PER_CLIENT" in over["desc"]
    taken = await owner.request({"type": "SERVICE_CREATE", "service": f"{name}_0"})
    assert taken["type"] == "SERVICE_CREATE_RESULT" and not taken["successful"]
    await owner.request({"type": "SERVICE_DELETE", "service": f"{name}_0"})
    assert (await owner.request({"type": "SERVICE_CREATE", "service": f"{name}_3"}))["successful"]
    await owner.close()


async def test_subscriptions_and_subscribers_over_their_caps_are_refused_with_bad(
    capped: ServerProcess, name: str
) -> None:
    owner = await connect(capped.ws_url, f"{name}_o")
    for i in range(3):
        await owner.request({"type": "SERVICE_CREATE", "service": f"{name}_{i}"})
    joiner = await connect(capped.ws_url, f"{name}_j")
    for i in range(2):
        assert (await joiner.request({"type": "SELF_SUBSCRIBE", "service": f"{name}_{i}"}))["successful"]
    over = await joiner.request({"type": "SELF_SUBSCRIBE", "service": f"{name}_2"})
    assert over["type"] == "BAD" and "FILESHARE_MAX_SUBSCRIPTIONS_PER_CLIENT" in over["desc"]
    again = await joiner.request({"type": "SELF_SUBSCRIBE", "service": f"{name}_0"})
    assert again["type"] == "SELF_SUBSCRIBE_RESULT" and not again["successful"]

    assert (await owner.request({"type": "SELF_SUBSCRIBE", "service": f"{name}_0"}))["successful"]
    third = await connect(capped.ws_url, f"{name}_t")
    full = await third.request({"type": "SELF_SUBSCRIBE", "service": f"{name}_0"})
    assert full["type"] == "BAD" and "FILESHARE_MAX_SUBSCRIBERS_PER_SERVICE" in full["desc"]
    for client in (owner, joiner, third):
        await client.close()


@pytest.mark.parametrize("nickname", ["a\u0000b", "n" * 256, "bell\u0007"])
async def test_a_service_nickname_oversized_or_with_control_characters_is_refused(
    pair: tuple[Client, Client], name: str, nickname: str
) -> None:
    sender, _ = pair
    reply = await sender.request({"type": "SERVICE_CREATE", "service": f"svc_{name}", "nickname": nickname})
    assert reply["type"] == "ERROR_PROTOCOL" and "nickname" in reply["desc"]


# -- Item 10: NUL on PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on PostgreSQL (which refuses NUL in text), the in-memory layer."""
    require(POSTGRES, "PostgreSQL")
    url = new_postgres_database()
    data_dir = tmp_path_factory.mktemp("postgres")
    env = base_env(data_dir, DATABASE_URL=url)
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()
    drop_postgres_database(url)


async def test_nul_in_names_and_labels_on_postgresql_gets_clear_answers_not_internal_errors(
    postgres_server: ServerProcess, name: str
) -> None:
    code, reason = await refused(postgres_server.ws_url, json.dumps(identify_payload(name, nickname="a\u0000")))
    assert code == 4002 and "nickname" in reason
    code, _ = await refused(postgres_server.ws_url, json.dumps(identify_payload(name, tags=["\u0000"])))
    assert code == 4002
    client = await connect(postgres_server.ws_url, name)
    nul = "x\u0000y"
    answers = {
        "SERVICE_CREATE": await client.request({"type": "SERVICE_CREATE", "service": "s", "nickname": nul}),
        "SERVICE_CREATE name": await client.request({"type": "SERVICE_CREATE", "service": nul}),
        "SELF_SUBSCRIBE": await client.request({"type": "SELF_SUBSCRIBE", "service": nul}),
        "SERVICE_FETCH": await client.request({"type": "SERVICE_FETCH", "service": nul}),
        "SERVICE_DELETE": await client.request({"type": "SERVICE_DELETE", "service": nul}),
        "NAME": await client.request({"type": "MESSAGE", "target": {"type": "NAME", "name": nul}, "data": 1}),
        "SERVICE": await client.request({"type": "MESSAGE", "target": {"type": "SERVICE", "service": nul}, "data": 1}),
        "CLIENT_FETCH": await client.request({"type": "CLIENT_FETCH", "uuid": nul}),
        "FILE_LIST": await client.request({"type": "FILE_LIST", "path": f"/{name}/{nul}"}),
    }
    kinds = {what: reply["type"] for what, reply in answers.items()}
    assert kinds == {
        "SERVICE_CREATE": "ERROR_PROTOCOL",
        "SERVICE_CREATE name": "ERROR_PROTOCOL",
        "SELF_SUBSCRIBE": "INVALID_SERVICE",
        "SERVICE_FETCH": "INVALID_SERVICE",
        "SERVICE_DELETE": "INVALID_SERVICE",
        "NAME": "INVALID_NAME",
        "SERVICE": "INVALID_SERVICE",
        "CLIENT_FETCH": "INVALID_UUID",
        "FILE_LIST": "BAD",
    }
    # A data payload may carry NUL: it is relayed, never stored.
    assert (await client.request({"type": "MESSAGE", "target": {"type": "ALL"}, "data": nul}))["type"] == "OK"
    assert (await client.expect("MESSAGE"))["data"] == nul
    await client.close()
    assert "Traceback" not in postgres_server.log()


# -- Item 7: events owed are never dropped silently ---------------------------------------------------


async def test_a_client_busy_while_2000_services_go_gets_every_event_or_is_told_how_many_it_missed(
    spawn,
    name: str,  # type: ignore[no-untyped-def]
) -> None:
    server: ServerProcess = spawn(FILESHARE_MAX_SERVICES_PER_CLIENT="2000")
    owner = await connect(server.ws_url, f"{name}_o")
    for i in range(2000):
        await owner.send({"type": "SERVICE_CREATE", "service": f"s{i:04d}"})
    for _ in range(2000):
        await owner.expect(lambda p: p["type"] == "SERVICE_CREATE_RESULT" and "seq" in p, timeout=60)
    watcher = await connect(server.ws_url, f"{name}_w")
    await in_group(owner, watcher)
    # Keep the watcher's consumer busy (requests in flight) while the owner leaves.
    for _ in range(30):
        await watcher.send({"type": "SERVICE_FETCH_ALL"})
    await owner.ws.send(json.dumps({"type": "SELF_FETCH"}))
    await owner.close()
    deleted = missed = left = 0
    async with asyncio.timeout(90):
        while deleted + missed + left < 2001:
            payload = json.loads(await watcher.ws.recv())
            if payload["type"] == "SERVICE_DELETE_RESULT":
                deleted += 1
            elif payload["type"] == "EVENTS_MISSED":
                assert payload["count"] >= 1 and payload["desc"]
                missed += payload["count"]
            elif payload["type"] == "CLIENT_LEFT" and payload["client"]["name"] == owner.name:
                left += 1
    assert deleted + missed + left == 2001
    # Fetching is the truth afterwards.
    services, _ = await collect_pages(watcher, {"type": "SERVICE_FETCH_ALL"}, "SERVICE_FETCH_ALL_RESULT", "services")
    assert services == []
    await watcher.close()


async def test_across_processes_a_busy_client_gets_every_event_or_is_told_how_many_it_missed(
    make_cluster,
    name: str,  # type: ignore[no-untyped-def]
) -> None:
    """The same with Redis: the owner on one process, the busy client on the other."""
    group = make_cluster()
    a, b = group.start(), group.start()
    owner = await connect(a.ws_url, f"{name}_o")
    count = 600
    for i in range(count):
        await owner.send({"type": "SERVICE_CREATE", "service": f"s{i:04d}"})
    for _ in range(count):
        await owner.expect(lambda p: p["type"] == "SERVICE_CREATE_RESULT" and "seq" in p, timeout=60)
    watcher = await connect(b.ws_url, f"{name}_w")
    await in_group(owner, watcher)
    for _ in range(30):
        await watcher.send({"type": "SERVICE_FETCH_ALL"})
    await owner.close()
    deleted = missed = left = 0
    async with asyncio.timeout(90):
        while deleted + missed + left < count + 1:
            payload = json.loads(await watcher.ws.recv())
            if payload["type"] == "SERVICE_DELETE_RESULT":
                deleted += 1
            elif payload["type"] == "EVENTS_MISSED":
                missed += payload["count"]
            elif payload["type"] == "CLIENT_LEFT" and payload["client"]["name"] == owner.name:
                left += 1
    assert deleted + missed + left == count + 1
    await watcher.close()
    assert not any("Traceback" in process.log() for process in group.processes)


async def test_a_leaver_that_joined_many_services_is_announced_in_each_with_its_remaining_subscribers(
    server: ServerProcess, name: str
) -> None:
    """The leave reads every joined service in a few queries; what it tells is unchanged."""
    owner = await connect(server.ws_url, f"{name}_o")
    stayer = await connect(server.ws_url, f"{name}_s")
    services = [f"{name}_{i}" for i in range(5)]
    for service in services:
        await owner.request({"type": "SERVICE_CREATE", "service": service})
        await stayer.request({"type": "SELF_SUBSCRIBE", "service": service})
    leaver = await connect(server.ws_url, f"{name}_l")
    for service in reversed(services):
        await leaver.request({"type": "SELF_SUBSCRIBE", "service": service})
    await leaver.close()
    told = [
        await stayer.expect(lambda p: p["type"] == "SERVICE_CLIENT_UNSUBSCRIBED" and p["client"]["name"] == leaver.name)
        for _ in services
    ]
    assert [event["service"]["name"] for event in told] == list(reversed(services))  # in the order joined
    assert all(event["service"]["subscribers"] == [stayer.public_id] for event in told)
    assert all(event["service"]["owner_uuid"] == owner.public_id for event in told)
    await owner.quiet("SERVICE_CLIENT_UNSUBSCRIBED", 0.3)  # the owner had not joined
    await stayer.close()
    await owner.close()


# -- Item 10: a client that closes with replies pending ------------------------------------------------


async def test_a_client_that_closes_with_many_replies_pending_still_leaves_without_a_traceback(
    server: ServerProcess, name: str
) -> None:
    bystander = await connect(server.ws_url, f"{name}_b")
    owner = await connect(server.ws_url, f"{name}_o")
    for i in range(500):
        await owner.send({"type": "SERVICE_CREATE", "service": f"{name}_{i:03d}", "nickname": "n" * 200})
    for _ in range(500):
        await owner.expect(lambda p: p["type"] == "SERVICE_CREATE_RESULT" and "seq" in p, timeout=60)
    leaver = await connect(server.ws_url, f"{name}_l")
    for _ in range(400):
        await leaver.send({"type": "SERVICE_FETCH_ALL"})
        await leaver.send({"type": "MESSAGE", "target": {"type": "NAME", "name": bystander.name}, "data": "x"})
    leaver.ws.transport.abort()  # type: ignore[attr-defined]
    await bystander.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == leaver.name, timeout=60)
    again = await connect(server.ws_url, f"{name}_l")  # the name is free
    await again.close()
    await owner.close()
    await bystander.close()
    log = server.log()
    assert "Traceback" not in log
    # The requests read after the close were not carried out (only its MESSAGEs were), so
    # the consumer ended well before daphne would have cancelled it (10 s after the close).
    assert "took too long to shut down" not in log
