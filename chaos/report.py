"""The one summary table, its JSON twin, and the verdict (the exit status)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from chaos import check
from chaos.run import Outcome


def _times(restarts: list[dict[str, Any]], key: str) -> str:
    if not restarts:
        return "-"
    got = sorted(r[key] for r in restarts if r[key] is not None)
    died = sum(1 for r in restarts if r[key] is None and r["died"])
    never = len(restarts) - len(got) - died
    text = f"median {statistics.median(got):.1f} s, max {got[-1]:.1f} s (n={len(got)})" if got else "none got there"
    return text + (f", {never} never" if never else "") + (f", {died} died first" if died else "")


def failures(o: Outcome) -> list[str]:
    f = o.findings
    bad = []
    if f.lost:
        bad.append(f"{f.lost} decisions lost")
    short = {r: n - o.findings.dlq.get(r, 0) for r, n in o.expected_dlq.items() if o.findings.dlq.get(r, 0) < n}
    if short:
        bad.append(f"dead letters missing: {short}")
    # More distinct records dead-lettered than were sent bad: valid events never evaluated.
    excess = {r: n - o.expected_dlq.get(r, 0) for r, n in o.findings.dlq.items() if n > o.expected_dlq.get(r, 0)}
    if excess:
        bad.append(f"dead letters not expected: {excess}")
    if f.redis_missing or f.redis_stale:
        bad.append(f"Redis keys missing {f.redis_missing}, stale {f.redis_stale}")
    if o.uncommitted:
        bad.append(f"{o.uncommitted} input records never committed (partitions {o.stalled_partitions})")
    crashes = sum(o.crashes.values())
    if crashes:
        bad.append(f"{crashes} worker crashes")
    if o.fuzz.crashes:
        bad.append(f"{sum(o.fuzz.crashes.values())} decoder crashes")
    return bad


def rows(o: Outcome) -> list[tuple[str, str]]:
    f = o.findings
    poison = sum(n for k, n in o.sent.items() if k not in ("event", "tick"))
    out = [
        ("records fed", f"{o.sent.get('event', 0)} events, {poison} poison, {o.sent.get('tick', 0)} ticks"),
        ("decisions expected (emitted / audit)", f"{f.expected} / {f.expected_all}"),
        ("lost (expected, on no channel topic)", str(f.lost)),
        ("extra (on a channel topic, not expected)", str(f.extra)),
        ("duplicates on channel topics", str(f.duplicates)),
        ("audit topic: missing / unexpected", f"{f.audit_missing} / {f.audit_extra}"),
        ("Redis keys expected active now", str(f.redis_expected)),
        ("Redis keys missing / stale", f"{f.redis_missing} / {f.redis_stale}"),
        ("input records never committed", f"{o.uncommitted} (stalled partitions: {o.stalled_partitions or 'none'})"),
    ]
    for reason in sorted(set(o.expected_dlq) | set(f.dlq)):
        got, sent, records = f.dlq.get(reason, 0), o.expected_dlq.get(reason, 0), f.dlq_records.get(reason, 0)
        out.append(
            (
                f"DLQ {reason}: records got / sent",
                f"{got} / {sent}" + (f" ({records} with repeats)" if records > got else ""),
            )
        )
    kills = [r for r in o.restarts if r["cause"] == "kill"]
    crashed = [r for r in o.restarts if r["cause"] != "kill"]
    out += [
        ("kill -9 / restarts after a crash", f"{o.kills} / {len(crashed)}"),
        ("killed: start to /ready + a partition", _times(kills, "ready_s")),
        ("killed: start to its first decision", _times(kills, "decide_s")),
        ("crashed: start to /ready + a partition", _times(crashed, "ready_s")),
        ("worker crashes (exits not by the suite)", _crashes(o.crashes)),
        ("decoder fuzz: inputs / crashes", f"{o.fuzz.inputs} / {sum(o.fuzz.crashes.values())}"),
        ("run time", f"{o.seconds:.0f} s"),
    ]
    return out


def _crashes(codes: dict[int, int]) -> str:
    if not codes:
        return "0"
    return f"{sum(codes.values())} (" + ", ".join(f"exit {c}: {n}" for c, n in sorted(codes.items())) + ")"


def table(o: Outcome) -> str:
    body = rows(o)
    width = max(len(k) for k, _ in body)
    lines = [f"{'':-<{width + 2}}{'':-<40}"]
    lines += [f"{k:<{width}}  {v}" for k, v in body]
    lines.append(lines[0])
    bad = failures(o)
    lines.append("verdict: " + ("FAIL: " + "; ".join(bad) if bad else "PASS: nothing lost, nothing crashed"))
    return "\n".join(lines)


def write(o: Outcome, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    text = table(o)
    (folder / "summary.txt").write_text(text + "\n")
    data: dict[str, Any] = {
        "options": o.options,
        "sent": o.sent,
        "findings": check.as_dict(o.findings),
        "expected_dlq": o.expected_dlq,
        "uncommitted": o.uncommitted,
        "stalled_partitions": o.stalled_partitions,
        "kills": o.kills,
        "restarts": o.restarts,
        "crashes": {str(k): v for k, v in o.crashes.items()},
        "fuzz": {
            "inputs": o.fuzz.inputs,
            "accepted": o.fuzz.accepted,
            "rejected": dict(o.fuzz.rejected),
            "crashes": dict(o.fuzz.crashes),
            "examples": o.fuzz.examples,
        },
        "timeline": o.timeline,
        "seconds": o.seconds,
        "failures": failures(o),
    }
    (folder / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    return text
