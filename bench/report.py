"""Synthetic input for ``tactful report`` at scale: an audit of contract v1.1 and its touchpoints.

``tactful generate`` + ``replay --audit`` gives real audits, but of whatever
the engine in this checkout implements; this writes the v1.1 shape directly
(arms, ``held_out`` decisions, GOAL records, channel outcomes) at about the
volume the shipped scenarios give: about seven touchpoints and one audit
record per customer. The arms follow the contract's bucket function with a 5%
global and a 10% per-topology control group; the treated goal rate is set a
few points above the control's so that the report has an uplift to find.

    python -m bench report --customers 1000000 --workdir out
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.report.arms import HoldoutCatalog, TopologyArms
from streams.timeutil import format_time

TOPOLOGIES = (
    # name, share of customers with a match, channel, goal event, treated and control goal rates
    ("abandoned_cart_reminder", 0.08, "email", "purchase", 0.22, 0.15),
    ("activation_nudge", 0.10, "sms", "activation_succeeded", 0.55, 0.50),
    ("delivery_delay_apology", 0.04, "email", "order_delivered", 0.70, 0.70),
    ("post_purchase_friction", 0.06, "call_center", "activation_succeeded", 0.40, 0.30),
)
NOISE = (
    ("page_view", "web"),
    ("product_view", "web"),
    ("product_view", "app"),
    ("ad_impression", "ads"),
    ("app_open", "app"),
    ("search", "web"),
    ("email_open", "email"),
)
START_MS = 1_777_852_800_000  # 2026-05-04T00:00:00Z
DAY_MS = 86_400_000


def catalog() -> HoldoutCatalog:
    """The holdout settings the synthetic arms follow (also what ``--topologies`` would say)."""
    return HoldoutCatalog(
        global_holdout=500,
        salt="bench",
        topologies={name: TopologyArms(holdout=1000, has_goal=True) for name, *_ in TOPOLOGIES},
    )


@dataclass(frozen=True)
class Files:
    audit: Path
    events: Path
    audit_records: int
    events_written: int
    seconds: float


def _decision(
    rng: random.Random,
    customer: str,
    topology: str,
    kind: str,
    channel: str | None,
    at: int,
    evidence: list[str],
    status: str,
    cause: str | None,
) -> dict[str, Any]:
    return {
        "decision_id": f"{rng.getrandbits(128):032x}",
        "customer_id": customer,
        "kind": kind,
        "channel": channel,
        "action": f"{topology}_offer" if kind == "ENGAGE" else None,
        "category": "*" if kind == "SUPPRESS" else None,
        "topology": topology,
        "topology_version": 1,
        "effective_at": format_time(at),
        "expires_at": None,
        "not_before": format_time(at) if kind == "ENGAGE" else None,
        "evidence": evidence,
        "reason": f"{topology} v1 matched {len(evidence)} events: {kind.lower()} on {channel}.",
        "status": status,
        "cause": cause,
    }


def _customer(i: int, rng: random.Random, arms: HoldoutCatalog) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    customer = f"c{i:07d}"
    events: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    t = START_MS + rng.randrange(2 * DAY_MS)
    serial = 0

    def event(kind: str, channel: str | None, attributes: dict[str, str] | None = None) -> dict[str, Any]:
        nonlocal t, serial
        serial += 1
        t += rng.randrange(60_000, 3_600_000)
        e: dict[str, Any] = {"event_id": f"{customer}-{serial}", "customer_id": customer, "type": kind}
        e["occurred_at"] = format_time(t)
        if channel:
            e["channel"] = channel
        if attributes:
            e["attributes"] = attributes
        events.append(e)
        return e

    for _ in range(rng.randrange(4, 9)):
        kind, channel = NOISE[rng.randrange(len(NOISE))]
        event(kind, channel, {"category": "phone"})
    for name, share, channel, goal, treated_rate, control_rate in TOPOLOGIES:
        if rng.random() >= share:
            continue
        trigger = event("purchase" if goal != "purchase" else "cart_add", "web", {"category": "phone"})
        evidence = [trigger["event_id"]]
        arm = arms.arm(name, customer)
        held = arm != "treated"
        blocked = rng.random() < 0.05
        status = "blocked" if blocked else ("held_out" if held else "emitted")
        cause = "cap sms max 2 per 7d" if blocked else (arm if held else None)
        engage = _decision(rng, customer, name, "ENGAGE", channel, t, evidence, status, cause)
        audit.append(engage)
        # The suppressions most shipped topologies make beside their engagement; a blocked match stands for
        # a topology that only engages, so that its records show no arm (the report needs the catalog then).
        for other in ("ads", "push") if not blocked else ():
            held_status, held_cause = ("held_out", arm) if held else ("emitted", None)
            audit.append(_decision(rng, customer, name, "SUPPRESS", other, t, evidence, held_status, held_cause))
        if status == "emitted":
            for stage in ("delivered", "opened", "clicked"):
                if rng.random() < 0.7:
                    event(f"decision.{stage}", channel, {"decision_id": engage["decision_id"]})
                else:
                    break
            if rng.random() < 0.01:
                event("decision.complained", channel, {"decision_id": engage["decision_id"]})
        reached = rng.random() < (control_rate if held else treated_rate)
        if reached:
            g = event(goal, "web")
            audit.append(_decision(rng, customer, name, "GOAL", None, t, [*evidence, g["event_id"]], "reached", arm))
        else:
            audit.append(_decision(rng, customer, name, "GOAL", None, t + 7 * DAY_MS, evidence, "missed", arm))
    return events, audit


def generate(customers: int, seed: int, folder: Path) -> Files:
    """Write ``report-audit-N-S.jsonl`` and ``report-events-N-S.jsonl`` into ``folder`` (cached)."""
    audit_path = folder / f"report-audit-{customers}-{seed}.jsonl"
    events_path = folder / f"report-events-{customers}-{seed}.jsonl"
    started = time.perf_counter()
    if audit_path.exists() and events_path.exists():
        return Files(audit_path, events_path, _lines(audit_path), _lines(events_path), 0.0)
    rng = random.Random(seed)
    arms = catalog()
    n_audit = n_events = 0
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with audit_path.open("wb") as fa, events_path.open("wb") as fe:
        for i in range(customers):
            events, audit = _customer(i, rng, arms)
            fe.write(b"".join(dumps(e, option=newline) for e in events))
            fa.write(b"".join(dumps(r, option=newline) for r in audit))
            n_events += len(events)
            n_audit += len(audit)
    return Files(audit_path, events_path, n_audit, n_events, time.perf_counter() - started)


def _lines(path: Path) -> int:
    with path.open("rb") as fo:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fo.read(1 << 20), b""))


def measure(files: Files) -> dict[str, float]:
    """Time ``tactful report`` over the files on this core: the read, the aggregation and the JSON."""
    import resource

    from streams.report import build, inputs, render

    cpu0, wall0 = time.process_time(), time.perf_counter()
    data = build(inputs.open_file(files.audit), inputs.open_file(files.events), catalog=catalog())
    render.to_json(data)
    return {
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "matches": float(data["inputs"]["matches"]),
    }
