"""The samples behind the dashboard's charts (fileshare.dashboard.rates).

In this process: when a sample is due, and that it carries the counters as they are.
Across two processes with Redis: a dashboard on one process hears the other's samples,
with the messages relayed there counted in them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fileshare.dashboard import rates
from fileshare.observe import metrics
from fileshare.presence import instance
from tests.conftest import Account, Cluster, Spawn, create_account, operator_session
from tests.support.clients import connect
from tests.support.server import ServerProcess
from tests.test_dashboard import Dashboard, open_dashboard

# -- in this process ----------------------------------------------------------------------


def test_a_sample_is_sent_when_a_total_moves_once_more_after_and_then_only_as_a_heartbeat() -> None:
    sampler = rates.Sampler()
    first = sampler.sample(1000.0)
    assert first is not None and first["type"] == rates.METRICS_EVENT
    assert first["process"] == str(instance.current.id)
    assert first["name"] == rates.process_name()
    assert set(first["totals"]) == {*rates.SOURCES, "http_bytes_in", "http_bytes_out"}

    assert sampler.sample(1001.0) is not None  # the second after a move: the page sees the rate fall
    assert sampler.sample(1002.0) is None  # nothing moved
    assert sampler.sample(1000.0 + rates.HEARTBEAT - 0.5) is None
    assert sampler.sample(1001.0 + rates.HEARTBEAT) is not None  # still here, still idle

    metrics.RELAYED.labels("NAME").inc(3)
    metrics.BYTES_IN.inc(120)
    moved = sampler.sample(1007.0)
    assert moved is not None
    assert moved["totals"]["messages"] == first["totals"]["messages"] + 3
    assert moved["totals"]["ws_bytes_in"] == first["totals"]["ws_bytes_in"] + 120


def test_a_counter_is_summed_over_its_labels() -> None:
    before = rates.value(metrics.RELAYED)
    metrics.RELAYED.labels("NAME").inc()
    metrics.RELAYED.labels("SERVICE").inc(2)
    assert rates.value(metrics.RELAYED) == before + 3


# -- across two processes -------------------------------------------------------------------------


async def samples_until(dashboard: Dashboard, predicate: Any, wait: float = 20) -> dict[str, Any]:
    """The first metrics frame matching ``predicate``."""
    async with asyncio.timeout(wait):
        while True:
            frame = await dashboard.next(wait, metrics=True)
            if frame["type"] == "metrics" and predicate(frame):
                return frame


@pytest.mark.cluster
async def test_a_dashboard_on_one_process_hears_the_messages_relayed_by_the_other(cluster: Cluster) -> None:
    a, b = cluster.processes
    account = await asyncio.to_thread(create_account, a, "op_rates", staff=True)
    http: httpx.AsyncClient = await operator_session(a, account)
    dashboard = await open_dashboard(a, http)
    try:
        # Both processes make themselves heard (at least a heartbeat each).
        heard: dict[str, dict[str, Any]] = {}
        while len(heard) < 2:
            frame = await samples_until(dashboard, lambda f: True)
            heard[frame["process"]] = frame
        before = {p: f["totals"]["messages"] for p, f in heard.items()}

        sender = await connect(b.ws_url, "rates_sender")
        receiver = await connect(b.ws_url, "rates_receiver")
        for n in range(5):
            await sender.request({"type": "MESSAGE", "target": {"type": "NAME", "name": receiver.name}, "data": n})
        # The messages were relayed on B: one process's total rose by exactly 5, the other's did not move.
        moved = await samples_until(dashboard, lambda f: f["totals"]["messages"] >= before[f["process"]] + 5)
        assert moved["totals"]["messages"] == before[moved["process"]] + 5
        assert moved["totals"]["clients"] >= 2
        other = next(p for p in heard if p != moved["process"])
        still = await samples_until(dashboard, lambda f: f["process"] == other)
        assert still["totals"]["messages"] == before[other]
        await sender.close()
        await receiver.close()
    finally:
        await dashboard.ws.close()
        await http.aclose()


# -- HTTP bodies and transfers, on one process ------------------------------------------------------


async def test_an_upload_and_its_download_count_in_the_http_bytes_and_end_as_finished_transfers(
    server: ServerProcess, operator: Account
) -> None:
    http = await operator_session(server, operator)
    dashboard = await open_dashboard(server, http)
    try:
        first = await samples_until(dashboard, lambda f: True)
        process = first["process"]
        before = first["totals"]
        client = await connect(server.ws_url, "rates_uploader")
        body = b"b" * 300_000
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": client.key}) as files:
            assert (await files.put(f"/fs/{client.name}/big.dat", content=body)).status_code == 201
            assert (await files.get(f"/fs/{client.name}/big.dat")).content == body

        ended: dict[str, dict[str, Any]] = {}

        def both_ended(frame: dict[str, Any]) -> bool:
            for row in frame["transfers"]["ended"]:
                ended[row["kind"]] = row
            return frame["process"] == process and len(ended) == 2

        last = await samples_until(dashboard, both_ended)
        assert last["totals"]["http_bytes_in"] >= before["http_bytes_in"] + len(body)
        assert last["totals"]["http_bytes_out"] >= before["http_bytes_out"] + len(body)
        for kind, method in (("upload", "PUT"), ("download", "GET")):
            row = ended[kind]
            assert (row["method"], row["client"], row["path"]) == (method, client.name, "big.dat")
            assert row["done"] == row["total"] == len(body)
            assert row["outcome"] == "finished"
        await client.close()
    finally:
        await dashboard.ws.close()
        await http.aclose()


async def test_an_upload_refused_over_its_size_ends_as_a_failed_transfer_with_the_reason(
    spawn: Spawn,
) -> None:
    server = spawn(FILESHARE_MAX_UPLOAD_BYTES="200000")
    account = await asyncio.to_thread(create_account, server, "op_refused", staff=True)
    http = await operator_session(server, account)
    dashboard = await open_dashboard(server, http)
    try:
        client = await connect(server.ws_url, "rates_refused")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"r" * 100_000

        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": client.key}) as files:
            try:
                answer = await files.put(f"/fs/{client.name}/too-big.dat", content=chunks())
                assert answer.status_code == 413
            except httpx.TransportError:
                pass  # the server may close before the whole body is sent; the answer is not the point here
        failed = await samples_until(
            dashboard, lambda f: any(r["path"] == "too-big.dat" for r in f["transfers"]["ended"])
        )
        row = next(r for r in failed["transfers"]["ended"] if r["path"] == "too-big.dat")
        assert row["outcome"] == "failed"
        assert row["detail"].startswith("413: ")
        assert row["total"] is None  # sent chunked: no length known in advance
        await client.close()
    finally:
        await dashboard.ws.close()
        await http.aclose()
