"""What ``tactful demo`` does besides showing decisions: its two catalogs, when it deploys, its report.

The demo tells one story in a few minutes of wall clock (``streams/live/demo.py``
runs it):

1. **Two catalogs derived from the topologies folder** (:func:`demo_catalogs`,
   written under ``.run/demo/catalog/``; the folder itself is not changed).
   Both add a global control group (:data:`GLOBAL_HOLDOUT` of customers,
   contract 7.3) unless ``policies.yaml`` has one, so the report has a
   control arm, and shorten every goal window to at most :data:`GOAL_WINDOW`:
   the demo shows three days of event time, and a goal whose window is still
   open counts for neither arm (a week-long window would leave almost every
   goal open). ``before`` runs :data:`FLIPPED` in shadow (contract 7.1);
   ``after`` runs it live, its version one higher. The shipped folder keeps
   no holdout: the parity tests, chaos and ``make demo-offline`` run it and
   compare exact decisions, and a control group is a choice for each
   deployment to make, not a default.
2. **The workers start on ``before``** (a worker publishes its folder as the
   first version of an empty catalog topic; on a topic with versions from an
   earlier run, the demo deploys ``before`` again for the start of its feed,
   :func:`start_time`), and **half-way through the demo deploys ``after``**
   for the event time the workers' watermarks will reach :data:`LEAD_S`
   seconds later (:func:`switch_time`). The feed runs event time about a
   thousand times faster than the wall clock, so ``tactful deploy``'s
   default time (the largest committed stream time, ahead of the watermarks
   by ``lateness``, ten minutes of event time) would be overtaken within a
   second, before every worker has read the record, and a worker refuses a
   version whose time its watermark has passed. The demo knows where its
   feed stands and how fast it moves, so it asks for a time that far ahead
   of the watermarks, and no further: a run that resumes after an earlier
   one feeds minutes of event time, not days, and a time ahead of the feed
   itself would not be reached by its watermarks before the end.
3. **Simulated channels and customers** (:func:`simulated_outcomes`): the
   generated customers do not read messages, so the demo plays the channels'
   part. For each engagement emitted it reports outcomes back as
   ``decision.*`` touchpoints (contract 7.5), as a channel would with
   :mod:`streams.channel`: delivered, opened, clicked and converted with the
   fixed shares of :data:`FUNNEL`, a few complaints; a converted engagement
   is followed by the event its topology's goal waits for (a ``purchase``
   after a cart reminder), so treated customers reach their goals more often
   than the control group, and the report has an uplift to find. Draws come
   from the decision id, so a rerun over the same decisions does the same.
   They are fed at the feed's current event time (a decision reaches the
   demo a moment after its trigger was fed, and an outcome stamped at the
   decision's own time would by then be late).
4. **At the end, the report** (:func:`write_report`): ``tactful report`` over
   the audit topic and the touchpoints of this run, as JSON and as the
   self-contained HTML page, with a few lines of verdicts for the terminal.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.decisions import Decision
from streams.errors import ConfigError
from streams.timeutil import format_time, parse_duration
from streams.topology.model import Pattern

GLOBAL_HOLDOUT = "20%"  # of customers in the global control group (contract 7.3)
HOLDOUT_SALT = "demo"
GOAL_WINDOW = "1d"  # the longest goal window the demo keeps: goals are decided while you watch
FLIPPED = "abandoned_cart_reminder"  # in shadow before the deploy, live after
# The deploy's time is where the feed's event time will be this many seconds later: the deploy
# itself takes a few seconds (it reads the catalog topic and the committed offsets first), and a
# version whose time a partition's watermark has passed when the record reaches it is refused.
LEAD_S = 8.0


# What the simulated channel reports of an engagement: each stage with its share of the stage before.
FUNNEL = (("delivered", 0.95), ("opened", 0.6), ("clicked", 0.5), ("converted", 0.6))
COMPLAINED = 0.04  # share of delivered messages not clicked that draw a complaint


@dataclass(frozen=True)
class DemoCatalogs:
    before: Path
    after: Path
    flipped: str | None  # the topology in shadow before and live after (None: the folder has no FLIPPED)
    changes: tuple[str, ...]  # what ``before`` changed in the folder, for people


def demo_catalogs(source: Path, out: Path) -> DemoCatalogs:
    """Write ``out/before`` and ``out/after`` from the topologies folder ``source`` (module docstring).

    Files are edited as text, so comments and layout stay; both folders are
    loaded afterwards, and any edit the loader does not read as meant raises
    :class:`~streams.errors.ConfigError`.
    """
    import yaml

    from streams.topology import load_folder

    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(source.glob("*.yaml"))}
    changes: list[str] = []
    policies = files.get("policies.yaml", "")
    loaded = yaml.safe_load(policies) if policies.strip() else {}
    if not isinstance(loaded, dict) or "holdout" not in loaded:
        block = (
            "holdout:                  # added by tactful demo: a global control group\n"
            f'  percent: {GLOBAL_HOLDOUT}\n  salt: "{HOLDOUT_SALT}"\n'
        )
        files["policies.yaml"] = policies + ("" if policies.endswith("\n") or not policies else "\n") + block
        changes.append(f"{GLOBAL_HOLDOUT} global control group")
    cap = parse_duration(GOAL_WINDOW)
    catalog = load_folder(source)
    shortened = False
    for t in catalog.topologies:
        if t.goal is not None and t.goal.within > cap:
            files[t.file] = _shorten_goal(files[t.file], GOAL_WINDOW)
            shortened = True
    if shortened:
        changes.append(f"goals within {GOAL_WINDOW}")
    flip = next((t for t in catalog.topologies if t.name == FLIPPED and not t.shadow), None)
    before, after = dict(files), dict(files)
    if flip is not None:
        before[flip.file] = _set_top_key(files[flip.file], "mode", "shadow", after="version")
        after[flip.file] = _set_top_key(files[flip.file], "version", str(flip.version + 1))
        changes.append(f"{flip.name} in shadow")
    folders = []
    for name, content in (("before", before), ("after", after)):
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for file, text in content.items():
            (folder / file).write_text(text, encoding="utf-8")
        folders.append(folder)
    _check(load_folder(folders[0]), load_folder(folders[1]), flip.name if flip else None, cap)
    return DemoCatalogs(folders[0], folders[1], flip.name if flip else None, tuple(changes))


def _shorten_goal(text: str, window: str) -> str:
    """Set ``within`` under the top-level ``goal:`` (block or flow style) to ``window``."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"goal\s*:", line)), None)
    if start is None:
        return text
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
        end += 1
    block = "".join(lines[start:end])
    block = re.sub(r"(\bwithin\s*:\s*)[^\s,}#]+", lambda m: m.group(1) + window, block, count=1)
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _set_top_key(text: str, key: str, value: str, *, after: str | None = None) -> str:
    """Set a top-level ``key: value`` in place, or insert it after the top-level ``after`` key."""
    pattern = re.compile(rf"^{key}\s*:[^\n#]*", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(f"{key}: {value}", text, count=1)
    anchor = re.search(rf"^{after}\s*:[^\n]*\n", text, re.MULTILINE) if after else None
    if anchor is None:
        return f"{key}: {value}\n{text}"
    return text[: anchor.end()] + f"{key}: {value}\n" + text[anchor.end() :]


def _check(before: Any, after: Any, flipped: str | None, cap: int) -> None:
    """The edits did what they say, as the loader reads them."""
    for name, catalog in (("before", before), ("after", after)):
        if catalog.policies.holdout == 0:
            raise ConfigError(f"the demo's {name} catalog has no global control group")
        long = [t.name for t in catalog.topologies if t.goal is not None and t.goal.within > cap]
        if long:
            raise ConfigError(f"the demo could not shorten the goal window of {', '.join(long)}")
    if flipped is not None:
        was = next(t for t in before.topologies if t.name == flipped)
        now = next(t for t in after.topologies if t.name == flipped)
        if not was.shadow or now.shadow or now.version != was.version + 1:
            raise ConfigError(f"the demo could not put {flipped} in shadow before and live after")


def switch_time(
    newest_sent: int, first_sent: int, feeding_s: float, lateness: int, *, floor: int = 0, lead_s: float = LEAD_S
) -> int:
    """``T`` of the half-way deploy: where the workers' watermarks will be ``lead_s`` seconds from now.

    ``newest_sent`` and ``first_sent`` are the newest and first ``occurred_at``
    fed, ``feeding_s`` the seconds of feeding between them: their ratio is how
    fast event time runs. A partition's watermark is its newest event time
    less ``lateness``, so no watermark is past ``newest_sent - lateness``, and
    ``T`` is ahead of all of them by ``lead_s`` seconds of feeding (at least a
    minute of event time): every partition switches about ``lead_s`` seconds
    later, however fast event time runs. Never before ``floor`` (the newest
    version's time).
    """
    speed = (newest_sent - first_sent) / feeding_s if feeding_s > 0 else 0.0  # event ms per wall second
    return max(newest_sent - lateness + max(round(speed * lead_s), 60_000), floor)


def start_time(window_start: int, lateness: int, newest_version_at: int | None) -> int:
    """``T`` for deploying ``before`` again at the start of a run (the topic holds an earlier run's versions).

    The feed starts at ``window_start``, no earlier than the workers' newest
    stream time, so every watermark is at most ``window_start - lateness``:
    just after it, every partition switches with the first events fed (the
    feed's own start would not be reached by watermarks ``lateness`` behind
    it in a run that resumes minutes after another). Never before the newest
    version (versions go in time order).
    """
    return max(window_start - lateness + 1, newest_version_at or 0)


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    html: Path
    lines: tuple[str, ...]  # a few lines for the terminal: the inputs and each topology's verdict


def write_report(
    audit: Any, touchpoints: Any | None, catalog: Any | None, out: Path, name: str = "demo-report"
) -> ReportFiles:
    """``tactful report`` over ``audit`` and ``touchpoints`` (:class:`streams.report.Source`), with the
    arms of unseen matches from ``catalog``; writes ``out/<name>.json`` and ``out/<name>.html``."""
    from streams.report import build, render
    from streams.report.arms import HoldoutCatalog

    holdouts = HoldoutCatalog.from_catalog(catalog) if catalog is not None else None
    data = build(audit, touchpoints, catalog=holdouts)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / f"{name}.json", out / f"{name}.html"
    json_path.write_bytes(render.to_json(data))
    html_path.write_text(render.to_html(data, title="tactful demo report"), encoding="utf-8")
    return ReportFiles(json_path, html_path, tuple(summary_lines(data)))


def summary_lines(data: dict[str, Any]) -> list[str]:
    """The report in a few lines: what it read, then per topology with a goal, treated vs control."""
    i = data["inputs"]
    lines = [f"{i['audit_records']:,} audit records, {i['matches']:,} fired matches, {i['touchpoints']:,} touchpoints"]
    width = max((len(t["topology"]) for t in data["topologies"] if t.get("goal")), default=0)
    for t in data["topologies"]:
        goal = t.get("goal")
        if goal is None:
            continue
        treated, control, uplift = goal["arms"].get("treated"), goal.get("control"), goal.get("uplift") or {}
        if _rate(treated) == _rate(control) == "-":
            lines.append(f"  {t['topology']:<{width}}  no goal decided yet ({t['matches_total']} matches)")
            continue
        lines.append(
            f"  {t['topology']:<{width}}  goal rate treated {_rate(treated)}, control {_rate(control)}:"
            f" {uplift.get('verdict', '-')}"
        )
    return lines


def _rate(rate: dict[str, Any] | None) -> str:
    if not rate or rate.get("rate") is None:
        return "-"
    decided = rate["reached"] + rate["missed"]
    return f"{100 * rate['rate']:.0f}% ({rate['reached']}/{decided})"


def simulated_outcomes(decision: Decision, goal: Pattern | None, at_ms: int) -> list[dict[str, Any]]:
    """The touchpoints the demo's simulated channel and customer send after ``decision`` (an emitted
    ENGAGE), from ``at_ms`` on, a second apart: its outcomes, then, once converted, ``goal``'s event."""
    from streams.channel.outcomes import outcome_event

    digest = hashlib.sha256(decision.decision_id.encode()).digest()
    draws = [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in range(0, 32, 4)]
    reached: list[str] = []
    for (stage, share), draw in zip(FUNNEL, draws, strict=False):
        if draw >= share:
            break
        reached.append(stage)
    if "delivered" in reached and "clicked" not in reached and draws[len(FUNNEL)] < COMPLAINED:
        reached.append("complained")
    events = [outcome_event(decision, stage, at_ms + 1000 * i) for i, stage in enumerate(reached)]
    if "converted" in reached and goal is not None:
        where = dict(goal.where)
        channel = sorted(where.pop("channel"))[0] if "channel" in where else "web"
        events.append(
            {
                "event_id": f"demo-goal:{decision.decision_id}",
                "customer_id": decision.customer_id,
                "type": goal.event,
                "occurred_at": format_time(at_ms + 1000 * len(reached)),
                "channel": channel,
                "attributes": {key: sorted(allowed)[0] for key, allowed in where.items()},
            }
        )
    return events
