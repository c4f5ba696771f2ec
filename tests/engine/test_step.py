"""The one step from a decoded record to its outcome, as replay and the live runtime take it."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.engine import DictStore, Engine, Outcome, Processor, Step
from streams.errors import InputError, InvalidEvent, UnknownSchema
from streams.events import Event
from streams.timeutil import MINUTE, format_time
from streams.topology import load_folder

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
T0 = 1_790_000_000_000


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_folder(TOPOLOGIES))


def ev(eid: str, at: int, etype: str = "purchase", cust: str = "c1") -> dict[str, object]:
    return {"event_id": eid, "customer_id": cust, "type": etype, "occurred_at": at, "attributes": {"category": "phone"}}


def test_valid_duplicate_and_ignored_records(engine: Engine) -> None:
    step = Step(Processor(engine, DictStore()))
    outcome, decisions, event, rejection = step.take(ev("p", T0))
    assert (outcome, decisions, rejection) == (Outcome.EVALUATED, [], None)
    assert isinstance(event, Event) and event.event_id == "p"
    assert step.take(ev("p", T0))[0] is Outcome.DUPLICATE
    assert step.take(ev("x", T0, etype="nobody_reads_this"))[0] is Outcome.IGNORED


@pytest.mark.parametrize(
    "record, reason, error",
    [
        (ev("p", T0, etype="Not A Type"), "invalid_type", InvalidEvent),
        ("not an object", "not_an_object", InvalidEvent),
        (UnknownSchema("unknown_schema", "schema id 9 is not known"), "unknown_schema", UnknownSchema),
    ],
)
def test_invalid_records_are_rejected_with_their_reason(
    engine: Engine, record: object, reason: str, error: type[InputError]
) -> None:
    proc = Processor(engine, DictStore())
    outcome, decisions, event, rejection = Step(proc).take(record)
    assert (outcome, decisions, event) == (Outcome.INVALID, [], None)
    assert rejection is not None and rejection.reason == reason and type(rejection.error) is error
    assert rejection.as_error() is rejection.error
    assert proc.stream_time is None  # never processed


def test_a_late_event_is_rejected_with_the_watermark_in_iso_8601(engine: Engine) -> None:
    proc = Processor(engine, DictStore())
    step = Step(proc)
    step.take(ev("p", T0))
    late_at = T0 - proc.lateness - MINUTE
    outcome, decisions, _, rejection = step.take(ev("late", late_at, cust="c2"))
    assert (outcome, decisions) == (Outcome.LATE, [])
    assert rejection is not None and rejection.error is None
    watermark = format_time(T0 - proc.lateness)
    assert rejection.reason == "late"
    assert rejection.detail == f"occurred_at {format_time(late_at)} is before the watermark {watermark}"
    assert watermark.endswith("Z") and "T" in watermark
    assert (rejection.as_error().reason, rejection.as_error().detail) == ("late", rejection.detail)


def test_an_event_the_admit_hook_refuses_is_routed_unprocessed(engine: Engine) -> None:
    store = DictStore()
    proc = Processor(engine, store)
    step = Step(proc, admit=lambda e: e.customer_id != "elsewhere")
    outcome, decisions, event, rejection = step.take(ev("p", T0, cust="elsewhere"))
    assert (outcome, decisions, rejection) == (Outcome.ROUTED, [], None)
    assert event is not None and event.customer_id == "elsewhere"
    assert proc.stream_time is None and store.data == {}
    assert step.take(ev("q", T0, cust="mine"))[0] is Outcome.EVALUATED
