"""One chaos run: services of its own, three workers, a fed stream with faults on a timeline, a verdict.

The timeline is in fractions of the feed's duration (``events / rate``
seconds), so a bigger run keeps the same shape:

====== ===============================================================
 when   fault
====== ===============================================================
 10%    kill -9 of a random worker, started again 1 s later
 25%    the same
 40%    the same
 50%    broker outage: kill -9 of the suite's broker, started 10 s later
 68%    Redis stopped (it keeps nothing on disk: it comes back empty)
 72%    kill -9 of a random worker during the Redis outage (restarted)
 82%    Redis started again, at least 10 s after it stopped
 92%    FLUSHALL of the suite's Redis
====== ===============================================================

A fault never comes less than a few seconds after the one before, so with a
short feed the later ones fall after it. After the feed (clock ticks last)
the run waits until the workers' group has committed every input record, or
has made no progress for ``stall_s`` seconds (a stalled partition), then stops
the workers (SIGTERM, so queued mirror writes get their chance) and compares.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from chaos import check
from chaos.fuzz import FuzzResult, fuzz
from chaos.services import REPO, Services
from chaos.traffic import Traffic, build
from chaos.workers import Fleet, worker_env
from streams.live.feed import producer
from streams.live.topics import channels
from streams.settings import Settings
from streams.topology import load_folder

DEFAULT_BROKER_MAX = 1_048_588
OUTAGE_S = 10.0  # the least a broker or Redis outage lasts, however short the feed


@dataclass
class Options:
    events: int = 20_000
    customers: int = 3_000
    rate: float = 250.0
    seed: int = 1
    workers: int = 3
    fuzz: int = 1_000_000
    big: bool = True
    faults: bool = True  # False: the same run with no kill and no outage (a check of the suite itself)
    stall_s: float = 45.0
    out: Path = REPO / "out" / "chaos"
    cache_dir: Path = REPO / ".cache"
    keep_run_dir: bool = False
    # TACTFUL_PROCESSING_GUARANTEE for the workers: at_least_once or exactly_once.
    guarantee: str = "exactly_once"


@dataclass
class Outcome:
    options: dict[str, Any]
    sent: dict[str, int]
    findings: check.Findings
    expected_dlq: dict[str, int]
    uncommitted: int
    stalled_partitions: list[int]
    kills: int
    restarts: list[dict[str, Any]]
    crashes: dict[int, int]
    fuzz: FuzzResult
    timeline: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0


def say(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def broker_max_bytes(bootstrap: str) -> int:
    """The broker's ``message.max.bytes`` (the largest record batch it takes)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        res = ConfigResource(ConfigResource.Type.BROKER, "1")
        configs = admin.describe_configs([res])[res].result(timeout=10)
        return int(configs["message.max.bytes"].value)
    except (KafkaException, KeyError, ValueError):
        return DEFAULT_BROKER_MAX


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    client = AdminClient({"bootstrap.servers": bootstrap})
    try:
        listed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    except KafkaException:
        return {}
    return {tp.partition: tp.offset for tp in listed.topic_partitions or [] if tp.topic == topic and tp.offset >= 0}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-wm-{uuid.uuid4().hex}"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    finally:
        c.close()


class Feeder(threading.Thread):
    """Sends the traffic at a steady rate; records what it could not deliver."""

    def __init__(self, settings: Settings, traffic: Traffic, rate: float) -> None:
        super().__init__(name="chaos-feed", daemon=True)
        self.settings, self.traffic, self.rate = settings, traffic, rate
        self.sent = 0
        self.undelivered = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # Big records go compressed (the producer's default lz4) under a raised client-side cap,
            # so that the broker, which checks the compressed batch, takes them.
            # log_level 2: the broker outage is on purpose, its connect errors are noise here.
            prod = producer(self.settings, **{"message.max.bytes": 64 * 1024 * 1024, "log_level": 2})
            topic = self.settings.topics.input
            started = time.monotonic()
            for item in self.traffic.items:
                while True:
                    try:
                        prod.produce(topic, value=item.value, key=item.key)
                        break
                    except BufferError:
                        prod.poll(0.05)
                self.sent += 1
                ahead = self.sent / self.rate - (time.monotonic() - started)
                prod.poll(0)
                if ahead > 0:
                    time.sleep(ahead)
            self.undelivered = prod.flush(300)
        except BaseException as exc:  # reported in the summary, never swallowed
            self.error = exc


