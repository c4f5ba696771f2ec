"""Erasure below the contract suite: the tombstone in stored state, the offset rule, restoring the index."""

from __future__ import annotations

from pathlib import Path

import orjson

from streams.engine import DictStore, Engine, Outcome, Processor, Step
from streams.engine.state import CustomerState
from streams.topology import load_folder

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
T0 = 1_777_629_600_000


def record(eid: str, cust: str, etype: str, at: int, **attrs: str) -> dict[str, object]:
    return {"event_id": eid, "customer_id": cust, "type": etype, "occurred_at": at, "attributes": attrs}


def processor() -> Processor:
    return Processor(Engine(load_folder(TOPOLOGIES)), DictStore())


def test_state_never_erased_serialises_as_before() -> None:
    state = CustomerState(next_seq=1, last_fired={"t": 5})
    assert b'"x"' not in state.to_bytes()
    assert orjson.loads(state.to_bytes()).keys() == {"v", "n", "e", "s", "g", "f", "m"}


def test_a_tombstone_round_trips_and_is_not_empty() -> None:
    tomb = CustomerState(erased_at=T0, erased_offset=41)
    back = CustomerState.from_bytes(tomb.to_bytes())
    assert (back.erased_at, back.erased_offset) == (T0, 41)
    assert not back.is_empty() and back.holds_only_tombstone()
    back.prune(T0 + 1, 0, 0)
    assert back.is_empty() and back.erased_offset is None


def test_records_below_the_erase_offset_are_erased_whatever_their_time() -> None:
    proc = processor()
    take = Step(proc).take
    assert take(record("x", "c1", "tactful.erase", T0), 10)[0] is Outcome.ERASE
    later = record("p", "c1", "purchase", T0 + 60_000, category="phone")
    assert take(later, 9)[0] is Outcome.ERASED  # redelivered: it arrived before the erase
    assert take(later, 11)[0] is Outcome.EVALUATED  # after the erase: starts afresh
    assert take(record("x", "c1", "tactful.erase", T0), 10)[0] is Outcome.STALE_ERASE


def test_a_restarted_processor_restores_the_tombstones_from_state() -> None:
    first = processor()
    assert Step(first).take(record("x", "c1", "tactful.erase", T0), 3)[0] is Outcome.ERASE
    stored = first.store.get("c1")  # type: ignore[attr-defined]
    assert stored is not None and stored.erased_offset == 3
    again = processor()
    again.store.put("c1", CustomerState.from_bytes(stored.to_bytes()))
    again.restore_erased([("c1", again.store.get("c1"))])  # type: ignore[list-item]
    assert again.erased == {"c1": (T0, 3)}
    outcome, _, _, _ = Step(again).take(record("p", "c1", "purchase", T0 - 1, category="phone"), 4)
    assert outcome is Outcome.ERASED
