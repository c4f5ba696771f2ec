"""Hostile input: whatever JSON value stands in whatever field, validation ends in an
:class:`~streams.errors.InputError` with a reason, or a valid event; never another exception.

A fuzz found that an object or a list as ``type`` raised ``TypeError`` (issue 9):
about 3% of mutated inputs, and ``replay`` died with a traceback on such a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.errors import InputError
from streams.events import Event, validate_event

TOPOLOGIES = Path(__file__).parents[1] / "topologies"
FIELDS = ("event_id", "customer_id", "type", "occurred_at", "channel", "attributes")
VALID: dict[str, Any] = {
    "event_id": "e1",
    "customer_id": "c1",
    "type": "purchase",
    "occurred_at": "2026-05-04T10:00:00Z",
    "channel": "web",
    "attributes": {"category": "phone"},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def judged(record: object) -> Event | InputError:
    try:
        return validate_event(record)
    except InputError as exc:
        assert exc.reason and exc.detail
        return exc


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], [], {}, 1.5, True, 2**70, ""], ids=repr)
def test_any_json_type_in_any_field_is_an_input_error_or_valid(field: str, value: object) -> None:
    judged({**VALID, field: value})


def test_an_object_as_type_is_invalid_type() -> None:
    outcome = judged({**VALID, "type": {"nested": "x"}})
    assert isinstance(outcome, InputError) and outcome.reason == "invalid_type"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_fuzzed_field(field: str, value: object) -> None:
    judged({**VALID, field: value})


@settings(max_examples=500, deadline=None)
@given(record=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8) | json_values)
def test_fuzzed_record(record: object) -> None:
    judged(record)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(st.sampled_from(FIELDS), json_values), min_size=1, max_size=30))
def test_replay_of_a_hostile_file_never_dies(values: list[tuple[str, object]], tmp_path: Path) -> None:
    events = tmp_path / "hostile.jsonl"
    # json, not orjson: it writes integers beyond 64 bits too, as a hostile producer may.
    lines = [json.dumps({**VALID, "event_id": f"e{i}", field: value}) for i, (field, value) in enumerate(values)]
    events.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["replay", "--topologies", str(TOPOLOGIES), "--events", str(events)])
    assert result.exit_code == 0, result.output
    assert result.exception is None
