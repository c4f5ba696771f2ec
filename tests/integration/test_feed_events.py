"""`tactful feed --events FILE` against the real broker and a worker: your own events, live."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path

from streams.codec import avro
from streams.codec.avro import touchpoint_schema, touchpoint_to_avro, write_ocf
from streams.decisions import Kind
from streams.live.codecs import resolver
from tests.integration.conftest import REPO, TACTFUL, Namespace

GAP_MS = 700


def logins(customer: str, start: int) -> list[dict[str, object]]:
    """Five failed log-ins 0.7 s apart: failed_login_guard fires on the fifth."""
    return [
        {
            "event_id": f"{customer}-{i}",
            "customer_id": customer,
            "type": "login_failed",
            "occurred_at": start + i * GAP_MS,
            "channel": "web",
        }
        for i in range(5)
    ]


def feed_file(namespace: Namespace, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TACTFUL, "feed", "--events", str(path), *args],
        cwd=REPO,
        env={**os.environ, **namespace.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_own_events_shifted_to_now_are_sent_as_they_fall_due_and_decided_on(
    namespace: Namespace, tmp_path: Path
) -> None:
    namespace.worker().wait_ready()
    customer = f"own-{namespace.id}"
    path = tmp_path / "events.jsonl"
    long_ago = 1_600_000_000_000  # 2020: far behind any watermark, were it not shifted
    lines = [json.dumps(e) for e in logins(customer, long_ago)]
    lines.insert(2, json.dumps({"event_id": "bad", "customer_id": customer, "type": "Not A Type", "occurred_at": 0}))
    path.write_text("\n".join(lines) + "\n")

    before = int(time.time() * 1000)
    done = feed_file(namespace, path, "--shift-to-now")
    after = int(time.time() * 1000)
    assert done.returncode == 0, done.stderr
    assert "record 3: invalid_type" in done.stderr and "sent 5 events" in done.stderr
    assert after - before >= 4 * GAP_MS  # the gaps were kept in real time, not sent at once

    topic = namespace.settings().topics.input
    records = namespace.read(topic, lambda got: len(got) >= 5)
    events = [avro.decode(m.value(), resolver(namespace.settings())) for m in records]
    times = [e["occurred_at"] for e in events]
    assert [e["event_id"] for e in events] == [f"{customer}-{i}" for i in range(5)]
    assert [b - a for a, b in itertools.pairwise(times)] == [GAP_MS] * 4
    assert before <= times[0] <= after
    for m, at in zip(records, times, strict=True):
        assert m.timestamp()[1] >= at - 50  # produced no earlier than its event time (clock granularity aside)

    engaged = namespace.decisions("sms", lambda ds: any(d.customer_id == customer for d in ds))
    (d,) = [d for d in engaged if d.customer_id == customer and d.kind == Kind.ENGAGE]
    assert d.topology == "failed_login_guard" and d.action == "account_recovery_help"
    assert namespace.end_offsets(namespace.settings().topics.dlq) == 0  # nothing late, nothing invalid sent


def test_an_avro_file_of_past_events_is_sent_at_once_unchanged(namespace: Namespace, tmp_path: Path) -> None:
    from confluent_kafka.admin import NewTopic

    from tests.integration.conftest import admin

    topic = namespace.settings().topics.input
    client = admin()
    for fut in client.create_topics([NewTopic(topic, 2, 1)]).values():
        fut.result()
    events = logins(f"avro-{namespace.id}", 1_600_000_000_000)
    path = tmp_path / "events.avro"
    write_ocf(path, [touchpoint_to_avro(e) for e in events], touchpoint_schema())
    started = time.monotonic()
    done = feed_file(namespace, path)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60
    records = namespace.read(topic, lambda got: len(got) >= 5)
    got = sorted(avro.decode(m.value(), resolver(namespace.settings()))["occurred_at"] for m in records)
    assert got == [e["occurred_at"] for e in events]
