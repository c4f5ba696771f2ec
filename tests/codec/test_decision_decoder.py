"""The decision decoder: exactly ``Decision.from_record(avro.decode(...))``, and ``inert`` exactly the mirror's rule.

The general path is what the mirror, the channel client and ``tactful tail`` did before the
decoder; every test compares the decoder with it (a decision, or the error's type, reason and
detail), on the golden decisions, edge cases, every truncation, random mutations and hostile
lengths. ``inert`` is compared with :func:`streams.mirror.keys.mirror_write` of the decoded decision.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams.codec import MAX_RECORD_BYTES
from streams.codec import avro as codec
from streams.decisions import Decision, Kind, Status
from streams.errors import InputError
from streams.live.codecs import make_codecs
from streams.mirror.keys import mirror_write
from streams.settings import Settings

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SCHEMA_ID = codec.decision_schema_id()
READER = codec.local_registry().resolve(SCHEMA_ID)
RESOLVE = codec.local_registry().resolve
NOW = 1_777_900_000_000  # 2026-05-04T13:06:40Z: inside the goldens' week, so some suppressions are over

BASE: dict[str, Any] = {
    "decision_id": "deef422f0404bd0cb2179a0ec74928fd",
    "customer_id": "c000003",
    "kind": "SUPPRESS",
    "channel": "sms",
    "action": None,
    "category": "account",
    "topology": "failed_login_guard",
    "topology_version": 1,
    "effective_at": 1_777_867_413_688,
    "expires_at": 1_777_889_013_688,
    "not_before": None,
    "evidence": ["e11-102", "e11-103"],
    "reason": "failed_login_guard v1 matched login_failed, login_failed: suppress sms.",
    "status": "emitted",
    "cause": None,
}


def wire(record: dict[str, Any], schema_id: int = SCHEMA_ID) -> bytes:
    return codec.encode(record, codec.decision_schema(), schema_id)


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


def zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def general(data: bytes | bytearray, resolve: codec.Resolver = RESOLVE) -> object:
    """What the worker did before the decoder."""
    try:
        return Decision.from_record(codec.decode(data, resolve, READER))
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except (KeyError, TypeError, ValueError) as exc:
        return (type(exc), str(exc))


def fast(decoder: codec.DecisionDecoder, data: bytes | bytearray) -> object:
    try:
        return decoder(data)
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except (KeyError, TypeError, ValueError) as exc:
        return (type(exc), str(exc))


def decoder(resolve: codec.Resolver = RESOLVE) -> codec.DecisionDecoder:
    return codec.DecisionDecoder(resolve, READER)


def _refuse(*args: object) -> Any:
    raise AssertionError("the general decoder was called")


def fast_only(data: bytes) -> Decision:
    """The fast path's decision: the general decoder fails the test if called."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(codec, "decode", _refuse)
        return decoder()(data)


