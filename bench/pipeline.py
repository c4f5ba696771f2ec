"""``make bench`` (``python -m bench pipeline``): tactful beside what a user would use instead.

One run, one broker, the same Avro touchpoints for everyone:

1. the limit: consume the topic and decode the records, nothing else;
2. the engine alone, in-process, on the decoded records;
3. a naive Faust app: a per-customer count, one table write per event;
4. Quix Streams: the same count (its own virtualenv, ``.venv-quix``);
5. tactful: one worker, the whole pipeline;
6. latency at half of (5)'s rate, from an event's append to its decision's
   (events encoded before the clock starts; the first 3 s are warm-up);
7. recovery: a worker restarted over the state of 100,000 customers.

The stateful contenders (3-5) are timed alike: from their consumer group's
first offset commit to the commit of the last offset, polled every 0.2 s,
every commit interval set to one second. Figures are printed, written as
JSON and drawn as a PNG; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.codec import avro
from streams.engine import DictStore, Engine, Processor
from streams.errors import InfraError
from streams.events import validate_event
from streams.gctune import tuned
from streams.generate import generate_events
from streams.live.feed import encode_event, feed, producer
from streams.settings import Settings
from streams.timeutil import parse_time
from streams.topology import Catalog, load_folder
from streams.topology.model import Absence

# The checkout: benchmarks run from it (workers, the Quix peer by path), never from a wheel.
REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 4
HISTORY_START = parse_time("2026-05-04T00:00:00Z")


@dataclass
class Results:
    date: str
    events: int
    customers: int
    partitions: int
    rates: dict[str, float] = field(default_factory=dict)  # events/s by contender
    latency_rate: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50/p95/p99
    latency_samples: int = 0
    recovery_seconds: float = 0.0
    recovery_customers: int = 0
    notes: list[str] = field(default_factory=list)


LABELS = {
    "limit_aiokafka": "(1) limit: consume + decode (aiokafka)",
    "limit_confluent": "    limit: consume + decode (confluent-kafka)",
    "engine": "(2) engine alone, in-process",
    "naive_faust": "(3) naive Faust: per-customer count table",
    "quix": "(4) Quix Streams: per-customer count state",
    "tactful": "(5) tactful: one worker, full pipeline",
}


# -- plumbing -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config={"message.timestamp.type": "LogAppendTime"})])
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise InfraError(f"cannot create {name}: {exc}") from exc


class Committed:
    """Reads a consumer group's committed offsets without joining it."""

    def __init__(self, bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]

    def total(self) -> int:
        try:
            found = self.consumer.committed(self.tps, timeout=5)
        except KafkaException:
            return 0
        return sum(max(tp.offset, 0) for tp in found)

    def close(self) -> None:
        self.consumer.close()


def time_group(
    bootstrap: str, group: str, topic: str, total: int, proc: subprocess.Popen[bytes], timeout: float
) -> float:
    """Events/s between the group's first commit and the commit of the last offset."""
    committed = Committed(bootstrap, group, topic)
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            n = committed.total()
            now = time.monotonic()
            if n > 0 and first is None:
                first = (now, n)
            if n >= total and first is not None:
                if now - first[0] < 0.5:
                    raise InfraError(f"{group}: finished within one poll; use more events to time it")
                return (total - first[1]) / (now - first[0])
            if proc.poll() is not None:
                raise InfraError(f"{group}: the process exited with {proc.returncode}")
            if now > deadline:
                raise InfraError(f"{group}: {n:,} of {total:,} committed after {timeout:.0f}s")
            time.sleep(0.2)
    finally:
        committed.close()


