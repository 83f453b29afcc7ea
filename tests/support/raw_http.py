"""Requests written byte for byte, for what an HTTP library would refuse or rewrite.

A websocket handshake with an offer list no modern client sends, a request target
with raw bytes, spaces or percent-escapes that must reach the server as they are:
written to a plain socket, and the answer read until the connection closes or the
handshake's headers end.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    """A parsed answer: status, headers (lower-case names), body bytes."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        raise AssertionError(f"not an HTTP answer: {data[:200]!r}")
    parts = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)


def exchange(host: str, port: int, request: bytes, timeout: float = 10, upgrade: bool = False) -> RawResponse:
    """Send ``request`` as it is; read the answer (until the end of its headers if ``upgrade``
    and it is a 101, else until its Content-Length is complete or the server closes)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while True:
            if b"\r\n\r\n" in data:
                head = parse_response(data)
                if upgrade and head.status == 101:
                    return head
                length = head.headers.get("content-length")
                if length is not None and len(head.body) >= int(length):
                    return head
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    return parse_response(data)


def request_bytes(
    method: str, target: bytes, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request with ``target`` exactly as given (``Connection: close``)."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: {host}".encode()]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}".encode("latin-1"))
    if body or method in {"PUT", "POST", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def handshake_bytes(host: str, path: str = "/ws", protocol_lines: list[str] | None = None) -> bytes:
    """A websocket opening handshake with each ``Sec-WebSocket-Protocol`` line as given."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"Sec-WebSocket-Protocol: {value}" for value in protocol_lines or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
