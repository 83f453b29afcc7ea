"""The wire format of the concierge protocol 0.2: pure functions, no I/O.

PROTOCOL.md sections 1 and 2. Frames are UTF-8 JSON objects with a ``type`` in
SCREAMING_SNAKE_CASE; this module decodes them, checks field shapes and encodes
replies. It raises plain ``ValueError`` subclasses defined here so that it stays
free of the exception tree; the consumer turns them into close codes or payloads.
"""

from __future__ import annotations

import enum
import json
import math
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


MAX_SEQ = 2**53 - 1
"""Largest ``seq`` SELF_SET_SEQ accepts: the largest integer a JavaScript number holds exactly."""

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a frame may have (the frame itself is level 1)."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A ``\\uD800``-``\\uDFFF`` escape may be in the text (or an escaped backslash before
``ud8..``: the exact check after decoding tells them apart)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (C0, DEL and C1), refused in names and labels that are stored."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _finite(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"the number {quote(literal, 24)} is beyond the range of a double")
    return value


def decode(text: str) -> JsonObject:
    """Parse one text frame; raise ``DecodeError`` unless it is an object with a type.

    Refused here, so that no handler and no receiver ever sees them: text that is
    not JSON; ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a double
    (JSON cannot carry them: re-encoded, they would be invalid JSON); integers of
    more than 4,300 digits (Python's limit for converting them back to text);
    nesting deeper than MAX_DEPTH; strings holding a lone surrogate escape
    (``"\\ud800"``), which no UTF-8 encoder can write.
    """
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DecodeError("frame is not a JSON object")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise DecodeError(f"frame is nested more than {MAX_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(text) is not None:
        _check_utf8(value)
    if not isinstance(value.get("type"), str):
        raise DecodeError('frame has no string "type" field')
    return value


def _depth(value: object) -> int:
    """How deeply ``value``'s arrays and objects nest (iteratively: no recursion limit)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        for child in children:  # type: ignore[attr-defined]
            if isinstance(child, (dict, list)):
                stack.append((child, level + 1))
    return deepest


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_utf8(value: JsonObject) -> None:
    """Raise DecodeError naming the first string (or key) of ``value`` that UTF-8 cannot encode."""
    try:
        encode(value).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)  # type: ignore[arg-type]
        for key, child in items:
            here = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
            if isinstance(key, str) and not _encodable(key):
                raise DecodeError(
                    f"a key in {where or 'the frame'} holds a lone surrogate (\\ud800-\\udfff): not UTF-8 text"
                )
            if isinstance(child, str) and not _encodable(child):
                raise DecodeError(
                    f'field "{quote(here, 60)[1:-1]}" holds a lone surrogate (\\ud800-\\udfff): not UTF-8 text'
                )
            if isinstance(child, (dict, list)):
                stack.append((child, here))
    raise DecodeError("frame holds a lone surrogate (\\ud800-\\udfff): not UTF-8 text")


def encode(payload: Any) -> str:
    """Serialise a payload for a text frame (``NaN`` and infinities raise: decode refuses them)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encoded_size(text: str) -> int:
    """Bytes of ``text`` as UTF-8 (a websocket text frame's payload)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def quote(value: object, limit: int = 64) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for messages that name client input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


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


def text_field(payload: JsonObject, name: str, max_length: int) -> str | None:
    """An optional label that is stored (a nickname): a string of at most ``max_length``
    characters without control characters, or ``None``."""
    value = field(payload, name, str, optional=True)
    if value is not None:
        _check_label(payload, f'field "{name}"', value, max_length)
    return value


def text_list(payload: JsonObject, name: str, max_items: int, max_length: int) -> list[str]:
    """An optional list of stored labels (tags): ``[]`` when absent, at most ``max_items``
    strings of at most ``max_length`` characters without control characters."""
    values = string_list(payload, name)
    if len(values) > max_items:
        raise ShapeError(
            f'{payload.get("type")}: field "{name}" has {len(values)} items; at most {max_items} are allowed'
        )
    for index, value in enumerate(values):
        _check_label(payload, f'"{name}[{index}]"', value, max_length)
    return values


def _check_label(payload: JsonObject, what: str, value: str, max_length: int) -> None:
    if len(value) > max_length:
        raise ShapeError(
            f"{payload.get('type')}: {what} is {len(value)} characters long; at most {max_length} are allowed"
        )
    if _CONTROL.search(value) is not None:
        raise ShapeError(f"{payload.get('type')}: {what} holds a control character (such as NUL or a line break)")


_JSON_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}
