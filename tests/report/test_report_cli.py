"""``tactful report`` on the command line: over real ``replay --audit`` output, its outputs and its failures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams.codec.avro import touchpoint_schema, touchpoint_to_avro, write_ocf
from streams.codec.jsonl import read_jsonl
from tests.test_cli import one_error, tactful

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = REPO / "topologies"
AUDIT = REPO / "tests" / "golden" / "shipped-audit.jsonl"
EVENTS = REPO / "tests" / "golden" / "shipped-journeys.jsonl"


@pytest.fixture(autouse=True)
def _no_tactful_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TACTFUL_"):
            monkeypatch.delenv(name)


def lines(path: Path) -> list[dict[str, Any]]:
    return [v for _, v in read_jsonl(path) if isinstance(v, dict)]


def report_json(*args: str) -> dict[str, Any]:
    result = tactful(["report", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_report_over_replays_audit_counts_every_record() -> None:
    data = report_json("--audit", str(AUDIT), "--events", str(EVENTS), "--topologies", str(TOPOLOGIES))
    audit = lines(AUDIT)
    assert data["inputs"]["audit_records"] == len(audit)
    assert data["inputs"]["touchpoints"] == len(lines(EVENTS))
    per_topology = Counter(r["topology"] for r in audit)
    for t in data["topologies"]:
        assert sum(d["count"] for d in t["decisions"]) == per_topology[t["topology"]]
        name = t["topology"]
        fired = {
            (r["customer_id"], tuple(r["evidence"])) for r in audit if r["topology"] == name and r["kind"] != "RELEASE"
        }
        assert t["matches_total"] == len(fired)
    # The shipped catalog holds no holdout: every match whose records show no arm is treated.
    assert all(set(t["matches"]) <= {"treated"} for t in data["topologies"])
    sent = Counter(r["channel"] for r in audit if r["kind"] == "ENGAGE" and r["status"] == "emitted")
    assert {c["channel"]: c["sent"] for c in data["channels"]} == dict(sent)


def test_without_a_catalog_blocked_only_matches_have_no_arm() -> None:
    data = report_json("--audit", str(AUDIT))
    assert data["inputs"]["touchpoints"] is None
    arms = Counter(arm for t in data["topologies"] for arm in t["matches"])
    assert set(arms) <= {"treated", "unknown"}


def test_tables_on_the_terminal() -> None:
    result = tactful(["report", "--audit", str(AUDIT), "--events", str(EVENTS), "--customer", "c000114"])
    assert result.exit_code == 0, result.output
    for title in ("Fired matches by arm", "Decisions by status and cause", "Outcome funnel per channel"):
        assert title in result.stdout
    assert "Timeline of c000114" in result.stdout
    assert "no uplift to show" in result.stdout  # the shipped topologies have no goal yet


def test_html_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = tactful(["report", "--audit", str(AUDIT), "--events", str(EVENTS), "--html", str(page), "--json"])
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Plotly" in text and "sankey-all" in text
    json.loads(result.stdout)  # --json still prints the data


def test_avro_touchpoints(tmp_path: Path) -> None:
    avro = tmp_path / "events.avro"
    write_ocf(avro, (touchpoint_to_avro(r) for r in lines(EVENTS)), touchpoint_schema())
    from_avro = report_json("--audit", str(AUDIT), "--events", str(avro))
    from_json = report_json("--audit", str(AUDIT), "--events", str(EVENTS))
    assert from_avro == from_json


def test_bad_lines_are_skipped_with_a_warning(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_text(AUDIT.read_text() + "not json\n[1]\n")
    result = tactful(["report", "--audit", str(audit), "--json"])
    assert result.exit_code == 0
    assert "warning: 2 unreadable records" in result.stderr
    assert json.loads(result.stdout)["inputs"]["audit_records_unreadable"] == 2


def test_progress_bar_on_request() -> None:
    result = tactful(["report", "--audit", str(AUDIT), "--progress", "--json"])
    assert result.exit_code == 0
    json.loads(result.stdout)  # the bar is on standard error only


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "exactly one of --audit FILE and --from-topic"),
        (["--audit", "a.jsonl", "--from-topic"], "exactly one of"),
        (["--audit", "a.jsonl", "--since", "2026-05-01T00:00:00Z"], "--since and --until go with"),
        (["--from-topic", "--since", "yesterday"], "--since"),
        (["--audit", "a.jsonl", "--events", "e.jsonl", "--events-from-topic"], "at most one of"),
    ],
)
def test_bad_usage(args: list[str], needle: str) -> None:
    one_error(tactful(["report", *args]), 2, needle)


def test_an_unreadable_audit_exits_1(tmp_path: Path) -> None:
    one_error(tactful(["report", "--audit", str(tmp_path / "missing.jsonl")]), 1, "missing.jsonl")


def test_a_catalog_with_a_bad_holdout_exits_2(tmp_path: Path) -> None:
    # The catalog is read by the loader replay and the workers use: its problems come as `validate` lists them.
    (tmp_path / "policies.yaml").write_text("holdout: {percent: 5}\n")
    (tmp_path / "t.yaml").write_text(
        "topology: t\nversion: 1\nwhen: {sequence: [{as: a, event: a}]}\nthen:\n  - engage: {channel: sms, action: x}\n"
    )
    result = tactful(["report", "--audit", str(AUDIT), "--topologies", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[0] == (
        "error: policies.yaml: holdout.percent: expected a percentage with at most two decimals "
        "and a % sign (5%, 2.5%), got '5'"
    )


def test_from_topic_decodes_with_the_schema_registrys_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers write the audit topic with the registry's schema id when there is one: the report reads it."""
    import streams.live.codecs
    from streams.codec import avro
    from streams.report import inputs
    from streams.timeutil import parse_time

    registry_id = 4242  # an id only the registry knows, unlike the local ids derived from the schema
    local = avro.local_registry()

    def registry(schema_id: int) -> Any:
        return local.resolve(avro.decision_schema_id() if schema_id == registry_id else schema_id)

    record = lines(AUDIT)[0]
    avro_record = {
        **record,
        **{k: parse_time(record[k]) for k in ("effective_at", "expires_at", "not_before") if record[k] is not None},
    }
    value = avro.encode(avro_record, avro.decision_schema(), registry_id)
    opened: list[str] = []

    def open_topic(client_options: Any, topic: str, *, decode: Any, **_: Any) -> inputs.Source:
        opened.append(topic)
        return inputs.Source(topic, iter([decode(value)]), 1, lambda: 1, unit="records")

    monkeypatch.setattr(streams.live.codecs, "resolver", lambda settings: registry)
    monkeypatch.setattr(inputs, "open_topic", open_topic)
    data = report_json("--from-topic")
    assert opened == ["decisions.audit"]
    assert data["inputs"]["audit_records"] == 1
    assert data["inputs"]["audit_records_unreadable"] == 0
    assert [t["topology"] for t in data["topologies"]] == [record["topology"]]
