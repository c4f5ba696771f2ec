"""Avro codec: schemas, exact wire bytes, every malformed case, OCF, record forms."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from streams.codec import MAX_RECORD_BYTES
from streams.codec import avro as codec
from streams.errors import (
    ConfigError,
    EventsFileError,
    InputError,
    MalformedRecord,
    UnknownSchema,
)
from streams.events import Event, validate_event

T_2026_05_01_10 = 1_777_629_600_000  # 2026-05-01T10:00:00.000Z

EVENT = Event(
    event_id="e1",
    customer_id="c000123",
    type="purchase",
    occurred_at=T_2026_05_01_10,
    channel="web",
    attributes={"category": "phone"},
)

DECISION: dict[str, Any] = {
    "decision_id": "d1",
    "customer_id": "c1",
    "kind": "ENGAGE",
    "channel": "sms",
    "action": "nudge",
    "category": None,
    "topology": "t",
    "topology_version": 1,
    "effective_at": 1000,
    "expires_at": None,
    "not_before": 1000,
    "evidence": ["e1"],
    "reason": "r",
    "status": "blocked",
    "cause": "cap",
}


def zigzag(n: int) -> bytes:
    """Avro long encoding, written independently of fastavro for the tests."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


def touchpoint_body() -> bytes:
    return codec.encode(codec.event_to_avro(EVENT), codec.touchpoint_schema(), 7)[5:]


def resolve_7(schema_id: int) -> dict[str, Any] | None:
    return codec.reading_schema(codec.schema_json("touchpoint")) if schema_id == 7 else None


# --- schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["touchpoint", "decision"])
def test_schema_files_are_found_and_documented(name: str) -> None:
    path = codec.schema_path(name)
    assert path == codec.schema_path(f"{name}.avsc")
    assert path.parent.name in ("avro", "_avro")
    schema = json.loads(path.read_text())
    assert schema["namespace"] == "tactful"
    assert schema["doc"]
    for field in schema["fields"]:
        assert field.get("doc"), f"{name}.{field['name']} has no doc"
        if isinstance(field["type"], dict) and field["type"]["type"] == "enum":
            assert field["type"]["doc"]


def test_schema_path_unknown_name() -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.avsc"):
        codec.schema_path("nope")


def test_touchpoint_schema_fields() -> None:
    fields = {f["name"]: f for f in codec.schema_json("touchpoint")["fields"]}
    assert list(fields) == [
        "event_id",
        "customer_id",
        "type",
        "occurred_at",
        "channel",
        "attributes",
    ]
    assert fields["occurred_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["channel"]["type"] == ["null", "string"]
    assert fields["channel"]["default"] is None
    assert fields["attributes"]["type"] == ["null", {"type": "map", "values": "string"}]
    assert fields["attributes"]["default"] is None


def test_decision_schema_fields() -> None:
    fields = {f["name"]: f for f in codec.schema_json("decision")["fields"]}
    assert list(fields) == [
        "decision_id", "customer_id", "kind", "channel", "action", "category", "topology",
        "topology_version", "effective_at", "expires_at", "not_before", "evidence", "reason",
        "status", "cause",
    ]  # fmt: skip
    assert fields["kind"]["type"]["name"] == "DecisionKind"
    assert fields["kind"]["type"]["symbols"] == ["SUPPRESS", "ENGAGE", "RELEASE", "GOAL"]
    assert fields["status"]["type"]["symbols"] == [
        "emitted", "blocked", "outranked", "skipped", "shadow", "held_out", "reached", "missed",
    ]  # fmt: skip
    assert fields["channel"]["type"] == ["null", "string"]  # null on GOAL records (contract 7.4)
    assert fields["status"]["default"] == "emitted"
    assert fields["cause"]["default"] is None
    assert fields["topology_version"]["type"] == "int"
    assert fields["evidence"]["type"] == {"type": "array", "items": "string"}
    for name in ("expires_at", "not_before"):
        assert fields[name]["type"] == ["null", {"type": "long", "logicalType": "timestamp-millis"}]


def test_schema_json_is_a_fresh_copy() -> None:
    codec.schema_json("touchpoint")["fields"].clear()
    assert codec.schema_json("touchpoint")["fields"]


# --- schema ids ----------------------------------------------------------------------


def test_local_schema_id_rule() -> None:
    schema = codec.schema_json("touchpoint")
    canonical = to_parsing_canonical_form(schema)
    digest = hashlib.sha256(canonical.encode()).digest()
    expected = int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF
    assert codec.local_schema_id(schema) == expected == codec.touchpoint_schema_id()
    assert 0 <= expected < 2**31


def test_local_schema_ids_are_pinned() -> None:
    # These change only when a schema's binary layout changes: that is a new
    # schema for every reader, so change them on purpose or not at all.
    assert codec.touchpoint_schema_id() == 2_049_217_062
    assert codec.decision_schema_id() == 1_562_384_128


def test_local_schema_id_ignores_docs_defaults_and_logical_types() -> None:
    schema = codec.schema_json("touchpoint")
    stripped = json.loads(json.dumps(schema).replace('"logicalType": "timestamp-millis"', '"x": 1'))
    for field in stripped["fields"]:
        field.pop("doc")
    assert codec.local_schema_id(stripped) == codec.local_schema_id(schema)
    assert codec.local_schema_id(codec.touchpoint_schema()) == codec.local_schema_id(schema)


def test_local_registry_resolves_own_schemas() -> None:
    registry = codec.local_registry()
    assert registry.resolve(codec.touchpoint_schema_id()) is not None
    assert registry.resolve(codec.decision_schema_id()) is not None
    assert registry.resolve(7) is None


def test_local_registry_refuses_an_id_collision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "local_schema_id", lambda schema: 1)
    registry = codec.LocalRegistry()
    assert registry.register(codec.schema_json("touchpoint")) == 1
    assert registry.register(codec.schema_json("touchpoint")) == 1  # same schema again: fine
    with pytest.raises(ConfigError, match="id 1"):
        registry.register(codec.schema_json("decision"))


