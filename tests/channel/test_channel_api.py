"""The channel client's public names are pinned here: change them on purpose."""

from __future__ import annotations

import subprocess
import sys

import pytest

import streams.channel
from streams.channel import OUTCOMES, outcome_event
from streams.events import validate_event
from tests.channel.fakes import decision


def test_public_names_are_pinned() -> None:
    assert sorted(streams.channel.__all__) == [
        "ChannelClient",
        "ChannelStats",
        "Delivery",
        "Forget",
        "OUTCOMES",
        "outcome_event",
    ]
    for name in streams.channel.__all__:
        assert getattr(streams.channel, name) is not None


def test_importing_it_loads_no_broker_or_redis_client() -> None:
    code = (
        "import sys, streams.channel; "
        "print(sorted(m for m in ('faust','aiokafka','redis','confluent_kafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_outcomes_are_the_contracts() -> None:
    assert OUTCOMES == (
        "delivered",
        "opened",
        "clicked",
        "converted",
        "dismissed",
        "complained",
        "unsubscribed",
        "failed",
    )


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_outcome_is_a_valid_touchpoint_naming_the_decision(outcome: str) -> None:
    d = decision(1, "c9")
    event = outcome_event(d, outcome, 1_700_000_000_000, attributes={"campaign": "x"})
    validate_event(event)
    assert event["type"] == f"decision.{outcome}"
    assert event["customer_id"] == "c9" and event["channel"] == "email"
    assert event["attributes"] == {"campaign": "x", "decision_id": d.decision_id}
    assert event["event_id"] == f"decision.{outcome}:{d.decision_id}"


@pytest.mark.parametrize(("outcome", "attributes"), [("bounced", None), ("clicked", {"decision_id": "other"})])
def test_a_bad_outcome_is_refused(outcome: str, attributes: dict[str, str] | None) -> None:
    with pytest.raises(ValueError):
        outcome_event(decision(1), outcome, 0, attributes=attributes)


def test_the_readme_shows_the_example_consumer_as_it_is() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    example = (root / "examples" / "channel_consumer.py").read_text()
    body = example[example.index("outbox: dict") :]
    assert f"```python\n{body}```" in (root / "README.md").read_text()
    compile(example, "channel_consumer.py", "exec")
