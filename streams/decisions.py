"""Decision records (contract section 5) and their deterministic ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from streams.timeutil import format_time

SUPPRESS = "SUPPRESS"
ENGAGE = "ENGAGE"
RELEASE = "RELEASE"

EMITTED = "emitted"
BLOCKED = "blocked"
OUTRANKED = "outranked"
SKIPPED = "skipped"


_TIMES = ("effective_at", "expires_at", "not_before")


def decision_id(
    topology: str,
    version: int,
    customer_id: str,
    evidence: tuple[str, ...],
    kind: str,
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


@dataclass(slots=True)
class Decision:
    decision_id: str
    customer_id: str
    kind: str
    channel: str
    action: str | None
    category: str | None
    topology: str
    topology_version: int
    effective_at: int
    expires_at: int | None
    not_before: int | None
    evidence: tuple[str, ...]
    reason: str
    status: str = EMITTED
    cause: str | None = None

    @property
    def emitted(self) -> bool:
        return self.status == EMITTED

    def sort_key(self) -> tuple[int, str, str, str, str, str]:
        """Contract section 6 order, with the id as the final tie-breaker."""
        return (self.effective_at, self.customer_id, self.topology, self.kind, self.channel, self.decision_id)

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
