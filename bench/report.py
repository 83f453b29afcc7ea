"""The bench's figures: what each one is, its ceiling and goal, and the report files.

Every figure is measured once per run; the report gives the median over runs and,
for a figure with a ceiling, the median of its per-run ratio to the ceiling
measured in that same run. Goals are the issue's; they are reported, not asserted.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Goal:
    """``on`` ("ratio" or "value") compared with ``op`` to ``target``; counts use the worst run."""

    on: str
    op: str
    target: float
    worst: bool = False

    def text(self) -> str:
        subject = "ratio" if self.on == "ratio" else "value"
        suffix = " (every run)" if self.worst else ""
        return f"{subject} {self.op} {self.target:g}{suffix}"

    def met(self, value: float) -> bool:
        return {">=": value >= self.target, "<=": value <= self.target, "==": value == self.target}[self.op]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    section: str
    ceiling: str | None = None
    goal: Goal | None = None


def _fig(key: str, label: str, unit: str, section: str, ceiling: str | None = None, goal: Goal | None = None) -> Figure:
    return Figure(key, label, unit, section, ceiling, goal)


RSS = Goal("value", "<=", 150, worst=True)
ZERO = Goal("value", "==", 0, worst=True)

FIGURES: list[Figure] = [
    # -- files: ceilings, measured right before each deployment in the same run
    _fig(
        "files.ceiling.static_get_before_run_mib_s", "nginx static GET (ceiling for the run command)", "MiB/s", "files"
    ),
    _fig("files.ceiling.dav_put_before_run_mib_s", "nginx dav PUT (ceiling for the run command)", "MiB/s", "files"),
    _fig("files.ceiling.static_get_before_recipe_mib_s", "nginx static GET (ceiling for the recipe)", "MiB/s", "files"),
    _fig("files.ceiling.dav_put_before_recipe_mib_s", "nginx dav PUT (ceiling for the recipe)", "MiB/s", "files"),
    _fig(
        "files.ceiling.dav_put_100mbps_mib_s",
        "nginx dav PUT, the client sending at 100 MB/s (ceiling)",
        "MiB/s",
        "files",
    ),
    _fig("files.reference.sha256_mib_s", "SHA-256 of the file in one Python thread (reference)", "MiB/s", "files"),
    # -- files: the README run command
    _fig(
        "files.run.upload_mib_s",
        "run command: upload",
        "MiB/s",
        "files",
        "files.ceiling.dav_put_before_run_mib_s",
        Goal("ratio", ">=", 0.3),
    ),
    _fig(
        "files.run.download_mib_s",
        "run command: download",
        "MiB/s",
        "files",
        "files.ceiling.static_get_before_run_mib_s",
        Goal("ratio", ">=", 0.6),
    ),
    _fig("files.run.upload_peak_rss_mib", "run command: server peak RSS, upload", "MiB", "files", goal=RSS),
    _fig("files.run.download_peak_rss_mib", "run command: server peak RSS, download", "MiB", "files", goal=RSS),
    _fig(
        "files.run.slow_download_peak_rss_mib",
        "run command: server peak RSS, download read at 100 MB/s",
        "MiB",
        "files",
        goal=RSS,
    ),
    _fig("files.run.slow_download_mib_s", "run command: download read at 100 MB/s", "MiB/s", "files"),
    # -- files: the production recipe (nginx in front)
    _fig(
        "files.recipe.upload_mib_s",
        "recipe (nginx): upload",
        "MiB/s",
        "files",
        "files.ceiling.dav_put_before_recipe_mib_s",
        Goal("ratio", ">=", 0.8),
    ),
    _fig(
        "files.recipe.download_mib_s",
        "recipe (nginx): download",
        "MiB/s",
        "files",
        "files.ceiling.static_get_before_recipe_mib_s",
        Goal("ratio", ">=", 0.9),
    ),
    _fig("files.recipe.upload_peak_rss_mib", "recipe: app peak RSS, upload", "MiB", "files", goal=RSS),
    _fig("files.recipe.download_peak_rss_mib", "recipe: app peak RSS, download", "MiB", "files", goal=RSS),
    _fig(
        "files.recipe.slow_download_peak_rss_mib",
        "recipe: app peak RSS, download read at 100 MB/s",
        "MiB",
        "files",
        goal=RSS,
    ),
    _fig("files.recipe.slow_download_mib_s", "recipe: download read at 100 MB/s", "MiB/s", "files"),
    _fig(
        "files.recipe.slow_upload_mib_s",
        "recipe: upload, the client sending at 100 MB/s",
        "MiB/s",
        "files",
        "files.ceiling.dav_put_100mbps_mib_s",
    ),
    _fig(
        "files.recipe.nginx_peak_rss_mib",
        "recipe: nginx peak RSS (master + workers), any transfer",
        "MiB",
        "files",
        goal=RSS,
    ),
    # -- handshakes
    _fig(
        "handshake.plain.sequential_per_s",
        "plain websockets: handshakes/s, sequential (ceiling)",
        "handshakes/s",
        "handshake",
    ),
    _fig(
        "handshake.plain.burst_per_s",
        "plain websockets: handshakes/s, 200 at once (ceiling)",
        "handshakes/s",
        "handshake",
    ),
    _fig(
        "handshake.daphne_floor.sequential_per_s",
        "reference: an app that only answers HELLO, under stock daphne, sequential",
        "handshakes/s",
        "handshake",
        "handshake.plain.sequential_per_s",
    ),
    _fig(
        "handshake.daphne_floor.burst_per_s",
        "reference: an app that only answers HELLO, under stock daphne, 200 at once",
        "handshakes/s",
        "handshake",
        "handshake.plain.burst_per_s",
    ),
    _fig(
        "handshake.run.sequential_per_s",
        "IDENTIFY->HELLO/s, sequential",
        "handshakes/s",
        "handshake",
        "handshake.plain.sequential_per_s",
        Goal("ratio", ">=", 0.5),
    ),
    _fig(
        "handshake.run.burst_per_s",
        "IDENTIFY->HELLO/s, 200 at once",
        "handshakes/s",
        "handshake",
        "handshake.plain.burst_per_s",
        Goal("ratio", ">=", 0.4),
    ),
    _fig("handshake.run.burst_failed", "handshakes of the burst that failed", "count", "handshake", goal=ZERO),
    # -- relay, one process
    _fig("relay.plain.msg_s", "plain websockets relay: msg/s (ceiling)", "msg/s", "relay"),
    _fig("relay.plain.latency_p50_ms", "plain websockets relay: p50, one in flight (ceiling)", "ms", "relay"),
    _fig("relay.plain.latency_p99_ms", "plain websockets relay: p99, one in flight (ceiling)", "ms", "relay"),
    _fig(
        "relay.run.msg_s", "relay msg/s, one process", "msg/s", "relay", "relay.plain.msg_s", Goal("ratio", ">=", 0.3)
    ),
    _fig("relay.run.refused", "relay, one process: messages refused (BAD) at 50 in flight", "count", "relay"),
    _fig(
        "relay.run.latency_p50_ms",
        "relay p50, one message in flight",
        "ms",
        "relay",
        "relay.plain.latency_p50_ms",
        Goal("value", "<=", 1.5),
    ),
    _fig("relay.run.latency_p99_ms", "relay p99, one message in flight", "ms", "relay", "relay.plain.latency_p99_ms"),
    # -- relay, two processes and Redis
    _fig("cluster.plain.msg_s", "plain websockets relay: msg/s (ceiling, same run)", "msg/s", "cluster"),
    _fig(
        "cluster.redis.msg_s",
        "relay msg/s, two processes with Redis",
        "msg/s",
        "cluster",
        "cluster.plain.msg_s",
        Goal("ratio", ">=", 0.15),
    ),
    _fig("cluster.redis.refused", "relay, two processes: messages refused (BAD) at 50 in flight", "count", "cluster"),
    _fig("cluster.redis.latency_p50_ms", "relay p50 across processes, one in flight", "ms", "cluster"),
    _fig("cluster.redis.latency_p99_ms", "relay p99 across processes, one in flight", "ms", "cluster"),
    # -- fan-in flood
    _fig(
        "flood.run.silently_lost",
        "flood, one process: acknowledged OK but never delivered",
        "count",
        "flood",
        goal=ZERO,
    ),
    _fig(
        "flood.run.senders_disconnected",
        "flood, one process: senders disconnected (of 10)",
        "count",
        "flood",
        goal=ZERO,
    ),
    _fig("flood.run.delivered", "flood, one process: delivered", "count", "flood"),
    _fig("flood.run.refused", "flood, one process: refused with BAD (sender told)", "count", "flood"),
    _fig("flood.run.unanswered", "flood, one process: never answered", "count", "flood", goal=ZERO),
    _fig(
        "flood.cluster.silently_lost",
        "flood, two processes: acknowledged OK but never delivered",
        "count",
        "flood",
        goal=ZERO,
    ),
    _fig(
        "flood.cluster.senders_disconnected",
        "flood, two processes: senders disconnected (of 10)",
        "count",
        "flood",
        goal=ZERO,
    ),
    _fig("flood.cluster.delivered", "flood, two processes: delivered", "count", "flood"),
    _fig("flood.cluster.refused", "flood, two processes: refused with BAD (sender told)", "count", "flood"),
    _fig("flood.cluster.unanswered", "flood, two processes: never answered", "count", "flood", goal=ZERO),
    # -- the recipe's handshakes (nginx, two processes, PostgreSQL, Redis)
    _fig(
        "cluster.plain.handshake_sequential_per_s",
        "plain websockets: handshakes one after another (ceiling)",
        "/s",
        "cluster",
    ),
    _fig(
        "cluster.recipe.handshake_sequential_per_s",
        "recipe: handshakes one after another",
        "/s",
        "cluster",
        "cluster.plain.handshake_sequential_per_s",
        Goal("ratio", ">=", 0.4),
    ),
    # -- crowds on one process (bench/scale.py), the plain server doing the same work
    _fig(
        "scale.crowd.clients",
        "identified idle clients held by one process",
        "count",
        "scale",
        goal=Goal("value", ">=", 5000, worst=True),
    ),
    _fig("scale.crowd.listed", "clients CLIENT_FETCH_ALL named in that crowd", "count", "scale"),
    _fig("scale.plain.crowd_rss_per_client_kib", "plain websockets: RSS per idle client (reference)", "KiB", "scale"),
    _fig(
        "scale.crowd.rss_per_client_kib",
        "RSS per identified idle client",
        "KiB",
        "scale",
        goal=Goal("value", "<=", 40, worst=True),
    ),
    _fig(
        "scale.plain.crowd_join_seconds", "plain websockets: the crowd joining, 100 at a time (reference)", "s", "scale"
    ),
    _fig(
        "scale.crowd.join_seconds", "the crowd joining, 100 at a time", "s", "scale", "scale.plain.crowd_join_seconds"
    ),
    _fig(
        "scale.plain.join_p99_ms", "plain websockets: one join told to a crowd of 1,000, p99 (ceiling)", "ms", "scale"
    ),
    _fig(
        "scale.join.p99_ms",
        "one join told to a crowd of 1,000 (HELLO to the last CLIENT_JOINED), p99",
        "ms",
        "scale",
        "scale.plain.join_p99_ms",
        Goal("ratio", "<=", 2.0),
    ),
    _fig(
        "scale.leave.seconds",
        "1,000 clients dropped at once: until a bystander heard every CLIENT_LEFT",
        "s",
        "scale",
        goal=Goal("value", "<=", 20, worst=True),
    ),
    _fig("scale.leave.announced", "of those, CLIENT_LEFT heard", "count", "scale"),
    _fig("scale.leave.relay_p99_ms", "relay p99 between two other clients meanwhile", "ms", "scale"),
    _fig(
        "scale.plain.broadcast_deliveries_s",
        "plain websockets: MESSAGE to ALL of 1,000, deliveries/s (ceiling)",
        "/s",
        "scale",
    ),
    _fig(
        "scale.broadcast.deliveries_s",
        "MESSAGE to ALL of 1,000: deliveries/s at the receivers",
        "/s",
        "scale",
        "scale.plain.broadcast_deliveries_s",
        Goal("ratio", ">=", 0.5),
    ),
]
for _moved, _label, _beside in (
    ("http_put", "HTTP PUT of the file (beside pw_transfer)", None),
    ("http_get", "HTTP GET of the file (beside pw_transfer)", None),
    ("write", "pw_transfer write, streaming client", "pw_transfer.http_put_mib_s"),
    ("read", "pw_transfer read, streaming client", "pw_transfer.http_get_mib_s"),
    ("pigweed_write", "pw_transfer write, Pigweed's own client (smaller file)", None),
    ("pigweed_read", "pw_transfer read, Pigweed's own client (smaller file)", None),
):
    FIGURES.append(_fig(f"pw_transfer.{_moved}_mib_s", _label, "MiB/s", "pw_transfer", _beside))
    FIGURES.append(
        _fig(
            f"pw_transfer.{_moved}_peak_rss_mib",
            f"{_label}: server peak RSS",
            "MiB",
            "pw_transfer",
            goal=RSS if _moved in ("write", "read") else None,
        )
    )
BY_KEY = {figure.key: figure for figure in FIGURES}
SECTIONS = ("files", "handshake", "relay", "cluster", "flood", "scale", "pw_transfer")


@dataclass
class Results:
    """Per-run values of every figure, and why any section did not run."""

    runs: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def merge(self, other: Results) -> None:
        """Take every figure, skip and note of ``other`` (one section's results)."""
        for key, values in other.runs.items():
            self.runs.setdefault(key, []).extend(values)
        self.skipped.update(other.skipped)
        self.failed.update(other.failed)
        self.notes.extend(other.notes)

    def add(self, key: str, value: float) -> None:
        if key not in BY_KEY:
            raise KeyError(f"unknown figure {key}")
        self.runs.setdefault(key, []).append(float(value))


def _round(value: float) -> float:
    return round(value, 3) if abs(value) < 10 else round(value, 1)


def summarise(results: Results) -> dict[str, dict[str, Any]]:
    """Median, per-run ratios and goal of every figure that was measured."""
    out: dict[str, dict[str, Any]] = {}
    for figure in FIGURES:
        values = results.runs.get(figure.key)
        if not values:
            continue
        entry: dict[str, Any] = {
            "label": figure.label,
            "unit": figure.unit,
            "section": figure.section,
            "median": _round(statistics.median(values)),
            "runs": [_round(v) for v in values],
            "ceiling": figure.ceiling,
            "ceiling_median": None,
            "ratio": None,
            "ratio_runs": None,
            "goal": figure.goal.text() if figure.goal else None,
            "goal_met": None,
        }
        ceiling = results.runs.get(figure.ceiling or "")
        if figure.ceiling and ceiling and len(ceiling) == len(values):
            ratios = [v / c if c else 0.0 for v, c in zip(values, ceiling, strict=True)]
            entry["ceiling_median"] = _round(statistics.median(ceiling))
            entry["ratio"] = round(statistics.median(ratios), 3)
            entry["ratio_runs"] = [round(r, 3) for r in ratios]
        if figure.goal is not None:
            goal = figure.goal
            if goal.on == "ratio":
                entry["goal_met"] = None if entry["ratio"] is None else goal.met(entry["ratio"])
            else:
                worst = (max(values) if goal.op in {"<=", "=="} else min(values)) if goal.worst else entry["median"]
                entry["goal_met"] = goal.met(worst)
        out[figure.key] = entry
    return out


def write(results: Results, meta: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = summarise(results)
    document = {
        "meta": meta,
        "figures": figures,
        "skipped": results.skipped,
        "failed": results.failed,
        "notes": results.notes,
    }
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path.write_text(markdown(document))
    return json_path, md_path


def _cell(value: Any, unit: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and unit in {"count", ""}:
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown(document: dict[str, Any]) -> str:
    """The report as Markdown: the goals table first, then every figure with its runs."""
    meta, figures = document["meta"], document["figures"]
    lines = [
        "# Concierge benchmark",
        "",
        f"`python -m bench{' --quick' if meta.get('quick') else ''}` on {meta.get('date', '?')}: "
        f"{meta.get('runs')} run(s), median shown; files of {meta.get('file_mib')} MiB. "
        f"Machine: {meta.get('machine', {}).get('cpus')} CPUs ({meta.get('machine', {}).get('cpu_model', '?')}), "
        f"load average before {meta.get('load_before', '?')}, after {meta.get('load_after', '?')}. "
        f"Took {meta.get('seconds', '?')} s.",
        "",
        "Ratios are per run against the ceiling measured in the same run (nginx static GET and "
        "nginx dav PUT right before each deployment for files, a plain `websockets` relay for "
        "messages), then the median of the ratios; goals are the issue's, reported and never asserted.",
        "",
        "## Goals",
        "",
        "| figure | measured | ceiling | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in figures.values():
        if entry["goal"] is None:
            continue
        met = {True: "yes", False: "**no**", None: ""}[entry["goal_met"]]
        lines.append(
            f"| {entry['label']} | {_cell(entry['median'], entry['unit'])} {entry['unit']} | "
            f"{_cell(entry['ceiling_median'])} | {_cell(entry['ratio'])} | {entry['goal']} | {met} |"
        )
    lines += [
        "",
        "## Every figure",
        "",
        "| key | figure | median | unit | runs | ratio runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, entry in figures.items():
        runs = ", ".join(_cell(v, entry["unit"]) for v in entry["runs"])
        ratios = ", ".join(_cell(v) for v in entry["ratio_runs"] or [])
        lines.append(
            f"| `{key}` | {entry['label']} | {_cell(entry['median'], entry['unit'])} | {entry['unit']} | {runs} | {ratios} |"
        )
    if document["skipped"] or document["failed"]:
        lines += ["", "## Not measured", ""]
        for section, reason in document["skipped"].items():
            lines.append(f"- {section}: skipped, {reason}")
        for section, reason in document["failed"].items():
            lines.append(f"- {section}: **failed**, {reason}")
    if document["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {note}" for note in document["notes"]]
    versions = meta.get("versions", {})
    if versions:
        lines += ["", "## Versions", "", ", ".join(f"{name} {version}" for name, version in versions.items())]
    return "\n".join(lines) + "\n"
