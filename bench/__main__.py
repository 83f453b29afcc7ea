"""``python -m bench``: measure the concierge against its ceilings and write the report.

    python -m bench                     # the full bench: 3 runs, 1 GiB files (about 10 minutes)
    python -m bench --quick             # a smoke run: 1 run, small sizes
    python -m bench --only relay,flood  # some sections: files, handshake, relay, cluster, flood, pw_transfer

Everything runs on loopback and is stopped afterwards: the README's run command,
the production recipe (deploy/nginx.conf in front of runconcierge processes),
two processes with PostgreSQL and Redis, nginx for the file ceilings and
bench/plain_relay.py for the message ceilings. The report (medians, ratios to the
ceilings, the issue's goals) goes to bench/results/report.md and report.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import files, flood, handshake, relay, scale, servers  # noqa: E402
from bench import pw_transfer as pw_transfer_bench  # noqa: E402
from bench.report import SECTIONS, Results, write  # noqa: E402
from tests.support.nginx import find_nginx  # noqa: E402

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much each measurement moves."""

    runs: int
    file_mib: int
    sequential: int
    burst: int
    relay: int
    cluster_relay: int
    latency: int
    flood_total: int
    flood_cluster_total: int
    crowd: int = 5000
    crowd_join: int = 1000
    joins: int = 30
    broadcasts: int = 200
    slow_rate: int = 100_000_000  # bytes/s: "a client reading at 100 MB/s"
    pigweed_mib: int = 64  # pw_transfer with Pigweed's own client, which holds the file in memory