# --- exact bytes ---------------------------------------------------------------------


def test_touchpoint_exact_bytes() -> None:
    expected = (
        b"\x00\x00\x00\x00\x07"  # magic 0, schema id 7 big-endian
        + b"\x04e1"  # event_id: length 2 zig-zags to 4
        + b"\x0ec000123"  # customer_id: length 7 -> 14
        + b"\x10purchase"  # type: length 8 -> 16
        # occurred_at 1777629600000 zig-zags to 3555259200000; 7-bit groups low
        # first: 0x00 0x64 0x58 0x2f 0x3c 0x67, continuation bit on all but last.
        + b"\x80\xe4\xd8\xaf\xbc\x67"
        + b"\x02\x06web"  # channel: union branch 1 (string) -> 2, length 3 -> 6
        + b"\x02"  # attributes: union branch 1 (map)
        + b"\x02"  # one block of 1 entry
        + b"\x10category\x0aphone"  # key length 8, value length 5
        + b"\x00"  # end of map
    )
    assert zigzag(T_2026_05_01_10) == b"\x80\xe4\xd8\xaf\xbc\x67"
    assert codec.encode(codec.event_to_avro(EVENT), codec.touchpoint_schema(), 7) == expected


def test_touchpoint_without_optionals_exact_bytes() -> None:
    event = Event("e", "c", "t", 0)
    data = codec.encode(codec.event_to_avro(event), codec.touchpoint_schema(), 256)
    assert data == b"\x00\x00\x00\x01\x00" + b"\x02e\x02c\x02t" + b"\x00" + b"\x00\x00"


def test_decision_exact_bytes() -> None:
    expected = (
        b"\x00\x00\x00\x00\x09"
        + b"\x04d1\x04c1"  # decision_id, customer_id
        + b"\x02"  # kind: ENGAGE is symbol 1
        + b"\x02\x06sms"  # channel: union branch 1
        + b"\x02\x0anudge"  # action: union branch 1, length 5
        + b"\x00"  # category: null
        + b"\x02t"  # topology
        + b"\x02"  # topology_version 1
        + b"\xd0\x0f"  # effective_at 1000 -> 2000 = 0x50|0x80, 0x0f
        + b"\x00"  # expires_at: null
        + b"\x02\xd0\x0f"  # not_before: branch 1, 1000
        + b"\x02\x04e1\x00"  # evidence: one item, end of array
        + b"\x02r"  # reason
        + b"\x02"  # status: blocked is symbol 1
        + b"\x02\x06cap"  # cause
    )
    assert codec.encode(codec.decision_to_avro(DECISION), codec.decision_schema(), 9) == expected


