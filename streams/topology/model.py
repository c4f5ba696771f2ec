"""The compiled form of a topologies folder: immutable, checked, fast to match.

Times and durations are epoch milliseconds. Nothing here reads files; see
:mod:`streams.topology.loader`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ANY_CATEGORY = "*"
DEFAULT_PRIORITY = 50
DEFAULT_SALT = "tactful"


class Matchable(Protocol):
    """What a pattern needs of an event: the live :class:`Event` and stored events both fit."""

    @property
    def type(self) -> str: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class Pattern:
    """An ``{event, where}`` test. Every ``where`` key must hold; values compare as strings."""

    event: str
    where: tuple[tuple[str, frozenset[str]], ...] = ()

    def test(self, ev: Matchable) -> bool:
        if ev.type != self.event:
            return False
        for key, allowed in self.where:
            value = ev.channel if key == "channel" else ev.attributes.get(key)
            if value is None or value not in allowed:
                return False
        return True

    @property
    def attribute_keys(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.where if k != "channel")


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Template:
    """A string with ``{binding.attr}`` placeholders; a plain string has none."""

    text: str
    # Literal text and (binding, attribute) references, in order.
    parts: tuple[str | tuple[str, str], ...]

    @staticmethod
    def parse(text: str) -> Template:
        parts: list[str | tuple[str, str]] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            name, _, attr = m.group(1).partition(".")
            parts.append((name.strip(), attr.strip()))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        return Template(text, tuple(parts))

    @property
    def references(self) -> tuple[tuple[str, str], ...]:
        return tuple(p for p in self.parts if isinstance(p, tuple))

    def render(self, bindings: Mapping[str, Matchable]) -> str | None:
        """The text with values filled in, or None when a value is missing."""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            ev = bindings.get(part[0])
            if ev is None:
                return None
            value = ev.channel if part[1] == "channel" else ev.attributes.get(part[1])
            if value is None:
                return None
            out.append(value)
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Step:
    pattern: Pattern
    bind: str | None
    within: int | None


@dataclass(frozen=True, slots=True)
class Sequence:
    steps: tuple[Step, ...]
    within: int | None
    unless: Pattern | None


@dataclass(frozen=True, slots=True)
class Count:
    pattern: Pattern
    at_least: int
    within: int
    bind: str | None


@dataclass(frozen=True, slots=True)
class Absence:
    after: Pattern
    bind: str | None
    missing: Pattern
    duration: int


Condition = Sequence | Count | Absence


@dataclass(frozen=True, slots=True)
class Suppress:
    channels: tuple[str, ...]
    category: Template
    duration: int


@dataclass(frozen=True, slots=True)
class Engage:
    channel: str
    action: Template
    category: Template | None
    expires: int | None
    priority: int | None


Action = Suppress | Engage


@dataclass(frozen=True, slots=True)
class Goal:
    """What success looks like for a fired match (contract 7.4): a qualifying event within ``within``."""

    pattern: Pattern
    within: int


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    version: int
    description: str
    priority: int
    cooldown: int
    when: Condition
    then: tuple[Action, ...]
    release_on: Pattern | None
    file: str
    # Contract v1.1, section 7; the defaults are v1's behaviour.
    shadow: bool = False  # mode: shadow (7.1)
    service: bool = False  # its ENGAGE decisions are service messages (7.2)
    holdout: int = 0  # its own control group, in hundredths of a percent (7.3)
    goal: Goal | None = None  # (7.4)

    def patterns(self) -> tuple[Pattern, ...]:
        """Every pattern whose events this topology reads."""
        c = self.when
        found: list[Pattern] = []
        if isinstance(c, Sequence):
            found.extend(s.pattern for s in c.steps)
            if c.unless:
                found.append(c.unless)
        elif isinstance(c, Count):
            found.append(c.pattern)
        else:
            found.extend((c.after, c.missing))
        if self.release_on:
            found.append(self.release_on)
        if self.goal:
            found.append(self.goal.pattern)
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Cap:
    channel: str  # "*" counts every channel together
    max: int
    per: int


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    """An IANA zone, or None for an unknown or malformed name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class QuietHours:
    start_ms: int  # milliseconds after local midnight
    end_ms: int
    channels: frozenset[str]
    timezone_attribute: str
    default_timezone: str


@dataclass(frozen=True, slots=True)
class Policies:
    lateness: int
    retention: int
    caps: tuple[Cap, ...] = ()
    quiet_hours: QuietHours | None = None
    # The global control group (contract 7.3): hundredths of a percent, and the salt of every arm.
    holdout: int = 0
    salt: str = DEFAULT_SALT
    # The channels decisions may go to, if policies.yaml declares them: `tactful validate`
    # warns on any other name (a typo would make a new decisions.<channel> topic). None: not declared.
    channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Roles:
    """What the topologies do with one event type; built once, looked up per event."""

    releases: tuple[Topology, ...] = ()
    # Topologies whose matches this type can complete or help complete.
    triggers: tuple[Topology, ...] = ()
    # Absence topologies whose `after` pattern this type may match (arms a timer).
    arms: tuple[Topology, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """A loaded topologies folder: topologies in application order and the policies."""

    topologies: tuple[Topology, ...]
    policies: Policies
    roles: Mapping[str, Roles] = field(default_factory=dict)
    # Attribute keys some pattern, template or quiet-hours rule reads: the only ones kept in state.
    kept_attributes: frozenset[str] = frozenset()

    @staticmethod
    def build(topologies: list[Topology], policies: Policies) -> Catalog:
        ordered = tuple(sorted(topologies, key=lambda t: (-t.priority, t.name)))
        releases: dict[str, list[Topology]] = {}
        triggers: dict[str, list[Topology]] = {}
        arms: dict[str, list[Topology]] = {}
        goals: set[str] = set()
        keys: set[str] = set()
        for topo in ordered:
            for p in topo.patterns():
                keys |= p.attribute_keys
            if topo.release_on:
                releases.setdefault(topo.release_on.event, []).append(topo)
            c = topo.when
            if isinstance(c, Sequence):
                for t in {s.pattern.event for s in c.steps}:
                    triggers.setdefault(t, []).append(topo)
                if c.unless:
                    triggers.setdefault(c.unless.event, [])
            elif isinstance(c, Count):
                triggers.setdefault(c.pattern.event, []).append(topo)
            else:
                arms.setdefault(c.after.event, []).append(topo)
                triggers.setdefault(c.missing.event, [])
            if topo.goal:
                goals.add(topo.goal.pattern.event)
            for action in topo.then:
                templates = [action.category] if isinstance(action, Suppress) else [action.action]
                if isinstance(action, Engage) and action.category:
                    templates.append(action.category)
                for tpl in templates:
                    keys |= {attr for _, attr in tpl.references if attr != "channel"}
        if policies.quiet_hours:
            keys.add(policies.quiet_hours.timezone_attribute)
        types = set(releases) | set(triggers) | set(arms) | goals
        roles = {
            # A type only goals read gets empty roles: it is stored (contract 7.6) and may reach open goals.
            t: Roles(tuple(releases.get(t, ())), tuple(triggers.get(t, ())), tuple(arms.get(t, ())))
            for t in types
        }
        return Catalog(ordered, policies, roles, frozenset(keys))

    def get(self, name: str) -> Topology | None:
        for t in self.topologies:
            if t.name == name:
                return t
        return None
