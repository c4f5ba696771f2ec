"""A consumer and messages that behave as confluent-kafka's do for the channel client, and decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from streams.codec import avro
from streams.decisions import Decision, Kind, forget_headers

TOPIC = "decisions.email"


def decision(
    n: int,
    customer: str = "c1",
    *,
    kind: Kind = Kind.ENGAGE,
    not_before: int | None = None,
    expires_at: int | None = None,
) -> Decision:
    return Decision(
        decision_id=f"d{n:04d}",
        customer_id=customer,
        kind=kind,
        channel="email",
        action="offer_help" if kind == Kind.ENGAGE else None,
        category="phone",
        topology="post_purchase_friction",
        topology_version=1,
        effective_at=1_000 + n,
        expires_at=expires_at,
        not_before=not_before,
        evidence=(f"e{n}",),
        reason="because",
    )


def encoded(d: Decision) -> bytes:
    return avro.encode(d.to_record(), avro.decision_schema(), avro.decision_schema_id())


@dataclass
class Message:
    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None
    value_: bytes | None
    headers_: Sequence[tuple[str, bytes]] | None = None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> Sequence[tuple[str, bytes]] | None:
        return self.headers_


@dataclass
class Consumer:
    """Serves every record of each partition from the committed offset, ``batch`` at a time."""

    partitions: dict[int, list[Message]]
    batch: int = 3
    committed: dict[int, int] = field(default_factory=dict)
    position: dict[int, int] = field(default_factory=dict)
    subscribed: Any = None
    paused: bool = False
    closed: bool = False

    def add(self, partition: int, key: str | None, value: bytes | None, headers: Any = None) -> None:
        records = self.partitions.setdefault(partition, [])
        records.append(Message(TOPIC, partition, len(records), key.encode() if key else None, value, headers))

    def add_decision(self, partition: int, d: Decision) -> None:
        self.add(partition, d.customer_id, encoded(d))

    def add_forget(self, partition: int, customer: str, at: int) -> None:
        self.add(partition, customer, None, list(forget_headers(at)))

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.subscribed = (topics, on_assign, on_revoke)
        self.position = {}

    def _tps(self) -> list[Any]:
        return [SimpleNamespace(topic=TOPIC, partition=p) for p in sorted(self.partitions)]

    def consume(self, num: int, timeout: float) -> list[Message]:
        assert self.subscribed is not None
        if not self.position:
            self.position = {p: self.committed.get(p, 0) for p in self.partitions}
            self.subscribed[1](self, self._tps())
        if self.paused:
            return []
        out: list[Message] = []
        for p in sorted(self.partitions):
            records = self.partitions[p]
            while self.position[p] < len(records) and len(out) < min(num, self.batch):
                out.append(records[self.position[p]])
                self.position[p] += 1
        return out

    def drained(self) -> bool:
        return bool(self.position) and all(self.position[p] >= len(r) for p, r in self.partitions.items())

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert not asynchronous
        for tp in offsets:
            assert tp.offset >= self.committed.get(tp.partition, 0), "a commit went backwards"
            self.committed[tp.partition] = tp.offset

    def assignment(self) -> list[Any]:
        return self._tps()

    def pause(self, partitions: list[Any]) -> None:
        self.paused = True

    def resume(self, partitions: list[Any]) -> None:
        self.paused = False

    def close(self) -> None:
        self.closed = True


class Producer:
    """Records what was produced and when it was flushed."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[Any] = []
        self.fail: str | None = None  # the delivery error to report, if any

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any = None) -> None:
        self.records.append((topic, key, value))
        self.log.append("produce")
        self.pending.append(on_delivery)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.log.append("flush")
        for callback in self.pending:
            if callback is not None:
                callback(self.fail, None)
        self.pending.clear()
        return 0
