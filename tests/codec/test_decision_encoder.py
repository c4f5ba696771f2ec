"""The worker's decision encoder: exactly :func:`avro.encode`'s bytes and errors, on every record."""

from __future__ import annotations

import io
import json
import random
from collections import UserDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.codec import MAX_RECORD_BYTES
from streams.codec import avro as codec
from streams.decisions import Decision, Kind, Status
from streams.errors import InputError
from streams.live.codecs import make_codecs
from streams.settings import Settings

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"
SCHEMA_ID = codec.decision_schema_id()
KINDS = codec.schema_json("decision")["fields"][2]["type"]["symbols"]
STATUSES = codec.schema_json("decision")["fields"][13]["type"]["symbols"]
OPTIONAL_TEXT = ("channel", "action", "category", "cause")
OPTIONAL_TIMES = ("expires_at", "not_before")

BASE: dict[str, Any] = {
    "decision_id": "deef422f0404bd0cb2179a0ec74928fd",
    "customer_id": "c000003",
    "kind": Kind.ENGAGE,
    "channel": "sms",
    "action": "account_recovery_help",
    "category": "account",
    "topology": "failed_login_guard",
    "topology_version": 1,
    "effective_at": 1_777_867_413_688,
    "expires_at": 1_777_889_013_688,
    "not_before": 1_777_881_600_000,
    "evidence": ["e11-102", "e11-103"],
    "reason": "failed_login_guard v1 matched login_failed, login_failed: account_recovery_help on sms.",
    "status": Status.EMITTED,
    "cause": None,
}


def general(record: object, schema_id: int = SCHEMA_ID) -> object:
    try:
        return codec.encode(record, codec.decision_schema(), schema_id)  # type: ignore[arg-type]
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except ValueError as exc:  # a schema id out of range: a programming error, not input
        return (type(exc), str(exc))


def fast(encoder: codec.DecisionEncoder, record: object) -> object:
    try:
        return encoder(record)  # type: ignore[arg-type]
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except ValueError as exc:
        return (type(exc), str(exc))


def _refuse(*args: object) -> bytes:
    raise AssertionError("the general encoder was called")


def fast_path(record: dict[str, Any]) -> bytes:
    """The fast path's bytes, both for the record and for its Decision: the general encoder refuses."""
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(codec, "encode", _refuse)
        data = encoder(record)
        assert encoder.decision(Decision(**{k: record[k] for k in codec._DECISION_LAYOUT})) == data
    return data


def fast_decision(encoder: codec.DecisionEncoder, decision: Decision) -> object:
    try:
        return encoder.decision(decision)
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except (ValueError, TypeError) as exc:
        return (type(exc), str(exc))


def general_decision(decision: Decision, schema_id: int = SCHEMA_ID) -> object:
    """What the worker did before the encoder: avro.encode of the decision's record."""
    try:
        return codec.encode(decision.to_record(), codec.decision_schema(), schema_id)
    except InputError as exc:
        return (type(exc), exc.reason, exc.detail)
    except (ValueError, TypeError) as exc:  # TypeError: to_record() of evidence that is no iterable
        return (type(exc), str(exc))


def audit_decisions(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Decision.from_record(codec.decision_to_avro(json.loads(line))).to_record() for line in lines]


