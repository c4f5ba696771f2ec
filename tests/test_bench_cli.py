"""``python -m bench``: the benchmarks' command line, run from the checkout.

The figures are not tested (benchmarks assert nothing); that the commands run,
take their options and report in the documented shape is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bench.__main__ import main

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
    for option in ("--events", "--customers", "--recovery-customers", "--quix-python", "--out", "--keep"):
        assert option in result.stdout


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
