"""The benchmark command runs and writes its report. Figures are reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import BY_KEY, FIGURES, Results, markdown, summarise
from tests.support.nginx import TEMPLATE_VARIABLES, render_recipe
from tests.support.server import REPO

FIGURE_FIELDS = {
    "label",
    "unit",
    "section",
    "median",
    "runs",
    "ceiling",
    "ceiling_median",
    "ratio",
    "ratio_runs",
    "goal",
    "goal_met",
}


def test_quick_bench_of_handshakes_and_relay_writes_both_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "handshake,relay", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report) == {"meta", "figures", "skipped", "failed", "notes"}
    assert report["failed"] == {}
    assert report["meta"]["quick"] is True and report["meta"]["runs"] == 1
    expected = {figure.key for figure in FIGURES if figure.section in {"handshake", "relay"}}
    assert set(report["figures"]) == expected
    for key, entry in report["figures"].items():
        assert set(entry) == FIGURE_FIELDS, key
        assert len(entry["runs"]) == 1, key
        if BY_KEY[key].ceiling:
            assert entry["ceiling"] in report["figures"] and entry["ratio"] is not None, key
    markdown_report = (tmp_path / "report.md").read_text()
    assert "## Goals" in markdown_report
    assert all(f"`{key}`" in markdown_report for key in expected)


def test_ratios_are_taken_per_run_then_the_median() -> None:
    results = Results()
    for ceiling, value in [(100, 50), (200, 180), (400, 100)]:
        results.add("relay.plain.msg_s", ceiling)
        results.add("relay.run.msg_s", value)
    for lost in (0, 0, 3):
        results.add("flood.run.silently_lost", lost)
    figures = summarise(results)
    relay = figures["relay.run.msg_s"]
    assert relay["median"] == 100 and relay["ceiling_median"] == 200
    assert relay["ratio_runs"] == [0.5, 0.9, 0.25] and relay["ratio"] == 0.5
    assert relay["goal_met"] is True  # ratio >= 0.3
    lost = figures["flood.run.silently_lost"]
    assert lost["median"] == 0 and lost["goal_met"] is False  # every run must lose nothing
    text = markdown({"meta": {}, "figures": figures, "skipped": {}, "failed": {}, "notes": []})
    assert "| relay msg/s, one process |" in text


def test_unknown_figures_are_refused() -> None:
    with pytest.raises(KeyError):
        Results().add("relay.run.typo", 1)


def test_the_nginx_recipe_renders_every_placeholder() -> None:
    values = {name: f"value_of_{name.lower()}" for name in TEMPLATE_VARIABLES}
    rendered = render_recipe(**values)
    assert "${CONCIERGE_" not in rendered
    assert "listen value_of_concierge_listen;" in rendered
    with pytest.raises(ValueError):
        render_recipe(CONCIERGE_LISTEN="80")
