"""Long replies in frames that fit the frame limit (docs/protocol-limits.md).

A reply that lists things (SERVICE_FETCH_ALL_RESULT's services, CLIENT_FETCH_ALL_RESULT's
clients, FILE_LIST_RESULT's entries) goes as one or more frames of its type, all with
the request's ``seq``, each with ``"done": false`` but the last (``"done": true``). Each
frame is within FILESHARE_MAX_FRAME_BYTES, so in the common case (the list fits) it is
one frame, as before, with ``done`` added.
"""

from __future__ import annotations

from typing import Any

from fileshare.protocol import MAX_SEQ, JsonObject, encode, encoded_size


def pages(envelope: JsonObject, key: str, items: list[Any], limit: int, most: int | None = None) -> list[JsonObject]:
    """``envelope`` with ``items`` under ``key``, split into payloads that each encode
    (with a ``seq`` and ``done`` added) within ``limit`` bytes and hold at most ``most``
    items. At least one payload, in order; ``done`` is true on the last only.

    An item too large for a frame of its own still gets one (the consumer answers BAD
    for it); the caps keep items far below the default limit.
    """
    room = limit - encoded_size(encode({**envelope, key: [], "done": False, "seq": MAX_SEQ}))
    whole = encode(items)
    if encoded_size(whole) <= room and (most is None or len(items) <= most):
        return [{**envelope, key: items, "done": True}]
    chunks: list[list[Any]] = []
    chunk: list[Any] = []
    used = 0
    for item in items:
        size = encoded_size(encode(item)) + 1  # and its comma
        if chunk and (used + size > room or (most is not None and len(chunk) >= most)):
            chunks.append(chunk)
            chunk, used = [], 0
        chunk.append(item)
        used += size
    chunks.append(chunk)
    last = len(chunks) - 1
    return [{**envelope, key: chunk, "done": index == last} for index, chunk in enumerate(chunks)]
