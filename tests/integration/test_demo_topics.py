"""What ``tactful demo`` reads back from the broker, with the schema registry's ids on the records."""

from __future__ import annotations

import json
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from streams.decisions import Decision, Kind, Status
from streams.live.codecs import make_codecs
from streams.live.demo import report_from_topics
from streams.live.feed import event_time_reached, feed
from streams.timeutil import format_time
from streams.topology import load_folder
from tests.integration.conftest import REPO, Namespace, admin, kafka_bootstrap

START = 1_777_852_800_000  # 2026-05-04T00:00:00Z


def touchpoint(n: int, customer: str, kind: str = "page_view") -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "customer_id": customer,
        "type": kind,
        "occurred_at": format_time(START + n * 60_000),
        "channel": "web",
        "attributes": {},
    }


def test_the_demo_reads_records_written_with_the_registrys_ids(namespace: Namespace, tmp_path: Path) -> None:
    settings = namespace.settings()
    assert settings.kafka.schema_registry_url, "the tier runs with the local schema registry"
    client = admin()  # kept: the futures need their client alive
    for fut in client.create_topics(
        [NewTopic(t, 2, 1) for t in (settings.topics.input, settings.topics.audit)]
    ).values():
        fut.result()
    since = int(time.time() * 1000) - 1_000
    # The feed writes touchpoints with the registry's id, as in `make demo`.
    assert feed(settings, [touchpoint(n, f"c{n % 3}") for n in range(12)]) == 12
    # Where a second run resumes: the newest occurred_at on the input topic.
    assert event_time_reached(settings) == START + 11 * 60_000

    codecs = make_codecs(settings)  # registers the decision schema: the registry's id, as the workers write
    producer = Producer({"bootstrap.servers": kafka_bootstrap()})
    for n, status in enumerate([Status.EMITTED, Status.EMITTED, Status.HELD_OUT]):
        d = Decision(
            decision_id=f"{n:032x}",
            customer_id=f"c{n}",
            kind=Kind.ENGAGE,
            channel="sms",
            action="hello",
            category=None,
            topology="nudge",
            topology_version=1,
            effective_at=START + n,
            expires_at=None,
            not_before=None,
            evidence=(f"e{n}",),
            reason="test",
            status=status,
            cause="holdout_global" if status == Status.HELD_OUT else None,
        )
        producer.produce(settings.topics.audit, codecs.encode_decision(d), key=d.customer_id.encode())
    assert producer.flush(30) == 0

    files = report_from_topics(settings, since=since, catalog=load_folder(REPO / "topologies"), out=tmp_path)
    data = json.loads(files.json.read_bytes())
    assert data["inputs"]["audit_records"] == 3
    assert data["inputs"]["audit_records_unreadable"] == 0
    assert data["inputs"]["touchpoints"] == 12
    assert data["inputs"]["touchpoints_unreadable"] == 0
    (nudge,) = data["topologies"]
    assert nudge["matches"] == {"treated": 2, "holdout_global": 1}
    assert files.html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
