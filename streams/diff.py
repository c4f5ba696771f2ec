"""``tactful diff``: a backtest of a catalog change, both catalogs over the same events.

One pass over the input feeds two engines, the base's and the candidate's,
each with its own state; every record is validated once. Reading and
decoding is a large share of a replay, and a topic would otherwise be read
twice, so one pass is cheaper than two (measured in the README's
topologies section); the price is both states in memory at once.

Input comes in lanes: a file is one lane, read in file order (exactly as
``replay`` reads it); a topic has one lane per partition, each with its own
stream time and watermark, as the live workers have. After the last record
every lane's watermark moves to the largest ``occurred_at`` read in any lane,
so due deadlines fire on both sides alike.

Decisions are matched by what they mean, not by id: the **matching key** is
(customer, topology, kind, channel, category, action, effective time,
evidence). The version is left out (a decision id covers it, so a version
bump alone would make every decision differ), and so are the id and the
reason (prose). Two decisions with the same key are the same decision made
by both catalogs; they are ``same`` when they also agree on status,
``expires_at``, ``not_before`` and cause, else ``changed`` (an emitted ENGAGE
that the candidate blocks, a suppression made longer, a match now in a
control group). A cause that names another decision by id
(``suppressed_by ID``, ``outranked_by ID``; the id covers that decision's
version) is compared by its first word only. A key made by one side only is
``base_only`` or ``candidate_only``: a decision moved in time (an absence
window changed) is one of each. GOAL records (contract 7.4) are matched the
same way (status ``reached`` or ``missed``, the arm as cause).

Matching is done as decisions come: a decision waits, by key, for its
partner from the other side, and a pair is counted and dropped at once. So
memory holds the two states, the decisions still waiting (the differences,
in the end) and the changed pairs, never the decisions both sides agree on.

:func:`run` returns a :class:`DiffResult`: counts per (topology, channel,
kind) and the full list of :class:`Difference`, in the order of contract
section 6 (base side first). ``Difference.to_json`` is the ``--out`` line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.decisions import Decision
from streams.engine import DictStore, Engine, Outcome, Processor
from streams.errors import InputError
from streams.events import validate_event
from streams.gctune import tuned
from streams.timeutil import format_time
from streams.topology import Catalog

BASE_ONLY = "base_only"
CANDIDATE_ONLY = "candidate_only"
CHANGED = "changed"
SAME = "same"
CLASSES = (BASE_ONLY, CANDIDATE_ONLY, CHANGED, SAME)
DIFFERENT = (BASE_ONLY, CANDIDATE_ONLY, CHANGED)
# Compared once two decisions have the same key: what a channel would see differently, and why.
COMPARED = ("status", "expires_at", "not_before", "cause")
# Causes that name another decision by id (which covers its version): compared by this word only.
_BY_ID = ("suppressed_by ", "outranked_by ")

Key = tuple[str, str, str, str | None, str | None, str | None, int, tuple[str, ...]]
Group = tuple[str, str, str]  # (topology, channel or "-", kind)
Lanes = Iterable[tuple[int, object]]  # (lane: 0 for a file, the partition for a topic; record)


def key(d: Decision) -> Key:
    """The matching key: what the decision means, whatever the version that made it."""
    return (d.customer_id, d.topology, d.kind.value, d.channel, d.category, d.action, d.effective_at, d.evidence)


def group(d: Decision) -> Group:
    return (d.topology, d.channel if d.channel is not None else "-", d.kind.value)


def _compared(d: Decision, name: str) -> object:
    """A compared field's value; a cause naming a decision by id is reduced to its first word."""
    value = getattr(d, name)
    if name == "cause" and value is not None and value.startswith(_BY_ID):
        return value.split(" ", 1)[0]
    return value


def _alike(a: Decision, b: Decision) -> bool:
    return all(_compared(a, f) == _compared(b, f) for f in COMPARED)


@dataclass(frozen=True, slots=True)
class Difference:
    """One decision that the two catalogs do not make alike."""

    what: str  # BASE_ONLY, CANDIDATE_ONLY or CHANGED
    base: Decision | None
    candidate: Decision | None

    @property
    def decision(self) -> Decision:
        d = self.base if self.base is not None else self.candidate
        assert d is not None
        return d

    @property
    def fields(self) -> list[str]:
        """The compared fields that differ (``changed`` only)."""
        if self.base is None or self.candidate is None:
            return []
        return [f for f in COMPARED if _compared(self.base, f) != _compared(self.candidate, f)]

    def sort_key(self) -> tuple[tuple[int, str, str, str, str, str], int]:
        return (self.decision.sort_key(), 0 if self.base is not None else 1)

    def to_json(self) -> dict[str, Any]:
        """The ``--out`` line: the key's fields, which class, what differs, and both audit records."""
        d = self.decision
        return {
            "difference": self.what,
            "customer_id": d.customer_id,
            "topology": d.topology,
            "kind": d.kind.value,
            "channel": d.channel,
            "category": d.category,
            "action": d.action,
            "effective_at": format_time(d.effective_at),
            "evidence": list(d.evidence),
            "fields": self.fields,
            "base": None if self.base is None else self.base.to_json(audit=True),
            "candidate": None if self.candidate is None else self.candidate.to_json(audit=True),
        }


