"""Contract 7 live: shadow, held-out and GOAL records go to the audit topic only, never to a channel.

The runtime sends a decision to its channel's topic only when it is emitted, and
every record to the audit topic; the mirror reads the channel topics and writes
only emitted ones. These records go through the real Avro codec, as live.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from streams.codec import avro
from streams.decisions import Decision
from streams.live import metrics as live_metrics
from streams.live.codecs import Codecs
from streams.live.limits import RecordLimits
from streams.live.runtime import Runtime, RuntimeIO, StateTable
from streams.settings import Settings
from streams.topology import load_folder
from tests.live.test_runtime import NOW, Log, Sink, Source, event, records, run

CATALOG = {
    "shadowed.yaml": """
        topology: shadowed
        version: 1
        mode: shadow
        when: {sequence: [{event: go}]}
        then:
          - suppress: {channels: [ads], for: 1d}
          - engage: {channel: push, action: shadow_push}
    """,
    "held.yaml": """
        topology: held
        version: 1
        holdout: 100%
        when: {sequence: [{event: go}]}
        then:
          - suppress: {channels: [ads], for: 1d}
          - engage: {channel: email, action: held_mail}
    """,
    "treated.yaml": """
        topology: treated
        version: 1
        goal: {event: buy, within: 1h}
        when: {sequence: [{event: go}]}
        then:
          - engage: {channel: sms, action: treated_sms}
    """,
}


def make(folder: Path, log: Log) -> Runtime:
    for name, text in CATALOG.items():
        (folder / name).write_text("\n".join(line[8:] for line in text.splitlines()))
    decode = avro.local_registry().resolve
    io = RuntimeIO(
        source=Source(log),
        sink=Sink(log),
        state=StateTable({}, lambda p, k, v: None),
        codecs=Codecs(
            lambda b: avro.decode(b, decode),
            lambda d: avro.encode(d.to_record(), avro.decision_schema(), avro.decision_schema_id()),
            avro.decision_schema_id(),
        ),
        metrics=live_metrics.create(),
        limits=RecordLimits(),
    )
    # The fake Sink has no transactional commit: at-least-once, named whatever the default.
    settings = Settings.from_flat({"redis_url": "", "processing_guarantee": "at_least_once"})
    return Runtime(settings, load_folder(folder), io, clock=lambda: NOW / 1000)


def test_only_emitted_decisions_reach_channel_topics_and_everything_reaches_audit(tmp_path: Path) -> None:
    log = Log()
    rt = make(tmp_path, log)
    outcome = run(
        rt.handle(records(("c1", event("g", "c1", "go", NOW)), ("c1", event("b", "c1", "buy", NOW + 60_000))))
    )
    statuses = Counter((d.topology, d.kind, d.status) for d in outcome.decisions)
    assert statuses == {
        ("shadowed", "SUPPRESS", "shadow"): 1,
        ("shadowed", "ENGAGE", "shadow"): 1,
        ("held", "SUPPRESS", "held_out"): 1,
        ("held", "ENGAGE", "held_out"): 1,
        ("treated", "ENGAGE", "emitted"): 1,
        ("treated", "GOAL", "reached"): 1,
    }
    sent: list[tuple[str, Any]] = [(r[0], r[2]) for kind, r in log.effects if kind == "acked"]
    decode = avro.local_registry().resolve
    by_topic: dict[str, list[Decision]] = {}
    for topic, value in sent:
        by_topic.setdefault(topic, []).append(Decision.from_record(avro.decode(value, decode)))
    audit = Settings.from_flat({"redis_url": ""}).topics.audit
    assert sorted(by_topic) == sorted([audit, "decisions.sms"])
    assert [d.action for d in by_topic["decisions.sms"]] == ["treated_sms"]
    assert sorted(by_topic[audit], key=Decision.sort_key) == sorted(outcome.decisions, key=Decision.sort_key)
