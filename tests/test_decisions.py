"""Decision records: the record form round-trips, kinds and statuses come back as enum members."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.codec.avro import decision_schema, decision_schema_id, decode, encode, local_registry
from streams.decisions import Decision, Kind, Status, new_decision

MS = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)
TEXT = st.text(min_size=1, max_size=12)

decisions = st.builds(
    Decision,
    decision_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    customer_id=TEXT,
    kind=st.sampled_from(Kind),
    channel=st.none() | TEXT,
    action=st.none() | TEXT,
    category=st.none() | st.just("*") | TEXT,
    topology=st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    topology_version=st.integers(min_value=1, max_value=2**31 - 1),
    effective_at=MS,
    expires_at=st.none() | MS,
    not_before=st.none() | MS,
    evidence=st.lists(TEXT, max_size=4).map(tuple),
    reason=st.text(max_size=40),
    status=st.sampled_from(Status),
    cause=st.none() | TEXT,
)


@given(decisions)
def test_from_record_inverts_to_record(d: Decision) -> None:
    assert Decision.from_record(d.to_record()) == d


@given(decisions)
def test_a_decision_survives_the_avro_wire_with_enum_members(d: Decision) -> None:
    back = Decision.from_record(
        decode(encode(d.to_record(), decision_schema(), decision_schema_id()), local_registry().resolve)
    )
    assert back == d
    assert type(back.kind) is Kind and type(back.status) is Status


BASE = Decision(
    decision_id="0" * 32,
    customer_id="c1",
    kind=Kind.SUPPRESS,
    channel="email",
    action=None,
    category="phone",
    topology="t1",
    topology_version=1,
    effective_at=1_777_629_600_000,
    expires_at=1_777_633_200_000,
    not_before=None,
    evidence=("e1",),
    reason="r",
)


def test_from_record_takes_datetimes_and_defaults_what_older_records_lack() -> None:
    """What decision_from_avro accepts: datetime times (naive is UTC), no status, no optional fields."""
    record = BASE.to_record()
    record["effective_at"] = datetime(2026, 5, 1, 10, tzinfo=UTC)
    record["expires_at"] = datetime(2026, 5, 1, 11)
    for key in ("status", "cause", "action", "not_before"):
        del record[key]
    assert Decision.from_record(record) == BASE
    assert Decision.from_record({**BASE.to_record(), "status": None}).status is Status.EMITTED
    assert Decision.from_record({**BASE.to_record(), "evidence": None}).evidence == ()


@pytest.mark.parametrize(("key", "value"), [("kind", "NUDGE"), ("status", "lost")])
def test_from_record_refuses_an_unknown_kind_or_status(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=value):
        Decision.from_record({**BASE.to_record(), key: value})


def test_a_decision_is_frozen_and_built_by_keyword() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE.status = Status.BLOCKED  # type: ignore[misc]
    with pytest.raises(TypeError):
        Decision(*dataclasses.astuple(BASE))  # type: ignore[misc]
    assert dataclasses.replace(BASE, status=Status.BLOCKED, cause="cap").emitted is False


def test_kinds_and_statuses_are_the_contracts_strings() -> None:
    assert list(Kind) == ["SUPPRESS", "ENGAGE", "RELEASE", "GOAL"]
    assert list(Status) == ["emitted", "blocked", "outranked", "skipped", "shadow", "held_out", "reached", "missed"]
    assert BASE.to_json(audit=True)["kind"] == "SUPPRESS" and f"{Kind.ENGAGE}" == "ENGAGE"


def test_new_decision_puts_every_field_in_its_own_slot() -> None:
    fields = {
        "decision_id": "id",
        "customer_id": "customer",
        "kind": Kind.ENGAGE,
        "channel": "channel",
        "action": "action",
        "category": "category",
        "topology": "topology",
        "topology_version": 7,
        "effective_at": 1,
        "expires_at": 2,
        "not_before": 3,
        "evidence": ("e1", "e2"),
        "reason": "reason",
        "status": Status.OUTRANKED,
        "cause": "cause",
    }
    assert [f.name for f in dataclasses.fields(Decision)] == list(fields)  # all of them, all distinct
    built = new_decision(**fields)
    assert type(built) is Decision and built == Decision(**fields)
    assert {name: getattr(built, name) for name in fields} == fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.reason = "changed"  # type: ignore[misc]
    assert new_decision(**{**fields, "status": Status.EMITTED, "cause": None}) == dataclasses.replace(
        built, status=Status.EMITTED, cause=None
    )
