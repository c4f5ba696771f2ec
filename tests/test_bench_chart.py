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


def invocation(*factors: float) -> dict[str, Any]:
    """A results.json of `python -m bench pipeline --runs N`: both guarantees, latency at two rates."""
    runs = []
    for n, factor in enumerate(factors):
        r = run(factor, tactful_eos=24_000.0)
        if n:
            del r["rates"]["naive_faust"]  # measured in the first run only
        for old in ("latency_rate", "latency_ms", "latency_samples"):
            del r[old]
        r["latency"] = [
            {
                "share": 0.5,
                "rate": 13_000.0 * factor,
                "ms": {"p50": 7.0, "p95": 20.0, "p99": 24.0 / factor},
                "samples": 9,
            },
            {"share": 0.8, "rate": 21_000.0 * factor, "ms": {"p50": 9.0, "p95": 60.0, "p99": 300.0}, "samples": 9},
        ]
        runs.append(r)
    first = runs[0]
    return {k: first[k] for k in ("date", "events", "customers", "partitions", "recovery_customers")} | {
        "runs": runs,
        "notes": [],
    }


def test_load_takes_an_invocations_runs_and_reads_an_older_single_run_as_its_half_rate(tmp_path: Path) -> None:
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(invocation(1.0, 0.5)))
    old.write_text(json.dumps(run(2.0)))
    runs = chart.load([new, old])
    assert len(runs) == 3
    assert chart.shares(runs) == [0.5, 0.8]
    assert chart.latencies(runs, 0.5, "p99") == [24.0, 48.0, 25.0]
    assert chart.latencies(runs, 0.8, "p99") == [300.0, 300.0]
    assert chart.figures(runs, "naive_faust") == [3_700.0, 7_400.0]


def test_the_title_gives_latency_at_each_rate_and_recovery() -> None:
    text = chart.title(chart.load_runs(invocation(1.0, 0.5)))
    assert text.splitlines()[1] == (
        "latency at 50%: p50 7 (7-7) ms, p99 36 (24-48) ms; latency at 80%: p50 9 (9-9) ms, p99 300 (300-300) ms; "
        "recovery of 100,000 customers 9.0 (9.0-9.0) s"
    )


@pytest.mark.parametrize("factors", [(1.0,), (1.0, 0.8, 1.1, 0.9, 1.2)], ids=["one run", "five runs"])
def test_chart_of_an_invocation_has_every_panel(tmp_path: Path, factors: tuple[float, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    drawn: list[Any] = []
    saved = plt.Figure.savefig

    def keep(fig: Any, *args: Any, **kwargs: Any) -> None:
        drawn.append(fig)
        saved(fig, *args, **kwargs)

    path = tmp_path / "results.json"
    path.write_text(json.dumps(invocation(*factors)))
    out = tmp_path / "bench.png"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", keep)
        chart.draw(chart.load([path]), out)
    assert out.read_bytes().startswith(b"\x89PNG")
    (fig,) = drawn
    throughput, engine, latency, recovery = fig.axes
    labels = [t.get_text() for t in throughput.get_yticklabels()]
    assert labels[::-1] == [chart.NAMES[k] for k in chart.ORDER]  # drawn bottom up; the engine is not among them
    assert [t.get_text() for t in engine.get_yticklabels()] == [chart.NAMES["engine"]]
    assert [t.get_text().split("\n")[0] for t in latency.get_xticklabels()] == [
        "at 50% of tactful's rate",
        "at 80% of tactful's rate",
    ]
    assert latency.get_yscale() == "log"
    assert "recovery of" in recovery.get_xticklabels()[0].get_text()
    assert "tactful exactly-once = " in throughput.get_title(loc="left")


def test_chart_command_draws_an_invocations_results(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(invocation(1.0, 0.9, 1.1)))
    out = tmp_path / "chart.png"
    result = CliRunner().invoke(main, ["chart", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(3 runs)" in result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
