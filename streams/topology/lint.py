"""Authoring warnings: what loads, but is surely not what the author meant.

The loader (:mod:`streams.topology.loader`) refuses what breaks the contract;
this module looks at what it accepted and warns, for ``tactful validate``
only (``replay`` and the workers never run it, so warnings change no
decision). A warning names the file, the topology and the key, like a loading
problem; it changes the exit status only under ``validate --strict``.

What is warned about:

- **Files that are not read**: ``*.yml``, ``*.YAML`` and the like in the folder
  (the contract reads ``*.yaml`` only), or a single file given to ``validate``
  that a folder would not read.
- **Engagements that are always blocked** by a suppression made before them
  in the same evaluation (contract 4.1 and 4.4): the same topology's earlier
  ``suppress`` on that channel, or an earlier-applied topology's that fires
  whenever this one does. See :func:`_always_blocks` for when that is certain.
- **Stray braces in a template** (``"hi_{a.name"``): text, not a placeholder.
- **Channel names that are not declared**, when ``policies.yaml`` declares the
  channels (``channels: [...]``), with the closest declared name as a
  suggestion. The ``channel`` key of a ``where`` is not checked: it tests
  where an event happened (``web``, ``store``...), not where decisions go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.topology.loader import POLICIES_FILE, ignored_yaml, suggest
from streams.topology.model import (
    ANY_CATEGORY,
    Absence,
    Catalog,
    Count,
    Engage,
    Pattern,
    Suppress,
    Template,
    Topology,
)

# A template with every reference whose value is certain replaced by that value:
# literal text and the (binding, attribute) references left, adjacent text joined.
_Resolved = tuple[str | tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TopologyWarning:
    """One authoring warning: which file, which topology (if one), which key, what is wrong."""

    file: str
    topology: str | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} ({self.topology})" if self.topology else self.file
        return f"{where}: {self.key}: {self.message}"


def folder_warnings(path: Path) -> list[TopologyWarning]:
    """Warnings about the files themselves: ``path`` is a topologies folder or one file of it."""
    if path.is_file():
        if path.suffix == ".yaml":
            return []
        message = f"checked as asked, but a folder reads only *.yaml files: rename it to {path.stem}.yaml"
        return [TopologyWarning(path.name, None, "(file)", message)]
    if not path.is_dir():
        return []
    found: list[TopologyWarning] = []
    for p in ignored_yaml(path):
        meant = POLICIES_FILE if p.stem == Path(POLICIES_FILE).stem else f"{p.stem}.yaml"
        message = f"ignored: only *.yaml files are read; rename it to {meant}"
        found.append(TopologyWarning(p.name, None, "(file)", message))
    return found


def catalog_warnings(catalog: Catalog) -> list[TopologyWarning]:
    """Warnings about a catalog that loaded: always-blocked engagements, undeclared channels, stray braces."""
    found = _blocked_engagements(catalog) + _undeclared_channels(catalog) + _stray_braces(catalog)
    return sorted(found, key=lambda w: w.file)  # stable: each file's warnings in the order found


# -- engagements that are always blocked ---------------------------------------------


def _blocked_engagements(catalog: Catalog) -> list[TopologyWarning]:
    found: list[TopologyWarning] = []
    order = catalog.topologies  # application order (4.4): priority, highest first, then name
    for t_index, topo in enumerate(order):
        if topo.service:
            continue  # service messages are never blocked by a suppression (7.2)
        pinned = _pinned(topo)
        for e_index, engage in enumerate(topo.then):
            if not isinstance(engage, Engage):
                continue
            key = f"then[{e_index}].engage"
            for s_index, suppress in enumerate(topo.then[:e_index]):
                if isinstance(suppress, Suppress) and _always_blocks(suppress, engage, pinned):
                    found.append(
                        TopologyWarning(
                            topo.file,
                            topo.name,
                            key,
                            f"{_engage_text(engage)} is always blocked by then[{s_index}].suppress "
                            f"{_suppress_text(suppress, engage.channel)}: a suppression is in force for every "
                            f"engagement made after it (contract 4.1, 4.4){_why(suppress, engage)}; "
                            "write the engage first if it must reach that channel",
                        )
                    )
                    break
            else:
                # With a global control group, a rival's suppression is held out for some customers.
                rivals = order[:t_index] if catalog.policies.holdout == 0 else ()
                for rival in rivals:
                    hit = _rival_blocks(rival, topo, engage, pinned)
                    if hit is not None:
                        found.append(
                            TopologyWarning(
                                topo.file,
                                topo.name,
                                key,
                                f"{_engage_text(engage)} is always blocked by {rival.name}'s then[{hit}].suppress "
                                f"{_suppress_text(_suppress_at(rival, hit), engage.channel)} ({rival.file}): "
                                f"{rival.name} has the same `when` and no cooldown, so it fires whenever "
                                f"{topo.name} does, and it is applied first (priority {rival.priority} vs "
                                f"{topo.priority}, then by name; contract 4.4){_why(_suppress_at(rival, hit), engage)}",
                            )
                        )
                        break
    return found


def _rival_blocks(rival: Topology, topo: Topology, engage: Engage, pinned: dict[tuple[str, str], str]) -> int | None:
    """The index of ``rival``'s suppression that blocks every ``engage`` of ``topo``, if one does.

    Certain only when ``rival`` fires in every evaluation where ``topo`` fires:
    the same condition (so the same matches, bindings and evaluations) and no
    cooldown (with one, it may sit out a match ``topo`` fires on). A v1.1
    shadow or held-out suppression is not in force, so a rival with a mode or
    a holdout other than the defaults is left out.
    """
    if rival.when != topo.when or rival.cooldown != 0:
        return None
    if rival.shadow or rival.holdout:
        return None
    for index, action in enumerate(rival.then):
        if isinstance(action, Suppress) and _always_blocks(action, engage, pinned):
            return index
    return None


def _suppress_at(topo: Topology, index: int) -> Suppress:
    action = topo.then[index]
    assert isinstance(action, Suppress)
    return action


def _always_blocks(suppress: Suppress, engage: Engage, pinned: dict[tuple[str, str], str]) -> bool:
    """Whether ``suppress``, made just before ``engage`` from the same bindings, blocks it every time.

    Contract 4.1: it blocks when it is on the engagement's channel and its
    category is ``"*"``, equals the engagement's, or the engagement has no
    category. "Every time" means: whenever the engagement is made at all (its
    templates can be filled), the suppression was made too (every value its
    category needs is one the engagement needs, or is fixed by a ``where``
    that admits one value) and its category is one of those. Anything less
    certain (two templates that may or may not agree) is not warned about.
    """
    if engage.channel not in suppress.channels:
        return False
    s_cat = _resolve(suppress.category, pinned)
    e_cat = _resolve(engage.category, pinned) if engage.category is not None else None
    needed = _refs(_resolve(engage.action, pinned)) | (_refs(e_cat) if e_cat is not None else set())
    if not _refs(s_cat) <= needed:
        return False
    return s_cat == (ANY_CATEGORY,) or e_cat is None or s_cat == e_cat


def _pinned(topo: Topology) -> dict[tuple[str, str], str]:
    """Template references whose value is certain: the bound event's ``where`` admits one value."""
    bound: list[tuple[str | None, Pattern]]
    c = topo.when
    if isinstance(c, Count):
        bound = [(c.bind, c.pattern)]
    elif isinstance(c, Absence):
        bound = [(c.bind, c.after)]
    else:
        bound = [(s.bind, s.pattern) for s in c.steps]
    # A `where` on `channel` tests the event's channel, which is what `{name.channel}` gives.
    return {
        (name, attr): next(iter(allowed))
        for name, pattern in bound
        if name is not None
        for attr, allowed in pattern.where
        if len(allowed) == 1
    }


