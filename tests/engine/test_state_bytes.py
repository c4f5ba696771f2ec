"""Customer state's changelog bytes: what a deployed worker wrote must still decode, and the encoder
writes exactly what it wrote before.

``state-v1-recorded.jsonl`` holds changelog values written by the encoder of commit 5fde140 (before
``CustomerState.to_bytes`` built its bytes itself), one per shape of state: each list empty or not,
stored events with and without attributes, channel and completed matches, open goals, held
suppressions, tombstones alone and beside later state. A worker restarting over such a changelog
decodes them; re-encoded unchanged, they must be the same bytes (a changed encoding would rewrite
nothing wrong, but it would no longer be the format the recovery skip in ``Runtime._start`` reads).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.engine import DictStore, Engine, Processor
from streams.engine.state import CustomerState, StoredEvent, Suppression, Timer
from streams.events import ERASE_TYPE, validate_event
from streams.generate import generate_events
from streams.topology import load_folder

HERE = Path(__file__).resolve().parent
TOPOLOGIES = HERE.parents[1] / "topologies"
RECORDED = [line.encode() for line in (HERE / "state-v1-recorded.jsonl").read_text().splitlines()]


def test_recorded_values_cover_every_part_of_the_format() -> None:
    keys = {k for value in RECORDED for k, v in orjson.loads(value).items() if v not in ([], {})}
    assert keys == {"v", "n", "e", "s", "g", "f", "m", "h", "o", "x"}
    rows = [row for value in RECORDED for row in orjson.loads(value)["e"]]
    assert any(row[4] is None for row in rows) and any(row[5] is None for row in rows)
    assert any(row[6] for row in rows) and any(row[6] is None for row in rows)


@pytest.mark.parametrize("value", RECORDED, ids=[f"recorded-{i}" for i in range(len(RECORDED))])
def test_recorded_value_decodes_and_encodes_to_the_same_bytes(value: bytes) -> None:
    state = CustomerState.from_bytes(value)
    assert state.to_obj() == orjson.loads(value)
    assert state.to_bytes() == value


def _states_along_a_replay() -> list[CustomerState]:
    """Every customer's state at a few points of generated traffic, erasures included, as copies."""
    store = DictStore()
    proc = Processor(Engine(load_folder(TOPOLOGIES)), store)
    seen: list[CustomerState] = []
    for i, rec in enumerate(generate_events(6000, 400, 11, start_ms=1_777_852_800_000, days=2.0)):
        proc.process(validate_event(rec), offset=i)
        if i == 3000:
            erase = {**rec, "event_id": "erase", "type": ERASE_TYPE, "attributes": {}, "channel": None}
            proc.process(validate_event(erase), offset=i)
        if i % 1500 == 1499:
            seen += [CustomerState.from_obj(orjson.loads(orjson.dumps(s.to_obj()))) for s in store.data.values()]
    return seen


def test_to_bytes_is_the_json_of_to_obj_for_generated_state() -> None:
    states = _states_along_a_replay()
    assert any(s.goals for s in states) and any(s.erased_at is not None for s in states)
    for state in states:
        assert state.to_bytes() == orjson.dumps(state.to_obj())


@pytest.mark.parametrize(
    "state",
    [
        CustomerState(),
        CustomerState(next_seq=2, events=[StoredEvent(1, 5, "a", "t", None, {}, {"y", "x"})]),
        CustomerState(next_seq=1, engagements=[(4, "sms")]),
        CustomerState(next_seq=1, last_fired={"x": 3}),
        CustomerState(timers=[Timer(9, "x", 0)]),
        CustomerState(suppressions=[Suppression("x", "sms", "c", 1, 2, "d")]),
        CustomerState(held=[Suppression("x", "sms", "c", 1, 2, "d", "shadow", None)]),
        CustomerState(erased_at=7, erased_offset=None),
        CustomerState(erased_at=7, erased_offset=3, last_fired={"x": 3}),
    ],
    ids=["empty", "events", "engagements", "fired", "timers", "suppressions", "held", "tombstone", "tomb-and-more"],
)
def test_each_part_alone_encodes_as_to_obj_and_back(state: CustomerState) -> None:
    value = state.to_bytes()
    assert value == orjson.dumps(state.to_obj())
    assert CustomerState.from_bytes(value).to_bytes() == value
