"""Goal window ends are deadlines like absence timers (contract 7.4), also across a restart."""

from __future__ import annotations

from pathlib import Path

from streams.engine import CustomerState, DictStore, Engine, Processor
from streams.events import validate_event
from streams.timeutil import HOUR, format_time
from streams.topology import load_folder

T0 = 1_790_000_000_000

TOPOLOGY = """\
topology: t
version: 1
goal: {event: buy, within: 1h}
when: {sequence: [{event: go}]}
then:
  - engage: {channel: sms, action: hello}
"""


def record(eid: str, etype: str, at: int) -> dict[str, object]:
    return {"event_id": eid, "customer_id": "c1", "type": etype, "occurred_at": format_time(at)}


def test_a_restarted_processor_fires_the_goal_deadlines_of_the_state_it_restores(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TOPOLOGY)
    engine = Engine(load_folder(tmp_path))
    store = DictStore()
    first = Processor(engine, store)
    first.process(validate_event(record("g1", "go", T0)))
    state = store.get("c1")
    assert state is not None and state.timers == [] and state.next_deadline() == T0 + HOUR
    # The state survives the restart through its serialised form, as in the changelog.
    restored = DictStore()
    restored.put("c1", CustomerState.from_bytes(state.to_bytes()))
    second = Processor(engine, restored)
    second.restore_timers(restored.data.items())
    assert second.pending_timers() == 1
    [missed] = second.advance_watermark(T0 + HOUR)
    assert (missed.kind, missed.status, missed.effective_at, missed.evidence) == ("GOAL", "missed", T0 + HOUR, ("g1",))
    assert restored.get("c1") is not None and restored.data["c1"].goals == []


def test_the_state_of_a_catalog_without_goals_or_holdouts_keeps_its_v1_form(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TOPOLOGY.replace("goal: {event: buy, within: 1h}\n", ""))
    store = DictStore()
    Processor(Engine(load_folder(tmp_path)), store).process(validate_event(record("g1", "go", T0)))
    state = store.get("c1")
    assert state is not None
    assert set(state.to_obj()) == {"v", "n", "e", "s", "g", "f", "m"}
