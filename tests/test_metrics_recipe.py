"""/metrics behind the recipe's nginx: only allowed addresses, every process's values summed."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.clients import connect
from tests.support.nginx import require_nginx, start_recipe
from tests.support.server import POSTGRES, REDIS, drop_postgres_database, new_postgres_database, require
from tests.test_metrics import samples


@pytest.mark.nginx
@pytest.mark.cluster
async def test_the_recipe_sums_every_process_and_admits_only_allowed_addresses(tmp_path: Path, name: str) -> None:
    require_nginx()
    require(POSTGRES, "PostgreSQL")
    require(REDIS, "Redis")
    shared = tmp_path / "metrics"
    shared.mkdir()
    database = new_postgres_database()
    recipe = start_recipe(
        tmp_path / "recipe",
        processes=2,
        DATABASE_URL=database,
        REDIS_URL=f"redis://{REDIS[0]}:{REDIS[1]}/0",
        CONCIERGE_CHANNEL_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        PROMETHEUS_MULTIPROC_DIR=str(shared),
    )
    try:
        client = await connect(recipe.ws_url, name)
        # A scripted session across both processes (nginx spreads the sockets): a message,
        # a refused one, and a leave.
        other = await connect(recipe.ws_url, name + "_b")
        sent = await client.request({"type": "MESSAGE", "target": {"type": "NAME", "name": other.name}, "data": 1})
        assert sent["type"] == "OK"
        await other.expect("MESSAGE")
        refused_message = await client.request({"type": "MESSAGE", "target": {"type": "NAME", "name": "nobody"}})
        assert refused_message["type"] == "INVALID_NAME"
        await other.close()
        await client.expect(lambda p: p["type"] == "CLIENT_LEFT" and p["client"]["name"] == other.name, timeout=30)
        async with httpx.AsyncClient(base_url=recipe.url) as http:
            for index in range(8):  # nginx spreads them over both processes
                put = await http.put(f"/fs/{name}/{index}.bin", content=b"x", headers={"Authorization": client.key})
                assert put.status_code == 201, put.text
            scrape = await http.get("/metrics")
        # From another loopback address, which the recipe does not allow: nginx refuses, in JSON.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=recipe.url, transport=transport) as outsider:
            refused = await outsider.get("/metrics")
        await client.close()
    finally:
        recipe.stop()
        drop_postgres_database(database)
    assert scrape.status_code == 200, scrape.text
    values = samples(scrape.text)
    puts = values[
        ("concierge_http_requests_total", (("method", "PUT"), ("route", "fileshare:file"), ("status", "201")))
    ]
    assert puts == 8

    def total(metric: str, **labels: str) -> float:
        return values.get((metric, tuple(sorted(labels.items()))), 0.0)

    assert total("concierge_handshakes_total", outcome="hello") == 2
    assert total("concierge_messages_relayed_total", target="NAME") == 1
    assert total("concierge_messages_refused_total", reply="INVALID_NAME") == 1
    assert total("concierge_disconnects_total", code="1000") == 1
    assert total("concierge_leaves_total") == 1
    assert total("concierge_uploaded_bytes_total") == 8
    served = {pid for (metric, labels) in values if metric == "concierge_clients_connected" for key, pid in labels}
    assert served == {str(app.pid) for app in recipe.apps}  # one gauge per live process
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
