"""Outcomes reported by channels (contract section 7.5), as touchpoint events.

A channel tells tactful what became of a decision with an ordinary touchpoint
of type ``decision.<outcome>`` carrying the attribute ``decision_id``; the
workers read it like any event, so a topology can react to it (a complaint
about a message suppresses that channel). :func:`outcome_event` builds one;
:meth:`~streams.channel.client.ChannelClient.report` sends it.

The event id is deterministic by default (``decision.<outcome>:<decision_id>``):
reporting the same outcome of the same decision again, as a retried hand-over
does, is recognised by the workers as a duplicate and ignored. Pass your own
``event_id`` to report one outcome more than once (a second click).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.decisions import Decision
from streams.timeutil import format_time

OUTCOMES = (
    "delivered",
    "opened",
    "clicked",
    "converted",
    "dismissed",
    "complained",
    "unsubscribed",
    "failed",
)
"""The outcomes of contract 7.5; the event type is ``decision.`` followed by one of them."""


def outcome_event(
    decision: Decision,
    outcome: str,
    at_ms: int,
    *,
    event_id: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The touchpoint (JSON form) saying ``decision`` had ``outcome`` at ``at_ms``.

    Raises ``ValueError`` for an outcome not in :data:`OUTCOMES` or extra
    attributes that try to replace ``decision_id``.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
    extra = dict(attributes or {})
    if "decision_id" in extra:
        raise ValueError("attributes must not set decision_id: it is the reported decision's")
    kind = f"decision.{outcome}"
    return {
        "event_id": event_id or f"{kind}:{decision.decision_id}",
        "customer_id": decision.customer_id,
        "type": kind,
        "occurred_at": format_time(at_ms),
        "channel": decision.channel,
        "attributes": {**extra, "decision_id": decision.decision_id},
    }
