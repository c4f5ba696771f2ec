"""What landed, compared with what should have: decision topics, the audit topic, the DLQ, Redis.

* **lost**: expected emitted decisions (replay's) missing from every channel topic;
* **extra**: decision ids on channel topics that replay did not emit;
* **duplicates**: records on channel topics beyond the first of their decision id;
* **audit**: (decision_id, status) pairs that differ between the audit topic and replay;
* **Redis**: the keys replay's emitted decisions would make active now (written with
  :func:`streams.mirror.rebuild` into a scratch prefix of the suite's own Redis)
  against the live prefix's keys: *missing* and *stale* (present, not expected).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition
from redis.asyncio import Redis as AsyncRedis

from streams.codec import avro
from streams.decisions import Decision
from streams.mirror import rebuild

# streams/live/runtime.py's dead-letter headers
H_REASON = "tactful.reason"
H_PARTITION = "tactful.source.partition"
H_OFFSET = "tactful.source.offset"


def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """(value, headers) of every record of ``topic`` up to its end as of the call."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Committed records only (librdkafka's default, said here): what a channel sees. The
            # end lies before the high watermark when transaction markers follow the last record.
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.message.max.bytes": 8 * 1024 * 1024,
            "receive.message.max.bytes": 64 * 1024 * 1024,
        }
    )
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
        todo = {p for p, end in ends.items() if end > 0}
        c.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        got: list[tuple[bytes | None, dict[str, bytes]]] = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard(m.partition() or 0)
                    continue
                got.append((m.value(), _headers(m.headers())))
                if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                    todo.discard(m.partition() or 0)
        return got
    finally:
        c.close()


def _headers(raw: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k, v in raw or ():
        out[str(k)] = v.encode() if isinstance(v, str) else bytes(v or b"")
    return out


def decision_ids(values: Sequence[bytes | None], resolve: avro.Resolver | None = None) -> list[tuple[str, str]]:
    """(decision_id, status) of each decision record (audit records carry the status; channel ones are emitted).

    ``resolve``: the workers' schema ids; the suite's own workers use local ids (no registry)."""
    out = []
    resolve = resolve or avro.local_registry().resolve
    for v in values:
        if v is None:
            continue
        rec = avro.decode(v, resolve)
        out.append((str(rec["decision_id"]), str(rec.get("status") or "emitted")))
    return out


@dataclass
class Findings:
    expected: int = 0  # expected emitted decisions
    expected_all: int = 0  # expected decisions of every status (the audit topic)
    lost: int = 0
    extra: int = 0
    duplicates: int = 0
    audit_missing: int = 0
    audit_extra: int = 0
    redis_expected: int = 0
    redis_missing: int = 0
    redis_stale: int = 0
    dlq: Counter[str] = field(default_factory=Counter)  # distinct input records dead-lettered, by reason
    dlq_records: Counter[str] = field(default_factory=Counter)  # DLQ records, repeats included
    lost_ids: list[str] = field(default_factory=list)
    audit_missing_samples: list[str] = field(default_factory=list)


def compare_decisions(
    bootstrap: str,
    channel_topics: Sequence[str],
    audit_topic: str,
    expected: Sequence[Decision],
    resolve: avro.Resolver | None = None,
) -> Findings:
    f = Findings()
    emitted = {d.decision_id for d in expected if d.emitted}
    f.expected, f.expected_all = len(emitted), len(expected)
    on_channels: Counter[str] = Counter()
    for topic in channel_topics:
        on_channels.update(i for i, _ in decision_ids([v for v, _ in read_topic(bootstrap, topic)], resolve))
    got = set(on_channels)
    lost = emitted - got
    f.lost, f.extra = len(lost), len(got - emitted)
    f.lost_ids = sorted(lost)[:20]
    f.duplicates = sum(n - 1 for n in on_channels.values() if n > 1)
    audit = set(decision_ids([v for v, _ in read_topic(bootstrap, audit_topic)], resolve))
    want = {(d.decision_id, d.status) for d in expected}
    f.audit_missing, f.audit_extra = len(want - audit), len(audit - want)
    by_id = {d.decision_id: d for d in expected}
    f.audit_missing_samples = [
        f"{i} {by_id[i].kind} {by_id[i].topology} {status}" for i, status in sorted(want - audit)[:10]
    ]
    return f


def dead_letters(bootstrap: str, topic: str) -> tuple[Counter[str], Counter[str]]:
    """Dead letters by reason: (records, distinct source records by partition and offset).

    A batch read again after a crash sends its dead letters again; the distinct
    count is how many input records got one.
    """
    records: Counter[str] = Counter()
    sources: dict[str, set[tuple[bytes, bytes]]] = {}
    for _, h in read_topic(bootstrap, topic):
        reason = h.get(H_REASON, b"?").decode(errors="replace")
        records[reason] += 1
        sources.setdefault(reason, set()).add((h.get(H_PARTITION, b""), h.get(H_OFFSET, b"")))
    return records, Counter({r: len(s) for r, s in sources.items()})


def _keys(client: redis.Redis, prefix: str) -> set[str]:
    return {k.decode() if isinstance(k, bytes) else str(k) for k in client.scan_iter(match=f"{prefix}:s:*", count=1000)}


def compare_redis(redis_url: str, live_prefix: str, expected: Sequence[Decision], f: Findings) -> None:
    """Fill ``f``'s Redis fields; the scratch prefix is deleted afterwards."""
    scratch = f"chaosexp{uuid.uuid4().hex[:8]}"

    async def write() -> None:
        client = AsyncRedis.from_url(redis_url)
        try:
            await rebuild(client, expected, prefix=scratch, now_ms=time.time_ns() // 1_000_000, clear=True)
        finally:
            await client.aclose()

    asyncio.run(write())
    with redis.Redis.from_url(redis_url) as r:
        want = {k.removeprefix(scratch + ":") for k in _keys(r, scratch)}
        have = {k.removeprefix(live_prefix + ":") for k in _keys(r, live_prefix)}
        for k in _keys(r, scratch):
            r.unlink(k)
    f.redis_expected = len(want)
    f.redis_missing, f.redis_stale = len(want - have), len(have - want)


def as_dict(f: Findings) -> dict[str, Any]:
    return {**f.__dict__, "dlq": dict(f.dlq), "dlq_records": dict(f.dlq_records)}