def golden_records() -> list[dict[str, Any]]:
    records = []
    for name in ("shipped-audit", "noisy-audit", "shipped-decisions", "noisy-decisions"):
        for line in (GOLDEN / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            records.append(codec.decision_to_avro(json.loads(line)))
    return records


GOLDEN_RECORDS = golden_records()


def test_golden_decisions_take_the_fast_path_as_decode() -> None:
    kinds = set()
    for record in GOLDEN_RECORDS:
        data = wire(record)
        got = fast_only(data)
        assert got == general(data)
        assert type(got.kind) is Kind and type(got.status) is Status
        kinds.add(got.kind)
    assert kinds == {Kind.SUPPRESS, Kind.ENGAGE, Kind.RELEASE}  # GOAL records: the edge cases


def test_the_worker_reads_decisions_with_the_decoder() -> None:
    codecs = make_codecs(Settings.from_flat({}))
    assert isinstance(codecs.decode_decision, codec.DecisionDecoder)
    data = wire(BASE)
    assert codecs.decode_decision(data) == general(data)
    assert codecs.inert_decision(data, BASE["expires_at"]) is True
    assert codecs.inert_decision(data, BASE["expires_at"] - 1) is False


def _edge_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [
        {**BASE, "kind": kind, "status": status} for kind in ("SUPPRESS", "ENGAGE", "RELEASE", "GOAL")
        for status in ("emitted", "blocked", "missed")
    ]  # fmt: skip
    cases += [
        {**BASE, "channel": None, "action": None, "category": None, "expires_at": None, "not_before": None},
        {**BASE, "action": "call", "not_before": 1, "cause": "suppressed_by x"},
        {**BASE, "evidence": []},
        {**BASE, "evidence": [f"e{i}" for i in range(200)]},  # a two-byte count
        {**BASE, "evidence": ["", "é" * 100]},
        {**BASE, "decision_id": "d" * 64, "customer_id": "ç" * 300, "reason": "r" * 5000},
        {**BASE, "channel": "c" * 64, "category": "k" * 200, "topology": "t" * 64, "cause": "x" * 64},
        {**BASE, "topology_version": 2**31 - 1},
        {**BASE, "topology_version": -(2**31)},
        {**BASE, "effective_at": 0, "expires_at": -1, "not_before": -(2**40)},
        {**BASE, "effective_at": 2**62 - 1},  # nine varint bytes
        {**BASE, "effective_at": -(2**63), "expires_at": 2**63 - 1},  # ten: the general path's
        {**BASE, "decision_id": "", "customer_id": "", "topology": "", "reason": ""},
    ]
    return cases


EDGE_CASES = _edge_cases()


@pytest.mark.parametrize("record", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_read_as_decode(record: dict[str, Any]) -> None:
    data = wire(record)
    expected = general(data)
    assert isinstance(expected, Decision)
    assert fast(decoder(), data) == expected
    assert fast(decoder(), bytearray(data)) == expected


def test_nine_byte_varints_stay_on_the_fast_path() -> None:
    data = wire({**BASE, "effective_at": 2**62 - 1, "expires_at": -(2**62), "topology_version": 2**31 - 1})
    assert fast_only(data) == general(data)


def test_interns_names_not_ids() -> None:
    d = decoder()
    one = d(wire(BASE))
    two = d(wire({**BASE, "decision_id": "another", "customer_id": "another", "evidence": ["x"]}))
    assert one.channel is two.channel and one.category is two.category and one.topology is two.topology
    assert one.decision_id is not two.decision_id


def test_reads_another_id_of_the_same_layout() -> None:
    # A registry's id for the decision schema: the same layout, another number.
    d = decoder(lambda i: READER if i in (SCHEMA_ID, 12) else None)
    data = header(12) + wire(BASE)[5:]
    expected = general(wire(BASE))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(codec, "decode", _refuse)
        assert d(data) == expected
        assert d.inert(data, BASE["expires_at"])


def test_leaves_another_layout_to_schema_resolution() -> None:
    newer = codec.schema_json("decision")
    newer["fields"].append({"name": "campaign", "type": ["null", "string"], "default": None})
    data = codec.encode({**BASE, "campaign": "spring"}, fastavro.parse_schema(newer), 8)
    parsed = codec.reading_schema(newer)
    resolve: codec.Resolver = lambda i: parsed if i == 8 else RESOLVE(i)  # noqa: E731
    d = decoder(resolve)
    assert fast(d, data) == general(data, resolve) == general(wire(BASE))
    assert d.inert(data, 2**62) is False  # another layout is never judged by its bytes


def test_reads_array_blocks_with_their_size() -> None:
    # Avro lets a writer give a block's byte size (a negative count): legal, left to fastavro.
    data = wire({**BASE, "evidence": []})
    before, after = data.split(b"\x00" + zigzag(len(BASE["reason"])), 1)
    item = zigzag(1) + b"e"
    sized = before + zigzag(-1) + zigzag(len(item)) + item + b"\x00" + zigzag(len(BASE["reason"])) + after
    assert isinstance(general(sized), Decision)
    assert fast(decoder(), sized) == general(sized)


def _hostile() -> list[bytes]:
    body = wire(BASE)[5:]
    ids = zigzag(len(BASE["decision_id"])) + BASE["decision_id"].encode()
    ids += zigzag(len(BASE["customer_id"])) + BASE["customer_id"].encode()
    rest = body[len(ids) + 1 :]  # after the kind
    return [
        b"",
        header(SCHEMA_ID),
        header(SCHEMA_ID + 1) + body,  # unknown id
        b"\x01" + header(SCHEMA_ID)[1:] + body,  # bad magic
        header(SCHEMA_ID) + body + b"\x00",  # leftover
        b"\x00" * (MAX_RECORD_BYTES + 1),
        header(SCHEMA_ID) + zigzag(-5) + body,  # negative length
        header(SCHEMA_ID) + zigzag(2**40) + body,  # a length past the end
        header(SCHEMA_ID) + zigzag(2**62) + body,
        header(SCHEMA_ID) + b"\xff" * 11 + body,  # a varint too long
        header(SCHEMA_ID) + ids + b"\x08" + rest,  # kind index 4
        header(SCHEMA_ID) + ids + b"\x00\x04" + rest[1:],  # channel union index 2
        header(SCHEMA_ID) + ids + b"\x00\x03" + rest[1:],  # channel union index -1
        header(SCHEMA_ID) + body[:-2] + b"\x10\x00",  # status index 8
        header(SCHEMA_ID) + body[:-1] + b"\x04",  # cause union index 2
        header(SCHEMA_ID) + ids[:3] + b"\xff\xfe" + ids[5:] + body[len(ids) :],  # bad UTF-8
    ]


HOSTILE = _hostile()


@pytest.mark.parametrize("data", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bytes_fail_as_decode(data: bytes) -> None:
    expected = general(data)
    assert isinstance(expected, tuple)  # each is refused
    assert fast(decoder(), data) == expected


@pytest.mark.parametrize(("at", "kind"), [(0, Kind.GOAL), (1, Kind.SUPPRESS)])
def test_negative_enum_indexes_read_as_decode(at: int, kind: Kind) -> None:
    # fastavro takes enum index -1 as the last symbol (a Python index), and the fast path
    # leaves such a record to it: the same decision either way, as odd as it is.
    body = wire(BASE)[5:]
    ids = len(BASE["decision_id"]) + len(BASE["customer_id"]) + 2
    kind_byte = body[:ids] + b"\x01" + body[ids + 1 :]
    data = header(SCHEMA_ID) + (kind_byte if at == 0 else body[:-2] + b"\x01\x00")
    expected = general(data)
    assert isinstance(expected, Decision)
    assert fast(decoder(), data) == expected
    assert (expected.kind, expected.status) == ((Kind.GOAL, Status.EMITTED) if at == 0 else (kind, Status.MISSED))
    assert decoder().inert(data, 2**62) is (at == 1)  # an odd kind byte is read in full


@pytest.mark.parametrize("record", [BASE, EDGE_CASES[-4], {**BASE, "kind": "ENGAGE", "cause": "c"}], ids=range(3))
def test_every_truncation_as_decode(record: dict[str, Any]) -> None:
    d = decoder()
    data = wire(record)
    for cut in range(len(data)):
        assert fast(d, data[:cut]) == general(data[:cut]), cut


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice("ab_é\u2603") for _ in range(rng.choice((0, 1, 5, 63, 64, 70))))


def _random_time(rng: random.Random) -> int:
    return rng.choice((0, -1, NOW, NOW + rng.randint(-(10**9), 10**9), 2**62 - 1, -(2**62)))


def _random_record(rng: random.Random) -> dict[str, Any]:
    def maybe(value: object) -> object:
        return None if rng.random() < 0.3 else value

    return {
        "decision_id": _random_text(rng),
        "customer_id": _random_text(rng),
        "kind": rng.choice(("SUPPRESS", "ENGAGE", "RELEASE", "GOAL")),
        "channel": maybe(_random_text(rng)),
        "action": maybe(_random_text(rng)),
        "category": maybe(_random_text(rng)),
        "topology": _random_text(rng),
        "topology_version": rng.choice((0, 1, -1, 2**31 - 1, -(2**31))),
        "effective_at": _random_time(rng),
        "expires_at": maybe(_random_time(rng)),
        "not_before": maybe(_random_time(rng)),
        "evidence": [_random_text(rng) for _ in range(rng.choice((0, 1, 3, 70)))],
        "reason": _random_text(rng),
        "status": rng.choice(("emitted", "emitted", "blocked", "reached")),
        "cause": maybe(_random_text(rng)),
    }


RANDOM_RECORDS = [_random_record(random.Random(n)) for n in range(600)]


def test_random_decisions_read_as_decode() -> None:
    d = decoder()
    for record in RANDOM_RECORDS:
        data = wire(record)
        assert fast(d, data) == general(data), record


def test_random_mutations_read_as_decode() -> None:
    rng = random.Random(17)
    d = decoder()
    bodies = [wire(r) for r in [BASE, *EDGE_CASES[:12]]]
    decoded = 0
    for n in range(4000):
        mutated = bytearray(bodies[n % len(bodies)])
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(5, len(mutated))] = rng.getrandbits(8)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        for data in (bytes(mutated), header(SCHEMA_ID) + junk):
            expected = general(data)
            assert fast(d, data) == expected, data
            decoded += isinstance(expected, Decision)
    assert decoded > 500  # the mutations left many records readable: both paths were compared


# --- inert: the mirror's rule, read off the first fields --------------------------------


def _nows(record: dict[str, Any]) -> list[int]:
    times = [NOW, 0, 2**62]
    if record["expires_at"] is not None:
        times += [record["expires_at"] - 1, record["expires_at"], record["expires_at"] + 1]
    return times


def test_inert_is_mirror_write_leaving_a_decision_out() -> None:
    d = decoder()
    seen = {True: 0, False: 0}
    for record in [*GOLDEN_RECORDS, *EDGE_CASES, *RANDOM_RECORDS]:
        data = wire(record)
        decision = general(data)
        assert isinstance(decision, Decision)
        for now in _nows(record):
            inert = d.inert(data, now)
            unchanged = mirror_write(decision, now) is None
            if inert:
                assert unchanged, (record, now)
            elif decision.status == Status.EMITTED and ((e := decision.expires_at) is None or len(zigzag(e)) <= 9):
                # What the channel topics hold: inert exactly when nothing changes, bar a
                # suppression's end beyond nine varint bytes, which the full path reads.
                assert not unchanged, (record, now)
            seen[inert] += 1
    assert seen[True] > 1000 and seen[False] > 1000


@pytest.mark.parametrize(
    ("changes", "now"),
    [
        ({"kind": "ENGAGE"}, 0),
        ({"kind": "GOAL", "channel": None}, 0),
        ({"kind": "SUPPRESS", "channel": None}, 0),
        ({"kind": "RELEASE", "channel": None}, 0),
        ({"kind": "SUPPRESS", "expires_at": None}, 0),
        ({"kind": "SUPPRESS"}, BASE["expires_at"]),
        ({"kind": "SUPPRESS", "category": None, "action": "a" * 100, "channel": "c" * 100}, BASE["expires_at"]),
    ],
)
def test_inert_decisions(changes: dict[str, Any], now: int) -> None:
    assert decoder().inert(wire({**BASE, **changes}), now) is True


@pytest.mark.parametrize(
    ("changes", "now"),
    [
        ({"kind": "RELEASE"}, 2**62),
        ({"kind": "SUPPRESS"}, BASE["expires_at"] - 1),
        ({"kind": "SUPPRESS", "expires_at": 2**63 - 1}, 2**62),  # ten varint bytes: read in full
        ({"kind": "SUPPRESS", "topology": "t" * 100, "reason": "r" * 300}, 0),
    ],
)
def test_decisions_read_in_full(changes: dict[str, Any], now: int) -> None:
    assert decoder().inert(wire({**BASE, **changes}), now) is False


@pytest.mark.parametrize("data", [*HOSTILE[:4], HOSTILE[5], b"\x00" * 3], ids=range(6))
def test_what_is_not_a_decision_of_the_layout_is_never_inert(data: bytes) -> None:
    assert decoder().inert(data, 2**62) is False


def test_inert_on_truncations_and_mutations_never_hides_a_change() -> None:
    """Corrupt bytes may be passed over, but never a record that decodes to a change."""
    rng = random.Random(23)
    d = decoder()
    bodies = [wire(r) for r in [BASE, *EDGE_CASES[:12], *RANDOM_RECORDS[:20]]]
    candidates = [body[:cut] for body in bodies[:5] for cut in range(len(body))]
    for n in range(4000):
        mutated = bytearray(bodies[n % len(bodies)])
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(5, len(mutated))] = rng.getrandbits(8)
        candidates.append(bytes(mutated))
    for data in candidates:
        for now in (0, NOW, 2**62):
            if d.inert(data, now):
                decision = general(data)
                assert not isinstance(decision, Decision) or mirror_write(decision, now) is None, (data, now)