@dataclass
class Side:
    """One catalog's run: its engine's counts (lateness may differ between catalogs)."""

    decisions: Counter[str] = field(default_factory=Counter)  # by status
    late: int = 0
    duplicates: int = 0
    customers: int = 0


@dataclass
class DiffResult:
    groups: dict[Group, Counter[str]]  # (topology, channel, kind) -> class -> count
    differences: list[Difference]  # sorted, base side first on ties
    base: Side
    candidate: Side
    events: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # by reason; invalid whatever the catalog

    @property
    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter({c: 0 for c in CLASSES})
        for counts in self.groups.values():
            out.update(counts)
        return out

    @property
    def different(self) -> int:
        t = self.totals
        return sum(t[c] for c in DIFFERENT)

    def samples(self, per_class: int = 3) -> dict[Group, dict[str, list[Difference]]]:
        """The first ``per_class`` differences of each group and class, in output order."""
        out: dict[Group, dict[str, list[Difference]]] = {}
        for diff in self.differences:
            bucket = out.setdefault(group(diff.decision), {}).setdefault(diff.what, [])
            if len(bucket) < per_class:
                bucket.append(diff)
        return out


class _Matcher:
    """Pairs decisions of the two sides by key as they come (see the module docstring)."""

    def __init__(self) -> None:
        # key -> decisions still waiting: (side, decision); side 0 base, 1 candidate.
        self.waiting: dict[Key, list[tuple[int, Decision]]] = {}
        self.groups: dict[Group, Counter[str]] = {}
        self.changed: list[Difference] = []
        self.statuses: tuple[Counter[str], Counter[str]] = (Counter(), Counter())

    def add(self, side: int, decisions: list[Decision]) -> None:
        waiting = self.waiting
        statuses = self.statuses[side]
        for d in decisions:
            statuses[d.status.value] += 1
            k = key(d)
            queue = waiting.get(k)
            if queue is None:
                waiting[k] = [(side, d)]
                continue
            # Prefer a partner alike in every compared field: the non-emitted RELEASEs of one
            # event share a key and differ by status and cause (contract 7.3).
            partner = -1
            for i, (s, other) in enumerate(queue):
                if s != side:
                    if _alike(other, d):
                        partner = i
                        break
                    if partner < 0:
                        partner = i
            if partner < 0:
                queue.append((side, d))
                continue
            _, other = queue.pop(partner)
            if not queue:
                del waiting[k]
            base, candidate = (other, d) if side == 1 else (d, other)
            counts = self.groups.setdefault(group(d), Counter())
            if not _alike(base, candidate):
                counts[CHANGED] += 1
                self.changed.append(Difference(CHANGED, base, candidate))
            else:
                counts[SAME] += 1

    def differences(self) -> list[Difference]:
        out = list(self.changed)
        for queue in self.waiting.values():
            for side, d in queue:
                what = CANDIDATE_ONLY if side else BASE_ONLY
                self.groups.setdefault(group(d), Counter())[what] += 1
                out.append(Difference(what, d, None) if side == 0 else Difference(what, None, d))
        out.sort(key=Difference.sort_key)
        return out


class _Lane:
    """One input partition: a processor per catalog."""

    __slots__ = ("sides",)

    def __init__(self, engines: tuple[Engine, Engine], stores: tuple[DictStore, DictStore]) -> None:
        self.sides = (Processor(engines[0], stores[0]), Processor(engines[1], stores[1]))


