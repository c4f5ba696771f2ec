"""``python -m bench``: the benchmarks' command line, run from the checkout.

The figures are not tested (benchmarks assert nothing); that the commands run,
take their options and report in the documented shape is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.__main__ import main
from bench.pipeline import Bench, Latency, LatencyRun, Results

REPO = Path(__file__).resolve().parents[1]


def test_replay_prints_the_engine_report(tmp_path: Path) -> None:
    args = ["replay", "--topologies", str(REPO / "topologies"), "--events", "2000", "--customers", "200"]
    result = CliRunner().invoke(main, [*args, "--repeat", "1", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "engine benchmark: 2,000 events, 200 customers, all shipped topologies, one core"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "replay from JSON Lines (decode+validate+engine)",
        "engine on decoded records (validate+engine)",
        "decisions (all statuses)",
        "state per customer (serialised, mean)",
        "peak memory of the file replay (RSS)",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["bench-events-2000-200-1.jsonl"]  # the cached input


def test_replay_rejects_a_broken_topologies_folder_as_tactful_does(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    result = CliRunner().invoke(main, ["replay", "--topologies", str(tmp_path), "--workdir", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"problem(s) in {tmp_path}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_pipeline_needs_redis() -> None:
    result = CliRunner(env={"TACTFUL_REDIS_URL": ""}).invoke(main, ["pipeline"])
    assert result.exit_code == 2
    assert "the pipeline benchmark mirrors to Redis: set TACTFUL_REDIS_URL" in result.stderr


def test_python_dash_m_bench_runs_from_the_repository_root() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "pipeline", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: python -m bench pipeline [OPTIONS]")
    for option in ("--events", "--customers", "--recovery-customers", "--runs", "--skip", "--quix-python", "--out"):
        assert option in result.stdout
    assert "--keep" in result.stdout


def test_the_skippable_measurements_the_command_line_offers_are_the_pipelines() -> None:
    from bench import pipeline
    from bench.__main__ import PIPELINE_SKIPPABLE

    assert PIPELINE_SKIPPABLE == pipeline.SKIPPABLE


def _latency(share: float, rate: float, eos: dict[str, float]) -> Latency:
    """Exactly-once's figures as given (seen 3 ms later), at-least-once's at half of them."""
    where = {
        "batches": 10.0,
        "events_per_batch": 30.0,
        "batch_mean_ms": 2.0,
        "batch_p99_le_ms": 5.0,
        "worker_p99_le_ms": 25.0,
        "cpu_seconds": 1.0,
    }
    runs = [
        LatencyRun("exactly_once", eos, {q: v + 3 for q, v in eos.items()}, 100, where),
        LatencyRun("at_least_once", {q: v / 2 for q, v in eos.items()}, {}, 100, where),
    ]
    return Latency(share, rate, eos, 100, runs)


def _bench(*runs: tuple[float, float, float, float]) -> Bench:
    """An invocation's figures, a tuple per run: (tactful, tactful exactly-once, p99 at half, recovery s)."""
    bench = Bench("2026-11-29 20:00 UTC", 1000, 10, 4, 10)
    for n, (alo, eos, p99, rec) in enumerate(runs):
        res = Results("2026-11-29 20:00 UTC", 1000, 10, 4, recovery_customers=10, recovery_seconds=rec)
        res.rates = {"limit_aiokafka": 1000.0, "engine": 5000.0, "quix": 500.0, "tactful": alo, "tactful_eos": eos}
        if n == 0:
            res.rates["naive_faust"] = 50.0
        res.latency = [
            _latency(0.5, alo / 2, {"p50": 5.0, "p95": 10.0, "p99": p99}),
            _latency(0.8, alo * 0.8, {"p50": 8.0, "p95": 40.0, "p99": 4 * p99}),
        ]
        bench.runs.append(res)
    return bench


