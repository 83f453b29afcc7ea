"""The ceiling for messages: a plain ``websockets`` relay with the concierge's message shape.

    python -m bench.plain_relay [--port 0] [--ready-file FILE]

No registry, no database, no channel layer: the first frame (any IDENTIFY) is
answered with HELLO at once; a MESSAGE to ``{"type": "NAME", "name": n}`` is
forwarded to that client with an ``origin`` and the sender gets ``OK`` with its
``seq``, exactly the frames the concierge exchanges. The bench drives it with the
same client code as the real server, so their ratio is the cost of everything
the concierge does besides moving frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from pathlib import Path

from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: dict[str, ServerConnection] = {}
infos: dict[str, dict[str, object]] = {}
ANNOUNCE = False
"""With --announce: CLIENT_JOINED/CLIENT_LEFT to everyone, MESSAGE to ALL and CLIENT_FETCH_ALL
(the crowd work of bench/scale.py); without, only what the relay and handshake figures need."""


async def handle(ws: ServerConnection) -> None:
    """One client: IDENTIFY -> HELLO, then relay MESSAGEs by name until it leaves."""
    try:
        identify = json.loads(await ws.recv())
    except Exception:  # noqa: BLE001 (a bench peer that went away)
        return
    name = str(identify.get("name", ""))
    if not name or name in clients:
        await ws.close(4005, "duplicate or empty name")
        return
    public = str(uuid.uuid4())
    origin = {"name": name, "nickname": identify.get("nickname"), "uuid": public, "tags": []}
    await ws.send(json.dumps({"type": "HELLO", "uuid": str(uuid.uuid4()), "version": "0.2.3", "client": origin}))
    if ANNOUNCE:
        broadcast(clients.values(), json.dumps({"type": "CLIENT_JOINED", "client": origin}))
    clients[name] = ws
    infos[name] = origin
    seq = 0
    try:
        async for frame in ws:
            payload = json.loads(frame)
            target_spec = payload.get("target") or {}
            target = clients.get(str(target_spec.get("name", "")))
            if ANNOUNCE and payload.get("type") == "MESSAGE" and target_spec.get("type") == "ALL":
                message = {"type": "MESSAGE", "target": target_spec, "data": payload.get("data"), "origin": origin}
                broadcast(clients.values(), json.dumps(message))
                await ws.send(json.dumps({"type": "OK", "seq": seq}))
            elif ANNOUNCE and payload.get("type") == "CLIENT_FETCH_ALL":
                await ws.send(
                    json.dumps({"type": "CLIENT_FETCH_ALL_RESULT", "clients": list(infos.values()), "seq": seq})
                )
            elif payload.get("type") == "MESSAGE" and target is not None:
                message = {
                    "type": "MESSAGE",
                    "target": payload["target"],
                    "data": payload.get("data"),
                    "origin": origin,
                }
                with contextlib.suppress(Exception):  # the receiver left meanwhile
                    await target.send(json.dumps(message))
                await ws.send(json.dumps({"type": "OK", "seq": seq}))
            else:
                await ws.send(json.dumps({"type": "INVALID_NAME", "seq": seq}))
            seq += 1
    except Exception:  # noqa: BLE001 (a peer that went away mid-frame)
        pass
    finally:
        if clients.get(name) is ws:
            del clients[name]
            del infos[name]
            if ANNOUNCE:
                broadcast(clients.values(), json.dumps({"type": "CLIENT_LEFT", "client": origin}))


async def main(port: int, ready_file: str | None) -> None:
    async with serve(handle, "127.0.0.1", port, compression=None, max_size=1024 * 1024) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        if ready_file:
            await asyncio.to_thread(Path(ready_file).write_text, f"127.0.0.1 {bound}\n")
        await asyncio.get_running_loop().create_future()  # until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file")
    parser.add_argument("--announce", action="store_true", help="joins and leaves to everyone, MESSAGE to ALL")
    args = parser.parse_args()
    ANNOUNCE = args.announce
    asyncio.run(main(args.port, args.ready_file))
