"""`tactful tail CHANNEL` against the real broker: decisions and forget records as they arrive, Ctrl-C exits 130."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka.admin import NewTopic

from streams.decisions import Decision, Kind, forget_headers
from streams.live.feed import producer
from tests.channel.fakes import encoded
from tests.integration.conftest import REPO, TACTFUL, Namespace, admin, wait_until


def decision(n: int, now: int) -> Decision:
    return Decision(
        decision_id=f"d{n:03d}",
        customer_id=f"cust-{n}",
        kind=Kind.ENGAGE if n % 2 else Kind.SUPPRESS,
        channel="email",
        action="offer_help" if n % 2 else None,
        category="phone",
        topology="post_purchase_friction",
        topology_version=1,
        effective_at=now + n,
        expires_at=now + 86_400_000,
        not_before=None,
        evidence=(f"e{n}",),
        reason=f"reason {n}",
    )


class Tail:
    """`tactful tail` in a child process; its standard output lines collected as they come."""

    def __init__(self, namespace: Namespace, *args: str) -> None:
        self.proc = subprocess.Popen(
            [TACTFUL, "tail", *args],
            cwd=REPO,
            env={**os.environ, **namespace.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.got: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(line) for line in out], daemon=True).start()

    def wait_lines(self, n: int, timeout: float = 60) -> list[str]:
        def enough() -> bool:
            while not self.lines.empty():
                self.got.append(self.lines.get().rstrip("\n"))
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            return len(self.got) >= n

        wait_until(enough, timeout, f"{n} lines from tactful tail")
        return self.got

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(30)
        return code, self.proc.stderr.read() if self.proc.stderr else ""


@pytest.mark.parametrize("as_json", [True, False])
def test_tail_prints_decisions_as_they_arrive_and_exits_130_quietly(namespace: Namespace, as_json: bool) -> None:
    settings = namespace.settings()
    topic = settings.topics.decision("email")
    client = admin()  # kept referenced until the futures resolve
    for fut in client.create_topics([NewTopic(topic, 2, 1)]).values():
        fut.result()
    now = int(time.time() * 1000)
    prod = producer(settings)
    for n in range(3):
        prod.produce(topic, value=encoded(decision(n, now)), key=f"cust-{n}".encode())
    prod.produce(topic, value=None, key=b"cust-0", headers=list(forget_headers(now)))
    assert prod.flush(30) == 0

    tail = Tail(namespace, "email", "--from-beginning", *(["--json"] if as_json else []))
    first = list(tail.wait_lines(4))
    # While it runs: new decisions show up too.
    for n in range(3, 5):
        prod.produce(topic, value=encoded(decision(n, now)), key=f"cust-{n}".encode())
    assert prod.flush(30) == 0
    lines = tail.wait_lines(6)
    code, err = tail.interrupt()
    assert code == 130
    assert err == ""
    assert first == lines[:4]
    if as_json:
        rows = [json.loads(line) for line in lines]
        assert sorted(r["decision_id"] for r in rows if "decision_id" in r) == [f"d{n:03d}" for n in range(5)]
        forgets = [r for r in rows if "forget" in r]
        assert [f["forget"] for f in forgets] == ["cust-0"] and forgets[0]["erased_at"].endswith("Z")
        assert all(r.get("channel", "email") == "email" for r in rows)
    else:
        assert sum("FORGET" in line and "cust-0" in line for line in lines) == 1
        for n in range(5):
            (line,) = [line for line in lines if f" cust-{n} " in line and "FORGET" not in line]
            assert ("ENGAGE" if n % 2 else "SUPPRESS") in line and f"reason {n}" in line


def test_tail_of_a_channel_without_a_topic_is_a_usage_error(namespace: Namespace) -> None:
    proc = subprocess.run(
        [TACTFUL, "tail", "pigeon"],
        cwd=REPO,
        env={**os.environ, **namespace.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no decision topic") and "pigeon" in proc.stderr
