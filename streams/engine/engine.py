"""The decision engine: pure functions of (catalog, customer state, input).

No Kafka, Redis or clock in here. :class:`Engine` mutates the customer state it
is given (the caller owns storing it) and returns the decisions of one
evaluation: everything one arriving event causes, or everything one customer's
deadlines at one instant cause (contract section 4.4).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from streams.decisions import Decision, Kind, Status, decision_id
from streams.engine.matching import SearchExhausted, count_evidence, fill_sequence
from streams.engine.state import CustomerState, StoredEvent, Suppression, Timer
from streams.events import Event
from streams.timeutil import format_duration, format_time
from streams.topology.model import (
    ANY_CATEGORY,
    Absence,
    Catalog,
    Count,
    Engage,
    QuietHours,
    Sequence,
    Suppress,
    Topology,
    zone,
)


@dataclass(slots=True)
class Match:
    topology: Topology
    effective: int
    evidence: tuple[StoredEvent, ...]
    bindings: dict[str, StoredEvent]
    # Whose attributes give the time zone (the last event; for absence, the after event).
    anchor: StoredEvent


class Engine:
    """Evaluates events and deadlines for one customer at a time."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.policies = catalog.policies
        self._rank = {t.name: i for i, t in enumerate(catalog.topologies)}
        self._kept = catalog.kept_attributes
        self._max_cap_window = max((c.per for c in self.policies.caps), default=0)
        self._max_cooldown = max((t.cooldown for t in catalog.topologies), default=0)
        # Counters for metrics and summaries; they never influence decisions.
        self.stats: Counter[str] = Counter()

    def reads(self, event_type: str) -> bool:
        """Whether any topology reads events of this type (others are dropped at once)."""
        return event_type in self.catalog.roles

    # -- evaluations -------------------------------------------------------------------

    def on_event(self, state: CustomerState, ev: Event) -> list[Decision]:
        """Evaluate one arriving, valid, on-time, not-duplicate event the catalog reads."""
        roles = self.catalog.roles[ev.type]
        kept = self._kept
        attrs = {k: v for k, v in ev.attributes.items() if k in kept} if ev.attributes else {}
        stored = StoredEvent(state.next_seq, ev.occurred_at, ev.event_id, ev.type, ev.channel, attrs)
        state.next_seq += 1

        decisions: list[Decision] = []
        for topo in roles.releases:
            assert topo.release_on is not None
            if topo.release_on.test(stored):
                decisions.extend(self._release(state, topo, ev.customer_id, stored))

        index = state.insert(stored)
        matches: list[Match] = []
        for topo in roles.triggers:
            cond = topo.when
            if isinstance(cond, Sequence):
                matches.extend(self._sequence_matches(topo, cond, state.events, index))
            elif isinstance(cond, Count):
                matches.extend(self._count_matches(topo, cond, state.events, index))
        for topo in roles.arms:
            cond = topo.when
            assert isinstance(cond, Absence)
            if cond.after.test(stored):
                timer = Timer(stored.t + cond.duration, topo.name, stored.seq)
                state.timers.append(timer)
                state.timers.sort()
        if matches:
            decisions.extend(self._apply(state, ev.customer_id, matches))
        return decisions

    def on_deadline(self, state: CustomerState, customer_id: str, deadline: int) -> list[Decision]:
        """Fire every timer of this customer due at ``deadline``."""
        due = [tm for tm in state.timers if tm.deadline == deadline]
        if not due:
            return []
        state.timers = [tm for tm in state.timers if tm.deadline != deadline]
        matches: list[Match] = []
        for tm in due:
            topo = self.catalog.get(tm.topology)
            after = state.find(tm.seq)
            if topo is None or after is None or not isinstance(topo.when, Absence):
                self.stats["timers_orphaned"] += 1  # topology removed, or state from another catalog
                continue
            cond = topo.when
            end = after.t + cond.duration
            if any(after.t < e.t <= end and cond.missing.test(e) for e in state.events):
                continue
            binds = {cond.bind: after} if cond.bind else {}
            matches.append(Match(topo, deadline, (after,), binds, after))
        return self._apply(state, customer_id, matches) if matches else []

    def prune(self, state: CustomerState, watermark: int) -> None:
        state.prune(watermark - self.policies.retention, self._max_cap_window, self._max_cooldown)

    # -- matching -------------------------------------------------------------------------

    def _sequence_matches(self, topo: Topology, cond: Sequence, events: list[StoredEvent], index: int) -> list[Match]:
        new = events[index]
        if not any(s.pattern.test(new) for s in cond.steps):
            return []
        last_step = cond.steps[-1].pattern
        found: list[Match] = []
        # The new event, and any later stored completing event still waiting for it.
        for j in range(index, len(events)):
            cand = events[j]
            if cand.is_done(topo.name) or not last_step.test(cand):
                continue
            try:
                filling = fill_sequence(cond, events, j)
            except SearchExhausted:
                self.stats["search_exhausted"] += 1
                continue
            if filling is None:
                continue
            cand.mark_done(topo.name)
            binds = {s.bind: e for s, e in zip(cond.steps, filling, strict=True) if s.bind}
            found.append(Match(topo, cand.t, tuple(filling), binds, cand))
        return found

    def _count_matches(self, topo: Topology, cond: Count, events: list[StoredEvent], index: int) -> list[Match]:
        new = events[index]
        if not cond.pattern.test(new):
            return []
        found: list[Match] = []
        for j in range(index, len(events)):
            cand = events[j]
            if cand.t - new.t >= cond.within:
                break  # its window (t - within, t] no longer holds the new event
            if cand.is_done(topo.name) or not cond.pattern.test(cand):
                continue
            evidence = count_evidence(cond, events, j)
            if evidence is None:
                continue
            cand.mark_done(topo.name)
            binds = {cond.bind: cand} if cond.bind else {}
            found.append(Match(topo, cand.t, tuple(evidence), binds, cand))
        return found

    # -- actions, policies and arbitration ------------------------------------------------

    def _apply(self, state: CustomerState, customer: str, matches: list[Match]) -> list[Decision]:
        rank = self._rank
        matches.sort(key=lambda m: (rank[m.topology.name], m.effective, m.anchor.seq))
        out: list[Decision] = []
        made_now: set[str] = set()
        # Engagements still emitted after 4.1: (position in `out`, priority, match).
        standing: list[tuple[int, int, Match]] = []
        for m in matches:
            topo = m.topology
            last = state.last_fired.get(topo.name)
            if last is not None and m.effective < last + topo.cooldown:
                self.stats["cooldown_held"] += 1
                continue
            state.last_fired[topo.name] = m.effective if last is None else max(last, m.effective)
            self.stats["matches_fired"] += 1
            evidence = tuple(e.event_id for e in m.evidence)
            for action in topo.then:
                if isinstance(action, Suppress):
                    category = action.category.render(m.bindings)
                    for channel in action.channels:
                        d = self._suppress(state, m, customer, evidence, action, channel, category)
                        if d.emitted:
                            made_now.add(d.decision_id)
                        out.append(d)
                else:
                    d = self._engage(state, m, customer, evidence, action, made_now)
                    if d.emitted:
                        standing.append(
                            (len(out), action.priority if action.priority is not None else topo.priority, m)
                        )
                    out.append(d)
        if standing:
            self._settle(state, out, standing)
        return out

    def _suppress(
        self,
        state: CustomerState,
        m: Match,
        customer: str,
        evidence: tuple[str, ...],
        action: Suppress,
        channel: str,
        category: str | None,
    ) -> Decision:
        """One channel's SUPPRESS; an emitted one is in force from now on (4.4), so it goes into ``state``."""
        if category is None:
            return _decision(
                m,
                customer,
                evidence,
                Kind.SUPPRESS,
                channel,
                None,
                None,
                reason=_matched(m),
                status=Status.SKIPPED,
                cause=f"template {action.category.text}",
            )
        expires_at = m.effective + action.duration
        d = _decision(
            m,
            customer,
            evidence,
            Kind.SUPPRESS,
            channel,
            category,
            None,
            expires_at=expires_at,
            reason=_suppress_reason(m, channel, category, expires_at),
        )
        state.suppressions.append(
            Suppression(m.topology.name, channel, category, m.effective, expires_at, d.decision_id)
        )
        return d

    def _engage(
        self,
        state: CustomerState,
        m: Match,
        customer: str,
        evidence: tuple[str, ...],
        action: Engage,
        made_now: set[str],
    ) -> Decision:
        """The engagement as 4.1 leaves it: skipped, blocked by a suppression, or emitted.

        An emitted one has ``not_before`` at its effective time; :meth:`_settle`
        replaces it where arbitration, a cap or quiet hours say otherwise.
        """
        topo = m.topology
        name = action.action.render(m.bindings)
        category = action.category.render(m.bindings) if action.category else None
        if name is None or (action.category is not None and category is None):
            missing = action.action if name is None else action.category
            assert missing is not None
            return _decision(
                m,
                customer,
                evidence,
                Kind.ENGAGE,
                action.channel,
                category,
                name,
                reason=_matched(m),
                status=Status.SKIPPED,
                cause=f"template {missing.text}",
            )
        expires_at = None if action.expires is None else m.effective + action.expires
        reason = (
            f"{topo.name} v{topo.version} matched {_types(m)}: "
            f"{name} on {action.channel}{f' for {category}' if category else ''}."
        )
        status, cause = Status.EMITTED, None
        for s in state.suppressions:
            if s.channel != action.channel:
                continue
            if not (s.decision_id in made_now or s.active_at(m.effective)):
                continue
            if s.category == ANY_CATEGORY or category is None or s.category == category:
                status, cause = Status.BLOCKED, f"suppressed_by {s.decision_id}"
                break
        return _decision(
            m,
            customer,
            evidence,
            Kind.ENGAGE,
            action.channel,
            category,
            name,
            expires_at=expires_at,
            not_before=m.effective,
            reason=reason,
            status=status,
            cause=cause,
        )

    def _settle(self, state: CustomerState, out: list[Decision], standing: list[tuple[int, int, Match]]) -> None:
        """Arbitration, then caps and quiet hours on the winners (4.4, 4.2, 4.3), in place in ``out``.

        Per channel and instant, the highest priority stands (first applied on
        ties); the others are outranked. Rivals are engagements of the same
        effective time: an out-of-order event can complete matches at several
        times in one evaluation, and those would have been separate
        evaluations had the events arrived in time order (contract section 2).
        A winner blocked by a cap does not promote the runner-up.
        """
        best: dict[tuple[str, int], tuple[int, int]] = {}
        for i, prio, _ in standing:
            d = out[i]
            slot = (d.channel, d.effective_at)
            cur = best.get(slot)
            if cur is None or prio > cur[1]:
                best[slot] = (i, prio)
        for i, _, m in standing:
            d = out[i]
            winner = best[(d.channel, d.effective_at)][0]
            if i != winner:
                out[i] = replace(d, status=Status.OUTRANKED, cause=f"outranked_by {out[winner].decision_id}")
                continue
            cap = self._cap_exceeded(state, d)
            if cap is not None:
                out[i] = replace(d, status=Status.BLOCKED, cause=cap)
                continue
            state.engagements.append((d.effective_at, d.channel))
            not_before = self._not_before(d, m)
            if not_before != d.not_before:
                out[i] = replace(d, not_before=not_before)

    def _cap_exceeded(self, state: CustomerState, d: Decision) -> str | None:
        t = d.effective_at
        for cap in self.policies.caps:
            floor = t - cap.per
            n = sum(
                1
                for at, ch in state.engagements
                if floor < at <= t and (cap.channel == ANY_CATEGORY or ch == cap.channel)
            )
            if cap.channel in (ANY_CATEGORY, d.channel) and n + 1 > cap.max:
                return f"cap {cap.channel} max {cap.max} per {format_duration(cap.per)}"
        return None

    def _not_before(self, d: Decision, m: Match) -> int:
        quiet = self.policies.quiet_hours
        if quiet is None or d.channel not in quiet.channels:
            return d.effective_at
        return quiet_end(quiet, d.effective_at, m.anchor.attributes.get(quiet.timezone_attribute))

    def _release(self, state: CustomerState, topo: Topology, customer: str, ev: StoredEvent) -> list[Decision]:
        released: dict[tuple[str, str], None] = {}
        for s in state.suppressions:
            if s.topology == topo.name and s.active_at(ev.t):
                s.end = ev.t
                released[(s.channel, s.category)] = None
        out = []
        for channel, category in released:
            evidence = (ev.event_id,)
            out.append(
                Decision(
                    decision_id=decision_id(
                        topo.name, topo.version, customer, evidence, Kind.RELEASE, channel, category, None
                    ),
                    customer_id=customer,
                    kind=Kind.RELEASE,
                    channel=channel,
                    action=None,
                    category=category,
                    topology=topo.name,
                    topology_version=topo.version,
                    effective_at=ev.t,
                    expires_at=None,
                    not_before=None,
                    evidence=evidence,
                    reason=f"{ev.type} released the {topo.name} suppression of {category} marketing on {channel}.",
                )
            )
        return out


