"""A bounded Hypothesis run over every websocket payload type, against a real server.

Each frame is built as raw JSON text, so that it can hold what ``json.dumps`` would
never write: lone surrogate escapes, NaN and Infinity, numbers past a double or past
4,300 digits, deep nesting, long strings, control characters, fields of the wrong
type. Asserted for every frame: its answers are of a type the protocol documents for
it (a refused IDENTIFY closes with a documented code), never ERROR_INTERNAL, and the
socket stays open; at the end, no traceback in the server's log, and a bystander that
was connected throughout is still connected and still gets a broadcast.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.clients import Client, connect, identify_payload
from tests.support.server import ServerProcess, base_env, manage, start_server

EXAMPLES = 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

COMMON = {"ERROR_PROTOCOL"}
ANSWERS: dict[str, set[str]] = {
    "MESSAGE": {"OK", "BAD", "INVALID_NAME", "INVALID_UUID", "INVALID_SERVICE"},
    "SELF_SUBSCRIBE": {"SELF_SUBSCRIBE_RESULT", "INVALID_SERVICE", "BAD"},
    "SELF_UNSUBSCRIBE": {"SELF_UNSUBSCRIBE_RESULT", "INVALID_SERVICE"},
    "SELF_FETCH": {"SELF_FETCH_RESULT"},
    "SELF_SET_SEQ": {"OK"},
    "SERVICE_CREATE": {"SERVICE_CREATE_RESULT", "BAD"},
    "SERVICE_DELETE": {"SERVICE_DELETE_RESULT", "INVALID_SERVICE", "BAD"},
    "SERVICE_FETCH": {"SERVICE_FETCH_RESULT", "INVALID_SERVICE"},
    "SERVICE_FETCH_ALL": {"SERVICE_FETCH_ALL_RESULT"},
    "CLIENT_FETCH": {"CLIENT_FETCH_RESULT", "INVALID_UUID"},
    "CLIENT_FETCH_ALL": {"CLIENT_FETCH_ALL_RESULT"},
    "FILE_LIST": {"FILE_LIST_RESULT", "NOT_FOUND", "BAD"},
    "FILE_DELETE": {"FILE_DELETE_RESULT", "NOT_FOUND", "BAD"},
}
"""The documented answers to each payload type (besides ERROR_PROTOCOL for any of them);
any other type gets ERROR_UNSUPPORTED."""

FIELDS: dict[str, list[str]] = {
    "MESSAGE": ["target", "data", "origin"],
    "SELF_SUBSCRIBE": ["service"],
    "SELF_UNSUBSCRIBE": ["service"],
    "SELF_FETCH": [],
    "SELF_SET_SEQ": ["seq"],
    "SERVICE_CREATE": ["service", "nickname"],
    "SERVICE_DELETE": ["service"],
    "SERVICE_FETCH": ["service"],
    "SERVICE_FETCH_ALL": [],
    "CLIENT_FETCH": ["uuid"],
    "CLIENT_FETCH_ALL": [],
    "FILE_LIST": ["path"],
    "FILE_DELETE": ["path"],
}

HOSTILE = [
    '"\\ud800"',
    '"a\\udfffb"',
    '"\\ud83d\\ude00"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e999",
    "9" * 4300,
    "9" * 4301,
    "-" + "9" * 5000,
    "1" + "0" * 400 + ".5",
    "[" * 70 + "]" * 70,
    "[" * 5000 + "]" * 5000,
    '{"a":' * 100 + "1" + "}" * 100,
    '"' + "x" * 300_000 + '"',
    '"' + "é" * 100_000 + '"',
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\n\\t\\u001b[31m"',
    '"../../etc/passwd"',
    '"/_published/../x"',
    "true",
    "false",
    "null",
    "0",
    "-1",
    str(2**53),
    str(2**63),
    "1.5",
    "[]",
    "{}",
    '[1,"two",null]',
    '{"type":"ALL"}',
    '{"type":"NAME","name":"\\ud800"}',
    '{"type":"UUID","uuid":NaN}',
    '{"type":"SERVICE","service":["x"]}',
    '{"type":"SERVICE_CLIENT_UUID","service":"s","uuid":"00000000-0000-4000-8000-000000000000"}',
    '{"type":"' + "T" * 10_000 + '"}',
]
"""Raw JSON values no well-behaved client sends (some are not JSON at all)."""

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
).map(lambda value: json.dumps(value))
"""Well-formed JSON values of every kind, as text."""

names = st.sampled_from(["fz_svc", "fz_svc2", "nobody", "", "a b", "x" * 65]).map(json.dumps)
targets = st.builds(
    lambda kind, name, ident, service: json.dumps({"type": kind, "name": name, "uuid": ident, "service": service}),
    st.sampled_from(["NAME", "UUID", "SERVICE", "SERVICE_CLIENT_UUID", "ALL", "MOON", ""]),
    st.sampled_from(["fz_by", "fz_fuzzer", "ghost"]),
    st.sampled_from(["00000000-0000-4000-8000-000000000000", "not-a-uuid"]),
    st.sampled_from(["fz_svc", "nope"]),
)
lone_surrogates = st.builds(
    lambda before, escape, after: '"' + json.dumps(before)[1:-1] + escape + json.dumps(after)[1:-1] + '"',
    st.text(max_size=6),
    st.sampled_from(["\\ud800", "\\udbff", "\\udc00", "\\uDFFF", "\\ud83d"]),
    st.text(max_size=6),
)
"""JSON strings holding a lone surrogate escape somewhere."""

hostile = st.one_of(st.sampled_from(HOSTILE), lone_surrogates)
values = st.one_of(hostile, plain, names, targets)
EXTRA_KEYS = ['"extra"', '"seq"', '"\\ud800"', '"origin"']
"""Keys a frame of any type may also carry (as raw JSON strings)."""


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, str]:
    """(payload type, raw frame text): a type (or an unknown one) with fuzzed fields."""
    kind = draw(st.sampled_from([*FIELDS, "IDENTIFY", "TELEPORT", "message", ""]))
    fields = FIELDS.get(kind, ["name"])
    parts = [f'"type":{json.dumps(kind)}']
    for name in fields:
        if draw(st.integers(0, 5)) == 0:
            continue  # missing field
        parts.append(f"{json.dumps(name)}:{draw(values)}")
    if draw(st.integers(0, 7)) == 0:
        extra = draw(st.sampled_from(EXTRA_KEYS))
        parts.append(f"{extra}:{draw(values)}")
    return kind, "{" + ",".join(parts) + "}"


@dataclass
class Bystander:
    """A client that reads everything it is sent, all the while."""

    client: Client
    received: list[dict[str, Any]] = field(default_factory=list)
    closed: BaseException | None = None

    async def read(self) -> None:
        try:
            async for text in self.client.ws:
                self.received.append(json.loads(text))
        except websockets.ConnectionClosed as exc:
            self.closed = exc


@dataclass
class Session:
    runner: asyncio.Runner
    server: ServerProcess
    fuzzer: Client
    bystander: Bystander
    reader: asyncio.Task[None]
    sentinel: int = 10**9


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    env = base_env(data_dir)
    manage(env, "migrate", "-v0")
    process = start_server(env, data_dir)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def session(fuzz_server: ServerProcess) -> Iterator[Session]:
    runner = asyncio.Runner()

    async def start() -> Session:
        bystander = Bystander(await connect(fuzz_server.ws_url, "fz_by"))
        fuzzer = await connect(fuzz_server.ws_url, "fz_fuzzer")
        # Heard the fuzzer join: the bystander is in the broadcast group.
        await bystander.client.expect(lambda p: p["type"] == "CLIENT_JOINED" and p["client"]["name"] == "fz_fuzzer")
        await fuzzer.request({"type": "SERVICE_CREATE", "service": "fz_svc"})
        await fuzzer.request({"type": "SELF_SUBSCRIBE", "service": "fz_svc"})
        reader = asyncio.ensure_future(bystander.read())
        return Session(runner, fuzz_server, fuzzer, bystander, reader)

    state = runner.run(start())
    yield state

    async def stop() -> None:
        await state.fuzzer.close()
        await state.bystander.client.close()
        await asyncio.wait([state.reader], timeout=5)

    runner.run(stop())
    runner.close()


async def answers_to(state: Session, text: str) -> list[dict[str, Any]]:
    """Send ``text``, then a SELF_SET_SEQ sentinel; the frames with a ``seq`` that come
    before the sentinel's OK answer ``text``."""
    client = state.fuzzer
    state.sentinel += 2  # the frame under test is numbered sentinel - 1
    await client.ws.send(text)
    await client.ws.send(json.dumps({"type": "SELF_SET_SEQ", "seq": state.sentinel}))
    answers = []
    async with asyncio.timeout(30):
        while True:
            payload = json.loads(await client.ws.recv())
            if payload == {"type": "OK", "seq": state.sentinel}:
                return answers
            if "seq" in payload:
                answers.append(payload)