def test_pipeline_table_gives_median_and_spread_per_figure_and_each_runs_own_ratios() -> None:
    from bench.pipeline import table

    lines = table(_bench((600.0, 400.0, 20.0, 9.0), (500.0, 450.0, 30.0, 12.0), (700.0, 300.0, 10.0, 40.0)))
    text = "\n".join(lines.splitlines())
    assert lines.splitlines()[0].endswith("; 3 runs, median (min-max)")
    rows = {line[:44].strip(): line[44:].split() for line in lines.splitlines()}
    assert rows["(3) naive Faust: per-customer count table"][:3] == ["50", "(1", "run)"]
    assert rows["(4) Quix Streams: per-customer count state"] == ["500", "(500-500)", "0.50", "(0.50-0.50)"]
    assert rows["(5) tactful, one worker: at-least-once"] == [
        "600", "(500-700)", "0.60", "(0.50-0.70)", "1.20", "(1.00-1.40)"
    ]  # fmt: skip
    assert rows["tactful, one worker: exactly-once"] == [
        "400",
        "(300-450)",
        "0.40",
        "(0.30-0.45)",
        "0.80",
        "(0.60-0.90)",
    ]
    assert "(6) latency at 50% of (5), 300 (250-350) events/s:" in text
    at_half = lines.splitlines()[lines.splitlines().index("(6) latency at 50% of (5), 300 (250-350) events/s:") + 1 :]
    worker = "worker: 30 events/batch, in a batch 2.0 ms mean, p99 <= 5 ms; its own append to acked p99 <= 25 ms; "
    assert [" ".join(line.split()) for line in at_half[:5]] == [
        "exactly-once append ms: p50 5 (5-5), p95 10 (10-10), p99 20 (10-30) (300 decisions)",
        "exactly-once seen ms: p50 8 (8-8), p95 13 (13-13), p99 23 (13-33) (300 decisions)",
        worker + "1.0 CPU s",
        "at-least-once append ms: p50 2 (2-2), p95 5 (5-5), p99 10 (5-15) (300 decisions)",
        worker + "1.0 CPU s",
    ]
    assert "(6) latency at 80% of (5), 480 (400-560) events/s:" in text
    assert "(7) recovery: restarted over 10 customers' state, deciding again after 12.0 s (9.0-40.0)" in text


def test_pipeline_targets_are_met_only_when_every_run_meets_them() -> None:
    from bench.pipeline import targets

    rows = {t: (f, v) for t, f, v in targets(_bench((600.0, 400.0, 20.0, 9.0), (500.0, 450.0, 30.0, 12.0)))}
    assert rows["tactful (at-least-once) >= 1.2x Quix Streams"] == ("1.10x (1.00-1.20)", "not met (1 of 2 runs)")
    assert rows["tactful (at-least-once) >= 0.5x the aiokafka limit"] == ("0.55x (0.50-0.60)", "met (2 of 2 runs)")
    assert rows["tactful (exactly-once) >= 1.2x Quix Streams"][1] == "not met (0 of 2 runs)"
    assert rows["p99 <= 25 ms at half of tactful's rate (exactly-once)"] == ("25 ms (20-30)", "not met (1 of 2 runs)")
    assert rows["p99 <= 25 ms at half of tactful's rate (at-least-once)"] == ("12 ms (10-15)", "met (2 of 2 runs)")
    assert rows["recovery of 10 customers <= 30 s (issue: of a million)"] == ("10.5 s (9.0-12.0)", "met (2 of 2 runs)")


def test_a_single_run_prints_figures_without_spread_and_the_targets_plainly() -> None:
    from bench.pipeline import table

    lines = table(_bench((700.0, 550.0, 30.0, 9.0))).splitlines()
    assert "runs" not in lines[0]
    assert lines[1].split() == ["events/s", "x", "limit", "x", "Quix"]
    tactful = next(line for line in lines if line.startswith("(5)"))
    assert tactful[44:].split() == ["700", "0.70", "1.40"]
    verdicts = lines[lines.index(next(line for line in lines if line.startswith("targets"))) + 1 :]
    assert [line.rsplit("  ", 1)[1] for line in verdicts] == ["met", "met", "not met", "met", "not met", "met", "met"]
    assert verdicts[4].split() == [
        "p99",
        "<=",
        "25",
        "ms",
        "at",
        "half",
        "of",
        "tactful's",
        "rate",
        "(exactly-once)",
        "30",
        "ms",
        "not",
        "met",
    ]
    assert verdicts[5].split()[-4:] == ["(at-least-once)", "15", "ms", "met"]


def test_ab_table_compares_medians_against_the_last_build() -> None:
    from bench.ab import table

    text = table({"before": [100.0, 300.0, 200.0], "after": [150.0, 250.0, 400.0]}, 1000, 10)
    lines = text.splitlines()
    assert lines[0].startswith("one worker, 1,000 Avro touchpoints, 10 customers")
    before, after = lines[2].split(), lines[3].split()
    assert before[:5] == ["before", "200", "100", "300", "0.80"]
    assert after[:5] == ["after", "250", "150", "400", "1.00"]