def _decision(
    m: Match,
    customer: str,
    evidence: tuple[str, ...],
    kind: Kind,
    channel: str,
    category: str | None,
    action: str | None,
    *,
    expires_at: int | None = None,
    not_before: int | None = None,
    reason: str,
    status: Status = Status.EMITTED,
    cause: str | None = None,
) -> Decision:
    """A decision of match ``m``, built once with its settled values."""
    topo = m.topology
    return Decision(
        decision_id=decision_id(topo.name, topo.version, customer, evidence, kind, channel, category, action),
        customer_id=customer,
        kind=kind,
        channel=channel,
        action=action,
        category=category,
        topology=topo.name,
        topology_version=topo.version,
        effective_at=m.effective,
        expires_at=expires_at,
        not_before=not_before,
        evidence=evidence,
        reason=reason,
        status=status,
        cause=cause,
    )


def _matched(m: Match) -> str:
    return f"{m.topology.name} v{m.topology.version} matched {_types(m)}."


def _types(m: Match) -> str:
    when = m.topology.when
    if isinstance(when, Absence):
        return f"{m.evidence[0].type} with no {when.missing.event} for {format_duration(when.duration)}"
    return ", ".join(e.type for e in m.evidence)


def _suppress_reason(m: Match, channel: str, category: str, until: int) -> str:
    what = "any" if category == ANY_CATEGORY else category
    return (
        f"{m.topology.name} v{m.topology.version} matched {_types(m)}: "
        f"no {what} marketing on {channel} until {format_time(until)}."
    )


def quiet_end(quiet: QuietHours, t: int, zone_name: str | None) -> int:
    """``t`` itself, or the end of the quiet window ``t`` falls in, local to the zone."""
    tz = (zone(zone_name) if zone_name else None) or zone(quiet.default_timezone)
    local = datetime.fromtimestamp(t / 1000, tz)
    ms_of_day = ((local.hour * 60 + local.minute) * 60 + local.second) * 1000 + local.microsecond // 1000
    start, end = quiet.start_ms, quiet.end_ms
    if start == end:
        return t
    if start < end:
        inside, next_day = start <= ms_of_day < end, False
    else:
        inside = ms_of_day >= start or ms_of_day < end
        next_day = ms_of_day >= start
    if not inside:
        return t
    day = local.date() + timedelta(days=1 if next_day else 0)
    h, rem = divmod(end // 60_000, 60)
    end_local = datetime(day.year, day.month, day.day, h, rem, tzinfo=tz)
    return int(end_local.timestamp() * 1000)
