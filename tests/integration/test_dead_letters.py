"""Every kind of bad record lands on the DLQ with its reason; good records around it are decided."""

from __future__ import annotations

import struct
import time

import orjson

from streams.codec import avro
from streams.decisions import Kind
from tests.integration.conftest import Namespace


def good(eid: str, cust: str, etype: str, at: int, **attrs: str) -> tuple[bytes, bytes]:
    record = {
        "event_id": eid,
        "customer_id": cust,
        "type": etype,
        "occurred_at": at,
        "channel": "app",
        "attributes": attrs or None,
    }
    return cust.encode(), avro.encode(record, avro.touchpoint_schema(), avro.touchpoint_schema_id())


def test_bad_records_are_dead_lettered_and_the_partition_keeps_going(namespace: Namespace) -> None:
    namespace.worker().wait_ready()
    now = int(time.time() * 1000)
    cust = f"c-{namespace.id}"
    header = struct.pack(">bI", 0, avro.touchpoint_schema_id())
    valid_body = good("x", cust, "purchase", now)[1]
    records = [
        good("p", cust, "purchase", now, category="tablet"),
        (cust.encode(), orjson.dumps({"event_id": "j", "customer_id": cust})),  # not Avro
        (cust.encode(), struct.pack(">bI", 0, 999_999) + b"\x02a"),  # unknown schema id
        (cust.encode(), valid_body[:9]),  # truncated Avro
        good("t", cust, "Not A Type", now),  # invalid type
        (cust.encode(), header + b"\x00" * 70_000),  # too large
        good("", cust, "purchase", now),  # empty event_id
        good("f", cust, "activation_failed", now + 60_000),
        good("late", cust, "page_view", now - 3_600_000),  # an hour behind: late
        good("s", cust, "support_contact", now + 120_000, resolved="false"),
    ]
    namespace.produce_raw(records)

    dlq = namespace.read(namespace.settings().topics.dlq, lambda got: len(got) >= 7)
    reasons = sorted(dict(m.headers())["tactful.reason"].decode() for m in dlq)
    assert reasons == sorted(
        [
            "malformed",
            "unknown_schema",
            "malformed",
            "invalid_type",
            "too_large",
            "invalid_event_id",
            "late",
        ]
    )
    by_reason = {dict(m.headers())["tactful.reason"].decode(): m for m in dlq}
    unknown = by_reason["unknown_schema"]
    assert unknown.value() == records[2][1]  # the original bytes, untouched
    headers = dict(unknown.headers())
    assert headers["tactful.exception"] == b"UnknownSchema"
    assert headers["tactful.source.topic"].decode() == namespace.settings().topics.input
    assert int(headers["tactful.source.offset"]) >= 0 and int(headers["tactful.source.partition"]) >= 0

    suppressions = namespace.decisions("ads", lambda ds: len(ds) >= 1)
    assert [(d.kind, d.category, d.evidence) for d in suppressions] == [(Kind.SUPPRESS, "tablet", ("p", "f", "s"))]


def test_a_record_too_large_for_the_dlq_is_cut_to_fit_and_its_partition_keeps_deciding(namespace: Namespace) -> None:
    import hashlib

    from streams.live.feed import producer

    namespace.worker().wait_ready()
    now = int(time.time() * 1000)
    cust = f"c-{namespace.id}"
    header = struct.pack(">bI", 0, avro.touchpoint_schema_id())
    # 2 MB of zeros: lz4 makes a few kilobytes of it, so the input topic (default limit)
    # takes it; copied whole, the DLQ topic (the same limit, uncompressed) would not.
    huge = header + b"\x00" * 2_000_000
    records = [
        good("p", cust, "purchase", now, category="tablet"),
        (cust.encode(), huge),
        good("f", cust, "activation_failed", now + 60_000),
        good("s", cust, "support_contact", now + 120_000, resolved="false"),
    ]
    topic = namespace.settings().topics.input
    prod = producer(namespace.settings(), **{"message.max.bytes": 10_000_000})
    for key, value in records:
        prod.produce(topic, value=value, key=key, headers=[("trace", b"t-1")])
    assert prod.flush(30) == 0

    (dead,) = namespace.read(namespace.settings().topics.dlq, lambda got: len(got) >= 1)
    headers = dict(dead.headers())
    assert headers["tactful.reason"] == b"too_large"
    assert headers["tactful.truncated"] == b"value"
    assert headers["tactful.original.size"] == str(len(huge)).encode()
    assert headers["tactful.original.sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert headers["trace"] == b"t-1"
    assert 900_000 < len(dead.value()) < 1_000_000 and huge.startswith(dead.value())

    # The partition goes on: the events after the large one are decided, and committed.
    suppressions = namespace.decisions("ads", lambda ds: len(ds) >= 1)
    assert [(d.kind, d.category, d.evidence) for d in suppressions] == [(Kind.SUPPRESS, "tablet", ("p", "f", "s"))]
    namespace.wait_committed(len(records))
