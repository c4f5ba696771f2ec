"""The decision engine: pure functions of (catalog, customer state, input).

No Kafka, Redis or clock in here. :class:`Engine` mutates the customer state it
is given (the caller owns storing it) and returns the decisions of one
evaluation: everything one arriving event causes, or everything one customer's
deadlines at one instant cause (contract section 4.4).

Decisions are immutable: each is built once, with the values it leaves the
evaluation with, except the few engagements that arbitration or a cap
overturns after the fact, which are replaced.

Contract v1.1, section 7. Every fired match belongs to an arm (:meth:`Engine._arm`):
a ``treated`` match decides as in v1; a ``shadow`` one (7.1) makes its
decisions with no check, status ``shadow``; a held-out one (7.3) is judged as
if treated (suppressions in force and caps, arbitration only within its own
match) and what would have been emitted becomes ``held_out``. Shadow and
held-out suppressions go to ``CustomerState.held``, never in force; their
releases carry their status and cause. A ``service`` topology's engagements
(7.2) skip suppressions and caps. A topology with a ``goal`` (7.4) opens one
per fired match, in every arm: it is reached by the earliest stored
qualifying event in its window, else by the first one evaluated after, and
missed when its window's end comes due like an absence deadline; each ends in
one GOAL record. A catalog with none of these keys takes v1's path: one flag
(``Engine._arms``) and a few attribute tests per fired match.

Contract section 8 (a catalog change at a time ``T``; when it applies is the
processor's business, :mod:`streams.engine.schedule`): state is kept by
topology name, so an engine over the new catalog simply goes on from the
state the old one left. Three things here serve it: :func:`retire` drops the
deadlines of topologies that are gone or no longer an ``absence`` and
releases the suppressions of removed ones at ``T``; a deadline armed under an
earlier version fires under the definition in force, at its kept time; and
goals, which keep the definition they were opened with, are tested against
the arriving event itself (an event of a type only such goals still wait for
reaches them without being stored).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache

from streams.decisions import (
    Arm,
    Decision,
    Kind,
    Status,
    bucket,
    decision_id,
    goal_id,
    new_decision,
    release_id,
    removal_id,
)
from streams.engine.matching import SearchExhausted, count_evidence, fill_sequence
from streams.engine.state import CustomerState, OpenGoal, StoredEvent, Suppression, Timer
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

# Members bound once: on Python 3.11 each `Kind.X` / `Status.X` is a lookup through
# the enum's class machinery, paid again on every decision.
_SUPPRESS, _ENGAGE, _RELEASE = Kind.SUPPRESS, Kind.ENGAGE, Kind.RELEASE
_EMITTED, _BLOCKED, _OUTRANKED, _SKIPPED = Status.EMITTED, Status.BLOCKED, Status.OUTRANKED, Status.SKIPPED
_SHADOW, _HELD_OUT, _TREATED = Status.SHADOW, Status.HELD_OUT, Arm.TREATED
_GOAL, _REACHED, _MISSED = Kind.GOAL, Status.REACHED, Status.MISSED
_ARM_SHADOW, _ARM_GLOBAL, _ARM_TOPOLOGY = Arm.SHADOW, Arm.HOLDOUT_GLOBAL, Arm.HOLDOUT_TOPOLOGY
# A suppression's reason names its end, the same for each of its action's channels: formatting
# a time costs more than the rest of the reason, so the few recent ones are kept.
_until = lru_cache(maxsize=64)(format_time)
# Durations said in reasons (an absence's, a goal's window, a cap's period) are the catalog's few
# constants, formatted for every absence match, capped engagement and goal record: kept, all of them.
_duration = lru_cache(maxsize=1024)(format_duration)
# An engagement still standing after 4.1: (position in the output, priority, its arbitration group:
# -1 for every treated match, else its own match's, whether it is a service message, the
# held-out arm or None).
_Standing = tuple[int, int, int, bool, str | None]


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
        # Whether any match can be in an arm other than treated (7.1, 7.3); if not, arms cost nothing.
        self._arms = self.policies.holdout > 0 or any(t.shadow or t.holdout for t in catalog.topologies)
        # Counters for metrics and summaries; they never influence decisions.
        self.stats: Counter[str] = Counter()

    def keep_for(self, cap_window: int, cooldown: int) -> None:
        """Keep engagements and fire times at least this long past the retention cutoff.

        A stream whose catalog changes (contract 8) keeps what any of its catalogs
        may count: a later catalog's longer cap or cooldown, or a removed topology
        added again, finds what its name left.
        """
        self._max_cap_window = max(self._max_cap_window, cap_window)
        self._max_cooldown = max(self._max_cooldown, cooldown)

    def reads(self, event_type: str) -> bool:
        """Whether any topology reads events of this type (others are dropped at once)."""
        return event_type in self.catalog.roles

    # -- evaluations -------------------------------------------------------------------

    def on_event(self, state: CustomerState, ev: Event) -> list[Decision]:
        """Evaluate one arriving, valid, on-time, not-duplicate event the catalog reads.

        An event of a type only the open goals of an earlier catalog wait for
        (contract 8: a goal keeps its definition) can only reach them; it is not stored.
        """
        roles = self.catalog.roles.get(ev.type)
        if roles is None:
            return self._reach_goals(state, ev.customer_id, ev) if state.goals else []
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
        if state.goals:
            # The whole event, not the stored copy: a goal opened under an earlier catalog may
            # read attributes this one does not keep (contract 8). With one catalog, the same test.
            decisions.extend(self._reach_goals(state, ev.customer_id, ev))
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
        """Fire every timer of this customer due at ``deadline``: absence deadlines and goal window ends."""
        out = self._miss_goals(state, customer_id, deadline) if state.goals else []
        due = [tm for tm in state.timers if tm.deadline == deadline]
        if not due:
            return out
        state.timers = [tm for tm in state.timers if tm.deadline != deadline]
        matches: list[Match] = []
        for tm in due:
            topo = self.catalog.get(tm.topology)
            after = state.find(tm.seq)
            # Under the definition in force (contract 8): a deadline armed by an earlier version
            # keeps its time, and its `after` event must still qualify.
            if topo is None or after is None or not isinstance(topo.when, Absence) or not topo.when.after.test(after):
                self.stats["timers_orphaned"] += 1  # topology removed or changed, or state from another catalog
                continue
            cond = topo.when
            end = tm.deadline  # after.t + duration, unless armed under another version
            if any(after.t < e.t <= end and cond.missing.test(e) for e in state.events):
                continue
            binds = {cond.bind: after} if cond.bind else {}
            matches.append(Match(topo, deadline, (after,), binds, after))
        if matches:
            out.extend(self._apply(state, customer_id, matches))
        return out

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
        standing: list[_Standing] = []
        for group, m in enumerate(matches):
            topo = m.topology
            last = state.last_fired.get(topo.name)
            if last is not None and m.effective < last + topo.cooldown:
                self.stats["cooldown_held"] += 1
                continue
            state.last_fired[topo.name] = m.effective if last is None else max(last, m.effective)
            self.stats["matches_fired"] += 1
            fired = _Fired(m, customer, tuple([e.event_id for e in m.evidence]), _matched(m))
            arm = self._arm(topo, customer) if self._arms else _TREATED
            if topo.goal is not None:
                self._open_goal(state, fired, arm, out)
            if arm == _TREATED:
                for action in topo.then:
                    if isinstance(action, Suppress):
                        category = action.category.render(m.bindings)
                        for channel in action.channels:
                            d = self._suppress(state, fired, action, channel, category)
                            if d.status == _EMITTED:
                                made_now.add(d.decision_id)
                            out.append(d)
                    else:
                        d = self._engage(state, fired, action, made_now, not topo.service)
                        if d.status == _EMITTED:
                            prio = action.priority if action.priority is not None else topo.priority
                            standing.append((len(out), prio, -1, topo.service, None))
                        out.append(d)
            else:
                self._apply_arm(state, fired, arm, group, out, made_now, standing)
        if standing:
            self._settle(state, out, standing)
        return out

    def _arm(self, topo: Topology, customer: str) -> str:
        """The arm of a match of ``topo`` fired for ``customer``: the first that applies (7.3)."""
        if topo.shadow:
            return _ARM_SHADOW
        p = self.policies
        if p.holdout and not topo.service and bucket(p.salt, customer) < p.holdout:
            return _ARM_GLOBAL
        if topo.holdout and bucket(f"{p.salt}/{topo.name}", customer) < topo.holdout:
            return _ARM_TOPOLOGY
        return _TREATED

    def _apply_arm(
        self,
        state: CustomerState,
        fired: _Fired,
        arm: str,
        group: int,
        out: list[Decision],
        made_now: set[str],
        standing: list[_Standing],
    ) -> None:
        """The actions of a shadow (7.1) or held-out (7.3) match: none of its decisions is in force.

        A shadow match's decisions face no check at all. A held-out match's
        face the suppressions in force and the caps as a treated match's
        would, and arbitration only among themselves (their own ``group``);
        :meth:`_settle` turns those still emitted into ``held_out``.
        """
        m = fired.match
        topo = m.topology
        shadow = arm == _ARM_SHADOW
        hold = (_SHADOW, arm) if shadow else (_HELD_OUT, arm)
        for action in topo.then:
            if isinstance(action, Suppress):
                category = action.category.render(m.bindings)
                out.extend(self._suppress(state, fired, action, ch, category, hold) for ch in action.channels)
                continue
            d = self._engage(state, fired, action, made_now, not (shadow or topo.service))
            if d.status == _EMITTED:
                if shadow:
                    d = replace(d, status=_SHADOW, cause=arm)
                else:
                    prio = action.priority if action.priority is not None else topo.priority
                    standing.append((len(out), prio, group, topo.service, arm))
            out.append(d)

    @staticmethod
    def _suppress(
        state: CustomerState,
        fired: _Fired,
        action: Suppress,
        channel: str,
        category: str | None,
        hold: tuple[Status, str] | None = None,
    ) -> Decision:
        """One channel's SUPPRESS; an emitted one is in force from now on (4.4), so it goes into ``state``.

        With ``hold`` (status, cause), a shadow or held-out one: kept in ``state.held``, never in force.
        """
        if category is None:
            cause = f"template {action.category.text}"
            return fired.decision(_SUPPRESS, channel, None, None, f"{fired.said}.", status=_SKIPPED, cause=cause)
        m = fired.match
        expires_at = m.effective + action.duration
        what = "any" if category == ANY_CATEGORY else category
        reason = f"{fired.said}: no {what} marketing on {channel} until {_until(expires_at)}."
        if hold is not None:
            status, cause = hold
            d = fired.decision(
                _SUPPRESS, channel, category, None, reason, expires_at=expires_at, status=status, cause=cause
            )
            state.held.append(
                Suppression(m.topology.name, channel, category, m.effective, expires_at, d.decision_id, status, cause)
            )
            return d
        d = fired.decision(_SUPPRESS, channel, category, None, reason, expires_at=expires_at)
        state.suppressions.append(
            Suppression(m.topology.name, channel, category, m.effective, expires_at, d.decision_id)
        )
        return d

    def _engage(
        self, state: CustomerState, fired: _Fired, action: Engage, made_now: set[str], blockable: bool = True
    ) -> Decision:
        """The engagement as 4.1 leaves it: skipped, blocked by a suppression, or emitted.

        Service messages (7.2) and shadow engagements (7.1) are not ``blockable``.

        An emitted one already carries the ``not_before`` quiet hours give it
        (4.3), as it keeps if it wins: :meth:`_settle` replaces the few that
        lose arbitration or hit a cap.
        """
        m = fired.match
        name = action.action.render(m.bindings)
        category = action.category.render(m.bindings) if action.category else None
        channel = action.channel
        if name is None or (action.category is not None and category is None):
            missing = action.action if name is None else action.category
            assert missing is not None
            skipped = f"template {missing.text}"
            return fired.decision(_ENGAGE, channel, category, name, f"{fired.said}.", status=_SKIPPED, cause=skipped)
        expires_at = None if action.expires is None else m.effective + action.expires
        reason = f"{fired.said}: {name} on {channel}{f' for {category}' if category else ''}."
        blocker = _blocking(state, channel, category, m.effective, made_now) if blockable else None
        cause: str | None = None
        if blocker is None:
            status, not_before = _EMITTED, self._not_before(channel, m)
        else:
            status, cause, not_before = _BLOCKED, f"suppressed_by {blocker}", m.effective
        return fired.decision(
            _ENGAGE,
            channel,
            category,
            name,
            reason,
            expires_at=expires_at,
            not_before=not_before,
            status=status,
            cause=cause,
        )

    def _settle(self, state: CustomerState, out: list[Decision], standing: list[_Standing]) -> None:
        """Arbitration, then caps on the winners (4.4, 4.2), in place in ``out``.

        Per channel and instant, the highest priority stands (first applied on
        ties); the others are outranked. Rivals are engagements of the same
        effective time: an out-of-order event can complete matches at several
        times in one evaluation, and those would have been separate
        evaluations had the events arrived in time order (contract section 2).
        A winner blocked by a cap does not promote the runner-up. An
        engagement that is not emitted has ``not_before`` at its effective time.

        Contract 7: a held-out match's engagements are rivals only of one
        another (their own group) and, if they pass the caps, become
        ``held_out``; service messages pass every cap. Neither counts toward a cap.
        """
        best: dict[tuple[str | None, int, int], tuple[int, int]] = {}
        for i, prio, group, _, _ in standing:
            d = out[i]
            slot = (d.channel, d.effective_at, group)
            cur = best.get(slot)
            if cur is None or prio > cur[1]:
                best[slot] = (i, prio)
        for i, _, group, service, held in standing:
            d = out[i]
            winner = best[(d.channel, d.effective_at, group)][0]
            if i != winner:
                cause = f"outranked_by {out[winner].decision_id}"
                out[i] = replace(d, status=_OUTRANKED, cause=cause, not_before=d.effective_at)
                continue
            if not service:
                cap = self._cap_exceeded(state, d)
                if cap is not None:
                    out[i] = replace(d, status=_BLOCKED, cause=cap, not_before=d.effective_at)
                    continue
            if held is not None:
                out[i] = replace(d, status=_HELD_OUT, cause=held)
            elif not service:
                assert d.channel is not None
                state.engagements.append((d.effective_at, d.channel))

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
                return f"cap {cap.channel} max {cap.max} per {_duration(cap.per)}"
        return None

    def _not_before(self, channel: str, m: Match) -> int:
        quiet = self.policies.quiet_hours
        if quiet is None or channel not in quiet.channels:
            return m.effective
        return quiet_end(quiet, m.effective, m.anchor.attributes.get(quiet.timezone_attribute))

    def _release(self, state: CustomerState, topo: Topology, customer: str, ev: StoredEvent) -> list[Decision]:
        """One RELEASE per (channel, category, status, cause) of the topology's active suppressions.

        A shadow or held-out suppression's release carries its status and
        cause (7.3). A shadow topology lifts only its own shadow suppressions:
        those in force that it made while live stay.
        """
        released: dict[tuple[str, str, Status, str | None], None] = {}
        if not topo.shadow:
            for s in state.suppressions:
                if s.topology == topo.name and s.active_at(ev.t):
                    s.end = ev.t
                    released[(s.channel, s.category, _EMITTED, None)] = None
        for s in state.held:
            if s.topology == topo.name and s.active_at(ev.t) and (s.status == _SHADOW or not topo.shadow):
                s.end = ev.t
                released[(s.channel, s.category, Status(s.status), s.cause)] = None
        out = []
        for channel, category, status, cause in released:
            evidence = (ev.event_id,)
            out.append(
                new_decision(
                    decision_id=release_id(
                        topo.name, topo.version, customer, evidence, channel, category, status, cause
                    ),
                    customer_id=customer,
                    kind=_RELEASE,
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
                    status=status,
                    cause=cause,
                )
            )
        return out

    # -- goals (7.4) ------------------------------------------------------------------------

    def _open_goal(self, state: CustomerState, fired: _Fired, arm: str, out: list[Decision]) -> None:
        """Track the goal of a fired match: reached at once by the earliest stored qualifying
        event in its window, if there is one; else open until an event reaches it or it is missed."""
        m = fired.match
        topo = m.topology
        assert topo.goal is not None
        start, end = m.effective, m.effective + topo.goal.within
        goal = OpenGoal(topo.name, topo.version, fired.evidence, start, end, arm, topo.goal.pattern)
        events = state.events
        test = goal.pattern.test
        for j in range(bisect_right(events, start, key=lambda e: e.t), len(events)):
            e = events[j]
            if e.t > end:
                break
            if test(e):
                out.append(self._goal_record(fired.customer, goal, (e.t, e.event_id, e.type)))
                return
        state.goals.append(goal)

    def _reach_goals(self, state: CustomerState, customer: str, ev: Event) -> list[Decision]:
        """The open goals this newly evaluated event reaches."""
        out: list[Decision] = []
        t = ev.occurred_at
        for g in state.goals:
            if g.start < t <= g.deadline and g.pattern.test(ev):
                out.append(self._goal_record(customer, g, (t, ev.event_id, ev.type)))
        if out:
            state.goals = [g for g in state.goals if not (g.start < t <= g.deadline and g.pattern.test(ev))]
        return out

    def _miss_goals(self, state: CustomerState, customer: str, deadline: int) -> list[Decision]:
        """The open goals whose window ends at ``deadline``: missed."""
        due = [g for g in state.goals if g.deadline == deadline]
        if due:
            state.goals = [g for g in state.goals if g.deadline != deadline]
        return [self._goal_record(customer, g, None) for g in due]

    def _goal_record(self, customer: str, goal: OpenGoal, reached: tuple[int, str, str] | None) -> Decision:
        """The GOAL record of ``goal``: reached by the event ``(occurred_at, event_id, type)``, or missed."""
        within = _duration(goal.deadline - goal.start)
        said = f"{goal.topology} v{goal.version}"
        if reached is not None:
            self.stats["goals_reached"] += 1
            at, reached_id, reached_type = reached
            status, evidence = _REACHED, (*goal.evidence, reached_id)
            reason = f"{said} reached its goal: {reached_type} within {within} of the match."
        else:
            self.stats["goals_missed"] += 1
            status, at, evidence = _MISSED, goal.deadline, goal.evidence
            reason = f"{said} missed its goal: no {goal.pattern.event} within {within} of the match."
        return new_decision(
            decision_id=goal_id(goal.topology, goal.version, customer, goal.evidence),
            customer_id=customer,
            kind=_GOAL,
            channel=None,
            action=None,
            category=None,
            topology=goal.topology,
            topology_version=goal.version,
            effective_at=at,
            expires_at=None,
            not_before=None,
            evidence=evidence,
            reason=reason,
            status=status,
            cause=goal.arm,
        )


def retire(
    state: CustomerState, customer: str, at: int, removed: Iterable[Topology], unarmed: frozenset[str]
) -> tuple[list[Decision], bool]:
    """What a catalog change at ``at`` does to one customer's state (contract 8); whether it changed it.

    The armed deadlines of the topologies named in ``unarmed`` (removed, or no
    longer an ``absence``) are dropped. Each suppression of a ``removed``
    topology (in name order) that ends after ``at`` ends at ``at``, lifted by a
    RELEASE effective at ``at``: one per (channel, category, status, cause),
    the suppressions in force first, then the held ones, in the order made. A
    suppression keeps its status: one made while the topology was live is
    released ``emitted``, whatever the topology's mode at ``at``. Everything
    else stays: fire times and the marks of fired matches belong to the name,
    open goals resolve as usual.
    """
    changed = False
    if unarmed and state.timers:
        kept = [tm for tm in state.timers if tm.topology not in unarmed]
        if len(kept) != len(state.timers):
            state.timers, changed = kept, True
    out: list[Decision] = []
    for topo in removed:
        released: dict[tuple[str, str, Status, str | None], None] = {}
        for s in state.suppressions:
            if s.topology == topo.name and s.end > at:
                s.end = at
                released[(s.channel, s.category, _EMITTED, None)] = None
        for s in state.held:
            if s.topology == topo.name and s.end > at:
                s.end = at
                released[(s.channel, s.category, Status(s.status), s.cause)] = None
        changed = changed or bool(released)
        for channel, category, status, cause in released:
            what = "any" if category == ANY_CATEGORY else category
            out.append(
                new_decision(
                    decision_id=removal_id(topo.name, topo.version, customer, at, channel, category, status, cause),
                    customer_id=customer,
                    kind=_RELEASE,
                    channel=channel,
                    action=None,
                    category=category,
                    topology=topo.name,
                    topology_version=topo.version,
                    effective_at=at,
                    expires_at=None,
                    not_before=None,
                    evidence=(),
                    reason=f"{topo.name} v{topo.version} was removed from the catalog: "
                    f"its suppression of {what} marketing on {channel} is lifted.",
                    status=status,
                    cause=cause,
                )
            )
    return out, changed


@dataclass(slots=True)
class _Fired:
    """A match that fired: what every decision it makes shares."""

    match: Match
    customer: str
    evidence: tuple[str, ...]
    said: str  # "topology vN matched <what>": every reason of the match starts with it

    def decision(
        self,
        kind: Kind,
        channel: str,
        category: str | None,
        action: str | None,
        reason: str,
        *,
        expires_at: int | None = None,
        not_before: int | None = None,
        status: Status = _EMITTED,
        cause: str | None = None,
    ) -> Decision:
        """One decision of this match, built once with its settled values."""
        m = self.match
        topo = m.topology
        customer, evidence = self.customer, self.evidence
        return new_decision(
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


def _blocking(state: CustomerState, channel: str, category: str | None, t: int, made_now: set[str]) -> str | None:
    """The id of a suppression that blocks an engagement at ``t`` (4.1), if any.

    One made in this evaluation blocks whatever its times: it is in force for
    every engagement made after it (4.4).
    """
    for s in state.suppressions:
        if s.channel != channel:
            continue
        if not (s.decision_id in made_now or s.active_at(t)):
            continue
        if s.category == ANY_CATEGORY or category is None or s.category == category:
            return s.decision_id
    return None


def _matched(m: Match) -> str:
    return f"{m.topology.name} v{m.topology.version} matched {_types(m)}"


def _types(m: Match) -> str:
    when = m.topology.when
    if isinstance(when, Absence):
        return f"{m.evidence[0].type} with no {when.missing.event} for {_duration(when.duration)}"
    return ", ".join(e.type for e in m.evidence)


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
