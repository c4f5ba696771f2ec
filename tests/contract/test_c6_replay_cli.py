"""Contract section 6: the `replay` command line (and `validate`)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import DECISION_FIELDS, ISO_MS_Z, engage, ev, iso, ms, on, replay, suppress, topo

BIN = Path(sys.executable).parent / "tactful"


def tactful(*args, timeout=60):
    exe = str(BIN) if BIN.exists() else (shutil.which("tactful") or "tactful")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def write_lines(path: Path, lines) -> Path:
    out = []
    for line in lines:
        out.append(line if isinstance(line, str) else json.dumps(line))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def jsonl(text: str):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stderr_has(stderr: str, line_no: int, reason: str) -> bool:
    pat = re.compile(rf"(?<!\d){line_no}(?!\d)")
    return any(reason in ln and pat.search(ln) for ln in stderr.splitlines())


@pytest.fixture
def tdir(topo_dir):
    return topo_dir(
        on("hold", "trigger", [suppress(["email"], "1d"), engage("sms", "help", expires="1h")], priority=90),
        on("promo", "go", [engage("email", "sale", category="shoes")], priority=10),
        topo(
            "cart_left",
            {"absence": {"after": {"event": "cart", "as": "c"}, "missing": {"event": "buy"}, "for": "1h"}},
            [engage("push", "remind_{c.sku}")],
        ),
    )


RECS = [
    ev("t1", "c1", "trigger", "+0"),
    ev("g1", "c1", "go", "+10m"),
    ev("k1", "c2", "cart", "+20m", sku="s9"),
]


def expected_rows():
    return [
        ("ENGAGE", "sms", "c1", "hold", iso("+0"), ["t1"]),
        ("SUPPRESS", "email", "c1", "hold", iso("+0"), ["t1"]),
        ("ENGAGE", "push", "c2", "cart_left", iso("+1h20m"), ["k1"]),
    ]


def rows(decisions):
    return [
        (d["kind"], d["channel"], d["customer_id"], d["topology"], d["effective_at"], d["evidence"]) for d in decisions
    ]


def test_6_replay_jsonl_to_stdout(tmp_path, tdir):
    """6: JSON Lines in, one emitted decision per line out (section-5 fields, ISO ms Z times,
    contract order), exit 0; --until lets the deadline fire."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"))
    assert p.returncode == 0, p.stderr
    out = jsonl(p.stdout)
    assert rows(out) == expected_rows()
    for d in out:
        assert set(d) == DECISION_FIELDS
        assert ISO_MS_Z.match(d["effective_at"])
    assert out[2]["action"] == "remind_s9"


def test_6_cli_matches_library_run(tmp_path, tdir):
    """6: `tactful replay` writes exactly the decisions of the engine's replay run."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"))
    assert p.returncode == 0, p.stderr
    assert jsonl(p.stdout) == replay(tdir, RECS, until=iso("+2h")).decisions


def test_6_until_as_epoch_millis(tmp_path, tdir):
    """6: --until takes the same forms as occurred_at (epoch ms)."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", ms("+1h20m"))
    assert p.returncode == 0, p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()


def test_6_default_until_is_largest_occurred_at(tmp_path, tdir):
    """2/6: without --until the deadline after the last event does not fire."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events)
    assert p.returncode == 0, p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()[:2]


def test_6_out_file(tmp_path, tdir):
    """6: --out FILE receives the JSON Lines output."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    out = tmp_path / "out.jsonl"
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"), "--out", out)
    assert p.returncode == 0, p.stderr
    assert rows(jsonl(out.read_text())) == expected_rows()
    assert not any(line.lstrip().startswith('{"decision_id"') for line in p.stdout.splitlines())


def test_6_audit_writes_every_decision_with_status_and_cause(tmp_path, tdir):
    """6: with --audit every decision is written, emitted or not, with status and cause."""
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"), "--audit")
    assert p.returncode == 0, p.stderr
    out = jsonl(p.stdout)
    for d in out:
        assert set(d) == DECISION_FIELDS | {"status", "cause"}
    sup_id = next(d["decision_id"] for d in out if d["kind"] == "SUPPRESS")
    got = [(d["kind"], d["channel"], d["customer_id"], d["status"], d["cause"]) for d in out]
    assert got == [
        ("ENGAGE", "sms", "c1", "emitted", None),
        ("SUPPRESS", "email", "c1", "emitted", None),
        ("ENGAGE", "email", "c1", "blocked", f"suppressed_by {sup_id}"),
        ("ENGAGE", "push", "c2", "emitted", None),
    ]