def test_the_largest_schema_id_fits_four_bytes() -> None:
    record = codec.event_to_avro(EVENT)
    assert codec.encode(record, codec.touchpoint_schema(), 0xFFFF_FFFF)[:5] == b"\x00\xff\xff\xff\xff"


@pytest.mark.parametrize("bad", [-1, 2**32], ids=["negative", "2**32"])
def test_schema_id_must_fit_four_bytes(bad: int) -> None:
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        codec.encode(codec.event_to_avro(EVENT), codec.touchpoint_schema(), bad)


# --- round trips ---------------------------------------------------------------------


def test_touchpoint_round_trip_through_local_registry() -> None:
    data = codec.encode_touchpoint(EVENT)
    assert data[:5] == header(codec.touchpoint_schema_id())
    record = codec.decode(data, codec.local_registry().resolve)
    assert record == {**EVENT.to_record()}
    assert type(record["occurred_at"]) is int
    assert validate_event(record) == EVENT


def test_decode_with_a_logical_type_schema_still_gives_millis() -> None:
    # A resolver from elsewhere (a schema registry) hands out schemas with
    # logical types; decode must still return epoch-ms ints.
    data = codec.encode_touchpoint(EVENT)
    record = codec.decode(data, lambda _id: codec.touchpoint_schema())
    assert record["occurred_at"] == T_2026_05_01_10
    assert type(record["occurred_at"]) is int


def test_touchpoint_without_attributes_round_trips_to_empty() -> None:
    event = Event("e2", "c2", "page_view", -5, None, {})
    record = codec.decode(codec.encode_touchpoint(event), codec.local_registry().resolve)
    assert record["attributes"] is None and record["channel"] is None
    assert validate_event(record) == event


def test_decision_round_trip() -> None:
    data = codec.encode_decision(DECISION)
    record = codec.decode(data, codec.local_registry().resolve)
    assert codec.decision_from_avro(record) == DECISION


# --- malformed -----------------------------------------------------------------------


def _reason(data: bytes, resolve: codec.Resolver = resolve_7) -> str:
    with pytest.raises(InputError) as info:
        codec.decode(data, resolve)
    assert isinstance(info.value, (MalformedRecord, UnknownSchema))
    return info.value.reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00\x00\x07",
        b"\x01\x00\x00\x00\x07" + b"\x02e\x02c\x02t\x00\x00\x00",  # bad magic byte
        b'{"event_id": "e1"}',  # JSON on an Avro topic
    ],
)
def test_bad_header_is_malformed(data: bytes) -> None:
    assert _reason(data) == "malformed"


def test_every_truncation_is_malformed() -> None:
    body = touchpoint_body()
    for cut in range(len(body)):
        assert _reason(header(7) + body[:cut]) == "malformed", cut


def test_trailing_bytes_are_malformed() -> None:
    with pytest.raises(MalformedRecord, match="left after the record"):
        codec.decode(header(7) + touchpoint_body() + b"\x00", resolve_7)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x04\xff\xfe" + b"\x02c\x02t\x00\x00\x00", "invalid UTF-8"),
        (b"\x02e\x02c\x02t\x00\x04\x00", "union branch 2 of 2"),
        (b"\x02e\x02c\x02t\x00\x7f\x00", "negative union branch"),
        (b"\x02e\x02c\x02t" + b"\xff" * 11 + b"\x00\x00", "varint longer than 10 bytes"),
    ],
)
def test_undecodable_bodies_are_malformed(body: bytes, why: str) -> None:
    assert _reason(header(7) + body) == "malformed", why


def test_bad_enum_index_is_malformed() -> None:
    good = codec.encode(codec.decision_to_avro(DECISION), codec.decision_schema(), 9)
    bad = good[:11] + zigzag(4) + good[12:]  # kind: there is no symbol 4
    assert good[11:12] == b"\x02"
    reason = _reason(bad, lambda i: codec.reading_schema(codec.schema_json("decision")))
    assert reason == "malformed"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (zigzag(2**62) + b"abc", "string claims 2**62 bytes"),
        (zigzag(-(2**40)) + b"abc", "negative string length"),
        (
            b"\x02e\x02c\x02t\x00\x00\x02" + zigzag(2**62) + b"\x02k\x02v",
            "map claims 2**62 entries",
        ),
        (
            b"\x02e\x02c\x02t\x00\x00\x02" + zigzag(-(2**62)) + zigzag(2**62) + b"\x02k",
            "map block size",
        ),
        (b"\x02e\x02c\x02t\x00\x00\x02\x02" + zigzag(2**62) + b"k", "map key claims 2**62 bytes"),
    ],
)
def test_hostile_lengths_fail_fast_without_memory(body: bytes, what: str) -> None:
    tracemalloc.start()
    try:
        assert _reason(header(7) + body) == "malformed", what
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, what