@pytest.fixture
def no_general(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records that must take the fast path: the general encoder fails the test if called."""

    monkeypatch.setattr(codec, "encode", _refuse)


def test_golden_audit_decisions_take_the_fast_path_with_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [r for path in sorted(GOLDEN.glob("*-audit.jsonl")) for r in audit_decisions(path)]
    assert len(records) > 400
    expected = [general(r) for r in records]
    monkeypatch.setattr(codec, "encode", lambda *a: pytest.fail("the general encoder was called"))
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    assert [encoder(r) for r in records] == expected
    assert [encoder.decision(Decision.from_record(r)) for r in records] == expected


def test_the_worker_encodes_decisions_with_the_encoder() -> None:
    record = dict(BASE)
    decision = Decision.from_record(record)
    assert make_codecs(Settings()).encode_decision(decision) == general(decision.to_record())


def test_replay_of_generated_events_encodes_as_fastavro(tmp_path: Path, no_general: None) -> None:
    events, audit = tmp_path / "events.jsonl", tmp_path / "audit.jsonl"
    runner = CliRunner()
    generated = runner.invoke(main, ["generate", "--customers", "150", "--seed", "13", "--out", str(events)])
    assert generated.exit_code == 0, generated.output
    args = ["replay", "--topologies", str(TOPOLOGIES), "--events", str(events), "--audit", "--out", str(audit)]
    replayed = runner.invoke(main, args)
    assert replayed.exit_code == 0, replayed.output
    records = audit_decisions(audit)
    assert len(records) > 20
    header = codec._HEADER.pack(0, SCHEMA_ID)
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    for record in records:  # encode() is patched out: compare with fastavro itself
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, codec.decision_schema(), record)
        assert encoder(record) == encoder.decision(Decision.from_record(record)) == header + buf.getvalue()


def _edge_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [dict(BASE)]
    cases.append({**BASE, **dict.fromkeys((*OPTIONAL_TEXT, *OPTIONAL_TIMES))})  # every optional null
    cases += [{**BASE, key: None} for key in (*OPTIONAL_TEXT, *OPTIONAL_TIMES)]
    cases += [{**BASE, key: ""} for key in ("decision_id", "customer_id", "topology", "reason", *OPTIONAL_TEXT)]
    for size in (63, 64, 65, 8191, 8192, 30_000):  # the length varint grows past 63 and 8191 bytes
        cases.append({**BASE, "reason": "r" * size, "cause": "c" * size})
    cases.append({**BASE, "customer_id": "é" * 40, "reason": "🙂 ünïcödé ✓ 中文", "channel": "ç" * 33})
    cases.append({**BASE, "evidence": []})
    cases.append({**BASE, "evidence": ()})
    cases.append({**BASE, "evidence": ("e1", "e2")})
    cases.append({**BASE, "evidence": ["", "é", "x" * 70]})
    cases += [{**BASE, "evidence": [f"e{i}" for i in range(n)]} for n in (63, 64, 65, 5000)]
    times = [0, 1, -1, 63, 64, -64, -65, 2**34, 2**35 - 1, 2**41 - 1, 2**41, -(2**41), 2**62, 2**63 - 1, -(2**63)]
    times += [-62_135_596_800_000, 253_402_300_799_999]  # datetime's range: year 1 and year 9999
    cases += [{**BASE, "effective_at": t, "expires_at": t, "not_before": t} for t in times]
    cases += [{**BASE, "topology_version": v} for v in (0, 1, -1, 63, 64, 2**31 - 1, -(2**31))]
    cases += [{**BASE, "kind": k, "status": s} for k in KINDS for s in STATUSES]  # plain strings
    cases += [{**BASE, "kind": k, "status": s} for k in Kind for s in Status]  # the engine's StrEnums
    cases.append({**BASE, "extra": "ignored", "another": object()})
    return cases


EDGE_CASES = _edge_cases()


@pytest.mark.parametrize("record", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_take_the_fast_path_with_the_same_bytes(record: dict[str, Any]) -> None:
    expected = general(record)
    assert isinstance(expected, bytes)
    assert fast_path(record) == expected


class _Str(str):
    pass


class _Int(int):
    pass


# What the fast path leaves to the general encoder: encode() writes it (maybe differently) or refuses it.
LEFT_TO_GENERAL: list[object] = [
    *({k: v for k, v in BASE.items() if k != key} for key in BASE),  # each field missing
    {**BASE, "topology_version": 2**31},  # fastavro writes it: an int out of range
    {**BASE, "topology_version": -(2**31) - 1},
    {**BASE, "topology_version": True},
    {**BASE, "topology_version": 1.0},
    {**BASE, "topology_version": _Int(3)},
    {**BASE, "effective_at": 2**63},
    {**BASE, "effective_at": -(2**63) - 1},
    {**BASE, "effective_at": datetime(2026, 5, 1, tzinfo=UTC)},
    {**BASE, "expires_at": datetime(2026, 5, 1, tzinfo=UTC)},
    {**BASE, "expires_at": 2**64},
    {**BASE, "not_before": False},
    {**BASE, "not_before": "2026-05-01T00:00:00Z"},
    {**BASE, "effective_at": 1.5},
    {**BASE, "decision_id": "\ud800"},
    {**BASE, "cause": "\udfff"},
    {**BASE, "evidence": ["\ud800"]},
    {**BASE, "decision_id": b"bytes"},
    {**BASE, "customer_id": 7},
    {**BASE, "channel": 7},
    {**BASE, "action": b"x"},
    {**BASE, "category": _Str("x")},
    {**BASE, "reason": None},
    {**BASE, "topology": None},
    {**BASE, "kind": "engage"},
    {**BASE, "kind": 1},
    {**BASE, "kind": None},
    {**BASE, "kind": ["ENGAGE"]},
    {**BASE, "status": "EMITTED"},
    {**BASE, "status": None},
    {**BASE, "status": 0},
    {**BASE, "evidence": "e1"},
    {**BASE, "evidence": None},
    {**BASE, "evidence": {"e1"}},
    {**BASE, "evidence": [1]},
    {**BASE, "evidence": ["e1", None]},
    {**BASE, "reason": "x" * (MAX_RECORD_BYTES + 1)},
    {**BASE, "reason": "x" * (MAX_RECORD_BYTES - 300)},  # fits, near the limit
    UserDict(BASE),
    None,
    [],
    "a record",
]


@pytest.mark.parametrize("record", LEFT_TO_GENERAL, ids=range(len(LEFT_TO_GENERAL)))
def test_what_the_fast_path_leaves_encodes_as_encode(record: object) -> None:
    expected = general(record)
    assert fast(codec.DecisionEncoder(SCHEMA_ID), record) == expected
    if isinstance(record, dict) and set(codec._DECISION_LAYOUT) <= set(record):
        decision = Decision(**{k: record[k] for k in codec._DECISION_LAYOUT})
        assert fast_decision(codec.DecisionEncoder(SCHEMA_ID), decision) == general_decision(decision)


def test_the_fast_path_writes_up_to_the_limit_and_no_further() -> None:
    # A reason of 8192 bytes or more has a 3-byte length.
    overhead = len(general({**BASE, "reason": ""})) - 1
    exactly = MAX_RECORD_BYTES - overhead - 3
    fitting = {**BASE, "reason": "x" * exactly}
    assert len(fast_path(fitting)) == MAX_RECORD_BYTES
    for size in (exactly, exactly + 1):
        record = {**BASE, "reason": "x" * size}
        assert fast(codec.DecisionEncoder(SCHEMA_ID), record) == general(record)
    assert isinstance(general({**BASE, "reason": "x" * (exactly + 1)}), tuple)


@pytest.mark.parametrize("schema_id", [0, 1, 2**31 - 1, 2**32 - 1, 2**32, -1])
def test_every_schema_id_as_encode(schema_id: int) -> None:
    assert fast(codec.DecisionEncoder(schema_id), BASE) == general(BASE, schema_id)
    decision = Decision.from_record(BASE)
    assert fast_decision(codec.DecisionEncoder(schema_id), decision) == general_decision(decision, schema_id)


def _random_text(rng: random.Random) -> str:
    alphabet = "abcxyz019_-. é中🙂"
    size = rng.choice((0, 1, 5, 31, 32, 63, 64, 65, 200, 3000))
    return "".join(rng.choices(alphabet, k=size))


def _random_long(rng: random.Random) -> int:
    return rng.choice(
        (
            rng.randint(-(2**63), 2**63 - 1),
            rng.randint(-(2**42), 2**42),
            rng.randint(-200, 200),
            1_777_629_600_000 + rng.randint(-(10**10), 10**10),
            -(2**63),
            2**63 - 1,
        )
    )


def _random_decision(rng: random.Random) -> dict[str, Any]:
    return {
        "decision_id": f"{rng.getrandbits(128):032x}",
        "customer_id": _random_text(rng),
        "kind": rng.choice((*KINDS, *Kind)),
        "channel": rng.choice((None, _random_text(rng))),
        "action": rng.choice((None, _random_text(rng))),
        "category": rng.choice((None, "*", _random_text(rng))),
        "topology": _random_text(rng),
        "topology_version": rng.choice((rng.randint(-(2**31), 2**31 - 1), rng.randint(0, 100))),
        "effective_at": _random_long(rng),
        "expires_at": rng.choice((None, _random_long(rng))),
        "not_before": rng.choice((None, _random_long(rng))),
        "evidence": rng.choice((list, tuple))(_random_text(rng) for _ in range(rng.choice((0, 1, 3, 64, 70)))),
        "reason": _random_text(rng),
        "status": rng.choice((*STATUSES, *Status)),
        "cause": rng.choice((None, _random_text(rng))),
    }


# Values of the wrong shape the random mutations put in any field.
ODD_VALUES: tuple[object, ...] = (
    None, True, 0, -1, 2**31, 2**63, 1.0, "", "ENGAGE", "emitted", b"x", "\ud800", [], ["e"], ("e",), {"e": 1},
    datetime(2026, 5, 1, tzinfo=UTC), _Str("s"), _Int(1),
)  # fmt: skip


def test_random_decisions_encode_as_fastavro() -> None:
    rng = random.Random(13)
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    written = 0
    for n in range(3000):
        record = _random_decision(rng)
        if n % 3 == 0:  # a mutation: a field missing or of another shape
            key = rng.choice(list(record))
            if rng.random() < 0.2:
                del record[key]
            else:
                record[key] = rng.choice(ODD_VALUES)
        expected = general(record)
        assert fast(encoder, record) == expected, record
        if set(codec._DECISION_LAYOUT) <= set(record):  # a Decision of the same values, unchecked
            decision = Decision(**{k: record[k] for k in codec._DECISION_LAYOUT})
            assert fast_decision(encoder, decision) == general_decision(decision), record
        written += isinstance(expected, bytes)
    assert written > 2000  # most records were written: both paths compared on bytes


def test_kept_times_never_stand_for_an_equal_value_of_another_type() -> None:
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    for v in (1, 0, 1_777_629_600_000):
        record = {**BASE, "effective_at": v, "expires_at": v, "not_before": v}
        assert encoder(record) == general(record)  # now kept
    for odd in (True, False, 1.0, 0.0, float(1_777_629_600_000), _Int(1)):
        for key in ("effective_at", "expires_at", "not_before"):
            record = {**BASE, key: odd}
            assert fast(encoder, record) == general(record), (key, odd)


def test_the_kept_times_are_bounded_and_stay_right() -> None:
    encoder = codec.DecisionEncoder(SCHEMA_ID)
    rng = random.Random(5)
    for n in range(3 * codec._TIMES_KEPT):
        t = 1_777_629_600_000 + rng.randrange(2 * codec._TIMES_KEPT)  # some repeat, most are new
        record = {**BASE, "effective_at": t, "expires_at": t + n, "not_before": None}
        assert encoder(record) == general(record)
        assert len(encoder._times) <= codec._TIMES_KEPT