def check_answers(kind: str, text: str, answers: list[dict[str, Any]]) -> None:
    allowed = COMMON | ANSWERS.get(kind, {"ERROR_UNSUPPORTED"})
    assert answers, f"no answer to {text[:200]!r}"
    for answer in answers:
        assert answer["type"] in allowed, f"{answer['type']} ({answer.get('desc')}) to {text[:200]!r}"
        if answer["type"] in {"ERROR_PROTOCOL", "BAD", "ERROR_UNSUPPORTED"}:
            assert answer.get("desc"), answer
    pages = [a for a in answers if a["type"].endswith("FETCH_ALL_RESULT") or a["type"] == "FILE_LIST_RESULT"]
    if pages:
        assert [p["done"] for p in pages] == [False] * (len(pages) - 1) + [True]
    else:
        assert len(answers) == 1, answers


def test_every_fuzzed_frame_after_hello_gets_a_documented_answer_and_harms_nobody(session: Session) -> None:
    @FUZZ
    @given(frame=frames())
    def one_frame(frame: tuple[str, str]) -> None:
        kind, text = frame
        check_answers(kind, text, session.runner.run(answers_to(session, text)))

    one_frame()
    assert_nobody_harmed(session)


identify_values = st.one_of(
    hostile,
    plain,
    st.lists(st.one_of(lone_surrogates, plain), max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
)


@st.composite
def identifies(draw: st.DrawFn) -> str:
    """A raw IDENTIFY whose fields are each kept, dropped or fuzzed."""
    base = identify_payload(f"fz_{uuid.uuid4().hex[:8]}", nickname="Nick", secret=None)
    parts = []
    for name, value in base.items():
        choice = draw(st.integers(0, 3))
        if choice == 0 and name != "type":
            continue
        raw = draw(identify_values) if choice == 1 and name != "type" else json.dumps(value)
        parts.append(f"{json.dumps(name)}:{raw}")
    return "{" + ",".join(parts) + "}"


HANDSHAKE_CLOSES = {4002, 4003, 4005, 4007, 4008}
"""Undecodable or ill-shaped, not IDENTIFY, name taken (a fuzzed name may repeat), version, name."""


async def identify_outcome(server: ServerProcess, text: str) -> tuple[str, int | None]:
    async with websockets.connect(server.ws_url, max_size=None) as ws:
        await ws.send(text)
        try:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            assert exc.rcvd.reason, "a refusal must say what was wrong"
            return "CLOSED", exc.rcvd.code
        return reply["type"], None


def test_every_fuzzed_identify_gets_hello_or_a_documented_close_code_and_harms_nobody(session: Session) -> None:
    @FUZZ
    @given(text=identifies())
    def one_identify(text: str) -> None:
        kind, code = session.runner.run(identify_outcome(session.server, text))
        assert kind == "HELLO" or code in HANDSHAKE_CLOSES, (kind, code, text[:200])

    one_identify()
    assert_nobody_harmed(session)


def assert_nobody_harmed(session: Session) -> None:
    """The bystander is still connected and gets a broadcast; the server logged no traceback."""
    token = uuid.uuid4().hex

    async def broadcast() -> None:
        await session.fuzzer.ws.send(json.dumps({"type": "MESSAGE", "target": {"type": "ALL"}, "data": token}))
        async with asyncio.timeout(10):
            while not any(p.get("type") == "MESSAGE" and p.get("data") == token for p in session.bystander.received):
                assert session.bystander.closed is None, session.bystander.closed
                await asyncio.sleep(0.05)

    session.runner.run(broadcast())
    assert session.bystander.closed is None
    log = session.server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