def test_hostile_array_count_fails_fast_without_memory() -> None:
    # An array count of 2**62 with 64 KiB of one-byte items: decoding stops at
    # the end of the bytes, it never allocates what the count claims.
    good = codec.encode(codec.decision_to_avro(DECISION), codec.decision_schema(), 9)
    start = good.index(b"\x02\x04e1\x00")
    hostile = good[:start] + zigzag(2**62) + b"\x00" * (MAX_RECORD_BYTES - start - 10)
    resolve = lambda i: codec.reading_schema(codec.schema_json("decision"))  # noqa: E731
    tracemalloc.start()
    try:
        assert _reason(hostile, resolve) == "malformed"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


def test_random_bytes_only_ever_raise_input_errors() -> None:
    rng = random.Random(7)
    body = touchpoint_body()
    for _ in range(3000):
        mutated = bytearray(header(7) + body)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(5, len(mutated))] = rng.getrandbits(8)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 30)))
        for data in (bytes(mutated), header(7) + junk):
            try:
                record = codec.decode(data, resolve_7)
            except InputError:
                continue
            assert set(record) == {f["name"] for f in codec.schema_json("touchpoint")["fields"]}


# --- the touchpoint decoder of the worker's hot path ------------------------------------


def touchpoint_decoder(resolve: codec.Resolver = resolve_7) -> codec.TouchpointDecoder:
    return codec.TouchpointDecoder(resolve, codec.reading_schema(codec.schema_json("touchpoint")))


def general_or_error(data: bytes | bytearray, resolve: codec.Resolver = resolve_7) -> object:
    try:
        return codec.decode(data, resolve, codec.reading_schema(codec.schema_json("touchpoint")))
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)


def fast_or_error(decoder: codec.TouchpointDecoder, data: bytes | bytearray) -> object:
    try:
        return decoder(data)
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)


TOUCHPOINTS: list[dict[str, Any]] = [
    codec.event_to_avro(EVENT),
    {**codec.event_to_avro(EVENT), "channel": None, "attributes": None},
    {**codec.event_to_avro(EVENT), "attributes": {}},
    {**codec.event_to_avro(EVENT), "occurred_at": -T_2026_05_01_10},
    {**codec.event_to_avro(EVENT), "occurred_at": 2**62 - 1},  # 9 varint bytes
    {**codec.event_to_avro(EVENT), "occurred_at": -(2**63)},  # 10 varint bytes: fastavro's
    {**codec.event_to_avro(EVENT), "event_id": "é" * 200, "customer_id": "c" * 128, "type": "t" * 64},
    {**codec.event_to_avro(EVENT), "channel": "ç" * 70},
    {**codec.event_to_avro(EVENT), "attributes": {f"k{i}": "v" * i for i in range(100)}},  # 2-byte count
    {**codec.event_to_avro(EVENT), "attributes": {"k" * 300: "v" * 300, "": ""}},
]


@pytest.mark.parametrize("record", TOUCHPOINTS, ids=range(len(TOUCHPOINTS)))
def test_touchpoint_decoder_reads_as_decode(record: dict[str, Any]) -> None:
    data = codec.encode(record, codec.touchpoint_schema(), 7)
    decoder = touchpoint_decoder()
    got = decoder(data)
    assert got == record == codec.decode(data, resolve_7)
    assert list(got) == list(record)  # field order, as fastavro gives it
    assert decoder(bytearray(data)) == record


def test_touchpoint_decoder_interns_repeated_names() -> None:
    decoder = touchpoint_decoder()
    one = decoder(codec.encode(codec.event_to_avro(EVENT), codec.touchpoint_schema(), 7))
    two = decoder(codec.encode({**codec.event_to_avro(EVENT), "event_id": "e2"}, codec.touchpoint_schema(), 7))
    assert one["type"] is two["type"]
    assert one["channel"] is two["channel"]
    assert next(iter(one["attributes"])) is next(iter(two["attributes"]))
    assert one["event_id"] is not two["event_id"]


