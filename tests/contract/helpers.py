"""Builders shared by the black-box contract suite.

Only the public interface is used: ``streams.replay.run``,
``streams.topology.load_folder``, ``streams.errors`` and the ``tactful`` CLI.
Times are written as ISO strings ("2026-05-01T10:00:00Z"), as epoch
milliseconds, or as offsets from BASE ("+90s", "+1d2h", "-5m", "+0").
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

BASE_ISO = "2026-05-01T10:00:00Z"
BASE_MS = 1777629600000  # 2026-05-01T10:00:00.000Z

_UNITS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_DUR = re.compile(r"(\d+)(ms|d|h|m|s)")

DECISION_FIELDS = {
    "decision_id",
    "customer_id",
    "kind",
    "channel",
    "action",
    "category",
    "topology",
    "topology_version",
    "effective_at",
    "expires_at",
    "not_before",
    "evidence",
    "reason",
}
ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def dur(text: str) -> int:
    """Duration text ("1d12h", "500ms") -> milliseconds (test-side helper)."""
    pos, total = 0, 0
    for m in _DUR.finditer(text):
        assert m.start() == pos, text
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    assert pos == len(text) and pos > 0, text
    return total


def ms(at: str | int) -> int:
    """Any accepted time form -> epoch milliseconds."""
    if isinstance(at, int):
        return at
    if at == "+0" or at == "0":
        return BASE_MS
    if at[0] in "+-":
        sign = -1 if at[0] == "-" else 1
        return BASE_MS + sign * dur(at[1:])
    t = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    assert t.tzinfo is not None, at
    return round(t.timestamp() * 1000)


def iso(at: str | int) -> str:
    """Any accepted time form -> the output form "2026-05-01T10:00:00.000Z"."""
    t = dt.datetime.fromtimestamp(ms(at) / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms(at) % 1000:03d}Z"


def ev(
    event_id: str,
    customer: str,
    type_: str,
    at: str | int,
    channel: str | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    **attrs: str,
) -> dict[str, Any]:
    """One decoded event record (contract section 1).

    Attributes come from keyword arguments, or from `attributes=` for names that
    clash with parameters (such as an attribute called "channel")."""
    rec: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": customer,
        "type": type_,
        "occurred_at": at if isinstance(at, int) else iso(at),
    }
    if channel is not None:
        rec["channel"] = channel
    if attrs or attributes is not None:
        rec["attributes"] = {**(attributes or {}), **attrs}
    return rec


# --------------------------------------------------------------- topologies


def engage(
    channel: str,
    action: str = "act",
    category: str | None = None,
    expires: str | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"channel": channel, "action": action}
    if category is not None:
        body["category"] = category
    if expires is not None:
        body["expires"] = expires
    if priority is not None:
        body["priority"] = priority
    return {"engage": body}


def suppress(channels: list[str], for_: str = "1d", category: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"channels": list(channels), "for": for_}
    if category is not None:
        body["category"] = category
    return {"suppress": body}


def topo(
    name: str,
    when: dict[str, Any],
    then: list[dict[str, Any]],
    *,
    version: int = 1,
    priority: int | None = None,
    cooldown: str | None = None,
    release_on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {"topology": name, "version": version}
    if priority is not None:
        doc["priority"] = priority
    if cooldown is not None:
        doc["cooldown"] = cooldown
    doc["when"] = when
    doc["then"] = then
    if release_on is not None:
        doc["release_on"] = release_on
    return doc


def on(
    name: str,
    event: str,
    then: list[dict[str, Any]],
    *,
    where: dict[str, Any] | None = None,
    as_: str = "e",
    **kw: Any,
) -> dict[str, Any]:
    """A topology that matches every single `event` (one-step sequence)."""
    step: dict[str, Any] = {"as": as_, "event": event}
    if where is not None:
        step["where"] = where
    return topo(name, {"sequence": [step]}, then, **kw)


def write_dir(
    root: Path,
    items: Iterable[str | dict[str, Any]],
    policies: str | dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, item in enumerate(items):
        if isinstance(item, dict):
            fname = f"{item.get('topology', f't{i:02d}')}.yaml"
            text = yaml.safe_dump(item, sort_keys=False)
        else:
            text = textwrap.dedent(item).lstrip("\n")
            fname = f"t{i:02d}.yaml"
        (root / fname).write_text(text, encoding="utf-8")
    if policies is not None:
        if isinstance(policies, dict):
            text = yaml.safe_dump(policies, sort_keys=False)
        else:
            text = textwrap.dedent(policies).lstrip("\n")
        (root / "policies.yaml").write_text(text, encoding="utf-8")
    for fname, text in (files or {}).items():
        (root / fname).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


# ------------------------------------------------------------------ running


def replay(
    topologies_dir: Path,
    records: Iterable[dict[str, Any]],
    until: Any = None,
    switches: Iterable[tuple[Any, Path]] = (),
) -> Any:
    """Replay through ``streams.replay.run``; ``switches`` are (time, folder) catalog changes (contract 8)."""
    from streams.replay import run  # imported lazily: the engine is written concurrently

    recs = [dict(r) for r in records]
    later = [(iso(at), folder) for at, folder in switches]
    return run(topologies_dir, recs, until=until, switches=later)


def pick(
    decisions: Iterable[dict[str, Any]],
    kind: str | None = None,
    channel: str | None = None,
    topology: str | None = None,
    customer: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    out = []
    for d in decisions:
        if kind is not None and d["kind"] != kind:
            continue
        if channel is not None and d["channel"] != channel:
            continue
        if topology is not None and d["topology"] != topology:
            continue
        if customer is not None and d["customer_id"] != customer:
            continue
        if status is not None and d.get("status") != status:
            continue
        out.append(d)
    return out


def brief(decisions: Iterable[dict[str, Any]], *extra: str) -> list[tuple[Any, ...]]:
    """(kind, channel, category, effective_at, evidence, *extra) per decision."""
    rows = []
    for d in decisions:
        row = (d["kind"], d["channel"], d["category"], d["effective_at"], tuple(d["evidence"]))
        row += tuple(tuple(d[k]) if isinstance(d[k], list) else d[k] for k in extra)
        rows.append(row)
    return rows


def E(channel: str, at: str | int, evidence: list[str], category: Any = None) -> tuple[Any, ...]:
    """Expected brief row of an ENGAGE decision."""
    return ("ENGAGE", channel, category, iso(at), tuple(evidence))


def S(channel: str, at: str | int, evidence: list[str], category: Any = "*") -> tuple[Any, ...]:
    """Expected brief row of a SUPPRESS decision."""
    return ("SUPPRESS", channel, category, iso(at), tuple(evidence))


def R(channel: str, at: str | int, evidence: list[str], category: Any = "*") -> tuple[Any, ...]:
    """Expected brief row of a RELEASE decision."""
    return ("RELEASE", channel, category, iso(at), tuple(evidence))


def counts(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    """summary["decisions"] without zero entries."""
    out: dict[str, dict[str, int]] = {}
    for kind, by_status in (summary.get("decisions") or {}).items():
        nz = {s: n for s, n in by_status.items() if n}
        if nz:
            out[kind] = nz
    return out


def audit_of(
    result: Any, kind: str | None = None, channel: str | None = None, topology: str | None = None
) -> list[dict[str, Any]]:
    return pick(result.audit, kind=kind, channel=channel, topology=topology)


# ------------------------------------------------------------------ tables


@dataclass(frozen=True)
class Case:
    """One row of a table-driven test: one topology, the events replayed, what they must give.

    `rule` is the contract sentence the case covers (shown when it fails);
    `expect` is whatever the table's test compares (brief rows, evidence lists).
    `rejected` and `audit`, when given, are checked too: the rejected list
    (e.g. [] for "out-of-order events here are on time") and the number of
    audit records."""

    rule: str
    topology: dict[str, Any]
    events: list[dict[str, Any]]
    expect: list[Any]
    until: Any = None
    rejected: list[Any] | None = None
    audit: int | None = None


def case(
    id_: str, rule: str, topology: dict[str, Any], events: list[dict[str, Any]], expect: list[Any], **kw: Any
) -> Any:
    """A pytest.param of one Case, with a readable id (the name the case had as a test of its own)."""
    return pytest.param(Case(rule, topology, events, expect, **kw), id=id_)


def run_case(topo_dir: Callable[..., Path], c: Case) -> Any:
    """Replay the case, check its `rejected` and `audit` when given, and return the result."""
    res = replay(topo_dir(c.topology), c.events, until=c.until)
    if c.rejected is not None:
        assert res.rejected == c.rejected, c.rule
    if c.audit is not None:
        assert len(res.audit) == c.audit, c.rule
    return res


# ------------------------------------------------------------ contract 7


def bucket(salt: str, customer_id: str) -> int:
    """Contract 7.3's bucket function, written out here as the contract writes it."""
    from hashlib import blake2b

    return int.from_bytes(blake2b((salt + "\x1f" + customer_id).encode("utf-8"), digest_size=8).digest(), "big") % 10000


def customers(salt: str, h: int, inside: bool, n: int = 1, *, prefix: str = "c") -> list[str]:
    """The first `n` customer ids `<prefix><i>` inside (bucket < h) or outside a control group of `h` hundredths."""
    found: list[str] = []
    for i in range(100_000):
        c = f"{prefix}{i}"
        if (bucket(salt, c) < h) == inside:
            found.append(c)
            if len(found) == n:
                break
    return found


def with_keys(doc: dict[str, Any], **keys: Any) -> dict[str, Any]:
    """A topology dict with contract 7 keys added (`mode`, `service`, `holdout`, `goal`)."""
    return {**doc, **keys}


def goal(event: str, within: str, where: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": event, "within": within}
    if where is not None:
        body["where"] = where
    return body


def status_of(decisions: Iterable[dict[str, Any]], *extra: str) -> list[tuple[Any, ...]]:
    """(topology, kind, channel, status, cause, *extra) per audit record, sorted."""
    return sorted(
        (d["topology"], d["kind"], d["channel"] or "", d["status"], d["cause"] or "", *(d[k] for k in extra))
        for d in decisions
    )