FULL = Sizes(
    runs=3,
    file_mib=1024,
    sequential=200,
    burst=200,
    relay=5000,
    cluster_relay=2000,
    latency=1000,
    flood_total=20_000,
    flood_cluster_total=20_000,
)
QUICK = Sizes(
    runs=1,
    file_mib=64,
    sequential=50,
    burst=200,
    relay=1000,
    cluster_relay=500,
    latency=200,
    flood_total=20_000,
    flood_cluster_total=2_000,
    crowd=500,
    crowd_join=200,
    joins=10,
    broadcasts=50,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# -- sections ---------------------------------------------------------------------------------


def bench_files(results: Results, sizes: Sizes, work: Path) -> None:
    if find_nginx() is None:
        results.skipped["files"] = "nginx is not installed (scripts/install-bench-deps.sh)"
        return
    source_dir = work / "source"
    source_dir.mkdir(exist_ok=True)
    source = files.make_source(source_dir / "big.bin", sizes.file_mib * MIB)
    for run in range(sizes.runs):
        root = work / f"files{run}"
        # Each deployment is compared with the ceilings measured right before it: on a
        # shared machine (and a shared virtual disk) the speeds drift within a run.
        with servers.ceiling_nginx(root / "ceiling", source_dir) as (nginx, dav):
            _add_ceilings(results, "run", files.measure_ceilings(nginx.url, source, dav, {"nginx": [nginx.pid]}, root))
            with servers.run_command(root / "run") as server:
                moved = files.measure_deployment(
                    server.url, server.ws_url, {"app": [server.pid]}, source, root, "bench_run", sizes.slow_rate
                )
            _add_deployment(results, "run", moved)
            _add_ceilings(
                results, "recipe", files.measure_ceilings(nginx.url, source, dav, {"nginx": [nginx.pid]}, root)
            )
            slow_put = files.slow_dav_put(nginx.url, source, dav, {"nginx": [nginx.pid]}, root, sizes.slow_rate)
            results.add("files.ceiling.dav_put_100mbps_mib_s", slow_put.mib_s)
            with servers.recipe(root / "recipe") as recipe:
                groups = {"app": [app.pid for app in recipe.apps], "nginx": [recipe.nginx.pid]}
                moved = files.measure_deployment(
                    recipe.url, recipe.ws_url, groups, source, root, "bench_recipe", sizes.slow_rate, slow_upload=True
                )
                processes = len(recipe.apps)
            _add_deployment(results, "recipe", moved)
            results.add("files.recipe.slow_upload_mib_s", moved["upload_slow"].mib_s)
        results.add("files.reference.sha256_mib_s", files.sha256_speed(source))
        results.add("files.recipe.nginx_peak_rss_mib", max(t.peak_rss["nginx"] for t in moved.values()))
        if run == 0:
            results.notes.append(
                f"recipe: nginx in front of {processes} runconcierge process(es)"
                + (" sharing PostgreSQL and Redis" if processes > 1 else " on SQLite (PostgreSQL/Redis not reachable)")
                + "; app RSS is the largest app process."
            )
            results.notes.append(
                "files: each deployment's ratios use the nginx ceilings measured right before it in the same run; "
                "every transfer starts after sync(2); curl is the client; the file is deleted after each deployment."
            )


def _add_ceilings(results: Results, before: str, ceilings: dict[str, files.Transfer]) -> None:
    results.add(f"files.ceiling.static_get_before_{before}_mib_s", ceilings["static_get"].mib_s)
    results.add(f"files.ceiling.dav_put_before_{before}_mib_s", ceilings["dav_put"].mib_s)
    log(
        f"files ceilings before the {before}: nginx static GET {ceilings['static_get'].mib_s:.0f} MiB/s, "
        f"dav PUT {ceilings['dav_put'].mib_s:.0f} MiB/s"
    )


def _add_deployment(results: Results, name: str, moved: dict[str, files.Transfer]) -> None:
    results.add(f"files.{name}.upload_mib_s", moved["upload"].mib_s)
    results.add(f"files.{name}.download_mib_s", moved["download"].mib_s)
    results.add(f"files.{name}.slow_download_mib_s", moved["download_slow"].mib_s)
    results.add(f"files.{name}.upload_peak_rss_mib", moved["upload"].peak_rss["app"])
    results.add(f"files.{name}.download_peak_rss_mib", moved["download"].peak_rss["app"])
    results.add(f"files.{name}.slow_download_peak_rss_mib", moved["download_slow"].peak_rss["app"])
    log(
        f"files {name}: upload {moved['upload'].mib_s:.0f} MiB/s ({moved['upload'].peak_rss['app']:.0f} MiB), "
        f"download {moved['download'].mib_s:.0f} MiB/s ({moved['download'].peak_rss['app']:.0f} MiB), "
        f"at 100 MB/s {moved['download_slow'].mib_s:.0f} MiB/s ({moved['download_slow'].peak_rss['app']:.0f} MiB)"
    )


def bench_handshake(results: Results, sizes: Sizes, work: Path) -> None:
    with (
        servers.plain_relay(work / "hs-plain") as plain,
        servers.daphne_floor() as floor,
        servers.run_command(work / "hs-run") as server,
    ):
        for run in range(sizes.runs):
            plain_seq = asyncio.run(handshake.sequential(plain.ws_url, sizes.sequential))
            plain_burst, _ = asyncio.run(handshake.burst(plain.ws_url, sizes.burst))
            results.add(
                "handshake.daphne_floor.sequential_per_s",
                asyncio.run(handshake.sequential(floor.ws_url, sizes.sequential)),
            )
            results.add(
                "handshake.daphne_floor.burst_per_s", asyncio.run(handshake.burst(floor.ws_url, sizes.burst))[0]
            )
            seq = asyncio.run(handshake.sequential(server.ws_url, sizes.sequential))
            burst, succeeded = asyncio.run(handshake.burst(server.ws_url, sizes.burst))
            results.add("handshake.plain.sequential_per_s", plain_seq)
            results.add("handshake.plain.burst_per_s", plain_burst)
            results.add("handshake.run.sequential_per_s", seq)
            results.add("handshake.run.burst_per_s", burst)
            results.add("handshake.run.burst_failed", sizes.burst - succeeded)
            log(
                f"handshake run {run + 1}: sequential {seq:.0f}/s (plain {plain_seq:.0f}/s), "
                f"{sizes.burst} at once {burst:.0f}/s with {succeeded} HELLOs (plain {plain_burst:.0f}/s)"
            )


def bench_relay(results: Results, sizes: Sizes, work: Path) -> None:
    with servers.plain_relay(work / "relay-plain") as plain, servers.run_command(work / "relay-run") as server:
        for run in range(sizes.runs):
            plain_rate = asyncio.run(relay.throughput(plain.ws_url, plain.ws_url, sizes.relay))
            plain_lat = asyncio.run(relay.latency(plain.ws_url, plain.ws_url, sizes.latency))
            rate = asyncio.run(relay.throughput(server.ws_url, server.ws_url, sizes.relay))
            lat = asyncio.run(relay.latency(server.ws_url, server.ws_url, sizes.latency))
            results.add("relay.plain.msg_s", plain_rate.msg_s)
            results.add("relay.plain.latency_p50_ms", plain_lat.p50_ms)
            results.add("relay.plain.latency_p99_ms", plain_lat.p99_ms)
            results.add("relay.run.msg_s", rate.msg_s)
            results.add("relay.run.refused", rate.refused)
            results.add("relay.run.latency_p50_ms", lat.p50_ms)
            results.add("relay.run.latency_p99_ms", lat.p99_ms)
            log(
                f"relay run {run + 1}: {rate.msg_s:.0f} msg/s (plain {plain_rate.msg_s:.0f}), "
                f"p50 {lat.p50_ms:.2f} ms p99 {lat.p99_ms:.2f} ms (plain {plain_lat.p50_ms:.2f}/{plain_lat.p99_ms:.2f})"
            )


def bench_cluster(results: Results, sizes: Sizes, work: Path) -> None:
    if not servers.services_available():
        results.skipped["cluster"] = "PostgreSQL and Redis are not reachable on 127.0.0.1"
        return
    with servers.plain_relay(work / "cluster-plain") as plain, servers.cluster(work / "cluster") as (one, two):
        for run in range(sizes.runs):
            plain_rate = asyncio.run(relay.throughput(plain.ws_url, plain.ws_url, sizes.cluster_relay))
            rate = asyncio.run(relay.throughput(one.ws_url, two.ws_url, sizes.cluster_relay))
            lat = asyncio.run(relay.latency(one.ws_url, two.ws_url, sizes.latency // 2))
            results.add("cluster.plain.msg_s", plain_rate.msg_s)
            results.add("cluster.redis.msg_s", rate.msg_s)
            results.add("cluster.redis.refused", rate.refused)
            results.add("cluster.redis.latency_p50_ms", lat.p50_ms)
            results.add("cluster.redis.latency_p99_ms", lat.p99_ms)
            log(
                f"cluster run {run + 1}: {rate.msg_s:.0f} msg/s across processes (plain {plain_rate.msg_s:.0f}), "
                f"p50 {lat.p50_ms:.2f} ms p99 {lat.p99_ms:.2f} ms"
            )
    # Handshakes on the production recipe: nginx, two processes, PostgreSQL and Redis.
    with servers.plain_relay(work / "recipe-plain") as plain, servers.recipe(work / "cluster-recipe") as recipe:
        for run in range(sizes.runs):
            plain_seq = asyncio.run(handshake.sequential(plain.ws_url, sizes.sequential))
            seq = asyncio.run(handshake.sequential(recipe.ws_url, sizes.sequential))
            results.add("cluster.plain.handshake_sequential_per_s", plain_seq)
            results.add("cluster.recipe.handshake_sequential_per_s", seq)
            log(f"cluster run {run + 1}: recipe handshakes {seq:.0f}/s one after another (plain {plain_seq:.0f}/s)")


def bench_scale(results: Results, sizes: Sizes, work: Path) -> None:
    limit = scale.raise_file_limit(2 * sizes.crowd + 1000)  # the clients' sockets and the server's
    if limit < 2 * sizes.crowd + 100:
        results.notes.append(f"scale: the open-file limit ({limit}) caps the crowd below {sizes.crowd} clients")
    for run in range(sizes.runs):
        with servers.plain_relay(work / f"scale-plain{run}", announce=True) as plain:
            plain_crowd = asyncio.run(scale.crowd(plain.ws_url, plain.proc.pid, sizes.crowd))
            plain_joins = asyncio.run(scale.join_latency(plain.ws_url, sizes.crowd_join, sizes.joins))
            plain_rate = asyncio.run(scale.broadcast(plain.ws_url, sizes.crowd_join, sizes.broadcasts))
        with servers.run_command(work / f"scale-run{run}") as server:
            held = asyncio.run(scale.crowd(server.ws_url, server.pid, sizes.crowd))
            joins = asyncio.run(scale.join_latency(server.ws_url, sizes.crowd_join, sizes.joins))
            rate = asyncio.run(scale.broadcast(server.ws_url, sizes.crowd_join, sizes.broadcasts))
            storm = asyncio.run(scale.leave_storm(server.ws_url, sizes.crowd_join))
        results.add("scale.leave.seconds", storm.seconds)
        results.add("scale.leave.announced", storm.announced)
        results.add("scale.leave.relay_p99_ms", storm.relay_p99_ms)
        results.add("scale.crowd.clients", held.held)
        results.add("scale.crowd.listed", held.listed)
        results.add("scale.crowd.rss_per_client_kib", held.rss_per_client_kib)
        results.add("scale.crowd.join_seconds", held.join_seconds)
        results.add("scale.plain.crowd_rss_per_client_kib", plain_crowd.rss_per_client_kib)
        results.add("scale.plain.crowd_join_seconds", plain_crowd.join_seconds)
        results.add("scale.join.p99_ms", scale.p99(joins))
        results.add("scale.plain.join_p99_ms", scale.p99(plain_joins))
        results.add("scale.broadcast.deliveries_s", rate)
        results.add("scale.plain.broadcast_deliveries_s", plain_rate)
        log(
            f"scale run {run + 1}: {held.held} of {sizes.crowd} held ({held.listed} listed), "
            f"{held.rss_per_client_kib:.1f} KiB each (plain {plain_crowd.rss_per_client_kib:.1f}), "
            f"joined in {held.join_seconds:.1f} s (plain {plain_crowd.join_seconds:.1f}); "
            f"join into {sizes.crowd_join}: p99 {scale.p99(joins):.1f} ms (plain {scale.p99(plain_joins):.1f}); "
            f"broadcast {rate:.0f} deliveries/s (plain {plain_rate:.0f}); {sizes.crowd_join} dropped at once: "
            f"{storm.announced} CLIENT_LEFT in {storm.seconds:.1f} s, relay p99 meanwhile {storm.relay_p99_ms:.1f} ms"
        )


def bench_flood(results: Results, sizes: Sizes, work: Path) -> None:
    with servers.run_command(work / "flood-run") as server:
        for run in range(sizes.runs):
            outcome = asyncio.run(flood.flood([server.ws_url], server.ws_url, 10, sizes.flood_total))
            _add_flood(results, "run", outcome, run)
    if not servers.services_available():
        results.skipped["flood (two processes)"] = "PostgreSQL and Redis are not reachable on 127.0.0.1"
        return
    # Across processes the flood drains at the cross-process relay rate (minutes for
    # 20,000 messages): it runs once, as a check that nothing is lost, not a speed.
    with servers.cluster(work / "flood-cluster") as (one, two):
        outcome = asyncio.run(flood.flood([one.ws_url], two.ws_url, 10, sizes.flood_cluster_total))
        _add_flood(results, "cluster", outcome, 0)
    results.notes.append(
        f"flood across two processes: 10 senders on one process, the receiver on the other, "
        f"{sizes.flood_cluster_total} messages, one run ({outcome.seconds} s)."
    )


def _add_flood(results: Results, name: str, outcome: flood.FloodResult, run: int) -> None:
    results.add(f"flood.{name}.silently_lost", outcome.silently_lost)
    results.add(f"flood.{name}.senders_disconnected", outcome.senders_disconnected)
    results.add(f"flood.{name}.delivered", outcome.delivered)
    results.add(f"flood.{name}.refused", outcome.refused)
    results.add(f"flood.{name}.unanswered", outcome.unanswered)
    log(
        f"flood ({'one process' if name == 'run' else 'two processes'}) run {run + 1}: {outcome.sent} sent, {outcome.delivered} delivered, {outcome.refused} refused "
        f"(BAD), {outcome.silently_lost} silently lost, {outcome.senders_disconnected} senders disconnected, "
        f"{outcome.seconds} s"
    )


def bench_pw_transfer(results: Results, sizes: Sizes, work: Path) -> None:
    source = files.make_source(work / "big.bin", sizes.file_mib * MIB)
    pigweed_mib = min(sizes.pigweed_mib, sizes.file_mib)
    for run in range(sizes.runs):
        with servers.run_command(work / f"pwt{run}") as server:
            moved = pw_transfer_bench.measure(server.url, server.ws_url, server.pid, source, pigweed_mib, work)
        for name, figure in moved.items():
            results.add(f"pw_transfer.{name}_mib_s", figure.mib_s)
            results.add(f"pw_transfer.{name}_peak_rss_mib", figure.peak_rss_mib)
        log(
            f"pw_transfer run {run + 1}: write {moved['write'].mib_s:.0f} MiB/s ({moved['write'].peak_rss_mib:.0f} MiB), "
            f"read {moved['read'].mib_s:.0f} MiB/s ({moved['read'].peak_rss_mib:.0f} MiB); HTTP PUT "
            f"{moved['http_put'].mib_s:.0f} MiB/s, GET {moved['http_get'].mib_s:.0f} MiB/s; Pigweed's client "
            f"write {moved['pigweed_write'].mib_s:.1f} MiB/s, read {moved['pigweed_read'].mib_s:.1f} MiB/s"
        )
    results.notes.append(
        f"pw_transfer: the same {sizes.file_mib} MiB file by HTTP (curl) and by pw_transfer version 2 (a streaming "
        f"client, 256 KiB chunks, 8 MiB read window, the server's default write window) on the run command; Pigweed's own "
        f"client on {pigweed_mib} MiB (it holds the file in memory, formats each received chunk for a debug line, "
        f"and waits 1 s before each transfer: its figures include that second)."
    )


RUNNERS: dict[str, Callable[[Results, Sizes, Path], None]] = {
    "files": bench_files,
    "handshake": bench_handshake,
    "relay": bench_relay,
    "cluster": bench_cluster,
    "flood": bench_flood,
    "scale": bench_scale,
    "pw_transfer": bench_pw_transfer,
}


# -- the report's context -----------------------------------------------------------------------


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def meta(sizes: Sizes, quick: bool, sections: list[str]) -> dict[str, Any]:
    """Where, when and with what the figures were measured."""
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for package in ("Django", "channels", "daphne", "channels-redis", "websockets", "Twisted"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    versions["nginx"] = _version([find_nginx() or "nginx", "-v"]).removeprefix("nginx version: nginx/")
    versions["curl"] = _version(["curl", "--version"]).split(" (")[0].removeprefix("curl ")
    commit = _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = bool(_version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]).strip("?"))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "runs": sizes.runs,
        "file_mib": sizes.file_mib,
        "sizes": sizes.__dict__,
        "sections": sections,
        "commit": commit + ("+changes" if dirty else ""),
        "machine": {"cpus": os.cpu_count(), "cpu_model": cpu_model, "platform": platform.platform()},
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, small sizes (a smoke run)")
    parser.add_argument("--runs", type=int, help="runs per figure (median reported)")
    parser.add_argument("--size-mib", type=int, help="file size for the file figures")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="report folder")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder on disk (default: a temporary one)")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    if args.runs or args.size_mib:
        sizes = Sizes(
            **{**sizes.__dict__, "runs": args.runs or sizes.runs, "file_mib": args.size_mib or sizes.file_mib}
        )
    sections = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")

    results = Results()
    info = meta(sizes, args.quick, sections)
    info["load_before"] = load()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="concierge-bench-", dir=args.work) as tmp:
        for section in sections:
            # A section that fails is run once more from scratch (on a shared machine a
            # server can be stopped under it); both failures are reported.
            for attempt in (1, 2):
                log(f"{section} (load average {load()})")
                partial, scratch = Results(), Path(tmp) / f"{section}{attempt}"
                scratch.mkdir()
                try:
                    RUNNERS[section](partial, sizes, scratch)
                except Exception as exc:  # noqa: BLE001 (report it, go on with the other sections)
                    error = f"{type(exc).__name__}: {exc}"
                    log(f"{section} FAILED (attempt {attempt}): {error}")
                    if attempt == 2:
                        results.failed[section] = error
                    else:
                        results.notes.append(f"{section}: the first attempt failed ({error}); measured again.")
                    continue
                results.merge(partial)
                break
    info["seconds"] = round(time.monotonic() - started)
    info["load_after"] = load()
    json_path, md_path = write(results, info, args.out)
    log(f"wrote {md_path} and {json_path} in {info['seconds']} s")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