def run(
    base: Catalog,
    candidate: Catalog,
    records: Lanes,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> DiffResult:
    """Replay both catalogs over ``records`` (lane, record) and match their decisions."""
    with tuned():
        return _run(base, candidate, records, on_progress)


def _run(base: Catalog, candidate: Catalog, records: Lanes, on_progress: Callable[[int], None] | None) -> DiffResult:
    engines = (Engine(base), Engine(candidate))
    # One store per side across lanes: a customer lives in one partition.
    stores = (DictStore(), DictStore())
    lanes: dict[int, _Lane] = {}
    matcher = _Matcher()
    add = matcher.add
    sides = (Side(), Side())
    invalid: Counter[str] = Counter()
    seen = 0
    validate = validate_event
    late, duplicate = Outcome.LATE, Outcome.DUPLICATE
    for lane_id, record in records:
        seen += 1
        if on_progress is not None and seen % 10_000 == 0:
            on_progress(seen)
        try:
            if type(record) is not dict and isinstance(record, InputError):
                raise record
            ev = validate(record)
        except InputError as exc:
            invalid[exc.reason] += 1
            continue
        lane = lanes.get(lane_id)
        if lane is None:
            lane = lanes[lane_id] = _Lane(engines, stores)
        for i, proc in enumerate(lane.sides):
            outcome, decisions = proc.process(ev)
            if decisions:
                add(i, decisions)
            if outcome is late:
                sides[i].late += 1
            elif outcome is duplicate:
                sides[i].duplicates += 1
    # Every lane's watermark to the largest event time read in any (replay's default --until).
    times = [p.stream_time for lane in lanes.values() for p in lane.sides if p.stream_time is not None]
    final = max(times, default=None)
    if final is not None:
        for lane in lanes.values():
            for i, proc in enumerate(lane.sides):
                add(i, proc.advance_watermark(final))
    differences = matcher.differences()
    for i, side in enumerate(sides):
        side.customers = len(stores[i].data)
        side.decisions = matcher.statuses[i]
    return DiffResult(matcher.groups, differences, sides[0], sides[1], seen, invalid)


# --- What the command prints ------------------------------------------------------------------

_LABELS = {BASE_ONLY: "base only", CANDIDATE_ONLY: "candidate only", CHANGED: "changed", SAME: "same"}


def _side_json(side: Side, topologies: str) -> dict[str, Any]:
    return {
        "topologies": topologies,
        "decisions": dict(sorted(side.decisions.items())),
        "late": side.late,
        "duplicates": side.duplicates,
        "customers": side.customers,
    }


def to_data(result: DiffResult, base: str, candidate: str, samples: int = 3) -> dict[str, Any]:
    """The ``--json`` document (the README shows its shape)."""
    picked = result.samples(samples)
    groups = []
    for g in sorted(result.groups):
        counts = result.groups[g]
        entry: dict[str, Any] = {"topology": g[0], "channel": g[1], "kind": g[2]}
        entry.update({c: counts[c] for c in CLASSES})
        entry["samples"] = {what: [d.to_json() for d in ds] for what, ds in picked.get(g, {}).items()}
        groups.append(entry)
    return {
        "events": result.events,
        "invalid": dict(sorted(result.invalid.items())),
        "base": _side_json(result.base, base),
        "candidate": _side_json(result.candidate, candidate),
        "totals": dict(result.totals),
        "different": result.different,
        "groups": groups,
    }


def to_text(result: DiffResult, base: str, candidate: str, samples: int = 3, every: bool = False) -> list[str]:
    """The table per (topology, channel, kind), then sample customers of each difference.

    The table holds the rows with a difference; ``every`` adds those the two catalogs make alike.
    """
    lines = [
        f"{sum(result.base.decisions.values()):,} decisions from {base} (base), "
        f"{sum(result.candidate.decisions.values()):,} from {candidate} (candidate); "
        f"{result.events:,} events ({sum(result.invalid.values()):,} invalid)"
    ]
    head = ("topology", "channel", "kind", *(_LABELS[c] for c in CLASSES))
    shown = [g for g in sorted(result.groups) if every or any(result.groups[g][c] for c in DIFFERENT)]
    rows = [(*g, *(f"{result.groups[g][c]:,}" for c in CLASSES)) for g in shown]
    totals = result.totals
    rows.append(("total", "", "", *(f"{totals[c]:,}" for c in CLASSES)))
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        text = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(text).rstrip()

    lines += [line(head), *(line(r) for r in rows)]
    alike = len(result.groups) - len(shown)
    if alike:
        lines.append(f"(and {alike:,} row{'s' if alike != 1 else ''} alike: --all shows them)")
    if not result.different:
        lines.append("no difference")
        return lines
    picked = result.samples(samples)
    for g in sorted(picked):
        for what in DIFFERENT:
            ds = picked[g].get(what)
            if not ds:
                continue
            lines.append("")
            lines.append(f"{' '.join(g)}: {_LABELS[what]} ({result.groups[g][what]:,}), e.g.")
            lines += [f"  {_sample(d)}" for d in ds]
    return lines


def _status(d: Decision) -> str:
    return d.status.value if d.cause is None else f"{d.status.value} ({d.cause})"


def _sample(diff: Difference) -> str:
    d = diff.decision
    what = f"{d.customer_id} at {format_time(d.effective_at)}"
    if diff.base is not None and diff.candidate is not None:
        changes = []
        fields = diff.fields
        if "status" in fields or "cause" in fields:
            changes.append(f"{_status(diff.base)} -> {_status(diff.candidate)}")
        for f in ("expires_at", "not_before"):
            if f in fields:
                changes.append(f"{f} {_time(getattr(diff.base, f))} -> {_time(getattr(diff.candidate, f))}")
        what += ": " + "; ".join(changes)
    else:
        what += f": {_status(d)}"
    evidence = ", ".join(d.evidence) if d.evidence else "none"
    return f"{what}; evidence {evidence}"


def _time(t: int | None) -> str:
    return "null" if t is None else format_time(t)