def wait_committed(
    bootstrap: str, group: str, topic: str, total: int, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    committed = Committed(bootstrap, group, topic)
    deadline = time.monotonic() + timeout
    try:
        while committed.total() < total:
            if proc.poll() is not None:
                raise InfraError(f"{group}: the process exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise InfraError(f"{group}: not all of {total:,} committed after {timeout:.0f}s")
            time.sleep(0.2)
    finally:
        committed.close()


@contextmanager
def process(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def worker_env(bootstrap: str, redis_url: str, name: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "TACTFUL_BOOTSTRAP_SERVERS": bootstrap,
        "TACTFUL_REDIS_URL": redis_url,
        "TACTFUL_REDIS_PREFIX": name.replace(".", "-"),
        "TACTFUL_APP_ID": name,
        "TACTFUL_INPUT_TOPIC": f"{name}.touchpoints",
        "TACTFUL_DLQ_TOPIC": f"{name}.touchpoints.dlq",
        "TACTFUL_DECISION_TOPIC_PREFIX": f"{name}.decisions.",
        "TACTFUL_AUDIT_TOPIC": f"{name}.decisions.audit",
        "TACTFUL_WEB_PORT": str(port),
        "TACTFUL_DATA_DIR": str(REPO / ".run" / "bench" / name),
        # Local schema ids, as the bench reads the decisions back with them and as earlier
        # figures were measured (make bench runs under with-services.sh, which names a registry).
        "TACTFUL_SCHEMA_REGISTRY_URL": "",
        **extra,
    }


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise InfraError(f"worker on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise InfraError(f"worker on port {port} not ready in {timeout:.0f}s")


# -- the measurements -------------------------------------------------------------------


def limit_aiokafka(bootstrap: str, topic: str, total: int) -> tuple[float, list[dict[str, Any]]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    resolve = avro.local_registry().resolve
    decoded: list[dict[str, Any]] = []

    async def go() -> float:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [ATP(topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            started = None
            while len(decoded) < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                if started is None and batches:
                    started = time.perf_counter()
                for records in batches.values():
                    decoded.extend(avro.decode(r.value, resolve) for r in records if r.value is not None)
            assert started is not None
            return len(decoded) / (time.perf_counter() - started)
        finally:
            await consumer.stop()

    return asyncio.run(go()), decoded


def _reader(bootstrap: str, purpose: str) -> Consumer:
    """A consumer of its own group that reads from the start and commits nothing."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{purpose}-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def limit_confluent(bootstrap: str, topic: str, total: int) -> float:
    resolve = avro.local_registry().resolve
    c = _reader(bootstrap, "limit")
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    n = 0
    started = None
    try:
        while n < total:
            msgs = c.consume(10_000, 1.0)
            if started is None and msgs:
                started = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    avro.decode(m.value() or b"", resolve)
                    n += 1
    finally:
        c.close()
    assert started is not None
    return n / (time.perf_counter() - started)


def engine_alone(catalog: Catalog, decoded: list[dict[str, Any]]) -> float:
    proc = Processor(Engine(catalog), DictStore())
    with tuned():
        started = time.perf_counter()
        for rec in decoded:
            proc.process(validate_event(rec))
        return len(decoded) / (time.perf_counter() - started)


def latency(
    bootstrap: str, redis_url: str, catalog: Catalog, rate: float, seconds: float, logs: Path, prefix: str = ""
) -> tuple[dict[str, float], int]:
    name = f"{prefix or 'bench-' + uuid.uuid4().hex[:8]}-lat"
    port = free_port()
    env = worker_env(bootstrap, redis_url, name, port)
    settings = Settings.from_env(env)
    with process(
        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"], logs / f"{name}.log", env
    ) as proc:
        wait_ready(port, proc)
        now = int(time.time() * 1000)
        customers = max(100, int(rate * seconds / 8))
        # Encoded before the clock starts: the feeder shares the two cores with the
        # broker and the worker, and encoding at the fixed rate would take the
        # worker's share.
        # One day of event time over the run. The generator unrolls scenarios that
        # start near the end past the day's end, so its last events are all scenario
        # steps (a third of all decisions in the last second); left out, decisions
        # come at an even pace, which is what a fixed rate is meant to measure.
        end = now + DAY_MS
        records = [
            encode_event(e)
            for e in generate_events(int(rate * seconds), customers, 99, start_ms=now, days=1.0)
            if isinstance(e, dict) and parse_time(e["occurred_at"]) < end
        ]
        started_ms = time.time() * 1000
        _produce_at(settings, records, rate)
        time.sleep(3)  # the last decisions land
    absences = {t.name for t in catalog.topologies if isinstance(t.when, Absence)}
    appended = _append_times(bootstrap, settings.topics.input, by="event_id")
    lat: list[float] = []
    for topic in {settings.topics.decision(ch) for ch in _channels(catalog)}:
        for d, ts in _decisions_with_times(bootstrap, topic):
            if d["topology"] in absences and d["kind"] != "RELEASE":
                continue  # fired by the watermark, not by an event's arrival
            times = [appended[e] for e in d["evidence"] if e in appended]
            # The first seconds include one-off costs (each new decision topic's metadata).
            if times and max(times) >= started_ms + WARM_UP_MS:
                lat.append(ts - max(times))
    lat.sort()
    if not lat:
        raise InfraError("no decisions to time")

    def pick(q: float) -> float:
        return float(lat[min(len(lat) - 1, int(q * len(lat)))])

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}, len(lat)


WARM_UP_MS = 3000
DAY_MS = 86_400_000


def _produce_at(settings: Settings, records: list[tuple[bytes | None, bytes]], rate: float) -> None:
    """Produce pre-encoded records at a fixed rate."""
    prod = producer(settings)
    started = time.monotonic()
    for i, (key, value) in enumerate(records, start=1):
        while True:
            try:
                prod.produce(settings.topics.input, value=value, key=key)
                break
            except BufferError:
                prod.poll(0.01)
        ahead = i / rate - (time.monotonic() - started)
        if ahead > 0:
            prod.poll(0)
            time.sleep(ahead)
    if prod.flush(60):
        raise InfraError("the latency feed did not drain")


def _channels(catalog: Catalog) -> list[str]:
    from streams.live.topics import channels

    return channels(catalog)


def _read_all(bootstrap: str, topic: str) -> Iterator[Any]:
    c = _reader(bootstrap, "read")
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or not meta.partitions:
            return
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
        c.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        left = {p for p, end in ends.items() if end > 0}
        while left:
            for m in c.consume(5000, 1.0):
                if m.error() is None:
                    yield m
                    if (m.offset() or 0) + 1 >= ends[m.partition() or 0]:
                        left.discard(m.partition() or 0)
    finally:
        c.close()


def _append_times(bootstrap: str, topic: str, by: str) -> dict[str, int]:
    resolve = avro.local_registry().resolve
    return {avro.decode(m.value(), resolve)[by]: m.timestamp()[1] for m in _read_all(bootstrap, topic)}


def _decisions_with_times(bootstrap: str, topic: str) -> Iterator[tuple[dict[str, Any], int]]:
    resolve = avro.local_registry().resolve
    for m in _read_all(bootstrap, topic):
        yield avro.decode(m.value(), resolve), m.timestamp()[1]


def recovery(bootstrap: str, redis_url: str, customers: int, logs: Path, prefix: str = "") -> float:
    """Seconds from a worker's start, over the state of `customers` customers, to its next decision."""
    env, at = recovery_state(bootstrap, redis_url, customers, logs, prefix)
    return restart(bootstrap, env, at, logs / f"{env['TACTFUL_APP_ID']}-2.log")


def recovery_state(
    bootstrap: str, redis_url: str, customers: int, logs: Path, prefix: str = ""
) -> tuple[dict[str, str], int]:
    """A worker's environment, its changelog holding the state of `customers` customers (its worker
    stopped), and the time of their complaints."""
    at = int(time.time() * 1000)
    name = f"{prefix or 'bench-' + uuid.uuid4().hex[:8]}-rec"
    env = worker_env(bootstrap, redis_url, name, free_port())
    settings = Settings.from_env(env)
    create_topic(bootstrap, settings.topics.input)
    # One complaint per customer: each holds state (complaint_escalation counts them), none decides yet.
    feed(settings, (_complaint(f"c{i}", f"r{i:06d}", at) for i in range(customers)))
    with process(WORKER, logs / f"{name}-1.log", env) as proc:
        wait_ready(int(env["TACTFUL_WEB_PORT"]), proc)
        wait_committed(bootstrap, name, settings.topics.input, customers, proc, timeout=1800)
        time.sleep(2)
    return env, at


def restart(
    bootstrap: str,
    env: dict[str, str],
    at: int,
    log: Path,
    probe: int = 0,
    cwd: Path = REPO,
    python: str = sys.executable,
    timeout: float = 300,
) -> float:
    """Seconds from a worker's start over `env`'s state to its decision on customer `probe`'s
    second complaint (each restart its own customer: a decision starts a 14-day cooldown).
    `cwd` and `python`: the checkout to run."""
    settings = Settings.from_env(env)
    started = time.monotonic()
    with process([python, *WORKER[1:]], log, env, cwd=cwd) as proc:
        event_id = f"probe{probe}"
        feed(settings, [_complaint(event_id, f"r{probe:06d}", at + 1000)])
        topic = settings.topics.decision("call_center")
        resolve = avro.local_registry().resolve
        c = _reader(bootstrap, "probe")
        c.subscribe([topic])
        try:
            while time.monotonic() - started < timeout:
                for m in c.consume(100, 0.2):
                    if m.error() is None and event_id in avro.decode(m.value() or b"", resolve)["evidence"]:
                        return time.monotonic() - started
                if proc.poll() is not None:
                    raise InfraError("the restarted worker exited")
        finally:
            c.close()
    raise InfraError(f"the restarted worker made no decision within {timeout:.0f}s")


WORKER = [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"]


def _complaint(event_id: str, customer: str, at: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "type": "complaint",
        "occurred_at": at,
        "channel": "email",
        "attributes": {"category": "billing"},
    }


# -- the whole run ----------------------------------------------------------------------


def run(
    bootstrap: str,
    redis_url: str,
    *,
    events: int,
    customers: int,
    recovery_customers: int,
    quix_python: Path | None,
    out: Path,
    say: Callable[[str], None],
    keep: bool = False,
) -> Results:
    out.mkdir(parents=True, exist_ok=True)
    (REPO / ".run" / "bench").mkdir(parents=True, exist_ok=True)  # the workers' data folders
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    catalog = load_folder(REPO / "topologies")
    res = Results(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), events, customers, PARTITIONS)
    run_id = uuid.uuid4().hex[:8]
    try:
        topic = f"bench-{run_id}.touchpoints"
        create_topic(bootstrap, topic)
        say(f"producing {events:,} Avro touchpoints for {customers:,} customers to {topic} ...")
        base = Settings.from_flat({"bootstrap_servers": bootstrap, "input_topic": topic})
        feed(base, generate_events(events, customers, 3, start_ms=HISTORY_START, days=7.0))

        say("(1) the limit ...")
        res.rates["limit_aiokafka"], decoded = limit_aiokafka(bootstrap, topic, events)
        res.rates["limit_confluent"] = limit_confluent(bootstrap, topic, events)
        say("(2) the engine alone ...")
        res.rates["engine"] = engine_alone(catalog, decoded)
        del decoded

        say("(3) naive Faust ...")
        group = f"bench-{run_id}-naive"
        with process(
            [sys.executable, "-m", "bench.naive_faust", bootstrap, topic, group, str(PARTITIONS)],
            logs / "naive_faust.log",
        ) as proc:
            res.rates["naive_faust"] = time_group(bootstrap, group, topic, events, proc, timeout=1800)

        if quix_python is not None and quix_python.exists():
            say("(4) Quix Streams ...")
            group = f"bench-{run_id}-quix"
            with process(
                [
                    str(quix_python),
                    str(REPO / "bench" / "quix_count.py"),
                    bootstrap,
                    topic,
                    group,
                    str(out / "quix-state" / run_id),
                ],
                logs / "quix.log",
            ) as proc:
                res.rates["quix"] = time_group(bootstrap, group, topic, events, proc, timeout=1800)
        else:
            res.notes.append("Quix Streams not measured: no .venv-quix (make bench creates it)")

        say("(5) tactful, one worker ...")
        name = f"bench-{run_id}-tactful"
        port = free_port()
        # The input is history (May 2026): no wall-clock advance of idle partitions.
        env = worker_env(bootstrap, redis_url, name, port, TACTFUL_INPUT_TOPIC=topic, TACTFUL_IDLE_AFTER="3650d")
        with process(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"], logs / "tactful.log", env
        ) as proc:
            res.rates["tactful"] = time_group(bootstrap, name, topic, events, proc, timeout=1800)

        res.latency_rate = round(res.rates["tactful"] / 2)
        say(f"(6) latency at {res.latency_rate:,.0f} events/s ...")
        res.latency_ms, res.latency_samples = latency(
            bootstrap, redis_url, catalog, res.latency_rate, 30.0, logs, prefix=f"bench-{run_id}"
        )

        say(f"(7) recovery over {recovery_customers:,} customers ...")
        res.recovery_customers = recovery_customers
        res.recovery_seconds = recovery(bootstrap, redis_url, recovery_customers, logs, prefix=f"bench-{run_id}")

        (out / "results.json").write_text(json.dumps(asdict(res), indent=2))
        return res
    finally:
        if not keep:
            cleanup(bootstrap, redis_url, f"bench-{run_id}", out)


def cleanup(bootstrap: str, redis_url: str, prefix: str, out: Path) -> None:
    """Delete what one run made: topics, consumer groups, Redis keys, state folders.

    A day of runs had left 1,400 topics and 4.6 GB on the local broker; a
    benchmark should not grow what it measures against. Best effort: a
    failure here is reported and the figures stand.
    """
    import shutil

    from redis import Redis
    from redis.exceptions import RedisError

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [t for t in admin.list_topics(timeout=10).topics if prefix in t]
        for fut in admin.delete_topics(topics, operation_timeout=60).values() if topics else ():
            fut.result()
        listed = admin.list_consumer_groups(request_timeout=10).result()
        groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
        for fut in admin.delete_consumer_groups(groups, request_timeout=30).values() if groups else ():
            fut.result()
        with Redis.from_url(redis_url) as redis:
            keys = list(redis.scan_iter(match=f"{prefix}*", count=10_000))
            for i in range(0, len(keys), 10_000):
                redis.delete(*keys[i : i + 10_000])
    except (KafkaException, RedisError, OSError) as exc:  # clean-up must not hide the results
        print(f"warning: could not remove everything of {prefix}: {exc}", file=sys.stderr)
    for folder in [
        *(REPO / ".run" / "bench").glob(f"{prefix}*"),
        *(out / "quix-state").glob(prefix.removeprefix("bench-")),
    ]:
        shutil.rmtree(folder, ignore_errors=True)


def table(res: Results) -> str:
    limit = res.rates.get("limit_aiokafka", 0.0)
    naive = res.rates.get("naive_faust", 0.0)
    lines = [
        f"tactful benchmark, {res.date}: {res.events:,} Avro touchpoints, {res.customers:,} customers, "
        f"{res.partitions} partitions, shipped topologies; Kafka 4.4.0 on loopback; 2 cores shared with the broker",
        f"{'':46} {'events/s':>10} {'x (1)':>7} {'x (3)':>7}",
    ]
    for key, label in LABELS.items():
        if key in res.rates:
            rate = res.rates[key]
            lines.append(
                f"{label:46} {rate:>10,.0f} {rate / limit if limit else 0:>7.2f} {rate / naive if naive else 0:>7.1f}"
            )
    lat = res.latency_ms
    lines.append(
        f"(6) latency at {res.latency_rate:,.0f} events/s, append to append, 3 s warm-up left out "
        f"({res.latency_samples:,} decisions): p50 {lat.get('p50', 0):.0f} ms, p95 {lat.get('p95', 0):.0f} ms, "
        f"p99 {lat.get('p99', 0):.0f} ms"
    )
    lines.append(
        f"(7) recovery: restarted over {res.recovery_customers:,} customers' state, deciding again "
        f"after {res.recovery_seconds:.1f} s"
    )
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


def chart(res: Results, path: Path) -> None:
    """This run's chart (:mod:`bench.chart`; ``python -m bench chart`` draws several runs' spread)."""
    from bench.chart import draw

    draw([asdict(res)], path)
