"""Decision records (contract section 5) and their deterministic ids.

Contract v1.1 (section 7) adds the statuses ``shadow``, ``held_out`` and, on
GOAL records (kind ``GOAL``, null channel, audit only), ``reached`` and
``missed``; the arms of a fired match (:class:`Arm`); the customer's bucket for
a control group (:func:`bucket`); and the ids of GOAL records and of RELEASE
decisions that are not emitted (:func:`goal_id`, :func:`release_id`). Every v1
id is unchanged.

A :class:`Decision` is immutable and built by keyword with its final values:
the engine makes each one once it knows its status (or replaces it where a
later step, arbitration or a cap, changes it). :class:`Kind` and
:class:`Status` are ``StrEnum`` s whose values are the contract's strings, so
a decision serialises (Avro, JSON) exactly as the plain strings did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from streams.timeutil import format_time


class Kind(StrEnum):
    """What a decision asks of its channel (contract section 5)."""

    SUPPRESS = "SUPPRESS"
    ENGAGE = "ENGAGE"
    RELEASE = "RELEASE"
    GOAL = "GOAL"  # not a decision for a channel: whether a fired match reached its goal (7.4), audit only


class Status(StrEnum):
    """Whether a decision goes to its channel, and if not why (contract sections 5 and 6)."""

    EMITTED = "emitted"
    BLOCKED = "blocked"
    OUTRANKED = "outranked"
    SKIPPED = "skipped"
    # Contract v1.1, section 7: never sent, never mirrored, never in force.
    SHADOW = "shadow"  # made by a topology in shadow mode (7.1)
    HELD_OUT = "held_out"  # would have been emitted, but the match is in a control group (7.3)
    REACHED = "reached"  # GOAL records only (7.4)
    MISSED = "missed"


class Arm:
    """The arm of a fired match (contract 7.3), in the order they apply; the cause of its held-out
    and shadow decisions and of its GOAL records."""

    SHADOW = "shadow"
    HOLDOUT_GLOBAL = "holdout_global"
    HOLDOUT_TOPOLOGY = "holdout_topology"
    TREATED = "treated"


def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket, 0..9999, for a salt: exactly contract 7.3's function."""
    digest = hashlib.blake2b((salt + "\x1f" + customer_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000


_TIMES = ("effective_at", "expires_at", "not_before")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def decision_id(
    topology: str,
    version: int,
    customer_id: str,
    evidence: tuple[str, ...],
    kind: Kind,
    channel: str,
    category: str | None,
    action: str | None,
) -> str:
    """Same topology, version, customer, evidence and action -> same id.

    Fields are joined with ASCII unit/record separators, which cannot occur in
    the validated identifiers, so distinct inputs never collide by concatenation.
    """
    text = "\x1f".join(
        (
            topology,
            str(version),
            customer_id,
            "\x1e".join(evidence),
            kind,
            channel,
            category if category is not None else "\x00",
            action if action is not None else "\x00",
        )
    )
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def release_id(
    topology: str,
    version: int,
    customer_id: str,
    evidence: tuple[str, ...],
    channel: str,
    category: str,
    status: Status,
    cause: str | None,
) -> str:
    """A RELEASE's id: v1's when emitted; else it covers the status and cause too (contract 7.3),
    so a held-out and a shadow release of the same (channel, category) differ."""
    if status == Status.EMITTED:
        return decision_id(topology, version, customer_id, evidence, Kind.RELEASE, channel, category, None)
    text = "\x1f".join(
        (topology, str(version), customer_id, "\x1e".join(evidence), Kind.RELEASE, channel, category, "\x00")
    )
    text += "\x1d" + status + "\x1d" + (cause if cause is not None else "\x00")
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def goal_id(topology: str, version: int, customer_id: str, evidence: tuple[str, ...]) -> str:
    """A GOAL record's id (contract 7.4): topology, version, customer, the match's evidence and ``goal``.

    Five fields where a decision's id has eight, so the two never collide by concatenation.
    """
    text = "\x1f".join((topology, str(version), customer_id, "\x1e".join(evidence), "goal"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def removal_id(
    topology: str,
    version: int,
    customer_id: str,
    at: int,
    channel: str,
    category: str,
    status: Status,
    cause: str | None,
) -> str:
    """The id of the RELEASE that lifts a suppression of a topology removed from the catalog at ``at``
    (contract 8): over topology, version, customer, ``removed``, the time, channel, category, status and cause.

    Its text starts with a record separator, which no other id's text does (they start with a
    topology name), so it cannot collide with any other id by concatenation.
    """
    text = "\x1f".join(
        (topology, str(version), customer_id, "removed", str(at), channel, category, status, cause or "\x00")
    )
    return hashlib.blake2b(("\x1e" + text).encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One decision (contract section 5), with the audit ``status`` and ``cause``."""

    decision_id: str
    customer_id: str
    kind: Kind
    channel: str | None  # null only on GOAL records
    action: str | None
    category: str | None
    topology: str
    topology_version: int
    effective_at: int
    expires_at: int | None
    not_before: int | None
    evidence: tuple[str, ...]
    reason: str
    status: Status = Status.EMITTED
    cause: str | None = None

    @property
    def emitted(self) -> bool:
        return self.status == Status.EMITTED

    def sort_key(self) -> tuple[int, str, str, str, str, str]:
        """Contract section 6 order, with the id as the final tie-breaker (a null channel sorts first)."""
        channel = self.channel if self.channel is not None else ""
        return (self.effective_at, self.customer_id, self.topology, self.kind, channel, self.decision_id)

    def to_json(self, *, audit: bool = False) -> dict[str, Any]:
        """The output form: the record with times as ISO-8601 UTC (milliseconds, Z)."""
        out = self.to_record()
        for key in _TIMES:
            if out[key] is not None:
                out[key] = format_time(out[key])
        if not audit:
            del out["status"], out["cause"]
        return out

    def to_record(self) -> dict[str, Any]:
        """The Avro form: times stay epoch milliseconds; status and cause included."""
        return {
            "decision_id": self.decision_id,
            "customer_id": self.customer_id,
            "kind": self.kind,
            "channel": self.channel,
            "action": self.action,
            "category": self.category,
            "topology": self.topology,
            "topology_version": self.topology_version,
            "effective_at": self.effective_at,
            "expires_at": self.expires_at,
            "not_before": self.not_before,
            "evidence": list(self.evidence),
            "reason": self.reason,
            "status": self.status,
            "cause": self.cause,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Decision:
        """The inverse of :meth:`to_record`, from any Avro reader's output.

        Times may be epoch milliseconds or ``datetime`` (a reader that applies
        logical types; naive means UTC); a missing or null ``status`` is
        ``emitted``, missing optional fields are null. Raises ``KeyError`` for
        a missing required field, ``ValueError`` for an unknown kind or status
        and ``TypeError`` for a value of the wrong shape.
        """
        return cls(
            decision_id=str(record["decision_id"]),
            customer_id=str(record["customer_id"]),
            kind=Kind(record["kind"]),
            channel=None if (channel := record["channel"]) is None else str(channel),
            action=record.get("action"),
            category=record.get("category"),
            topology=str(record["topology"]),
            topology_version=int(record["topology_version"]),
            effective_at=_millis(record["effective_at"]),
            expires_at=_optional_millis(record.get("expires_at")),
            not_before=_optional_millis(record.get("not_before")),
            evidence=tuple(record.get("evidence") or ()),
            reason=str(record["reason"]),
            status=Status(record.get("status") or Status.EMITTED),
            cause=record.get("cause"),
        )


# Each field's slot setter. The frozen dataclass __init__ sets every field through
# object.__setattr__, about 2 µs a decision on Python 3.11; the engine makes one per
# decision on its hot path, so it uses new_decision, which sets the slots directly in
# under half that. The unpacking fails at import if a field is added and not set below.
(
    _set_decision_id, _set_customer_id, _set_kind, _set_channel, _set_action, _set_category, _set_topology,
    _set_topology_version, _set_effective_at, _set_expires_at, _set_not_before, _set_evidence, _set_reason,
    _set_status, _set_cause,
) = (Decision.__dict__[f.name].__set__ for f in fields(Decision))  # fmt: skip
_new = object.__new__


def new_decision(
    *,
    decision_id: str,
    customer_id: str,
    kind: Kind,
    channel: str | None,
    action: str | None,
    category: str | None,
    topology: str,
    topology_version: int,
    effective_at: int,
    expires_at: int | None,
    not_before: int | None,
    evidence: tuple[str, ...],
    reason: str,
    status: Status = Status.EMITTED,
    cause: str | None = None,
) -> Decision:
    """Exactly what ``Decision(...)`` with these keywords makes, built faster (for the engine)."""
    d: Decision = _new(Decision)
    _set_decision_id(d, decision_id)
    _set_customer_id(d, customer_id)
    _set_kind(d, kind)
    _set_channel(d, channel)
    _set_action(d, action)
    _set_category(d, category)
    _set_topology(d, topology)
    _set_topology_version(d, topology_version)
    _set_effective_at(d, effective_at)
    _set_expires_at(d, expires_at)
    _set_not_before(d, not_before)
    _set_evidence(d, evidence)
    _set_reason(d, reason)
    _set_status(d, status)
    _set_cause(d, cause)
    return d


def _millis(value: int | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - _EPOCH) // _ONE_MS
    return int(value)


def _optional_millis(value: int | datetime | None) -> int | None:
    return None if value is None else _millis(value)


# The forget record (contract section 9, docs/erasure.md): on every channel topic, keyed by the
# erased customer, with no value and this header holding the erase's time.
H_FORGET = "tactful.forget"


def forget_headers(erased_at: int) -> tuple[tuple[str, bytes], ...]:
    """The forget record's headers."""
    return ((H_FORGET, format_time(erased_at).encode()),)


def forgotten(headers: Sequence[tuple[str, bytes | None]] | None) -> bool:
    """Whether a record with these headers is a forget record."""
    return any(name == H_FORGET for name, _ in headers or ())