def test_touchpoint_decoder_reads_another_id_of_the_same_layout() -> None:
    # A registry's id for the touchpoint schema: the same layout, another number.
    registered = codec.reading_schema(codec.schema_json("touchpoint"))
    decoder = touchpoint_decoder(lambda i: registered if i in (7, 12) else None)
    first = decoder(header(12) + touchpoint_body())
    assert first == codec.event_to_avro(EVENT)
    assert decoder(header(12) + touchpoint_body())["type"] is first["type"]


def test_touchpoint_decoder_leaves_another_layout_to_schema_resolution() -> None:
    newer = codec.schema_json("touchpoint")
    newer["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
    record = {**codec.event_to_avro(EVENT), "campaign": "spring"}
    data = codec.encode(record, fastavro.parse_schema(newer), 8)
    parsed = codec.reading_schema(newer)
    resolve = lambda i: parsed if i == 8 else None  # noqa: E731
    assert touchpoint_decoder(resolve)(data) == codec.event_to_avro(EVENT) == general_or_error(data, resolve)


def test_touchpoint_decoder_reads_map_blocks_with_their_size() -> None:
    # Avro lets a writer give a block's byte size (a negative count): legal, left to fastavro.
    entry = zigzag(1) + b"k" + zigzag(1) + b"v"
    body = b"\x02e\x02c\x02t\x00\x00\x02" + zigzag(-1) + zigzag(len(entry)) + entry + b"\x00"
    assert touchpoint_decoder()(header(7) + body) == general_or_error(header(7) + body)
    assert touchpoint_decoder()(header(7) + body)["attributes"] == {"k": "v"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00\x00\x07",
        header(8) + touchpoint_body(),
        header(7) + touchpoint_body() + b"\x00",
        b"\x07" * (MAX_RECORD_BYTES + 1),
        header(7) + b"\x04\xff\xfe" + b"\x02c\x02t\x00\x00\x00",
        header(7) + b"\x02e\x02c\x02t\x00\x04\x00",
        header(7) + b"\x02e\x02c\x02t\x00\x7f\x00",
        header(7) + b"\x02e\x02c\x02t\x00\x00\x01",
        header(7) + b"\x02e\x02c\x02t" + b"\xff" * 11 + b"\x00\x00",
        header(7) + zigzag(-(2**40)) + b"abc",
        header(7) + b"\x02e\x02c\x02t\x00\x00\x02" + zigzag(2**40) + b"\x00\x00" * 50,
        header(7) + b"\x02e\x02c\x02t\x00\x00\x02\x02" + zigzag(2**62) + b"k",
    ],
)
def test_touchpoint_decoder_fails_as_decode(data: bytes) -> None:
    assert isinstance(general_or_error(data), tuple)
    assert fast_or_error(touchpoint_decoder(), data) == general_or_error(data)


def test_touchpoint_decoder_every_truncation_as_decode() -> None:
    decoder = touchpoint_decoder()
    data = codec.encode(TOUCHPOINTS[-2], codec.touchpoint_schema(), 7)
    for cut in range(len(data)):
        assert fast_or_error(decoder, data[:cut]) == general_or_error(data[:cut]), cut


def test_touchpoint_decoder_random_bytes_as_decode() -> None:
    rng = random.Random(13)
    decoder = touchpoint_decoder()
    bodies = [codec.encode(r, codec.touchpoint_schema(), 7)[5:] for r in TOUCHPOINTS[:4]]
    decoded = 0
    for n in range(4000):
        mutated = bytearray(header(7) + bodies[n % len(bodies)])
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(5, len(mutated))] = rng.getrandbits(8)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 30)))
        for data in (bytes(mutated), header(7) + junk):
            expected = general_or_error(data)
            assert fast_or_error(decoder, data) == expected, data
            decoded += isinstance(expected, dict)
    assert decoded > 500  # the mutations left many records readable: both paths were compared


# --- size ----------------------------------------------------------------------------


def _wire_size(record: dict[str, Any]) -> int:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, codec.touchpoint_schema(), record)
    return 5 + len(buf.getvalue())


def _record_of_size(size: int) -> dict[str, Any]:
    record = codec.event_to_avro(EVENT)
    # Pad the one attribute value; its length varint grows by bytes as it does.
    value = "phone" + "x" * (size - _wire_size(record))
    record["attributes"] = {"category": value}
    grown = _wire_size(record) - size
    record["attributes"] = {"category": value[: len(value) - grown]}
    assert _wire_size(record) == size
    return record


