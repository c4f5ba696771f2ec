"""``python -m bench report``: the synthetic v1.1 audit and the figures' shape (the figures are not tested)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bench import report
from bench.__main__ import main
from streams.report import build, inputs


def test_bench_report_prints_its_figures(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--customers", "300", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "report benchmark: 300 customers, one core"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "input",
        "fired matches",
        "report (read, aggregate, JSON)",
        "peak memory (RSS)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report-audit-300-1.jsonl", "report-events-300-1.jsonl"]


def test_the_synthetic_audit_has_every_arm_goals_and_outcomes(tmp_path: Path) -> None:
    files = report.generate(3000, 5, tmp_path)
    data = build(inputs.open_file(files.audit), inputs.open_file(files.events))
    arms = {arm for t in data["topologies"] for arm in t["matches"]}
    assert arms == {"treated", "holdout_global", "holdout_topology"}  # every arm shows in the records
    assert all(t["goal"] is not None for t in data["topologies"])
    assert sum(c["delivered"] for c in data["channels"]) > 0
    # Without the GOAL records a blocked match shows no arm: the catalog gives the one its records gave.
    source = inputs.open_file(files.audit)
    no_goals = inputs.Source("audit", (r for r in source.records if r["kind"] != "GOAL"), 0, lambda: 0)
    blind = build(no_goals)
    assert any("unknown" in t["matches"] for t in blind["topologies"])
    source = inputs.open_file(files.audit)
    no_goals = inputs.Source("audit", (r for r in source.records if r["kind"] != "GOAL"), 0, lambda: 0)
    again = build(no_goals, catalog=report.catalog())
    assert [t["matches"] for t in again["topologies"]] == [t["matches"] for t in data["topologies"]]
