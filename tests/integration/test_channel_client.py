"""The channel client against the real broker and Redis: killed (SIGKILL) and restarted while it consumes.

A consumer process (tests/integration/channel_consumer.py) records each
decision durably; the test kills it from outside at arbitrary points and it
kills itself right after its own side effect (the window the client's
docstring names), restarts it each time, and checks that every decision was
acted on exactly once, the redelivered ones with ``attempt`` 2, and that the
group's offsets end committed to the end.

Restarts are counted against kills that each ended a process on their own: a
kill from outside counts only when it signalled a live process that was not
already bound to kill itself (the consumer notes its pid in a file before it
starts the hand-over it dies after), and is tried again on the next process
when it did not; otherwise a kill landing on a consumer already dying by its
own hand would be one restart for two kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import NewTopic

from streams.decisions import Decision, Kind, forget_headers
from streams.live.feed import producer
from tests.channel.fakes import encoded
from tests.integration.conftest import REPO, Namespace, admin, wait_until

DECISIONS = 400
CUSTOMERS = 80
ERASED = "c0007"


def decisions(now: int) -> list[Decision]:
    return [
        Decision(
            decision_id=f"d{n:05d}",
            customer_id=f"c{n % CUSTOMERS:04d}",
            kind=Kind.ENGAGE,
            channel="email",
            action="offer_help",
            category="phone",
            topology="post_purchase_friction",
            topology_version=1,
            effective_at=now,
            expires_at=now + 86_400_000,
            not_before=None,
            evidence=(f"e{n}",),
            reason="test",
        )
        for n in range(DECISIONS)
    ]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def committed(group: str, topic: str) -> int:
    client = admin()
    try:
        listed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    except KafkaException:
        return 0
    return sum(tp.offset for tp in listed.topic_partitions or [] if tp.topic == topic and tp.offset >= 0)


class ConsumerProcess:
    """channel_consumer.py in a child process, started again whenever it died by SIGKILL.

    ``doomed`` is the file where the consumer notes ``pid id`` before a hand-over it kills
    itself after (channel_consumer.py's DOOMED argument).
    """

    def __init__(self, args: list[str], doomed: Path, env: dict[str, str], log: Path) -> None:
        self.args, self.doomed, self.env, self.log = [*args, str(doomed)], doomed, env, log
        self.restarts = 0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.integration.channel_consumer", *self.args],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def revive(self) -> bool:
        """Start it again if it died (only ever by SIGKILL); always true, for use inside a wait."""
        if self.proc.poll() is not None:
            assert self.proc.returncode == -signal.SIGKILL, self.log.read_text(errors="replace")[-3000:]
            self.proc = self._start()
            self.restarts += 1
        return True

    def kill(self) -> bool:
        """SIGKILL it; true only if that ended a live process which was not about to kill itself."""
        proc = self.proc
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return str(proc.pid) not in self.doomed_pids()

    def doomed_pids(self) -> set[str]:
        """The processes that died (or were bound to die) by their own SIGKILL."""
        return {line.split()[0] for line in lines(self.doomed)}


def test_a_killed_and_restarted_consumer_acts_on_each_decision_once(namespace: Namespace, tmp_path: Path) -> None:
    import time

    settings = namespace.settings()
    topic = settings.topics.decision("email")
    group = f"{settings.topics.app_id}-email-sender"
    client = admin()  # kept referenced until the futures resolve
    for fut in client.create_topics([NewTopic(topic, 4, 1)]).values():
        fut.result()
    made = decisions(int(time.time() * 1000))
    prod = producer(settings)
    for i, d in enumerate(made):
        prod.produce(topic, value=encoded(d), key=d.customer_id.encode())
        if i == DECISIONS // 2:
            prod.produce(topic, value=None, key=ERASED.encode(), headers=list(forget_headers(d.effective_at)))
    assert prod.flush(30) == 0
    total_records = DECISIONS + 1

    records, calls = tmp_path / "records.txt", tmp_path / "calls.txt"
    kill_on = ["d00050", "d00251"]
    consumer = ConsumerProcess(
        [str(records), str(calls), ",".join(kill_on)],
        tmp_path / "doomed.txt",
        {**os.environ, **namespace.env(), "TACTFUL_SESSION_TIMEOUT": "6"},
        tmp_path / "consumer.log",
    )
    try:
        for target in (80, 170, 300):  # killed from outside a few times while it works; each kill ends a process
            wait_until(
                lambda: consumer.revive() and len(lines(records)) >= target and consumer.kill(),  # noqa: B023
                120,
                f"{target} records and a live consumer killed",
            )
        wait_until(
            lambda: (
                consumer.revive() and len(lines(records)) >= total_records and committed(group, topic) >= total_records
            ),
            180,
            "every record acted on and committed",
            every=0.5,
        )
    finally:
        consumer.kill()

    acted = Counter(lines(records))
    assert set(acted.values()) == {1}, [r for r, n in acted.items() if n > 1]
    assert set(acted) == {d.decision_id for d in made} | {f"forget {ERASED}"}
    attempts = Counter(tuple(line.split()) for line in lines(calls))
    for did in kill_on:  # killed right after its effect: handed over again, and not acted on again
        assert attempts[(did, "1")] == 1 and attempts[(did, "2")] >= 1
    assert len(consumer.doomed_pids()) == len(kill_on)  # one process per self-kill, each restarted
    assert consumer.restarts >= len(kill_on) + 3
    # Only a hand-over a kill interrupted comes again (one per kill at most): what was marked done never does.
    again = {did for did, attempt in attempts if attempt != "1"}
    assert set(kill_on) <= again and len(again) <= consumer.restarts