def test_record_of_exactly_the_limit_round_trips() -> None:
    record = _record_of_size(MAX_RECORD_BYTES)
    data = codec.encode(record, codec.touchpoint_schema(), 7)
    assert len(data) == MAX_RECORD_BYTES
    assert codec.decode(data, resolve_7) == record


def test_too_large_is_refused_on_both_sides() -> None:
    record = _record_of_size(MAX_RECORD_BYTES)
    record["attributes"]["category"] += "x"
    with pytest.raises(MalformedRecord) as info:
        codec.encode(record, codec.touchpoint_schema(), 7)
    assert info.value.reason == "too_large"
    # Size is checked before the header: even garbage is too_large, not malformed.
    assert _reason(b"\x07" * (MAX_RECORD_BYTES + 1)) == "too_large"


# --- unknown schema ------------------------------------------------------------------


def test_unknown_schema_id_from_none() -> None:
    data = header(8) + touchpoint_body()
    with pytest.raises(UnknownSchema) as info:
        codec.decode(data, resolve_7)
    assert info.value.reason == "unknown_schema"
    assert "8" in info.value.detail


def test_unknown_schema_id_from_lookup_error() -> None:
    def resolve(schema_id: int) -> dict[str, Any]:
        raise KeyError(schema_id)

    with pytest.raises(UnknownSchema) as info:
        codec.decode(header(7) + touchpoint_body(), resolve)
    assert isinstance(info.value.__cause__, KeyError)


def test_unknown_schema_in_local_registry() -> None:
    assert _reason(header(7) + touchpoint_body(), codec.local_registry().resolve) == "unknown_schema"


def test_non_record_schema_is_not_an_object() -> None:
    string_schema: dict[str, Any] = {"type": "string"}
    assert _reason(header(1) + b"\x04hi", lambda i: string_schema) == "not_an_object"


@pytest.mark.parametrize(
    "record",
    [
        {"event_id": "e"},
        {**EVENT.to_record(), "attributes": {"n": 1}},
        {**EVENT.to_record(), "occurred_at": "soon"},
    ],
    ids=["fields_missing", "attribute_not_a_string", "occurred_at_not_a_time"],
)
def test_encoding_a_record_that_does_not_fit(record: dict[str, Any]) -> None:
    with pytest.raises(MalformedRecord) as info:
        codec.encode(record, codec.touchpoint_schema(), 7)
    assert info.value.reason == "malformed"
    assert info.value.__cause__ is not None


# --- object container files ----------------------------------------------------------


def _events(n: int) -> list[dict[str, Any]]:
    return [codec.event_to_avro(Event(f"e{i}", f"c{i % 7}", "page_view", T_2026_05_01_10 + i, "web")) for i in range(n)]


@pytest.mark.parametrize("ocf_codec", ["null", "deflate"])
def test_ocf_round_trip(tmp_path: Path, ocf_codec: str) -> None:
    records = [*_events(5000), codec.event_to_avro(EVENT)]
    path = tmp_path / "events.avro"
    assert codec.write_ocf(path, iter(records), codec.touchpoint_schema(), codec=ocf_codec) == 5001
    back = list(codec.read_ocf(path))
    assert back == records
    assert all(type(r["occurred_at"]) is int for r in back)
    assert validate_event(back[-1]) == EVENT


def test_ocf_to_an_open_file_and_lazily_read(tmp_path: Path) -> None:
    buf = io.BytesIO()
    assert codec.write_ocf(buf, _events(3), codec.touchpoint_schema()) == 3
    path = tmp_path / "x.avro"
    path.write_bytes(buf.getvalue())
    reader = codec.read_ocf(path)
    assert isinstance(reader, Iterator)
    assert next(reader)["event_id"] == "e0"


def test_decisions_in_ocf(tmp_path: Path) -> None:
    path = tmp_path / "decisions.avro"
    codec.write_ocf(path, [codec.decision_to_avro(DECISION)], codec.decision_schema())
    assert [codec.decision_from_avro(r) for r in codec.read_ocf(path)] == [DECISION]


def test_write_ocf_names_the_record_that_does_not_fit(tmp_path: Path) -> None:
    records = [*_events(2), {"event_id": "bad"}]
    with pytest.raises(MalformedRecord, match="record 3"):
        codec.write_ocf(tmp_path / "x.avro", records, codec.touchpoint_schema())


