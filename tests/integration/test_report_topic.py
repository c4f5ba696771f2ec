"""``tactful report --from-topic``: the live audit topic and the input topic over a time range, real broker."""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from streams.cli import main
from streams.codec import avro
from streams.events import validate_event
from streams.timeutil import format_time
from tests.integration.conftest import Namespace, admin, kafka_bootstrap

HOUR = 3_600_000


def decision(n: int, customer: str, status: str = "emitted", cause: str | None = None) -> dict[str, Any]:
    return {
        "decision_id": f"{n:032x}",
        "customer_id": customer,
        "kind": "ENGAGE",
        "channel": "sms",
        "action": "hello",
        "category": None,
        "topology": "nudge",
        "topology_version": 1,
        "effective_at": 1_777_852_800_000 + n,
        "expires_at": None,
        "not_before": 1_777_852_800_000 + n,
        "evidence": [f"e{n}"],
        "reason": "test",
        "status": status,
        "cause": cause,
    }


def test_report_reads_the_audit_and_input_topics_over_a_time_range(namespace: Namespace) -> None:
    settings = namespace.settings()
    audit, touchpoints = settings.topics.audit, settings.topics.input
    client = admin()  # kept: the futures need their client alive
    for fut in client.create_topics([NewTopic(t, 2, 1) for t in (audit, touchpoints)]).values():
        fut.result()
    now = int(time.time() * 1000)
    before, after = now - 2 * HOUR, now - HOUR  # two batches an hour apart, by the records' timestamps
    producer = Producer({"bootstrap.servers": kafka_bootstrap()})
    early = [decision(i, f"c{i}") for i in range(6)]
    late = [decision(10 + i, f"c{i}", "blocked", "cap sms max 2 per 7d") for i in range(4)]
    for records, stamp in ((early, before), (late, after)):
        for r in records:
            producer.produce(audit, avro.encode_decision(r), key=r["customer_id"].encode(), timestamp=stamp)
    outcomes = [
        {
            "event_id": f"o{i}",
            "customer_id": r["customer_id"],
            "type": "decision.delivered",
            "occurred_at": format_time(after),
            "channel": "sms",
            "attributes": {"decision_id": r["decision_id"]},
        }
        for i, r in enumerate(early[:3])
    ]
    for e in outcomes:
        value = avro.encode_touchpoint(validate_event(e))
        producer.produce(touchpoints, value, key=e["customer_id"].encode(), timestamp=after)
    assert producer.flush(30) == 0

    def report(*args: str) -> dict[str, Any]:
        result = CliRunner(env=namespace.env()).invoke(main, ["report", "--from-topic", *args, "--json"])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    everything = report("--events-from-topic")
    assert everything["inputs"]["audit_records"] == 10
    (nudge,) = everything["topologies"]
    assert {(d["status"], d["count"]) for d in nudge["decisions"]} == {("emitted", 6), ("blocked", 4)}
    (sms,) = everything["channels"]
    assert (sms["sent"], sms["delivered"]) == (6, 3)

    since_late = report("--since", str(after - 1))
    assert since_late["inputs"]["audit_records"] == 4
    until_early = report("--until", str(after - 1))
    assert until_early["inputs"]["audit_records"] == 6


def test_a_missing_audit_topic_is_a_setting_to_fix(namespace: Namespace) -> None:
    result = CliRunner(env=namespace.env()).invoke(main, ["report", "--from-topic", "--timeout", "20"])
    assert result.exit_code == 2, result.output
    assert f"topic '{namespace.settings().topics.audit}' does not exist" in result.stderr
