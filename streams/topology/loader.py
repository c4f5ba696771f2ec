"""Load and check a topologies folder (contract sections 3 and 4).

Every problem is collected, not just the first, each naming the file, the key
(a dotted path such as ``when.sequence[1].within``) and what was expected.
Each problem is reported once: a misspelt key is one problem at the key as
written, with the closest allowed key as a suggestion (``difflib``), not also
"is required" for the key it stands for.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from streams.errors import Problem, TopologyError
from streams.events import RESERVED_PREFIX, TYPE_PATTERN
from streams.timeutil import DURATION_EXPECTED, format_duration, parse_duration
from streams.topology.model import (
    ANY_CATEGORY,
    DEFAULT_PRIORITY,
    DEFAULT_SALT,
    Absence,
    Action,
    Cap,
    Catalog,
    Condition,
    Count,
    Engage,
    Goal,
    Pattern,
    Policies,
    QuietHours,
    Sequence,
    Step,
    Suppress,
    Template,
    Topology,
    zone,
)
from streams.topology.yamlio import QuotedStr, load_text

POLICIES_FILE = "policies.yaml"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
BIND_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CLOCK_PATTERN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
PERCENT_PATTERN = re.compile(r"(\d+)(?:\.(\d{1,2}))?%")
DEFAULT_LATENESS = "10m"
DEFAULT_RETENTION = "30d"

T = TypeVar("T")


class _Invalid(Exception):
    """Internal: the value at hand is unusable; a problem was already recorded."""


class _Ctx:
    """Collects problems for one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        # Required keys already reported missing: what the parser then finds there ("got nothing") is no news.
        self.missing: set[str] = set()

    def fail(self, key: str, message: str) -> _Invalid:
        # One mapping can be checked twice on the way down (a step is a pattern too): report it once.
        problem = Problem(self.file, key or "(top level)", message)
        if problem not in self.problems and key not in self.missing:
            self.problems.append(problem)
        return _Invalid()

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping (keys: {', '.join(sorted(allowed))}), got {_kind(value)}")
        missing = {k for k in required if k not in value}
        self.missing |= {_join(key, k) for k in missing}
        for k in value:
            if k not in allowed:
                guess = suggest(str(k), allowed)
                if guess in missing:
                    # The typo and the missing key are one problem: say it once, where it was written.
                    missing.discard(guess)
                    self.fail(_join(key, str(k)), f"unknown key; did you mean {guess!r}? ({guess} is required)")
                else:
                    hint = f"; did you mean {guess!r}?" if guess else ""
                    self.fail(_join(key, str(k)), f"unknown key (expected one of: {', '.join(sorted(allowed))}){hint}")
        for k in sorted(missing):
            problem = Problem(self.file, _join(key, k), "is required")
            if problem not in self.problems:
                self.problems.append(problem)
        return value

    def string(self, value: Any, key: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected {what or 'a non-empty string'}, got {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"expected {what or pattern.pattern}, got {value!r}")
        return value

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, QuotedStr):
            raise self.fail(key, f"expected an integer, got the quoted string {str(value)!r}")
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value.strip()):
            raise self.fail(key, f"expected an integer, got {_kind(value)}")
        n = int(value)
        if minimum is not None and n < minimum:
            raise self.fail(key, f"expected an integer of at least {minimum}, got {n}")
        return n

    def duration(self, value: Any, key: str) -> int:
        try:
            return parse_duration(value) if isinstance(value, str) else parse_duration("")
        except ValueError:
            raise self.fail(key, f"{DURATION_EXPECTED}, got {_show(value)}") from None

    def percent(self, value: Any, key: str, maximum: int) -> int:
        """A percentage string read exactly, as hundredths of a percent (contract 7): no float."""
        m = PERCENT_PATTERN.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            raise self.fail(
                key, f"expected a percentage with at most two decimals and a % sign (5%, 2.5%), got {_show(value)}"
            )
        h = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
        if h > maximum:
            raise self.fail(key, f"expected a percentage from 0% to {maximum // 100}%, got {value}")
        return h

    def boolean(self, value: Any, key: str) -> bool:
        if isinstance(value, QuotedStr) or value not in ("true", "false"):
            raise self.fail(key, f"expected true or false, got {_show(value)}")
        return bool(value == "true")

    def strings(self, value: Any, key: str, *, allow_single: bool = True) -> tuple[str, ...]:
        if isinstance(value, str) and allow_single:
            return (value,)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a non-empty list of strings, got {_kind(value)}")
        return tuple(value)

    def attempt(self, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except _Invalid:
            return None


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close enough to be meant."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _join(key: str, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


def _kind(value: Any) -> str:
    if value is None or value == "":
        return "nothing"
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        if not value:
            return "an empty list"
        odd = next((v for v in value if not isinstance(v, str)), None)
        return "a list" if odd is None else f"a list holding {_kind(odd)}"
    return repr(value)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _kind(value)


# -- topology files -----------------------------------------------------------------

TOP_KEYS = {"topology", "version", "description", "priority", "cooldown", "when", "then", "release_on"}
# Contract v1.1, section 7.
TOP_KEYS |= {"mode", "service", "holdout", "goal"}
MODES = ("live", "shadow")


def parse_topology(data: Any, ctx: _Ctx, retention: int) -> Topology | None:
    if data is None:
        ctx.fail("", "the file is empty; expected a topology: topology, version, when and then")
        return None
    try:
        doc = ctx.mapping(data, "", TOP_KEYS, {"topology", "version", "when", "then"})
    except _Invalid:
        return None
    name = ctx.attempt(
        lambda: ctx.string(doc.get("topology"), "topology", NAME_PATTERN, "a name matching [a-z][a-z0-9_]*")
    )
    version = ctx.attempt(lambda: ctx.integer(doc.get("version"), "version", 0)) if "version" in doc else None
    description = doc.get("description", "")
    if not isinstance(description, str):
        ctx.fail("description", f"expected a string, got {_kind(description)}")
    priority = ctx.attempt(lambda: ctx.integer(doc["priority"], "priority")) if "priority" in doc else DEFAULT_PRIORITY
    cooldown = ctx.attempt(lambda: ctx.duration(doc["cooldown"], "cooldown")) if "cooldown" in doc else 0

    when: Condition | None = None
    bindings: dict[str, str] = {}
    if "when" in doc:
        when = ctx.attempt(lambda: _condition(doc["when"], ctx, bindings, retention))
    then: tuple[Action, ...] | None = None
    if "then" in doc:
        then = ctx.attempt(lambda: _actions(doc["then"], ctx, bindings if when else None))
    release_on = None
    if "release_on" in doc:
        release_on = ctx.attempt(lambda: _pattern(doc["release_on"], ctx, "release_on"))
    mode = ctx.attempt(lambda: _mode(doc["mode"], ctx)) if "mode" in doc else "live"
    service = ctx.attempt(lambda: ctx.boolean(doc["service"], "service")) if "service" in doc else False
    holdout = ctx.attempt(lambda: ctx.percent(doc["holdout"], "holdout", 10_000)) if "holdout" in doc else 0
    goal = ctx.attempt(lambda: _goal(doc["goal"], ctx, retention)) if "goal" in doc else None
    if ctx.problems or name is None or version is None or when is None or then is None:
        return None
    return Topology(
        name=name,
        version=version,
        description=str(description).strip(),
        priority=priority if priority is not None else DEFAULT_PRIORITY,
        cooldown=cooldown or 0,
        when=when,
        then=then,
        release_on=release_on,
        file=ctx.file,
        shadow=mode == "shadow",
        service=bool(service),
        holdout=holdout or 0,
        goal=goal,
    )


def _mode(value: Any, ctx: _Ctx) -> str:
    if value not in MODES:
        raise ctx.fail("mode", f"expected one of: {', '.join(MODES)}, got {_show(value)}")
    return str(value)


def _goal(value: Any, ctx: _Ctx, retention: int) -> Goal:
    gm = ctx.mapping(value, "goal", {"event", "where", "within"}, {"event", "within"})
    # Only what the mapping check let through, so that each problem is reported once.
    test = {k: gm[k] for k in ("event", "where") if k in gm}
    pattern = ctx.attempt(lambda: _pattern(test, ctx, "goal")) if "event" in gm else None
    within = ctx.attempt(lambda: _window(gm["within"], ctx, "goal.within", retention)) if "within" in gm else None
    if within == 0:
        raise ctx.fail("goal.within", "expected a positive duration, got 0")
    if pattern is None or within is None:
        raise _Invalid()
    return Goal(pattern, within)


def _pattern(value: Any, ctx: _Ctx, key: str, extra: set[str] = frozenset()) -> Pattern:  # type: ignore[assignment]
    m = ctx.mapping(value, key, {"event", "where"} | extra, {"event"})
    if "event" not in m:
        raise _Invalid()  # already reported by mapping(), as missing or as the typo that stands for it
    event = ctx.string(m.get("event"), _join(key, "event"), TYPE_PATTERN, "an event type matching [a-z][a-z0-9_.]*")
    if event.startswith(RESERVED_PREFIX):
        raise ctx.fail(
            _join(key, "event"), f"{event!r}: tactful.* event types are reserved, a topology may not name one"
        )
    where: list[tuple[str, frozenset[str]]] = []
    if "where" in m:
        w = m["where"]
        if not isinstance(w, dict):
            raise ctx.fail(_join(key, "where"), f"expected a mapping of attribute to value(s), got {_kind(w)}")
        for attr, allowed in w.items():
            where.append((attr, frozenset(ctx.strings(allowed, _join(key, f"where.{attr}")))))
    return Pattern(event, tuple(where))


def _bind(m: dict[str, Any], ctx: _Ctx, key: str, bindings: dict[str, str]) -> str | None:
    if "as" not in m:
        return None
    name = ctx.string(m["as"], _join(key, "as"), BIND_PATTERN, "a binding name (letters, digits, _)")
    if name in bindings:
        raise ctx.fail(_join(key, "as"), f"binding {name!r} is already used at {bindings[name]}")
    bindings[name] = _join(key, "as")
    return name


def _window(value: Any, ctx: _Ctx, key: str, retention: int) -> int:
    d = ctx.duration(value, key)
    if d > retention:
        raise ctx.fail(key, f"window {format_duration(d)} is longer than the retention {format_duration(retention)}")
    return d


def _condition(value: Any, ctx: _Ctx, bindings: dict[str, str], retention: int) -> Condition:
    m = ctx.mapping(value, "when", {"sequence", "count", "absence", "within", "unless"})
    kinds = [k for k in ("sequence", "count", "absence") if k in m]
    if len(kinds) != 1:
        raise ctx.fail(
            "when", "expected exactly one of sequence, count, absence" + (f"; got {', '.join(kinds)}" if kinds else "")
        )
    kind = kinds[0]
    if kind != "sequence":
        for k in ("within", "unless"):
            if k in m:
                ctx.fail(f"when.{k}", "is allowed only beside a sequence")
    if kind == "sequence":
        seq = m["sequence"]
        if not isinstance(seq, list) or not seq:
            raise ctx.fail("when.sequence", f"expected a non-empty list of steps, got {_kind(seq)}")
        steps: list[Step] = []
        ok = True
        for i, raw in enumerate(seq):
            key = f"when.sequence[{i}]"
            try:
                sm = ctx.mapping(raw, key, {"event", "where", "as", "within"}, {"event"})
                pattern = _pattern(sm, ctx, key, {"as", "within"})
                bind = _bind(sm, ctx, key, bindings)
                within = None
                if "within" in sm:
                    if i == 0:
                        raise ctx.fail(
                            f"{key}.within",
                            "the first step has no previous step; use when.within for the whole sequence",
                        )
                    within = _window(sm["within"], ctx, f"{key}.within", retention)
                steps.append(Step(pattern, bind, within))
            except _Invalid:
                ok = False
        span = ctx.attempt(lambda: _window(m["within"], ctx, "when.within", retention)) if "within" in m else None
        unless = ctx.attempt(lambda: _pattern(m["unless"], ctx, "when.unless")) if "unless" in m else None
        if not ok:
            raise _Invalid()
        return Sequence(tuple(steps), span, unless)
    if kind == "count":
        key = "when.count"
        cm = ctx.mapping(
            m["count"], key, {"event", "where", "at_least", "within", "as"}, {"event", "at_least", "within"}
        )
        pattern = _pattern(cm, ctx, key, {"at_least", "within", "as"})
        at_least = ctx.integer(cm.get("at_least"), f"{key}.at_least", 1)
        within = _window(cm.get("within"), ctx, f"{key}.within", retention)
        return Count(pattern, at_least, within, _bind(cm, ctx, key, bindings))
    key = "when.absence"
    am = ctx.mapping(m["absence"], key, {"after", "missing", "for"}, {"after", "missing", "for"})
    after_raw = ctx.mapping(am.get("after"), f"{key}.after", {"event", "where", "as"}, {"event"})
    after = _pattern(after_raw, ctx, f"{key}.after", {"as"})
    bind = _bind(after_raw, ctx, f"{key}.after", bindings)
    missing = _pattern(am.get("missing"), ctx, f"{key}.missing")
    duration = _window(am.get("for"), ctx, f"{key}.for", retention)
    return Absence(after, bind, missing, duration)


def _template(value: Any, ctx: _Ctx, key: str, bindings: dict[str, str] | None) -> Template:
    text = ctx.string(value, key)
    tpl = Template.parse(text)
    for name, attr in tpl.references:
        if not name or not attr:
            raise ctx.fail(key, f"expected placeholders of the form {{binding.attribute}}, got {text!r}")
        if bindings is not None and name not in bindings:
            known = ", ".join(sorted(bindings)) or "none"
            raise ctx.fail(key, f"template names unknown binding {name!r} (bindings: {known})")
    return tpl


ACTION_KEYS = {
    "suppress": {"channels", "category", "for"},
    "engage": {"channel", "action", "category", "expires", "priority"},
}


def _action_kind(raw: Any, ctx: _Ctx, key: str) -> _Invalid:
    """The problem with an item of ``then`` that is not one ``suppress`` or ``engage`` mapping."""
    if not isinstance(raw, dict):
        return ctx.fail(key, f"expected a mapping with one key, suppress or engage; got {_kind(raw)}")
    kinds = [k for k in raw if k in ACTION_KEYS]
    if not kinds and len(raw) == 1:
        ctx.mapping(raw, key, set(ACTION_KEYS))  # reports the unknown key, with a suggestion
        return _Invalid()
    if len(kinds) == 1 and all(k in ACTION_KEYS[kinds[0]] for k in raw if k != kinds[0]):
        # `- suppress:` followed by its keys at the same indentation: YAML reads them as siblings.
        others = ", ".join(str(k) for k in raw if k != kinds[0])
        return ctx.fail(key, f"{others} must be indented under {kinds[0]}")
    if len(kinds) > 1:
        return ctx.fail(key, f"expected one action per item; write {' and '.join(kinds)} as separate items")
    got = ", ".join(map(str, raw)) or "an empty mapping"
    return ctx.fail(key, f"expected one action per item, suppress or engage; got {got}")


def _actions(value: Any, ctx: _Ctx, bindings: dict[str, str] | None) -> tuple[Action, ...]:
    if not isinstance(value, list) or not value:
        hint = " (write each action as a list item: - engage: ...)" if isinstance(value, dict) else ""
        raise ctx.fail("then", f"expected a non-empty list of actions, got {_kind(value)}{hint}")
    actions: list[Action] = []
    ok = True
    for i, raw in enumerate(value):
        key = f"then[{i}]"
        try:
            if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ACTION_KEYS:
                raise _action_kind(raw, ctx, key)
            kind, body = next(iter(raw.items()))
            key = f"{key}.{kind}"
            if kind == "suppress":
                sm = ctx.mapping(body, key, ACTION_KEYS["suppress"], {"channels", "for"})
                channels = ctx.strings(sm.get("channels"), f"{key}.channels")
                category = _template(sm.get("category", ANY_CATEGORY), ctx, f"{key}.category", bindings)
                actions.append(Suppress(channels, category, ctx.duration(sm.get("for"), f"{key}.for")))
            else:
                em = ctx.mapping(body, key, ACTION_KEYS["engage"], {"channel", "action"})
                channel = ctx.string(em.get("channel"), f"{key}.channel")
                action = _template(em.get("action"), ctx, f"{key}.action", bindings)
                engage_category = (
                    _template(em["category"], ctx, f"{key}.category", bindings) if "category" in em else None
                )
                expires = ctx.duration(em["expires"], f"{key}.expires") if "expires" in em else None
                priority = ctx.integer(em["priority"], f"{key}.priority") if "priority" in em else None
                actions.append(Engage(channel, action, engage_category, expires, priority))
        except _Invalid:
            ok = False
    if not ok:
        raise _Invalid()
    return tuple(actions)


# -- policies -------------------------------------------------------------------------


def parse_policies(data: Any, ctx: _Ctx) -> Policies | None:
    if data is None:
        data = {}
    try:
        m = ctx.mapping(data, "", {"lateness", "retention", "frequency_caps", "quiet_hours", "holdout", "channels"})
    except _Invalid:
        return None
    lateness = ctx.attempt(lambda: ctx.duration(m.get("lateness", DEFAULT_LATENESS), "lateness"))
    retention = ctx.attempt(lambda: ctx.duration(m.get("retention", DEFAULT_RETENTION), "retention"))
    caps: list[Cap] = []
    raw_caps = m.get("frequency_caps", [])
    if not isinstance(raw_caps, list):
        ctx.fail("frequency_caps", f"expected a list of {{channel, max, per}}, got {_kind(raw_caps)}")
        raw_caps = []
    for i, raw in enumerate(raw_caps):
        key = f"frequency_caps[{i}]"

        def cap(raw: Any = raw, key: str = key) -> Cap:
            cm = ctx.mapping(raw, key, {"channel", "max", "per"}, {"channel", "max", "per"})
            return Cap(
                ctx.string(cm.get("channel"), f"{key}.channel"),
                ctx.integer(cm.get("max"), f"{key}.max", 0),
                ctx.duration(cm.get("per"), f"{key}.per"),
            )

        c = ctx.attempt(cap)
        if c:
            caps.append(c)
    quiet = ctx.attempt(lambda: _quiet(m["quiet_hours"], ctx)) if "quiet_hours" in m else None
    channels = ctx.attempt(lambda: _channels(m["channels"], ctx)) if "channels" in m else None
    holdout = ctx.attempt(lambda: _holdout(m["holdout"], ctx)) if "holdout" in m else (0, DEFAULT_SALT)
    if ctx.problems or lateness is None or retention is None or holdout is None:
        return None
    return Policies(lateness, retention, tuple(caps), quiet, *holdout, channels=channels)


def _channels(value: Any, ctx: _Ctx) -> frozenset[str]:
    names = ctx.strings(value, "channels")
    if "" in names:
        raise ctx.fail("channels", "expected channel names, got an empty one")
    if ANY_CATEGORY in names:
        raise ctx.fail("channels", f"{ANY_CATEGORY!r} is not a channel: list the channels decisions go to")
    return frozenset(names)


def _holdout(value: Any, ctx: _Ctx) -> tuple[int, str]:
    """The global control group (contract 7.3): its size in hundredths of a percent (0% to 50%), and the salt."""
    hm = ctx.mapping(value, "holdout", {"percent", "salt"})
    percent = ctx.attempt(lambda: ctx.percent(hm["percent"], "holdout.percent", 5_000)) if "percent" in hm else 0
    salt = hm.get("salt", DEFAULT_SALT)
    # An empty salt is a string too, but only when written as one ("" quoted): a bare `salt:` is nothing.
    if not isinstance(salt, str) or (not salt and not isinstance(salt, QuotedStr)):
        raise ctx.fail("holdout.salt", f"expected a string, got {_kind(salt)}")
    if percent is None:
        raise _Invalid()
    return percent, str(salt)


def _clock(value: Any, ctx: _Ctx, key: str) -> int:
    if not isinstance(value, str) or not CLOCK_PATTERN.fullmatch(value):
        raise ctx.fail(key, f'expected a quoted time "HH:MM" (00:00 to 23:59), got {_show(value)}')
    h, mi = value.split(":")
    return (int(h) * 60 + int(mi)) * 60_000


def _quiet(value: Any, ctx: _Ctx) -> QuietHours:
    key = "quiet_hours"
    qm = ctx.mapping(
        value, key, {"from", "to", "channels", "timezone_attribute", "default_timezone"}, {"from", "to", "channels"}
    )
    start = ctx.attempt(lambda: _clock(qm.get("from"), ctx, f"{key}.from"))
    end = ctx.attempt(lambda: _clock(qm.get("to"), ctx, f"{key}.to"))
    channels = ctx.strings(qm.get("channels"), f"{key}.channels")
    tz_attr = ctx.string(qm.get("timezone_attribute", "tz"), f"{key}.timezone_attribute")
    default = ctx.string(qm.get("default_timezone", "UTC"), f"{key}.default_timezone")
    if zone(default) is None:
        raise ctx.fail(f"{key}.default_timezone", f"expected an IANA time zone name, got {default!r}")
    if start is None or end is None:
        raise _Invalid()
    return QuietHours(start, end, frozenset(channels), tz_attr, default)


# -- folders --------------------------------------------------------------------------


def _read(path: Path, ctx: _Ctx) -> Any:
    try:
        return load_text(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ctx.fail("", f"cannot read the file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ctx.fail("", "expected UTF-8 text") from exc
    except yaml.MarkedYAMLError as exc:
        raise ctx.fail("", f"expected valid YAML: {_yaml_error(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ctx.fail("", f"expected valid YAML: {' '.join(str(exc).split())}") from exc


def _yaml_error(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's message on one line, without its '<unicode string>' names and caret drawings."""

    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    text = " ".join(str(exc.problem or "").split())
    if exc.problem_mark is not None:
        text = f"{at(exc.problem_mark)}: {text}"
    if exc.context:
        where = f" at {at(exc.context_mark)}" if exc.context_mark is not None else ""
        text += f" ({' '.join(exc.context.split())}{where})"
    return text


def ignored_yaml(root: Path) -> list[Path]:
    """Files of ``root`` that look like YAML but are not read: ``*.yml``, ``*.YAML`` and the like."""
    return sorted(p for p in root.iterdir() if p.suffix.lower() in (".yml", ".yaml") and p.suffix != ".yaml")


def load_folder(folder: Path | str, *, only: str | None = None) -> Catalog:
    """Load every ``*.yaml`` topology and the optional ``policies.yaml``.

    With ``only`` (a file name in ``folder``), load just that topology file, with
    the folder's policies: how ``tactful validate FILE`` checks one file.
    Raises :class:`~streams.errors.TopologyError` listing every problem found.
    """
    root = Path(folder)
    if not root.is_dir():
        raise TopologyError([Problem(str(root), "(folder)", "expected a folder of topology *.yaml files")])
    problems: list[Problem] = []

    pctx = _Ctx(POLICIES_FILE)
    policies: Policies | None = None
    ppath = root / POLICIES_FILE
    try:
        policies = parse_policies(_read(ppath, pctx) if ppath.exists() else None, pctx)
    except _Invalid:
        policies = None
    problems += pctx.problems
    retention = policies.retention if policies else parse_duration(DEFAULT_RETENTION)

    topologies: list[Topology] = []
    seen: dict[str, str] = {}
    files = sorted(p for p in root.glob("*.yaml") if p.name != POLICIES_FILE) if only is None else [root / only]
    for path in files:
        ctx = _Ctx(path.name)
        try:
            topo = parse_topology(_read(path, ctx), ctx, retention)
        except _Invalid:
            topo = None
        if topo is not None:
            if topo.name in seen:
                ctx.fail("topology", f"name {topo.name!r} is already used by {seen[topo.name]}")
            else:
                seen[topo.name] = path.name
                topologies.append(topo)
        problems += ctx.problems
    if not files:
        others = ignored_yaml(root)
        hint = f" (only *.yaml files are read; rename {', '.join(p.name for p in others)})" if others else ""
        problems.append(Problem(str(root), "(folder)", f"expected at least one topology *.yaml file{hint}"))
    if problems or policies is None:
        raise TopologyError(problems)
    return Catalog.build(topologies, policies)