def _resolve(tpl: Template, pinned: dict[tuple[str, str], str]) -> _Resolved:
    out: list[str | tuple[str, str]] = []
    for part in tpl.parts:
        value = pinned.get(part) if isinstance(part, tuple) else part
        if value is None:
            out.append(part)
        elif out and isinstance(out[-1], str):
            out[-1] += value
        else:
            out.append(value)
    return tuple(out)


def _refs(resolved: _Resolved) -> set[tuple[str, str]]:
    return {p for p in resolved if isinstance(p, tuple)}


def _engage_text(engage: Engage) -> str:
    category = f", category {engage.category.text!r}" if engage.category is not None else ""
    return f"this engage ({engage.channel}, {engage.action.text!r}{category})"


def _suppress_text(suppress: Suppress, channel: str) -> str:
    return f"({channel}, category {suppress.category.text!r})"


def _why(suppress: Suppress, engage: Engage) -> str:
    if engage.category is None and suppress.category.text != ANY_CATEGORY:
        return "; an engagement with no category is blocked by a suppression of any category"
    return ""


# -- channel names ----------------------------------------------------------------------


def _undeclared_channels(catalog: Catalog) -> list[TopologyWarning]:
    declared = catalog.policies.channels
    if declared is None:
        return []
    found: list[TopologyWarning] = []

    def check(file: str, topology: str | None, key: str, channel: str) -> None:
        if channel in declared:
            return
        guess = suggest(channel, declared)
        hint = f"did you mean {guess!r}?" if guess else "declare it there if it is meant"
        found.append(
            TopologyWarning(file, topology, key, f"{channel!r} is not a channel {POLICIES_FILE} declares; {hint}")
        )

    for topo in sorted(catalog.topologies, key=lambda t: t.file):
        for index, action in enumerate(topo.then):
            if isinstance(action, Engage):
                check(topo.file, topo.name, f"then[{index}].engage.channel", action.channel)
            else:
                for channel in action.channels:
                    check(topo.file, topo.name, f"then[{index}].suppress.channels", channel)
    policies = catalog.policies
    for index, cap in enumerate(policies.caps):
        if cap.channel != ANY_CATEGORY:
            check(POLICIES_FILE, None, f"frequency_caps[{index}].channel", cap.channel)
    if policies.quiet_hours is not None:
        for channel in sorted(policies.quiet_hours.channels):
            check(POLICIES_FILE, None, "quiet_hours.channels", channel)
    return found


# -- templates ----------------------------------------------------------------------------


def _stray_braces(catalog: Catalog) -> list[TopologyWarning]:
    found: list[TopologyWarning] = []
    for topo in catalog.topologies:
        for index, action in enumerate(topo.then):
            named: list[tuple[str, Template | None]]
            if isinstance(action, Engage):
                kind, named = "engage", [("action", action.action), ("category", action.category)]
            else:
                kind, named = "suppress", [("category", action.category)]
            for name, tpl in named:
                if tpl is not None and any(isinstance(p, str) and ("{" in p or "}" in p) for p in tpl.parts):
                    found.append(
                        TopologyWarning(
                            topo.file,
                            topo.name,
                            f"then[{index}].{kind}.{name}",
                            f"{tpl.text!r} has a brace that is not part of a placeholder "
                            "{binding.attribute}: it is taken as text",
                        )
                    )
    return found
