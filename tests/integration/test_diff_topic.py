"""``tactful diff --from-topic``: the input topic over a time range, real broker and schema registry.

The same events give the same difference from the topic (one watermark per
partition, records in the registry's wire format) as from a file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from confluent_kafka.admin import NewTopic

from streams.cli import main
from streams.live.codecs import touchpoint_schema_id
from streams.live.feed import encode_event, producer
from tests.integration.conftest import Namespace, admin
from tests.test_diff import EVENTS, HOUR, catalog, event, write_events

LATER = [event(7, "c5", "login_failed", 31), event(8, "c9", "tick", 32)]


def test_diff_reads_the_input_topic_over_a_time_range(namespace: Namespace, tmp_path: Path) -> None:
    settings = namespace.settings()
    topic = settings.topics.input
    client = admin()  # kept: the futures need their client alive
    for fut in client.create_topics([NewTopic(topic, 2, 1)]).values():
        fut.result()
    now = int(time.time() * 1000)
    before, after = now - 2 * HOUR, now - HOUR  # two batches an hour apart, by the records' timestamps
    schema_id = touchpoint_schema_id(settings)  # the registry's id, as `tactful feed` writes
    prod = producer(settings)
    for events, stamp in ((EVENTS, before), (LATER, after)):
        for e in events:
            key, value = encode_event(e, schema_id)
            prod.produce(topic, value=value, key=key, timestamp=stamp)
    assert prod.flush(30) == 0
    base = catalog(tmp_path / "base")
    cand = catalog(tmp_path / "cand", nudge_version=2, window="12h", gone=False, added=True)
    common = ["diff", "--no-progress", "--json", "--base", str(base), "--candidate", str(cand)]

    def diff(*args: str) -> dict[str, Any]:
        result = CliRunner(env=namespace.env()).invoke(main, [*common, *args])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    everything = diff("--from-topic")
    from_file = diff("--events", str(write_events(tmp_path / "all.jsonl", [*EVENTS, *LATER])))
    assert everything["events"] == 8
    assert everything["groups"] == from_file["groups"]
    assert everything["totals"] == {"base_only": 3, "candidate_only": 3, "changed": 0, "same": 1}

    early = diff("--from-topic", "--until", str(after - 1))
    assert early["events"] == 6
    assert early["totals"] == {"base_only": 2, "candidate_only": 3, "changed": 0, "same": 1}
    late = diff("--from-topic", "--since", str(after - 1))
    assert late["events"] == 2
    assert late["totals"] == {"base_only": 1, "candidate_only": 0, "changed": 0, "same": 0}
    (gone,) = late["groups"]
    assert [s["customer_id"] for s in gone["samples"]["base_only"]] == ["c5"]


def test_a_missing_input_topic_is_a_setting_to_fix(namespace: Namespace, tmp_path: Path) -> None:
    base = catalog(tmp_path / "base")
    args = ["diff", "--from-topic", "--timeout", "20", "--base", str(base), "--candidate", str(base)]
    result = CliRunner(env=namespace.env()).invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"topic '{namespace.settings().topics.input}' does not exist" in result.stderr
