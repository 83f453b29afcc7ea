"""The wire format of the concierge protocol 0.2: pure functions, no I/O.

PROTOCOL.md sections 1 and 2. Frames are UTF-8 JSON objects with a ``type`` in
SCREAMING_SNAKE_CASE; this module decodes them, checks field shapes and encodes
replies. It raises plain ``ValueError`` subclasses defined here so that it stays
free of the exception tree; the consumer turns them into close codes or payloads.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any, TypeGuard

JsonObject = dict[str, Any]


class CloseCode(enum.IntEnum):
    """Websocket close codes, PROTOCOL.md section 1 (4010+ are this server's own)."""

    UNKNOWN = 4000
    FATAL_DECODE = 4002
    NO_AUTH = 4003
    AUTH_FAILED = 4004
    DUPLICATE_AUTH = 4005
    BAD_SECRET = 4006
    BAD_VERSION = 4007
    BAD_AUTH = 4008
    HB_FAILED = 4009
    KICKED = 4010
    """An operator disconnected the client from the dashboard."""
    SERVER_LEFT = 4011
    """The server process serving the client was presumed dead and cleaned up."""
    MESSAGE_TOO_BIG = 1009
    """A frame over FILESHARE_MAX_FRAME_BYTES (sent by the websocket layer)."""


class DecodeError(ValueError):
    """The frame is not a JSON object with a string ``type``."""


class ShapeError(ValueError):
    """A field is missing or has the wrong JSON type."""


NAME_RE = re.compile(r"[A-Za-z0-9_]+")
SEMVER_RE = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def decode(text: str) -> JsonObject:
    """Parse one text frame; raise ``DecodeError`` unless it is an object with a type."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DecodeError("frame is not a JSON object")
    if not isinstance(value.get("type"), str):
        raise DecodeError('frame has no string "type" field')
    return value


def encode(payload: JsonObject) -> str:
    """Serialise a payload for a text frame."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def is_valid_name(name: object, max_length: int) -> TypeGuard[str]:
    """Letters, digits and ``_`` only, 1 to ``max_length`` characters (ASCII)."""
    return isinstance(name, str) and 0 < len(name) <= max_length and bool(NAME_RE.fullmatch(name))


def is_compatible_version(version: object) -> TypeGuard[str]:
    """True for a semver string compatible with ``^0.2.0`` (that is, 0.2.x)."""
    if not isinstance(version, str):
        return False
    match = SEMVER_RE.fullmatch(version)
    return match is not None and match.group(1) == "0" and match.group(2) == "2"


def field(payload: JsonObject, name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """``payload[name]`` checked against ``kind``; ``None`` if optional and absent or null."""
    value = payload.get(name)
    if value is None and optional:
        return None
    # bool is an int in Python, but never a valid seq or number here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in kinds)
        raise ShapeError(f'{payload.get("type")}: field "{name}" must be {expected}')
    return value


def string_list(payload: JsonObject, name: str) -> list[str]:
    """An optional list of strings, ``[]`` when absent."""
    value = payload.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ShapeError(f'{payload.get("type")}: field "{name}" must be a list of strings')
    return value


_JSON_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}
