"""``python -m bench chart``: the pipeline benchmark's chart, drawn from saved figures (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench import chart
from bench.__main__ import main


def run(factor: float, *, events: int = 500_000, **rates: float) -> dict[str, Any]:
    figures = {"limit_aiokafka": 80_000.0, "limit_confluent": 100_000.0, "engine": 340_000.0, "naive_faust": 3_700.0}
    figures |= {"quix": 30_000.0, "tactful": 27_000.0} | rates
    return {
        "date": "2026-11-29 12:00 UTC",
        "events": events,
        "customers": 100_000,
        "partitions": 4,
        "rates": {k: v * factor for k, v in figures.items()},
        "latency_rate": 13_000.0 * factor,
        "latency_ms": {"p50": 7.0, "p95": 31.0, "p99": 50.0 / factor},
        "latency_samples": 40_000,
        "recovery_seconds": 9.0,
        "recovery_customers": 100_000,
        "notes": [],
    }


def test_ratios_are_each_runs_own_so_a_busy_run_weighs_on_both_sides() -> None:
    runs = [run(1.0), run(0.5), run(1.0, tactful=36_000.0)]
    assert chart.ratio(runs, "tactful", "quix") == pytest.approx([0.9, 0.9, 1.2])
    assert chart.spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)


def test_the_engine_alone_is_off_the_peers_scale_and_new_figures_follow_the_known_ones() -> None:
    runs = [run(1.0), run(1.0, tactful_eos=20_000.0)]
    assert chart.peers(runs) == ["limit_aiokafka", "limit_confluent", "naive_faust", "quix", "tactful", "tactful_eos"]
    assert chart.ALONE not in chart.peers(runs)


def test_the_title_gives_median_and_range_of_repeated_runs() -> None:
    text = chart.title([run(1.0), run(0.5), run(2.0)])
    assert "3 runs (median, whisker min-max)" in text
    assert "p99 50 (25-100) ms" in text


def test_chart_command_draws_several_runs(tmp_path: Path) -> None:
    paths = []
    for i, factor in enumerate((1.0, 0.8, 1.1)):
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(run(factor)))
    out = tmp_path / "chart.png"
    result = CliRunner().invoke(main, ["chart", *map(str, paths), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_chart_command_refuses_runs_of_different_sizes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run(1.0)))
    b.write_text(json.dumps(run(1.0, events=1_000_000)))
    result = CliRunner().invoke(main, ["chart", str(a), str(b), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert "the runs differ in events and customers" in result.stderr
