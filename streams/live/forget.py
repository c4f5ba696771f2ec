"""The "forget" record: how a live worker tells channels that a customer is erased (contract section 9).

When a ``tactful.erase`` deletes a customer's state, the worker writes one
record to every channel's decision topic:

* key: the customer id, UTF-8, as every decision's key: it lands on the same
  partition as that customer's decisions, after every decision made before
  the erase;
* value: none (null), so no consumer's Avro deserializer meets a value it
  cannot read and the decision schema (its ``kind`` enum included) stays as
  it is; a consumer that skips null values skips it unharmed;
* header ``tactful.forget``: the erase's ``occurred_at``, ISO-8601 UTC with
  milliseconds and ``Z``.

It asks the channel to delete what it holds about that customer: earlier
decisions, suppressions, delivery state. Decisions that follow it on the
topic come from events after the erase. ``tactful redis-rebuild`` drops the
customer's earlier decisions when it meets one. The record and what a
channel should do with it are in ``docs/erasure.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

# The record's format is the decision topics', read by the mirror and redis-rebuild too.
from streams.decisions import H_FORGET, forget_headers, forgotten

__all__ = ["H_FORGET", "Erasure", "forget_headers", "forgotten"]


@dataclass(frozen=True, slots=True)
class Erasure:
    """One customer erased in a batch: who, the erase's time, and where in the batch's
    decisions it fell (the count of decisions before it, those its deadlines fired included)."""

    customer_id: str
    erased_at: int
    position: int