def test_6_invalid_and_late_lines_on_stderr_with_line_numbers(tmp_path, tdir):
    """6: invalid and late events are reported on stderr with line number and reason and do not
    stop the run; blank lines are skipped (line numbers count file lines)."""
    bad_type = ev("x1", "c9", "Bad", "+0")
    lines = [
        RECS[0],  # 1
        "",  # 2 blank
        "{not json",  # 3 malformed
        bad_type,  # 4 invalid_type
        "   ",  # 5 blank (whitespace)
        RECS[1],  # 6
        "[1, 2, 3]",  # 7 not_an_object
        ev("late1", "c3", "go", "-1h"),  # 8 late
        RECS[2],  # 9
    ]
    events = write_lines(tmp_path / "ev.jsonl", lines)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"))
    assert p.returncode == 0, p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()
    assert stderr_has(p.stderr, 3, "malformed"), p.stderr
    assert stderr_has(p.stderr, 4, "invalid_type"), p.stderr
    assert stderr_has(p.stderr, 7, "not_an_object"), p.stderr
    assert stderr_has(p.stderr, 8, "late"), p.stderr


def test_6_library_run_counts_lines_from_one(tdir):
    """6: records count as input lines from 1 (library interface)."""
    recs = [RECS[0], ev("x1", "c9", "Bad", "+0"), RECS[1], ev("late1", "c3", "go", "-1h")]
    res = replay(tdir, recs)
    assert res.rejected == [(2, "invalid_type"), (4, "late")]
    assert (res.summary["invalid"], res.summary["late"]) == (1, 1)


def test_6_too_large_line(tmp_path, tdir):
    """Notes: a JSON line over 64 KiB is invalid with reason too_large; the run goes on."""
    big = ev("big", "c9", "go", "+0")
    big["padding"] = "x" * (70 * 1024)
    events = write_lines(tmp_path / "ev.jsonl", [RECS[0], big, RECS[1]])
    p = tactful("replay", "--topologies", tdir, "--events", events)
    assert p.returncode == 0, p.stderr
    assert stderr_has(p.stderr, 2, "too_large"), p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()[:2]


def test_6_bad_topologies_exit_2_naming_file_and_key(tmp_path, topo_dir):
    """6: a loading error names the file, the key and what was expected; exit status 2."""
    d = topo_dir(
        on("ok", "go", [engage("sms", "x")]),
        topo("broken", {"sequence": [{"event": "a"}, {"event": "b", "within": "soon"}]}, [engage("sms", "x")]),
    )
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    p = tactful("replay", "--topologies", d, "--events", events)
    assert p.returncode == 2
    text = p.stdout + p.stderr
    assert "broken.yaml" in text and "within" in text, text
    assert not any(line.startswith('{"decision_id"') for line in p.stdout.splitlines())


def test_6_missing_events_file_exit_1(tmp_path, tdir):
    """6: the events file cannot be read -> exit status 1."""
    p = tactful("replay", "--topologies", tdir, "--events", tmp_path / "nope.jsonl")
    assert p.returncode == 1, (p.stdout, p.stderr)


def test_6_events_path_is_a_directory_exit_1(tmp_path, tdir):
    """6: the events file cannot be read (a directory) -> exit status 1."""
    p = tactful("replay", "--topologies", tdir, "--events", tmp_path)
    assert p.returncode == 1, (p.stdout, p.stderr)


def test_6_topologies_checked_before_events(tmp_path, topo_dir):
    """6: invalid topologies give 2 (reading events is pointless); loading is reported even when
    the events file is fine."""
    d = topo_dir(topo("Bad-Name", {"sequence": [{"event": "a"}]}, [engage("sms", "x")]))
    events = write_lines(tmp_path / "ev.jsonl", RECS)
    assert tactful("replay", "--topologies", d, "--events", events).returncode == 2


