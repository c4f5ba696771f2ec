"""The suite's input: generated journeys, 1% poison records of every kind, and what replay expects of them.

Good events come from :func:`streams.generate.generate_events`, timed in the
last few days so that the suppressions they cause are active in Redis now.
Poison records are spread through them at seeded positions, one kind after
another, each with the dead-letter reason the worker must give it:

=====================  =========================================  ===================
kind                   record                                     expected reason
=====================  =========================================  ===================
not_avro               the event's JSON bytes                     malformed
bad_avro_body          the wire header, then a cut Avro body      malformed
unknown_schema         a schema id nobody registered              unknown_schema
invalid_<field>        Avro that fits the schema, breaks contract invalid_<field>
late                   occurred_at a day before the stream start  late
at_app_limit           a valid event of exactly MAX_RECORD_BYTES  (decided, no DLQ)
over_app_limit         one byte more                              too_large
at_broker_limit        ``message.max.bytes`` bytes (lz4 on the    too_large
                       wire, so the broker takes it)
over_broker_limit      twice that, lz4                            too_large
=====================  =========================================  ===================

The two broker-sized kinds are sent once each (a 1 MB record per 1% would be
a different test), last of all: today such a record stalls its partition
(the worker cannot write its dead letter and exits), and placed mid-stream it
would hide everything the other faults did behind that stall. The others make
up the 1%. ``expected`` is
``replay_numbered`` over the good events and the valid at-limit ones, in feed
order, plus one clock tick per customer bucket far past every deadline (as
in ``tests/integration/test_parity.py``).
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, cast

import fastavro
import orjson

from streams.codec import MAX_RECORD_BYTES, avro
from streams.decisions import Decision
from streams.generate import generate_events
from streams.replay import replay_numbered
from streams.timeutil import DAY, MAX_TIME_MS, format_time, parse_time
from streams.topology import Catalog

BROKER_KINDS = ("at_broker_limit", "over_broker_limit")
POISON_REASONS: dict[str, str | None] = {
    "not_avro": "malformed",
    "bad_avro_body": "malformed",
    "unknown_schema": "unknown_schema",
    "invalid_event_id": "invalid_event_id",
    "invalid_customer_id": "invalid_customer_id",
    "invalid_type": "invalid_type",
    "invalid_occurred_at": "invalid_occurred_at",
    "invalid_channel": "invalid_channel",
    "invalid_attributes": "invalid_attributes",
    "late": "late",
    "at_app_limit": None,
    "over_app_limit": "too_large",
    "at_broker_limit": "too_large",
    "over_broker_limit": "too_large",
}
UNKNOWN_SCHEMA_ID = 0x7EAD_BEEF
TICKS = 64


@dataclass(frozen=True, slots=True)
class Item:
    key: bytes | None
    value: bytes
    kind: str  # "event", "tick" or a poison kind
    event: dict[str, Any] | None  # what replay sees, for records it should decide on


@dataclass
class Traffic:
    items: list[Item]  # everything fed, in order: events and poison, ticks, the broker-sized records
    expected: list[Decision]  # replay's decisions (every status)
    sent: Counter[str] = field(default_factory=Counter)  # records by kind

    @property
    def expected_emitted(self) -> list[Decision]:
        return [d for d in self.expected if d.emitted]

    def expected_dlq(self) -> Counter[str]:
        want: Counter[str] = Counter()
        for kind, n in self.sent.items():
            reason = POISON_REASONS.get(kind)
            if reason is not None:
                want[reason] += n
        return want


def _wire(record: dict[str, Any], schema_id: int | None = None) -> bytes:
    """Confluent wire format with no size check, so records over the limit can be made."""
    buf = BytesIO()
    buf.write(struct.pack(">BI", 0, avro.touchpoint_schema_id() if schema_id is None else schema_id))
    fastavro.schemaless_writer(buf, avro.touchpoint_schema(), record)
    return buf.getvalue()


def _padded(event: dict[str, Any], size: int) -> tuple[dict[str, Any], bytes]:
    """``event`` with attributes that make its wire form exactly ``size`` bytes (valid up to the contract)."""
    attrs: dict[str, str] = {}
    i = 0

    def wire() -> bytes:
        return _wire(avro.touchpoint_to_avro({**event, "attributes": attrs}))

    # Whole attributes while more than two fit, then the last one's key and value lengths are searched.
    while size - len(wire()) > 2 * 1200:
        attrs[_pad_key(i)] = "x" * 1024
        i += 1
    for key_len in range(128, 0, -1):
        for value_len in range(1024, -1, -1):
            attrs["k" * key_len] = "x" * value_len
            data = wire()
            if len(data) == size:
                return {**event, "attributes": attrs}, data
            if len(data) < size:
                break
            del attrs["k" * key_len]
        else:
            continue
        # Still short with one more attribute at its longest: keep it and search the next one.
        attrs[_pad_key(i)] = attrs.pop("k" * key_len)
        i += 1
        return _padded_rest(event, attrs, size, i)
    raise ValueError(f"cannot pad an event to exactly {size} bytes")


def _padded_rest(event: dict[str, Any], attrs: dict[str, str], size: int, i: int) -> tuple[dict[str, Any], bytes]:
    for key_len in range(1, 129):
        for value_len in range(0, 1025):
            trial = {**attrs, "q" * key_len: "x" * value_len}
            data = _wire(avro.touchpoint_to_avro({**event, "attributes": trial}))
            if len(data) == size:
                return {**event, "attributes": trial}, data
            if len(data) > size:
                break
    raise ValueError(f"cannot pad an event to exactly {size} bytes")


def _pad_key(i: int) -> str:
    # Long keys (the contract allows 128 characters), so that 64 KiB fits in the 64 attributes allowed.
    return f"pad{i:02d}" + "k" * 118


def poison(kind: str, n: int, rng: random.Random, template: dict[str, Any], start_ms: int, broker_max: int) -> Item:
    """The n-th poison record of ``kind``, built from a valid event ``template``."""
    ev = {**template, "event_id": f"poison-{kind}-{n}", "attributes": dict(template.get("attributes") or {})}
    key = str(ev["customer_id"]).encode()
    rec = avro.touchpoint_to_avro(ev)
    if kind == "not_avro":
        return Item(key, orjson.dumps(ev), kind, None)
    if kind == "bad_avro_body":
        data = _wire(rec)
        return Item(key, data[: rng.randrange(6, len(data) - 1)], kind, None)
    if kind == "unknown_schema":
        return Item(key, _wire(rec, UNKNOWN_SCHEMA_ID), kind, None)
    if kind.startswith("invalid_"):
        field_name = kind.removeprefix("invalid_")
        bad: dict[str, Any] = {
            "event_id": "",
            "customer_id": "c" * 129,
            "type": "Not A Type",
            "occurred_at": MAX_TIME_MS + 1,
            "channel": "x" * 65,
            "attributes": {f"k{j}": "v" for j in range(65)},
        }
        return Item(key, _wire({**rec, field_name: bad[field_name]}), kind, None)
    if kind == "late":
        late = {**ev, "occurred_at": format_time(start_ms - DAY)}
        return Item(key, _wire(avro.touchpoint_to_avro(late)), kind, None)
    if kind in ("at_app_limit", "over_app_limit"):
        valid, data = _padded({**ev, "type": "chaos_padding"}, MAX_RECORD_BYTES)
        if kind == "at_app_limit":
            return Item(key, data, kind, valid)
        longer = dict(valid["attributes"])
        last = sorted(longer)[-1]
        longer[last] += "x"
        over = _wire(avro.touchpoint_to_avro({**valid, "attributes": longer}))
        return Item(key, over, kind, None)
    if kind in BROKER_KINDS:
        size = broker_max if kind == "at_broker_limit" else 2 * broker_max
        head = _wire(rec)
        return Item(key, head + b"\0" * (size - len(head)), kind, None)
    raise ValueError(f"unknown poison kind {kind}")


def build(
    catalog: Catalog,
    *,
    events: int,
    customers: int,
    seed: int,
    now_ms: int,
    poison_rate: float = 0.01,
    broker_max: int = 1_048_588,
    big: bool = True,
) -> Traffic:
    rng = random.Random(seed)
    start_ms = now_ms - 3 * DAY
    # invalid_rate is 0: every generated record is an event object.
    good = [cast(dict[str, Any], e) for e in generate_events(events, customers, seed, start_ms=start_ms, days=3.0)]
    kinds = [k for k in POISON_REASONS if k not in BROKER_KINDS]
    n_poison = max(len(kinds), round(events * poison_rate))
    # Not in the first 5%: a partition must have a watermark for "late" to be late.
    low = max(1, len(good) // 20)
    slots = sorted(rng.sample(range(low, len(good)), n_poison))
    plan = [kinds[i % len(kinds)] for i in range(n_poison)]
    rng.shuffle(plan)
    at = dict(zip(slots, plan, strict=True))
    items: list[Item] = []
    sent: Counter[str] = Counter()
    for i, ev in enumerate(good):
        kind = at.get(i)
        if kind is not None:
            # The event it stands beside: a template from later in the stream would move its
            # partition's stream time ahead, and the events after it would be late there.
            template = ev
            items.append(poison(kind, sent[kind], rng, template, start_ms, broker_max))
            sent[kind] += 1
        key = ev.get("customer_id")
        items.append(Item(key.encode() if isinstance(key, str) else None, _encode(ev), "event", ev))
        sent["event"] += 1
    last = max(parse_time(e["occurred_at"]) for e in good)
    for i in range(TICKS):
        tick = {
            "event_id": f"tick-{i}",
            "customer_id": f"tick-{i}",
            "type": "clock_tick",
            "occurred_at": format_time(last + 40 * DAY),
        }
        items.append(Item(tick["customer_id"].encode(), _encode(tick), "tick", tick))
        sent["tick"] += 1
    # Last, after the ticks: a partition that such a record stalls must not hide what the other
    # faults did to the rest of the stream. Its stall shows by itself (crashes, records never
    # committed, a dead letter missing). Each on its own customer's partition, next to a tick's.
    for n, kind in enumerate(BROKER_KINDS if big else ()):
        template = {**good[-1], "customer_id": f"tick-{n}"}
        items.append(poison(kind, 0, rng, template, start_ms, broker_max))
        sent[kind] += 1
    replayed = replay_numbered(catalog, enumerate((it.event for it in items if it.event is not None), 1))
    return Traffic(items, list(replayed.all_decisions), sent)


def _encode(ev: dict[str, Any]) -> bytes:
    from streams.live.feed import encode_event

    return encode_event(ev)[1]
