"""One pass over the audit, then one over the touchpoints: everything the report shows.

The audit comes first (:meth:`Aggregator.add_audit`). A fired match is
identified by (topology, customer, evidence); a GOAL record names its match
by its evidence less the goal event when ``reached``, its whole evidence when
``missed``. Per match the aggregator keeps only its arm (as far as the records
show it), its goal outcome and the best status of its decisions; per
topology, counters. Decision ids are kept (as one small int each) so that a
blocked or outranked decision's cause can name the topology behind it, and
so that channel outcomes can be joined to the decision they report on.

Arms (contract 7.3): a ``held_out`` decision's cause, ``shadow``, an emitted
decision (``treated``), a GOAL record's cause, or an explicit ``arm`` field
(preferred) show the arm. A match none of whose records shows one (all its
decisions blocked, outranked or skipped, no GOAL record yet) gets the arm
computed from the catalog (:mod:`streams.report.arms`) when one is given,
else ``unknown``.

Then the touchpoints (:meth:`Aggregator.add_touchpoint`), in file (arrival)
order. Channel outcomes (``decision.*``, 7.5) feed the funnel per channel and
per topology, counted once per decision and stage. For the journey Sankey the
aggregator remembers, only for customers with a match, their last
``path_length`` events (type and channel); when the event that completed a
match (its last evidence event) comes by, that path is the match's way in.

Memory is bounded by matches and decisions, never by events: a million
customers fit comfortably. :meth:`result` returns the report as plain JSON
data (the ``--json`` shape, see :mod:`streams.report`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from streams.report import arms as A
from streams.report.arms import HoldoutCatalog
from streams.report.stats import Rate, uplift
from streams.timeutil import format_time, parse_time

OUTCOME_STAGES = (
    "delivered",
    "opened",
    "clicked",
    "converted",
    "dismissed",
    "complained",
    "unsubscribed",
    "failed",
)
_STAGE_BIT = {f"decision.{s}": 1 << i for i, s in enumerate(OUTCOME_STAGES)}

# A match's decisions, best first: what the Sankey shows as "its decision".
STATUS_ORDER = ("emitted", "held_out", "shadow", "blocked", "outranked", "skipped")
_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}
_NO_DECISION = len(STATUS_ORDER)  # a match known only from its GOAL record

GOAL_REACHED, GOAL_MISSED, GOAL_OPEN, NO_GOAL = "goal reached", "goal missed", "goal open", "no goal"

_REF = re.compile(r"^(\w+_by) (\S+)$")  # "suppressed_by <decision id>", "outranked_by <decision id>"

# Per match: [arm shown by records or None, goal status or None, best status rank, topology index,
#             customer, completing event id, path (tuple of label ids) or None, evidence]
_ARM, _GOAL, _BEST, _TOPO, _CUST, _ANCHOR, _PATH, _EVIDENCE = range(8)

# Per decision id, one int: topology index << 16 | channel index << 1 | emitted ENGAGE.
_CHANNEL_BITS = 15


@dataclass
class _Topology:
    name: str
    index: int
    versions: set[int]
    decisions: Counter[tuple[str, str, str | None]]  # (kind, status, cause) -> count
    goals_seen: bool = False


class Aggregator:
    """Feed it the audit, then the touchpoints; :meth:`result` gives the report data."""

    def __init__(
        self,
        catalog: HoldoutCatalog | None = None,
        *,
        customer: str | None = None,
        path_length: int = 3,
    ) -> None:
        self.catalog = catalog
        self.customer = customer
        self.path_length = max(1, path_length)
        self._topologies: dict[str, _Topology] = {}
        self._topology_list: list[_Topology] = []
        self._matches: dict[str, list[Any]] = {}
        self._ids: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._channel_list: list[str] = []
        self._sent: Counter[tuple[int, int]] = Counter()  # (topology, channel) -> emitted ENGAGE
        self._masks: dict[str, int] = {}  # decision_id -> outcome stages seen
        self._outcome_channel: dict[str, str] = {}  # decision_id unknown to the audit -> event channel
        self._labels: dict[tuple[str, str | None], int] = {}
        self._label_list: list[tuple[str, str | None]] = []
        self._tracked: dict[str, tuple[int, ...]] = {}
        self._anchors: dict[str, list[list[Any]]] = {}
        self.audit_records = 0
        self.touchpoints = 0
        self.bad_audit = 0
        self.bad_touchpoints = 0
        self._timeline: list[dict[str, Any]] = []
        self._touchpoints_read = False

    # --- the audit ------------------------------------------------------------------

    def _topology(self, name: str) -> _Topology:
        t = self._topologies.get(name)
        if t is None:
            t = _Topology(name, len(self._topology_list), set(), Counter())
            self._topologies[name] = t
            self._topology_list.append(t)
        return t

    def _channel(self, name: object) -> int:
        key = name if isinstance(name, str) else "unknown"
        i = self._channels.get(key)
        if i is None:
            if len(self._channel_list) >= (1 << _CHANNEL_BITS) - 1:  # a hostile audit: the rest share one
                key = "other channels"
                i = self._channels.get(key)
                if i is not None:
                    return i
            i = len(self._channel_list)
            self._channels[key] = i
            self._channel_list.append(key)
        return i

    def add_audit_records(self, records: Iterable[dict[str, Any]]) -> None:
        add = self.add_audit
        for r in records:
            add(r)

    def add_audit(self, r: dict[str, Any]) -> None:
        """One audit record (a decision with status and cause, or a GOAL record)."""
        try:
            kind = r["kind"]
            topo_name = r["topology"]
            customer = r["customer_id"]
            evidence = r["evidence"]
        except (KeyError, TypeError):
            self.bad_audit += 1
            return
        status = r.get("status") or "emitted"
        if (
            not isinstance(evidence, list)
            # A reached GOAL's evidence is its match's evidence and then the goal event.
            or len(evidence) < (2 if kind == "GOAL" and status == "reached" else 1)
            or not isinstance(topo_name, str)
            or not isinstance(customer, str)
        ):
            self.bad_audit += 1
            return
        self.audit_records += 1
        cause = r.get("cause")
        t = self._topology(topo_name)
        version = r.get("topology_version")
        if version not in t.versions and isinstance(version, int):
            t.versions.add(version)
        if customer == self.customer:
            self._timeline.append(_audit_entry(r))
        if kind == "GOAL":
            t.goals_seen = True
            own = evidence[:-1] if status == "reached" else evidence
            m = self._match(t, customer, own)
            m[_GOAL] = status
            if m[_ARM] is None and cause:
                m[_ARM] = cause
        else:
            t.decisions[(kind, status, cause)] += 1
            decision_id = r.get("decision_id")
            channel = r.get("channel")
            if kind != "RELEASE":
                m = self._match(t, customer, evidence)
                rank = _RANK.get(status, _NO_DECISION)
                if rank < m[_BEST]:
                    m[_BEST] = rank
                if m[_ARM] is None:
                    if status == "held_out" and cause:
                        m[_ARM] = cause
                    elif status == "shadow":
                        m[_ARM] = A.SHADOW
                    elif status == "emitted":
                        m[_ARM] = A.TREATED
            if isinstance(decision_id, str) and kind != "RELEASE":  # a RELEASE is never a cause nor reported on
                ch = self._channel(channel)
                engaged = kind == "ENGAGE" and status == "emitted"
                self._ids[decision_id] = t.index << 16 | ch << 1 | engaged
                if engaged:
                    self._sent[(t.index, ch)] += 1
        arm = r.get("arm")
        if isinstance(arm, str) and arm and kind != "RELEASE":
            own = evidence[:-1] if kind == "GOAL" and status == "reached" else evidence
            self._match(t, customer, own)[_ARM] = arm

    def _match(self, t: _Topology, customer: str, evidence: list[str]) -> list[Any]:
        key = f"{t.index}\x1f{customer}\x1f" + "\x1e".join(evidence)
        m = self._matches.get(key)
        if m is None:
            m = [None, None, _NO_DECISION, t.index, customer, evidence[-1], None, evidence]
            self._matches[key] = m
        return m

    # --- the touchpoints --------------------------------------------------------------

    def _prepare_paths(self) -> None:
        if self._touchpoints_read:
            return
        self._touchpoints_read = True
        for m in self._matches.values():
            self._tracked.setdefault(m[_CUST], ())
            self._anchors.setdefault(m[_ANCHOR], []).append(m)

    def add_touchpoint_records(self, records: Iterable[dict[str, Any]]) -> None:
        self._prepare_paths()
        add = self.add_touchpoint
        for r in records:
            add(r)

    def add_touchpoint(self, r: dict[str, Any]) -> None:
        """One touchpoint event (after the whole audit)."""
        self._prepare_paths()
        customer = r.get("customer_id")
        kind = r.get("type")
        if not isinstance(customer, str) or not isinstance(kind, str):
            self.bad_touchpoints += 1
            return
        self.touchpoints += 1
        channel = r.get("channel")
        bit = _STAGE_BIT.get(kind)
        if bit is not None:
            attributes = r.get("attributes")
            decision_id = attributes.get("decision_id") if isinstance(attributes, dict) else None
            if isinstance(decision_id, str):
                self._masks[decision_id] = self._masks.get(decision_id, 0) | bit
                if decision_id not in self._ids and isinstance(channel, str):
                    self._outcome_channel.setdefault(decision_id, channel)
        path = self._tracked.get(customer)
        if path is not None:
            key = (kind, channel if isinstance(channel, str) else None)
            label = self._labels.get(key)
            if label is None:
                label = self._labels[key] = len(self._label_list)
                self._label_list.append(key)
            path = (*path[1 - self.path_length :], label) if self.path_length > 1 else (label,)
            self._tracked[customer] = path
            matches = self._anchors.get(r.get("event_id"))  # type: ignore[arg-type]
            if matches:
                for m in matches:
                    if m[_CUST] == customer:
                        m[_PATH] = path
        if customer == self.customer:
            self._timeline.append(_event_entry(r))

    # --- the result -------------------------------------------------------------------------

    def _arm(self, m: list[Any]) -> str:
        if m[_ARM] is not None:
            return str(m[_ARM])
        if self.catalog is not None:
            return self.catalog.arm(self._topology_list[m[_TOPO]].name, m[_CUST])
        return A.UNKNOWN

    def _has_goal(self, t: _Topology) -> bool:
        if t.goals_seen:
            return True
        if self.catalog is not None:
            known = self.catalog.topologies.get(t.name)
            return known is not None and known.has_goal
        return False

    def _goal_label(self, m: list[Any], has_goal: bool) -> str:
        if m[_GOAL] == "reached":
            return GOAL_REACHED
        if m[_GOAL] == "missed":
            return GOAL_MISSED
        return GOAL_OPEN if has_goal else NO_GOAL

    def _cause(self, cause: str | None) -> str | None:
        """A cause that names a decision id names that decision's topology too."""
        if not cause:
            return cause
        found = _REF.match(cause)
        if found is None:
            return cause
        packed = self._ids.get(found.group(2))
        if packed is None:
            return f"{found.group(1)} (a decision not in this audit)"
        return f"{found.group(1)} {self._topology_list[packed >> 16].name}"

    def result(self) -> dict[str, Any]:
        """The report as JSON data (see :mod:`streams.report` for the shape)."""
        has_goal = {t.index: self._has_goal(t) for t in self._topology_list}
        arms: list[Counter[str]] = [Counter() for _ in self._topology_list]
        goals: list[dict[str, Counter[str]]] = [{} for _ in self._topology_list]
        flows: list[list[tuple[tuple[int, ...] | None, str, str, str]]] = [[] for _ in self._topology_list]
        for m in self._matches.values():
            i = m[_TOPO]
            arm = self._arm(m)
            goal = self._goal_label(m, has_goal[i])
            arms[i][arm] += 1
            goals[i].setdefault(arm, Counter())[goal] += 1
            best = STATUS_ORDER[m[_BEST]] if m[_BEST] < _NO_DECISION else "no decision"
            flows[i].append((m[_PATH], arm, best, goal))
        topologies = [
            self._topology_result(t, arms[t.index], goals[t.index], has_goal[t.index]) for t in self._topology_list
        ]
        topologies.sort(key=lambda x: x["topology"])
        from streams.report.sankey import build_sankey

        labels = [f"{k} · {c}" if c else k for k, c in self._label_list]
        sankey = {
            "all": build_sankey([f for t in self._topology_list for f in _named(flows[t.index], t.name)], labels),
            "topologies": {
                t.name: build_sankey(_named(flows[t.index], t.name), labels)
                for t in sorted(self._topology_list, key=lambda t: t.name)
            },
        }
        out: dict[str, Any] = {
            "inputs": {
                "audit_records": self.audit_records,
                "audit_records_unreadable": self.bad_audit,
                "touchpoints": self.touchpoints if self._touchpoints_read else None,
                "touchpoints_unreadable": self.bad_touchpoints,
                "matches": len(self._matches),
                "arms_from_catalog": self.catalog is not None,
                "path_length": self.path_length,
            },
            "topologies": topologies,
            "channels": self._funnels(),
            "sankey": sankey,
            "customer": self._customer_result() if self.customer is not None else None,
        }
        return out

    def _topology_result(
        self, t: _Topology, arms: Counter[str], goals: dict[str, Counter[str]], has_goal: bool
    ) -> dict[str, Any]:
        decisions: Counter[tuple[str, str, str | None]] = Counter()
        for (kind, status, cause), n in t.decisions.items():
            decisions[(kind, status, self._cause(cause))] += n
        rates = {
            arm: Rate(c[GOAL_REACHED], c[GOAL_MISSED], c[GOAL_OPEN]) for arm, c in sorted(goals.items()) if has_goal
        }
        treated = rates.get(A.TREATED, Rate(0, 0))
        control = Rate(
            sum(rates[a].reached for a in A.CONTROL_ARMS if a in rates),
            sum(rates[a].missed for a in A.CONTROL_ARMS if a in rates),
            sum(rates[a].open for a in A.CONTROL_ARMS if a in rates),
        )
        goal: dict[str, Any] | None = None
        if has_goal:
            u = uplift(treated, control)
            goal = {
                "arms": {arm: _rate_json(r) for arm, r in rates.items()},
                "control": _rate_json(control),
                "uplift": {
                    "absolute": u.absolute,
                    "absolute_interval": _pair(u.absolute_interval),
                    "relative": u.relative,
                    "relative_interval": _pair(u.relative_interval),
                    "verdict": u.verdict,
                    "incremental_goals": u.incremental,
                    "incremental_interval": _pair(u.incremental_interval),
                },
            }
        return {
            "topology": t.name,
            "versions": sorted(t.versions),
            "matches": {arm: arms[arm] for arm in sorted(arms, key=_arm_order)},
            "matches_total": sum(arms.values()),
            "decisions": [
                {"kind": k, "status": s, "cause": c, "count": n}
                for (k, s, c), n in sorted(decisions.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
            ],
            "goal": goal,
        }

    def _funnels(self) -> list[dict[str, Any]]:
        per: dict[str, Counter[str]] = {}
        per_topology: dict[tuple[str, str], Counter[str]] = {}
        for (ti, ch), n in self._sent.items():
            name = self._channel_list[ch]
            per.setdefault(name, Counter())["sent"] += n
            per_topology.setdefault((name, self._topology_list[ti].name), Counter())["sent"] += n
        for decision_id, mask in self._masks.items():
            packed = self._ids.get(decision_id)
            if packed is not None:
                name = self._channel_list[(packed >> 1) & ((1 << _CHANNEL_BITS) - 1)]
                topology: str | None = self._topology_list[packed >> 16].name
            else:
                name = self._outcome_channel.get(decision_id, "unknown")
                topology = None
            c = per.setdefault(name, Counter())
            ct = per_topology.setdefault((name, topology or "(not in the audit)"), Counter())
            for i, stage in enumerate(OUTCOME_STAGES):
                if mask >> i & 1:
                    c[stage] += 1
                    ct[stage] += 1
        out = []
        for name in sorted(per):
            row = _funnel_json(per[name])
            row["channel"] = name
            row["topologies"] = [
                {"topology": topo, **_funnel_json(c)} for (ch, topo), c in sorted(per_topology.items()) if ch == name
            ]
            out.append(row)
        return out

    def _customer_path(self, order: list[tuple[str, tuple[str, str | None]]], anchor: str) -> tuple[int, ...] | None:
        """Up to :data:`CUSTOMER_PATH` of the customer's events, ending with the one that completed the match."""
        ends = [i for i, (event_id, _) in enumerate(order) if event_id == anchor]
        if not ends:
            return None
        path = []
        for _, key in order[max(0, ends[-1] + 1 - CUSTOMER_PATH) : ends[-1] + 1]:
            label = self._labels.get(key)
            if label is None:
                label = self._labels[key] = len(self._label_list)
                self._label_list.append(key)
            path.append(label)
        return tuple(path)

    def _customer_result(self) -> dict[str, Any]:
        timeline = []
        order: list[tuple[str, tuple[str, str | None]]] = []  # the customer's events in file order
        for entry in self._timeline:
            entry = {**entry}
            if "cause" in entry:
                entry["cause"] = self._cause(entry["cause"])
            elif isinstance(entry.get("event_id"), str) and isinstance(entry.get("type"), str):
                channel = entry.get("channel")
                order.append((entry["event_id"], (entry["type"], channel if isinstance(channel, str) else None)))
            timeline.append(entry)
        timeline.sort(key=lambda e: (e["at_ms"], e["order"]))
        for e in timeline:
            del e["at_ms"], e["order"]
        matches = []
        flows = []
        for m in self._matches.values():
            if m[_CUST] != self.customer:
                continue
            t = self._topology_list[m[_TOPO]]
            best = STATUS_ORDER[m[_BEST]] if m[_BEST] < _NO_DECISION else "no decision"
            goal = self._goal_label(m, self._has_goal(t))
            arm = self._arm(m)
            matches.append(
                {"topology": t.name, "evidence": list(m[_EVIDENCE]), "arm": arm, "decision": best, "goal": goal}
            )
            flows.append((t.name, self._customer_path(order, m[_ANCHOR]), arm, best, goal))
        from streams.report.sankey import build_sankey

        labels = [f"{k} · {c}" if c else k for k, c in self._label_list]
        matches.sort(key=lambda x: (x["topology"], x["evidence"]))
        return {
            "customer_id": self.customer,
            "timeline": timeline,
            "matches": matches,
            "sankey": build_sankey(flows, labels),
        }


CUSTOMER_PATH = 8  # events shown before one customer's match: the whole recent story, not only the last steps


def _named(
    flows: list[tuple[tuple[int, ...] | None, str, str, str]], name: str
) -> list[tuple[str, tuple[int, ...] | None, str, str, str]]:
    return [(name, *f) for f in flows]


def _arm_order(arm: str) -> int:
    order = (*A.ARMS, A.UNKNOWN)
    return order.index(arm) if arm in order else len(order)


def _pair(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


def _rate_json(r: Rate) -> dict[str, Any]:
    return {
        "reached": r.reached,
        "missed": r.missed,
        "open": r.open,
        "rate": r.rate,
        "interval": _pair(r.interval),
    }


def _funnel_json(c: Counter[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"sent": c["sent"]}
    for stage in OUTCOME_STAGES:
        row[stage] = c[stage]
    return row


def _time(value: object) -> int:
    try:
        return parse_time(value)
    except ValueError:
        return 0


def _audit_entry(r: dict[str, Any]) -> dict[str, Any]:
    at = _time(r.get("effective_at"))
    kind = r.get("kind")
    return {
        "at_ms": at,
        "order": 1,
        "at": format_time(at),
        "what": "goal" if kind == "GOAL" else "decision",
        "kind": kind,
        "topology": r.get("topology"),
        "channel": r.get("channel"),
        "action": r.get("action"),
        "category": r.get("category"),
        "status": r.get("status") or "emitted",
        "cause": r.get("cause"),
        "evidence": list(r.get("evidence") or ()),
        "reason": r.get("reason"),
        "decision_id": r.get("decision_id"),
    }


def _event_entry(r: dict[str, Any]) -> dict[str, Any]:
    at = _time(r.get("occurred_at"))
    attributes = r.get("attributes")
    return {
        "at_ms": at,
        "order": 0,
        "at": format_time(at),
        "what": "event",
        "type": r.get("type"),
        "channel": r.get("channel"),
        "event_id": r.get("event_id"),
        "attributes": dict(attributes) if isinstance(attributes, dict) else {},
    }