def test_read_ocf_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventsFileError) as info:
        list(codec.read_ocf(tmp_path / "missing.avro"))
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_read_ocf_directory(tmp_path: Path) -> None:
    with pytest.raises(EventsFileError):
        list(codec.read_ocf(tmp_path))


def test_read_ocf_not_avro(tmp_path: Path) -> None:
    path = tmp_path / "events.avro"
    path.write_text('{"event_id": "e1"}\n')
    with pytest.raises(EventsFileError, match="not an Avro object container file") as info:
        list(codec.read_ocf(path))
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("ocf_codec", ["null", "deflate"])
def test_read_ocf_truncated(tmp_path: Path, ocf_codec: str) -> None:
    buf = io.BytesIO()
    codec.write_ocf(buf, _events(2000), codec.touchpoint_schema(), codec=ocf_codec)
    path = tmp_path / "cut.avro"
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventsFileError, match="cannot be read"):
        list(codec.read_ocf(path))


def test_read_ocf_of_non_records(tmp_path: Path) -> None:
    path = tmp_path / "strings.avro"
    with path.open("wb") as fo:
        fastavro.writer(fo, fastavro.parse_schema("string"), ["a", "b"])
    with pytest.raises(EventsFileError, match="not a record"):
        list(codec.read_ocf(path))


# --- record forms --------------------------------------------------------------------


def test_event_to_avro() -> None:
    assert codec.event_to_avro(EVENT) == EVENT.to_record()
    assert codec.event_to_avro(Event("e", "c", "t", 1))["attributes"] is None


def test_touchpoint_to_avro_from_json_form() -> None:
    raw = {
        "event_id": "e1",
        "customer_id": "c000123",
        "type": "purchase",
        "occurred_at": "2026-05-01T12:00:00.000+02:00",
        "channel": "web",
        "attributes": {"category": "phone"},
        "extra": "ignored",
    }
    assert codec.touchpoint_to_avro(raw) == EVENT.to_record()
    # Breaks contract rules but fits the schema: kept for the reader to reject.
    kept = codec.touchpoint_to_avro({**raw, "type": "Bad Type!", "event_id": ""})
    assert kept["type"] == "Bad Type!"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (["e1", "c1"], "not_an_object"),
        ({"customer_id": "c", "type": "t", "occurred_at": 1}, "malformed"),
        (
            {"event_id": "e", "customer_id": "c", "type": "t", "occurred_at": "yesterday"},
            "malformed",
        ),
        (
            {"event_id": "e", "customer_id": "c", "type": "t", "occurred_at": 1, "channel": 3},
            "malformed",
        ),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "t",
                "occurred_at": 1,
                "attributes": {"n": 1},
            },
            "malformed",
        ),
    ],
)
def test_touchpoint_to_avro_refuses_what_avro_cannot_hold(raw: object, reason: str) -> None:
    with pytest.raises(MalformedRecord) as info:
        codec.touchpoint_to_avro(raw)
    assert info.value.reason == reason


def test_touchpoint_from_avro_converts_datetimes() -> None:
    record = {**EVENT.to_record(), "occurred_at": datetime(2026, 5, 1, 10, tzinfo=UTC)}
    assert codec.touchpoint_from_avro(record)["occurred_at"] == T_2026_05_01_10
    naive = {**record, "occurred_at": datetime(1969, 12, 31, 23, 59, 59, 999000)}
    assert codec.touchpoint_from_avro(naive)["occurred_at"] == -1


def test_decision_to_avro_forms() -> None:
    json_form = {
        **DECISION,
        "effective_at": "1970-01-01T00:00:01.000Z",
        "not_before": "1970-01-01T00:00:01Z",
        "evidence": ("e1",),
        "priority": 60,  # not a decision field: dropped
    }
    del json_form["status"], json_form["cause"], json_form["category"]
    record = codec.decision_to_avro(json_form)
    assert record == {**DECISION, "status": "emitted", "cause": None}


def test_decision_to_avro_refuses_incomplete() -> None:
    incomplete = {k: v for k, v in DECISION.items() if k not in ("reason", "kind")}
    with pytest.raises(MalformedRecord, match=r"kind, .*reason"):
        codec.decision_to_avro(incomplete)
    with pytest.raises(MalformedRecord, match="effective_at"):
        codec.decision_to_avro({**DECISION, "effective_at": "later"})


def test_decision_from_avro_converts_datetimes() -> None:
    record = {**DECISION, "effective_at": datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)}
    assert codec.decision_from_avro(record) == DECISION
