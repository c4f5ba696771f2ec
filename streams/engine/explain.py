"""One customer's state, explained for a person: what is kept, what is close to firing, and why
each recent decision went the way it did (the live ``/customers/{id}`` view, docs/live.md).

Pure, like the rest of the engine: :func:`explain` reads a customer's state, the
engine (its catalog and its arm rule) and, from the caller, the stream time
``now`` and the customer's recent decisions; it changes nothing and answers
plain JSON values, with every time in ISO-8601 UTC.

Matches in progress are a reading aid, not the engine's own search
(:mod:`streams.engine.matching`). For a ``sequence``, each stored event of the
first step starts a chain that takes, step after step, the earliest later
event that fits the step's and the sequence's windows; the chain reaching
furthest (the latest start among equals) is shown, with the steps still
missing and the time by which the next must come, unless it is complete (it
fired, or cooldown held it back). A chain whose time ran out is shown too, as
``open: false``: it is the "why not" of a match that never came. A ``count``
shows the qualifying events in its window ending at ``now`` while they are
fewer than its threshold. An ``absence`` shows each armed deadline. A match
one step short (a count one event short) is a ``near_miss``.

A blocked decision's cause names a suppression by its decision id or a cap by
its figures; the view's ``reason`` of a decision not emitted is the engine's
reason followed by what stopped it (:func:`why`): the suppression by its
topology, channel, category and reason (the topology's description, else its
SUPPRESS decision's reason), the cap by its figures, the rival that outranked
it, the control group that held it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.decisions import Arm, Decision, Kind, Status
from streams.engine.engine import Engine
from streams.engine.state import CustomerState, StoredEvent, Suppression
from streams.timeutil import format_duration, format_time
from streams.topology.model import ANY_CATEGORY, Absence, Count, Pattern, Sequence, Step, Topology

SUPPRESSED_BY = "suppressed_by "
OUTRANKED_BY = "outranked_by "


def explain(
    engine: Engine, customer_id: str, state: CustomerState, now: int | None, recent: Iterable[Decision] = ()
) -> dict[str, Any]:
    """The readable view of one customer's state at stream time ``now`` (None: the latest event's time)."""
    catalog = engine.catalog
    if now is None:
        now = max((e.t for e in state.events), default=0)
    decisions = list(recent)  # in the order they were made
    by_id = {d.decision_id: d for d in decisions}
    topologies = {t.name: t for t in catalog.topologies}
    return {
        "events": [_event(e) for e in state.events],
        "matches_in_progress": [p for t in catalog.topologies for p in progress(t, state, now)],
        "active_suppressions": [_suppression(s, topologies, by_id) for s in state.suppressions if s.active_at(now)],
        # Shadow and held-out suppressions: never in force, kept to be released with their status.
        "held_suppressions": [_suppression(s, topologies, by_id) for s in state.held if s.active_at(now)],
        "recent_decisions": [_decision(d, state, topologies, by_id) for d in decisions],
        "arms": {t.name: engine._arm(t, customer_id) for t in catalog.topologies},
        "open_goals": [
            {
                "topology": g.topology,
                "version": g.version,
                "arm": g.arm,
                "opened_at": format_time(g.start),
                "until": format_time(g.deadline),
                "waiting_for": describe(g.pattern),
            }
            for g in state.goals
        ],
        "last_fired": {name: format_time(t) for name, t in sorted(state.last_fired.items())},
    }


# -- matches in progress ------------------------------------------------------------------


def progress(topo: Topology, state: CustomerState, now: int) -> list[dict[str, Any]]:
    """What of ``topo``'s condition the customer's stored events already hold, short of a match."""
    cond = topo.when
    if isinstance(cond, Sequence):
        found = _sequence(topo, cond, state.events, now)
        return [] if found is None else [found]
    if isinstance(cond, Count):
        found = _count(topo, cond, state.events, now)
        return [] if found is None else [found]
    return _absence(topo, cond, state, now)


def _sequence(topo: Topology, cond: Sequence, events: list[StoredEvent], now: int) -> dict[str, Any] | None:
    steps = cond.steps
    best: list[StoredEvent] = []
    for i, start in enumerate(events):
        if not steps[0].pattern.test(start):
            continue
        chain, at = [start], i
        for step in steps[1:]:
            prev = chain[-1]
            j = next((j for j in range(at + 1, len(events)) if _fits(events[j], prev, start, step, cond.within)), None)
            if j is None:
                break
            chain.append(events[j])
            at = j
        if len(chain) >= len(best):  # the latest start among the furthest
            best = chain
    if not best or len(best) == len(steps):
        return None
    deadlines = []
    if cond.within is not None:
        deadlines.append(best[0].t + cond.within)
    step_within = steps[len(best)].within
    if step_within is not None:
        deadlines.append(best[-1].t + step_within)
    found = _shape(topo, "sequence", len(best), len(steps), min(deadlines, default=None), now)
    found["done"] = [_step(i + 1, s.pattern, e) for i, (s, e) in enumerate(zip(steps, best, strict=False))]
    found["missing"] = [{"step": i + 1, "event": describe(s.pattern)} for i, s in enumerate(steps) if i >= len(best)]
    unless = cond.unless
    spoiled = None
    if unless is not None:
        spoiled = next((e for e in events if best[0].t <= e.t <= now and e not in best and unless.test(e)), None)
    if spoiled is not None:
        found["open"] = False
        found["spoiled_by"] = _event(spoiled)
    return found


def _fits(e: StoredEvent, prev: StoredEvent, first: StoredEvent, step: Step, span: int | None) -> bool:
    if step.within is not None and e.t - prev.t > step.within:
        return False
    if span is not None and e.t - first.t > span:
        return False
    return step.pattern.test(e)


def _count(topo: Topology, cond: Count, events: list[StoredEvent], now: int) -> dict[str, Any] | None:
    counted = [e for e in events if now - cond.within < e.t <= now and cond.pattern.test(e)]
    if not counted or len(counted) >= cond.at_least:
        return None
    # The window loses its oldest event then: the count must be reached before.
    found = _shape(topo, "count", len(counted), cond.at_least, counted[0].t + cond.within, now)
    found["done"] = [_event(e) for e in counted]
    found["missing"] = [
        {"event": describe(cond.pattern), "more": cond.at_least - len(counted), "within": format_duration(cond.within)}
    ]
    return found


def _absence(topo: Topology, cond: Absence, state: CustomerState, now: int) -> list[dict[str, Any]]:
    out = []
    for timer in state.timers:
        after = state.find(timer.seq)
        if timer.topology != topo.name or after is None:
            continue
        found = _shape(topo, "absence", 1, 2, timer.deadline, now)
        found["done"] = [_step(1, cond.after, after)]
        found["missing"] = [{"step": 2, "no_event": describe(cond.missing), "until": format_time(timer.deadline)}]
        out.append(found)
    return out


def _shape(topo: Topology, kind: str, have: int, need: int, by: int | None, now: int) -> dict[str, Any]:
    return {
        "topology": topo.name,
        "version": topo.version,
        "condition": kind,
        "progress": f"{have} of {need}",
        # An armed absence is not short of anything: it fires unless the missing event comes.
        "near_miss": kind != "absence" and have == need - 1,
        "open": by is None or by > now,
        "complete_by": None if by is None else format_time(by),
    }


def _step(n: int, pattern: Pattern, e: StoredEvent) -> dict[str, Any]:
    return {"step": n, "event": describe(pattern), "matched": _event(e)}


def describe(p: Pattern) -> str:
    """A pattern as a person reads it: ``purchase where category in [phone]``."""
    if not p.where:
        return p.event
    where = " and ".join(f"{k} in [{', '.join(sorted(v))}]" for k, v in p.where)
    return f"{p.event} where {where}"


# -- suppressions and decisions -------------------------------------------------------------


def _event(e: StoredEvent) -> dict[str, Any]:
    return {
        "at": format_time(e.t),
        "type": e.type,
        "channel": e.channel,
        "event_id": e.event_id,
        "attributes": dict(sorted(e.attributes.items())),
    }


def _suppression(s: Suppression, topologies: Mapping[str, Topology], by_id: Mapping[str, Decision]) -> dict[str, Any]:
    made = by_id.get(s.decision_id)
    topo = topologies.get(s.topology)
    return {
        "topology": s.topology,
        "description": (topo.description.strip() or None) if topo is not None else None,
        "channel": s.channel,
        "category": s.category,
        "since": format_time(s.start),
        "until": format_time(s.end),
        "reason": made.reason if made is not None else _suppression_reason(s),
        "status": str(s.status),
        "cause": s.cause,
        "decision_id": s.decision_id,
    }


def _suppression_reason(s: Suppression) -> str:
    what = "any" if s.category == ANY_CATEGORY else s.category
    return f"{s.topology}: no {what} marketing on {s.channel} until {format_time(s.end)}."


def _decision(
    d: Decision, state: CustomerState, topologies: Mapping[str, Topology], by_id: Mapping[str, Decision]
) -> dict[str, Any]:
    said = why(d, state, topologies, by_id)
    return {
        "at": format_time(d.effective_at),
        "kind": str(d.kind),
        "topology": d.topology,
        "version": d.topology_version,
        "channel": d.channel,
        "action": d.action,
        "category": d.category,
        "status": str(d.status),
        "cause": d.cause,
        # The engine's reason says what the match asked for; what became of it follows.
        "reason": d.reason if not said else f"{d.reason} {said}",
        "decision_id": d.decision_id,
    }


def why(d: Decision, state: CustomerState, topologies: Mapping[str, Topology], by_id: Mapping[str, Decision]) -> str:
    """What stopped ``d``, as a sentence naming the suppression, cap or rival; empty when it was emitted
    (or is a GOAL record, whose reason says it all)."""
    status, cause = d.status, d.cause or ""
    if d.kind == Kind.GOAL or status == Status.EMITTED:
        return ""
    if status == Status.BLOCKED and cause.startswith(SUPPRESSED_BY):
        return f"Blocked by {_name_suppression(cause[len(SUPPRESSED_BY) :], state, topologies, by_id)}."
    if status == Status.BLOCKED and cause.startswith("cap "):
        _, channel, _, most, _, per = cause.split(" ", 5)
        where = "all channels together" if channel == ANY_CATEGORY else channel
        return f"Blocked by a frequency cap of the policies: at most {most} engagements on {where} per {per}."
    if status == Status.OUTRANKED and cause.startswith(OUTRANKED_BY):
        rival = cause[len(OUTRANKED_BY) :]
        winner = by_id.get(rival)
        if winner is None:
            return f"Outranked by an engagement of higher priority on {d.channel} ({rival})."
        return f"Outranked by {winner.topology}'s {winner.action} on {winner.channel}, of higher priority."
    if status == Status.SKIPPED:
        return f"Skipped: the {cause} could not be filled from the matched events."
    if status == Status.HELD_OUT:
        return f"Held out, never sent: {_arm_words(cause)}."
    if status == Status.SHADOW:
        return "Shadow, never sent: the topology runs in shadow mode."
    return f"{status.capitalize()}: {cause}." if cause else f"{status.capitalize()}."


def _name_suppression(
    decision_id: str, state: CustomerState, topologies: Mapping[str, Topology], by_id: Mapping[str, Decision]
) -> str:
    s = next((s for s in state.suppressions if s.decision_id == decision_id), None)
    if s is None:
        made = by_id.get(decision_id)
        if made is None:
            return f"a suppression no longer kept ({decision_id})"
        what = "any" if made.category == ANY_CATEGORY else made.category
        reason = _why_made(made.topology, topologies, made.reason)
        return f"{made.topology}'s suppression of {what} marketing on {made.channel} ({reason})"
    what = "any" if s.category == ANY_CATEGORY else s.category
    made = by_id.get(decision_id)
    reason = _why_made(s.topology, topologies, made.reason if made is not None else None)
    said = f"{s.topology}'s suppression of {what} marketing on {s.channel}, in force until {format_time(s.end)}"
    return f"{said} ({reason})" if reason else said


def _why_made(topology: str, topologies: Mapping[str, Topology], reason: str | None) -> str:
    """Why a topology suppresses: its description, else the reason its SUPPRESS decision gave."""
    topo = topologies.get(topology)
    text = topo.description.strip() if topo is not None and topo.description else reason or ""
    return text.rstrip(".")


def _arm_words(arm: str) -> str:
    return {
        Arm.TREATED: "treated",
        Arm.SHADOW: "shadow mode",
        Arm.HOLDOUT_GLOBAL: "the customer is in the global control group",
        Arm.HOLDOUT_TOPOLOGY: "the customer is in this topology's control group",
    }.get(arm, arm)
