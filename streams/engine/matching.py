"""Pure matchers over one customer's stored events (contract section 3.2).

``events`` is always the customer's stored events in ``(occurred_at, arrival)``
order, so list positions are the contract's order.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

from streams.engine.state import StoredEvent
from streams.topology.model import Count, Sequence

# A hostile history (thousands of near-identical events) could make the
# backtracking search explode; past this many steps it gives up on that
# completing event and the engine counts it (`search_exhausted`).
SEARCH_BUDGET = 200_000


class SearchExhausted(Exception):
    pass


def fill_sequence(cond: Sequence, events: Seq[StoredEvent], last_index: int) -> list[StoredEvent] | None:
    """The latest filling completed by ``events[last_index]``, or None.

    Depth-first from the step before the last, each step's candidates from
    the latest backwards: the first filling that keeps every rule is the
    latest one, compared from the step before the last backwards.
    """
    steps = cond.steps
    k = len(steps)
    last = events[last_index]
    chosen: list[StoredEvent] = [last] * k
    span = cond.within
    unless = cond.unless
    # Without an unless event that could also be a step's event, a step's
    # outcome depends only on the event chosen after it, so failures memoise.
    memo_ok = unless is None or all(s.pattern.event != unless.event for s in steps)
    failed: set[tuple[int, int]] = set()
    budget = [SEARCH_BUDGET]

    def unless_clear(first_index: int) -> bool:
        if unless is None:
            return True
        own = {id(e) for e in chosen}
        for j in range(first_index + 1, len(events)):
            u = events[j]
            if u.t > last.t:
                break
            if id(u) not in own and unless.test(u):
                return False
        return True

    def fill(i: int, upper: int) -> bool:
        # Fill step i with an event before position `upper` (the event chosen for step i+1).
        if memo_ok and (i, upper) in failed:
            return False
        nxt = chosen[i + 1]
        within = steps[i + 1].within
        pattern = steps[i].pattern
        for j in range(upper - 1, -1, -1):
            budget[0] -= 1
            if budget[0] < 0:
                raise SearchExhausted
            e = events[j]
            if within is not None and nxt.t - e.t > within:
                break
            if span is not None and last.t - e.t > span:
                break
            if not pattern.test(e):
                continue
            chosen[i] = e
            if i == 0:
                if unless_clear(j):
                    return True
            elif fill(i - 1, j):  # noqa: F821 (bound while the search runs; emptied after it)
                return True
        if memo_ok:
            failed.add((i, upper))
        return False

    try:
        if k == 1:
            return [last] if unless_clear(last_index) else None
        return list(chosen) if fill(k - 2, last_index) else None
    finally:
        # `fill` calls itself through its closure cell: a reference cycle that would keep this
        # customer's events alive until a garbage collection. Emptying the cell breaks it.
        del fill


def count_evidence(cond: Count, events: Seq[StoredEvent], index: int) -> list[StoredEvent] | None:
    """The last ``at_least`` qualifying events in ``(t - within, t]`` up to ``events[index]``."""
    c = events[index]
    floor = c.t - cond.within
    found: list[StoredEvent] = []
    for j in range(index, -1, -1):
        e = events[j]
        if e.t <= floor:
            break
        if cond.pattern.test(e):
            found.append(e)
            if len(found) == cond.at_least:
                found.reverse()
                return found
    return None