def test_guarantees_table_shows_both_modes_side_by_side() -> None:
    from bench.guarantees import Figures, table

    figures = Figures()
    figures.rates = {"at_least_once": [100.0, 300.0, 200.0], "exactly_once": [90.0, 110.0]}
    figures.restarts = {"at_least_once": [2.0, 4.0, 3.0], "exactly_once": [5.0, None]}
    lines = table(figures, 1000, 10).splitlines()
    assert lines[0].startswith("one worker, 1,000 Avro touchpoints, 10 customers")
    assert lines[2].split() == ["at_least_once", "200", "100", "300", "3.0s", "4.0s"]
    assert lines[3].split() == ["exactly_once", "100", "90", "110", "5.0s", "never"]


def test_guarantees_takes_its_options() -> None:
    result = CliRunner().invoke(main, ["guarantees", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--events", "--rounds", "--restarts", "--workers", "--partitions", "--rate", "--cap", "--out"):
        assert option in result.stdout


def test_ab_names_one_guarantee_for_both_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The default guarantee changed; an A/B must not compare two modes without saying so.
    from bench import ab

    seen: dict[str, object] = {}

    def run(*args: object, **kwargs: object) -> dict[str, list[float]]:
        seen.update(kwargs)
        return {"before": [1.0], "after": [1.0]}

    monkeypatch.setattr(ab, "run", run)
    monkeypatch.setenv("TACTFUL_REDIS_URL", "redis://127.0.0.1:1/0")
    other = tmp_path / "tactful"
    other.write_text("")
    args = ["ab", "--other", str(other), "--events", "1000", "--rounds", "1", "--out", str(tmp_path)]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert seen["guarantee"] == "at_least_once"
    assert CliRunner().invoke(main, [*args, "--guarantee", "exactly_once"]).exit_code == 0
    assert seen["guarantee"] == "exactly_once"


def test_the_holdouts_catalog_puts_every_topology_and_the_policies_under_control_groups() -> None:
    from bench.__main__ import with_holdouts
    from streams.generate import generate_events
    from streams.replay import replay_numbered
    from streams.topology import load_folder

    catalog = with_holdouts(load_folder(Path(__file__).parents[1] / "topologies"))
    assert {t.holdout for t in catalog.topologies} == {1000} and catalog.policies.holdout == 500
    events = list(generate_events(20_000, 2_000, 7, start_ms=1_777_852_800_000))
    statuses = {d.status for d in replay_numbered(catalog, enumerate(events, 1)).all_decisions}
    assert "held_out" in statuses and "emitted" in statuses


METRICS = """# HELP tactful_batch_seconds Time to process one micro-batch.
tactful_batch_seconds_bucket{{le="0.005"}} {fast}
tactful_batch_seconds_bucket{{le="0.05"}} {mid}
tactful_batch_seconds_bucket{{le="+Inf"}} {n}
tactful_batch_seconds_count {n}
tactful_batch_seconds_sum {total}
tactful_event_to_decision_seconds_bucket{{le="0.01"}} {n}
tactful_event_to_decision_seconds_bucket{{le="+Inf"}} {n}
tactful_event_to_decision_seconds_count {n}
tactful_events_total{{type="purchase"}} {events}
tactful_events_total{{type="complaint"}} {events}
"""


def test_the_latency_breakdown_is_the_workers_metrics_over_the_feed_only() -> None:
    from bench.pipeline import breakdown, summed_metrics

    before = {**summed_metrics(METRICS.format(fast=5, mid=5, n=5, total=0.01, events=50)), "cpu_seconds": 2.0}
    # 100 batches during the feed: 98 within 5 ms, 1 within 50 ms, 1 slower; 1,000 events of each type.
    after = {**summed_metrics(METRICS.format(fast=103, mid=104, n=105, total=0.51, events=1050)), "cpu_seconds": 5.5}
    got = breakdown(before, after)
    assert got == {
        "batches": 100.0,
        "events_per_batch": 20.0,
        "batch_mean_ms": pytest.approx(5.0),
        "batch_p99_le_ms": 50.0,
        "worker_p99_le_ms": 10.0,
        "cpu_seconds": 3.5,
    }
    # Past the last finite bound: no bound to give.
    slow = {**after, 'tactful_batch_seconds_bucket{le="0.05"}': 100.0}
    assert breakdown(before, slow)["batch_p99_le_ms"] == float("inf")


def test_latency_quantiles_pick_from_the_sorted_values() -> None:
    from bench.pipeline import quantiles

    assert quantiles([float(v) for v in range(200, 0, -1)]) == {"p50": 101.0, "p95": 191.0, "p99": 199.0, "max": 200.0}
    assert quantiles([]) == {}
