"""/metrics in Prometheus text format, who may read it, and JSON log lines without secrets."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Spawn
from tests.support.clients import connect
from tests.support.server import ServerProcess


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_loopback_reads_metrics_in_prometheus_text_format(server: ServerProcess, name: str) -> None:
    client = await connect(server.ws_url, name)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            put = await http.put(f"/fs/{name}/a.bin", content=b"12345", headers={"Authorization": client.key})
            assert put.status_code == 201
            scrape = await http.get("/metrics")
    finally:
        await client.close()
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = samples(scrape.text)
    assert values[("concierge_storage_files", ())] >= 1
    assert values[("concierge_storage_bytes", ())] >= 5
    assert all(name.startswith("concierge_") or name.startswith(("python_", "process_")) for name, _ in values)
    assert client.key not in scrape.text and name not in scrape.text  # labels never name a client


async def test_other_addresses_need_the_token(spawn: Spawn) -> None:
    # Loopback is not in the list here, so the test client stands for a remote address.
    server = spawn(FILESHARE_METRICS_ALLOW="10.0.0.0/8", FILESHARE_METRICS_TOKEN="s3cret-token")
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        granted = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert refused.status_code == 403 and wrong.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert "FILESHARE_METRICS_ALLOW" in refused.json()["detail"]
    assert granted.status_code == 200 and "concierge_clients_connected" in granted.text


async def test_no_token_and_no_allowed_address_means_nobody(spawn: Spawn) -> None:
    server = spawn(FILESHARE_METRICS_ALLOW="10.0.0.0/8")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/metrics", headers={"Authorization": "Bearer x"})).status_code == 403
        assert (await http.get("/metrics")).status_code == 403


async def test_json_log_lines_carry_the_fields_and_never_a_key(spawn: Spawn, name: str) -> None:
    server = spawn(CONCIERGE_LOG_FORMAT="json")
    client = await connect(server.ws_url, name)
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.put(f"/fs/{name}/a.bin", content=b"x", headers={"Authorization": client.key})
        await http.get(f"/fs/{name}/a.bin", headers={"Authorization": "not-a-key"})
    await client.request({"type": "MESSAGE", "target": {"type": "NAME", "name": "nobody"}, "data": 1})
    await client.close()
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    assert lines, server.log()
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"time", "level", "logger", "event", "process"} <= record.keys()
    assert any(name in record["event"] for record in records)  # the session was logged
    assert client.key not in server.log()


async def test_a_scripted_session_moves_each_counter_by_exactly_its_share(spawn: Spawn, name: str) -> None:
    server = spawn()
    async with httpx.AsyncClient(base_url=server.url) as http:
        before = samples((await http.get("/metrics")).text)
        alice = await connect(server.ws_url, name + "_a")
        bob = await connect(server.ws_url, name + "_b")
        sent = await alice.request({"type": "MESSAGE", "target": {"type": "NAME", "name": bob.name}, "data": "hi"})
        assert sent["type"] == "OK"
        await bob.expect("MESSAGE")
        refused = await alice.request({"type": "MESSAGE", "target": {"type": "NAME", "name": "nobody"}, "data": 1})
        assert refused["type"] == "INVALID_NAME"
        put = await http.put(f"/fs/{alice.name}/a.bin", content=b"12345", headers={"Authorization": alice.key})
        assert put.status_code == 201
        missing = await http.get(f"/fs/{alice.name}/none.bin", headers={"Authorization": bob.key})
        assert missing.status_code == 404
        got = await http.get(f"/fs/{alice.name}/a.bin", headers={"Authorization": bob.key})
        assert got.status_code == 202 and got.content == b"12345"
        created = await http.post(
            f"/tus/{alice.name}/",
            headers={
                "Authorization": alice.key,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "3",
                "Upload-Metadata": "filename dC5iaW4=",
            },
        )
        assert created.status_code == 201, created.text
        patched = await http.patch(
            created.headers["Location"],
            content=b"abc",
            headers={
                "Authorization": alice.key,
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text
        await bob.close()
        await alice.expect("CLIENT_LEFT")
        after = samples((await http.get("/metrics")).text)
        await alice.close()

    def moved(metric: str, **labels: str) -> float:
        key = (metric, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert moved("concierge_handshakes_total", outcome="hello") == 2
    assert moved("concierge_handshake_seconds_count") == 2
    assert moved("concierge_clients_connected") == 1  # alice still there when scraped
    assert moved("concierge_messages_relayed_total", target="NAME") == 1  # the refused one is not relayed
    assert moved("concierge_messages_refused_total", reply="INVALID_NAME") == 1
    assert moved("concierge_disconnects_total", code="1000") == 1
    assert moved("concierge_leaves_total") == 1
    assert moved("concierge_leave_seconds_count") == 1
    assert moved("concierge_http_requests_total", route="fileshare:file", method="PUT", status="201") == 1
    assert moved("concierge_http_requests_total", route="fileshare:file", method="GET", status="404") == 1
    assert moved("concierge_http_requests_total", route="fileshare:metrics", method="GET", status="200") == 1
    assert moved("concierge_frames_received_total") >= 4  # two IDENTIFYs, two MESSAGEs
    assert moved("concierge_uploaded_bytes_total") == 5 + 3  # the PUT and the tus upload
    assert moved("concierge_downloaded_bytes_total") == 5
    assert moved("concierge_tus_uploads_total", event="created") == 1
    assert moved("concierge_tus_uploads_total", event="finished") == 1
    assert moved("concierge_uploads_in_progress") == 0


def test_the_grafana_dashboard_only_charts_metrics_that_exist() -> None:
    import re

    from prometheus_client import REGISTRY

    from tests.support.server import REPO

    dashboard = json.loads((REPO / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(bucket|total|count|sum)$", "", name) for e in exprs for name in re.findall(r"concierge_\w+", e)}
    import fileshare.observe.metrics  # noqa: F401  (registers them)

    defined = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("concierge_")}
    assert used and used <= defined, used - defined
    assert defined <= used, f"metrics without a chart: {defined - used}"
