"""When a client leaves, its key stops working and its folder and files are gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.support.clients import connect
from tests.support.server import ServerProcess


def client_folders(server: ServerProcess, name: str) -> list[Path]:
    root = Path(server.env.get("FILESHARE_STORAGE_ROOT", server.data_dir / "files"))
    return list(root.glob(f"{name}.*")) if root.exists() else []


async def wait_for(condition, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


async def test_leaving_removes_every_file_and_refuses_the_key(server: ServerProcess, name: str) -> None:
    owner = await connect(server.ws_url, name)
    reader = await connect(server.ws_url, name + "_r")
    async with httpx.AsyncClient(base_url=server.url) as http:
        for path in ("a.txt", "deep/er/b.bin", "c"):
            response = await http.put(f"/fs/{name}/{path}", content=b"data", headers={"Authorization": owner.key})
            assert response.status_code == 201
        assert len(client_folders(server, name)) == 1
        await owner.close()
        await reader.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
        # By the time others hear CLIENT_LEFT, the files are gone and the key is dead.
        assert client_folders(server, name) == []
        refused = await http.put(f"/fs/{name}/a.txt", content=b"again", headers={"Authorization": owner.key})
        assert refused.status_code == 401
        gone = await http.get(f"/fs/{name}/a.txt", headers={"Authorization": reader.key})
        assert gone.status_code == 404
    await reader.close()


async def test_a_new_client_with_the_same_name_starts_with_an_empty_folder(server: ServerProcess, name: str) -> None:
    first = await connect(server.ws_url, name)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.put(f"/fs/{name}/old.txt", content=b"old", headers={"Authorization": first.key})
        await first.close()
        await wait_for(lambda: _name_free(server, name))
        second = await connect(server.ws_url, name)
        response = await http.get(f"/fs/{name}/old.txt", headers={"Authorization": second.key})
        assert response.status_code == 404
        await second.close()


async def _name_free(server: ServerProcess, name: str) -> bool:
    try:
        probe = await connect(server.ws_url, name)
    except Exception:
        return False
    await probe.close()
    await asyncio.sleep(0.2)
    return True


async def test_an_upload_still_streaming_when_its_owner_leaves_leaves_no_file(server: ServerProcess, name: str) -> None:
    owner = await connect(server.ws_url, name)
    reader = await connect(server.ws_url, name + "_r")
    owner_gone = asyncio.Event()

    async def body():  # type: ignore[no-untyped-def]
        yield b"x" * 65536
        await owner.close()  # the owner disconnects mid-upload
        await reader.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == name)
        owner_gone.set()
        for _ in range(16):
            yield b"y" * 65536

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.put(f"/fs/{name}/inflight.bin", content=body(), headers={"Authorization": owner.key})
        assert owner_gone.is_set()
        assert response.status_code in (401, 410), response.text
        assert set(response.json()) == {"error", "detail"}
        missing = await http.get(f"/fs/{name}/inflight.bin", headers={"Authorization": reader.key})
        assert missing.status_code == 404
    assert client_folders(server, name) == []
    await reader.close()