def test_6_empty_events_file(tmp_path, tdir):
    """6: an empty input is fine: no decisions, exit 0."""
    events = tmp_path / "ev.jsonl"
    events.write_text("")
    p = tactful("replay", "--topologies", tdir, "--events", events)
    assert p.returncode == 0, p.stderr
    assert jsonl(p.stdout) == []


def test_6_epoch_millis_and_offset_iso_in_file(tmp_path, topo_dir):
    """1/6: occurred_at in JSON Lines as epoch ms or ISO with offset; output in UTC with ms and Z."""
    d = topo_dir(on("p", "go", [engage("email", "x")]))
    recs = [
        {"event_id": "a", "customer_id": "c1", "type": "go", "occurred_at": ms("+0") + 7},
        {"event_id": "b", "customer_id": "c1", "type": "go", "occurred_at": "2026-05-01T12:01:00+02:00"},
    ]
    events = write_lines(tmp_path / "ev.jsonl", recs)
    p = tactful("replay", "--topologies", d, "--events", events)
    assert p.returncode == 0, p.stderr
    assert [x["effective_at"] for x in jsonl(p.stdout)] == ["2026-05-01T10:00:00.007Z", "2026-05-01T10:01:00.000Z"]


# ----------------------------------------------------------------------- Avro

AVRO_SCHEMA = {
    "type": "record",
    "name": "TouchpointEvent",
    "namespace": "tactful.test",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "customer_id", "type": "string"},
        {"name": "type", "type": "string"},
        {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "channel", "type": ["null", "string"], "default": None},
        {"name": "attributes", "type": ["null", {"type": "map", "values": "string"}], "default": None},
    ],
}


def write_avro(path: Path, recs) -> Path:
    import fastavro

    rows_ = []
    for r in recs:
        rows_.append(
            {
                "event_id": r["event_id"],
                "customer_id": r["customer_id"],
                "type": r["type"],
                "occurred_at": dt.datetime.fromtimestamp(ms(r["occurred_at"]) / 1000, tz=dt.UTC),
                "channel": r.get("channel"),
                "attributes": r.get("attributes"),
            }
        )
    with path.open("wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(AVRO_SCHEMA), rows_)
    return path


def test_6_avro_container_input(tmp_path, tdir):
    """6: --events may be an Avro object container file; same decisions as JSON Lines."""
    events = write_avro(tmp_path / "ev.avro", RECS)
    p = tactful("replay", "--topologies", tdir, "--events", events, "--until", iso("+2h"))
    assert p.returncode == 0, p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()
    assert jsonl(p.stdout)[2]["action"] == "remind_s9"


def test_6_avro_invalid_record_reported(tmp_path, tdir):
    """6 + 1: an Avro record breaking a section-1 rule is reported with its reason and skipped."""
    events = write_avro(tmp_path / "ev.avro", [RECS[0], ev("x1", "c9", "Bad", "+0"), RECS[1]])
    p = tactful("replay", "--topologies", tdir, "--events", events)
    assert p.returncode == 0, p.stderr
    assert "invalid_type" in p.stderr
    assert rows(jsonl(p.stdout)) == expected_rows()[:2]


# ------------------------------------------------------------------- validate


def test_6_validate_ok(topo_dir):
    """6: `tactful validate DIR` exits 0 on a valid folder."""
    d = topo_dir(
        on("ok", "go", [engage("sms", "x")]),
        policies={"lateness": "5m", "quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"]}},
    )
    p = tactful("validate", d)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_6_validate_reports_each_problem_with_file_and_key(topo_dir):
    """6: validate prints each problem with file, key and expectation; exit 2."""
    d = topo_dir(
        topo("one", {"sequence": [{"event": "a"}, {"event": "b", "within": "soon"}]}, [engage("sms", "x")]),
        topo("two", {"sequence": [{"event": "a"}]}, [suppress(["sms"], "1d", category="{zz.k}")]),
        policies={"latenes": "10m"},
    )
    p = tactful("validate", d)
    assert p.returncode == 2
    text = p.stdout + p.stderr
    lines = text.splitlines()
    assert any("one.yaml" in ln and "within" in ln for ln in lines), text
    assert any("two.yaml" in ln and "category" in ln for ln in lines), text
    assert any("policies.yaml" in ln and "latenes" in ln for ln in lines), text
