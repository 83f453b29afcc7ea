"""HTTP/1.1 by hand over a socket, for requests no library sends: a head without its body,
a body that keeps coming after the answer, headers that trickle."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """A response as read off the socket (interim 1xx responses listed apart)."""

    status: int
    headers: dict[str, str]
    body: bytes
    interim: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def head_bytes(method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket, *, timeout: float = 20, stop_after_interim: bool = False) -> Answer:
    """Read one response (after any 1xx), body by Content-Length or to the close."""
    sock.settimeout(timeout)
    data = b""
    interim: list[int] = []
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before a complete head: {data!r}")
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if 100 <= status < 200:
            interim.append(status)
            if stop_after_interim:
                return Answer(status, headers, b"", interim)
            continue
        break
    length = headers.get("content-length")
    while length is None or len(data) < int(length):
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return Answer(status, headers, data if length is None else data[: int(length)], interim)


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=20)


@dataclass
class Blast:
    """A body written in a thread while the answer is read: how much the server let in."""

    sent: int = 0
    error: str | None = None


def send_while_reading(
    address: tuple[str, int], head: bytes, chunks: Iterator[bytes], *, read_timeout: float = 60
) -> tuple[Answer, Blast]:
    """Send ``head``, then ``chunks`` from a thread until done or refused; read the answer meanwhile."""
    sock = connect(address)
    blast = Blast()

    def writer() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
                blast.sent += len(chunk)
        except OSError as exc:
            blast.error = type(exc).__name__

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        answer = read_answer(sock, timeout=read_timeout)
        # The writer stops once the server closes; give it the moment that takes.
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.1)
    finally:
        sock.close()
    return answer, blast


def chunked(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    """``total`` zero bytes in HTTP chunks of ``size``, then the last chunk."""
    block = b"\0" * size
    sent = 0
    while sent < total:
        part = block[: min(size, total - sent)]
        sent += len(part)
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def plain(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    """``total`` zero bytes in writes of ``size``."""
    block = b"\0" * size
    sent = 0
    while sent < total:
        part = block[: min(size, total - sent)]
        sent += len(part)
        yield part