def run(opts: Options) -> Outcome:
    t0 = time.monotonic()
    opts.out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="tactful-chaos-"))
    svc = Services.pick(run_dir, opts.cache_dir)
    timeline: list[tuple[float, str]] = []

    def mark(what: str) -> None:
        timeline.append((round(time.monotonic() - t0, 1), what))
        say(what)

    fleet: Fleet | None = None
    try:
        mark(f"starting own Kafka on {svc.kafka_port} and Redis on {svc.redis_port} in {run_dir}")
        svc.up()
        ns = f"chaos-{uuid.uuid4().hex[:8]}"
        env = worker_env(svc.bootstrap, svc.redis_url, ns, ns.replace("-", ""), opts.guarantee)
        settings = Settings.from_env(env)
        catalog = load_folder(REPO / "topologies")
        broker_max = broker_max_bytes(svc.bootstrap)
        traffic = build(
            catalog,
            events=opts.events,
            customers=opts.customers,
            seed=opts.seed,
            now_ms=time.time_ns() // 1_000_000,
            broker_max=broker_max,
            big=opts.big,
        )
        mark(
            f"traffic: {traffic.sent['event']} events, {sum(traffic.sent.values()) - traffic.sent['event']} "
            f"poison and tick records; replay expects {len(traffic.expected_emitted)} emitted decisions"
        )
        import random

        fleet = Fleet(env, run_dir / "workers", opts.workers, random.Random(opts.seed))
        fleet.start()
        if not fleet.wait_ready(180):
            mark("not every worker owned a partition after 180 s; going on")
        mark("workers ready")
        feeder = Feeder(settings, traffic, opts.rate)
        duration = len(traffic.items) / opts.rate
        feeder.start()
        feed_t0 = time.monotonic()

        def at(fraction: float, what: str, action: Callable[[], object], gap: float = 0.0) -> None:
            """Run ``action`` at ``fraction`` of the feed, and at least ``gap`` s after the previous fault."""
            last = timeline[-1][0] + t0 if timeline else 0.0
            delay = max(feed_t0 + fraction * duration, last + gap) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            result = action()
            mark(what + (f" ({result})" if isinstance(result, str) else ""))

        for frac in (0.10, 0.25, 0.40) if opts.faults else ():
            at(frac, "kill -9 of a worker, restarted", fleet.kill_random, gap=3)
        if opts.faults:
            at(0.50, "broker killed (-9)", svc.stop_kafka, gap=3)
            at(0.0, "broker back", svc.up, gap=OUTAGE_S)
            at(0.68, "Redis stopped", svc.stop_redis, gap=5)
            at(0.72, "kill -9 of a worker during the Redis outage, restarted", fleet.kill_random, gap=3)
            at(0.82, "Redis started again (empty)", svc.up, gap=OUTAGE_S - 3)
            at(0.92, "FLUSHALL of Redis", svc.flush_redis, gap=5)
        feeder.join()
        if feeder.error is not None:
            mark(f"feeder failed: {feeder.error!r}")
        mark(f"feed done: {feeder.sent} records sent, {feeder.undelivered} undelivered")

        topic, group = settings.topics.input, settings.topics.app_id
        ends = end_offsets(svc.bootstrap, topic)
        best, since = -1, time.monotonic()
        # A partition whose commits crawl (one record every few seconds) makes progress and
        # would hold the wait forever: the whole wait is capped too.
        give_up = time.monotonic() + 4 * opts.stall_s
        while True:
            done = committed(svc.bootstrap, group, topic)
            total = sum(done.get(p, 0) for p in ends)
            if total >= sum(ends.values()):
                break
            if total > best:
                best, since = total, time.monotonic()
            elif time.monotonic() - since > opts.stall_s:
                break
            if time.monotonic() > give_up:
                break
            time.sleep(1)
        done = committed(svc.bootstrap, group, topic)
        stalled = sorted(p for p, end in ends.items() if done.get(p, 0) < end)
        uncommitted = sum(end - done.get(p, 0) for p, end in ends.items())
        mark(f"input committed: {sum(ends.values()) - uncommitted}/{sum(ends.values())}; stalled partitions {stalled}")
        # The mirror writes after the broker has the decisions: let a backlog drain before comparing.
        time.sleep(3)
        fleet.stop()
        mark("workers stopped (SIGTERM)")
        chans = [settings.topics.decision(c) for c in channels(catalog)]
        findings = check.compare_decisions(svc.bootstrap, chans, settings.topics.audit, traffic.expected)
        findings.dlq_records, findings.dlq = check.dead_letters(svc.bootstrap, settings.topics.dlq)
        check.compare_redis(svc.redis_url, settings.redis.prefix, traffic.expected, findings)
        mark("compared")
        restarts = [
            {"worker": r.worker, "cause": r.cause, "ready_s": r.ready_s, "decide_s": r.decide_s, "died": r.died}
            for r in fleet.restarts
        ]
        kills, crashes = fleet.kills, fleet.crash_codes()
        for w in fleet.workers:
            shutil.copy(w.log, opts.out / f"{w.name}.log")
    finally:
        if fleet is not None:
            fleet.stop()
        with contextlib.suppress(Exception):
            svc.down()
        say("own Kafka and Redis stopped")
        if not opts.keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    fuzzed = FuzzResult()
    if opts.fuzz:
        mark(f"decoder fuzz: {opts.fuzz} inputs")
        fuzzed = fuzz(opts.fuzz, opts.seed)
    return Outcome(
        options={k: str(v) if isinstance(v, Path) else v for k, v in opts.__dict__.items()},
        sent=dict(traffic.sent),
        findings=findings,
        expected_dlq=dict(traffic.expected_dlq()),
        uncommitted=uncommitted,
        stalled_partitions=stalled,
        kills=kills,
        restarts=restarts,
        crashes=crashes,
        fuzz=fuzzed,
        timeline=timeline,
        seconds=round(time.monotonic() - t0, 1),
    )
