"""The integration tier: real `tactful worker` processes against the local Kafka and Redis.

Each test gets its own namespace (topics, consumer group, Redis prefix, ports)
so tests never see each other's records, and the namespace deletes all of it at
teardown (topics, consumer groups, Redis keys, the workers' data folders) so the
local broker does not grow with every run. Services that cannot start make the
tests fail, never skip.

Tests wait on what they can observe (`wait_until`: `/ready`, metrics, committed
offsets, records on a topic), never for a fixed "long enough".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.codec import avro
from streams.decisions import Decision
from streams.live.codecs import resolver
from streams.live.feed import feed
from streams.settings import Settings
from tests.integration.services import ensure_services, kafka_bootstrap, redis_url, registry_url

REPO = Path(__file__).resolve().parents[2]
TACTFUL = str(Path(sys.executable).with_name("tactful"))
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services() -> None:
    ensure_services()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def admin() -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap()})


class WorkerProcess:
    def __init__(self, ns: Namespace, name: str, port: int, **env: str) -> None:
        self.ns = ns
        self.env = env
        self.name = name
        self.port = port
        self.log = ns.folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {
            **os.environ,
            **self.ns.env(),
            "TACTFUL_WEB_PORT": str(self.port),
            "TACTFUL_DATA_DIR": str(self.ns.data / self.name),
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [TACTFUL, "worker", "--loglevel", "warning"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            return self.get("/ready")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 90) -> WorkerProcess:
        wait_until(self.ready, timeout, f"worker {self.name} to be ready")
        return self

    def partitions(self) -> list[int]:
        return list(self.get("/health")[1]["partitions"])

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


class Namespace:
    """One test's topics, consumer group, Redis prefix and worker processes.

    Everything it makes is named from its id: topics, consumer groups and schema
    registry subjects start with ``it-<id>``, Redis keys with ``t<id>:``, and the workers' state lives
    under ``<folder>/data`` (their logs stay in ``folder``, pytest's tmp_path,
    for a failed test's post-mortem). :meth:`cleanup` deletes all of it.
    """

    def __init__(self, folder: Path, **extra_env: str) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.folder = folder
        self.data = folder / "data"
        self.kafka_prefix = f"it-{self.id}"
        self.redis_prefix = f"t{self.id}"
        self.extra_env = extra_env
        self.workers: list[WorkerProcess] = []
        self.api_token = f"token-{self.id}"

    def env(self) -> dict[str, str]:
        return {
            "TACTFUL_BOOTSTRAP_SERVERS": kafka_bootstrap(),
            "TACTFUL_REDIS_URL": redis_url(),
            "TACTFUL_REDIS_PREFIX": self.redis_prefix,
            "TACTFUL_APP_ID": self.kafka_prefix,
            "TACTFUL_INPUT_TOPIC": f"{self.kafka_prefix}.touchpoints",
            "TACTFUL_DLQ_TOPIC": f"{self.kafka_prefix}.touchpoints.dlq",
            "TACTFUL_DECISION_TOPIC_PREFIX": f"{self.kafka_prefix}.decisions.",
            "TACTFUL_AUDIT_TOPIC": f"{self.kafka_prefix}.decisions.audit",
            "TACTFUL_TOPOLOGIES": str(REPO / "topologies"),
            "TACTFUL_API_TOKEN": self.api_token,
            "TACTFUL_SCHEMA_REGISTRY_URL": registry_url(),
            **self.extra_env,
        }

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def worker(self, name: str = "w1", **env: str) -> WorkerProcess:
        """Start a worker; ``env`` adds variables of its own (a restart with the same name keeps its data folder)."""
        w = WorkerProcess(self, name, free_port(), **env)
        self.workers.append(w)
        return w.start()

    def feed(self, events: Iterable[Any]) -> int:
        return feed(self.settings(), events)

    def produce_raw(self, records: Iterable[tuple[bytes | None, bytes]]) -> None:
        from streams.live.feed import producer

        prod = producer(self.settings())
        for key, value in records:
            prod.produce(self.settings().topics.input, value=value, key=key)
        assert prod.flush(30) == 0

    def read(self, topic: str, until: Callable[[list[Any]], bool], timeout: float = 60) -> list[Any]:
        """Every record of a topic from the beginning, until `until(records)` holds."""
        c = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap(),
                # Named into the namespace so that cleanup() finds it should the broker keep it.
                "group.id": f"{self.kafka_prefix}-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            meta = wait_until(
                lambda: c.list_topics(topic, timeout=5).topics[topic].partitions or None, 30, f"topic {topic}"
            )
            c.assign([TopicPartition(topic, p, 0) for p in meta])
            got: list[Any] = []
            deadline = time.monotonic() + timeout
            while not until(got):
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out reading {topic}: {len(got)} records so far")
                for m in c.consume(500, 0.5):
                    if m.error() is None:
                        got.append(m)
            return got
        finally:
            c.close()

    def decisions(
        self, channel_or_audit: str, until: Callable[[list[Decision]], bool], timeout: float = 60
    ) -> list[Decision]:
        s = self.settings()
        topic = s.topics.audit if channel_or_audit == "audit" else s.topics.decision(channel_or_audit)
        decoded: list[Decision] = []
        resolve = resolver(s)

        def check(records: list[Any]) -> bool:
            decoded[:] = [Decision.from_record(avro.decode(m.value(), resolve)) for m in records]
            return until(decoded)

        self.read(topic, check, timeout)
        return decoded

    def committed(self) -> int:
        """The workers' consumer group's committed offsets on the input topic, summed over partitions.

        At-least-once, Faust commits a batch's offsets only after its decisions,
        dead letters and changelog writes are acknowledged (streams/live/runtime.py);
        exactly-once, the offsets commit in the same transaction as those records.
        Either way a committed offset of N means the first N records' effects have landed.
        """
        group, topic = self.settings().topics.app_id, self.settings().topics.input
        client = admin()  # kept referenced until the future resolves: a collected client cancels it
        try:
            listed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
        except KafkaException:
            return 0  # the coordinator is not ready yet, or the group has no offsets yet
        return sum(tp.offset for tp in listed.topic_partitions or [] if tp.topic == topic and tp.offset >= 0)

    def wait_committed(self, records: int, timeout: float = 60) -> None:
        wait_until(lambda: self.committed() >= records, timeout, f"{records} input records committed")

    def end_offsets(self, topic: str) -> int:
        """How many records a topic holds (its partitions' high watermarks, summed)."""
        c = Consumer({"bootstrap.servers": kafka_bootstrap(), "group.id": f"{self.kafka_prefix}-watermarks"})
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
        finally:
            c.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()

    def cleanup(self, timeout: float = 60) -> None:
        """Stop the workers, then delete the namespace's topics, consumer groups, Redis keys, registry
        subjects and data folder.

        Waits until the broker has done each deletion: a teardown that returned
        early would leave what the next run lists. A group still holding a
        killed worker's member cannot be deleted until the broker expires that
        member (the session timeout), so deleting groups is retried until then.
        """
        self.close()
        client = admin()
        topics = [t for t in client.list_topics(timeout=10).topics if t.startswith(self.kafka_prefix)]
        if topics:
            for fut in client.delete_topics(topics, operation_timeout=30).values():
                fut.result()
        wait_until(lambda: self._delete_groups(client), timeout, f"consumer groups {self.kafka_prefix}* deleted")
        with redis.Redis.from_url(redis_url()) as r:
            keys = list(r.scan_iter(match=f"{self.redis_prefix}:*", count=1000))
            for i in range(0, len(keys), 1000):
                r.unlink(*keys[i : i + 1000])
        registry = self.env()["TACTFUL_SCHEMA_REGISTRY_URL"]
        if registry:
            from streams.codec.registry import RegistryClient

            client_ = RegistryClient(registry)
            for subject in client_.subjects():
                if subject.startswith(self.kafka_prefix):
                    client_.delete_subject(subject)
        shutil.rmtree(self.data, ignore_errors=True)

    def _delete_groups(self, client: AdminClient) -> bool:
        """One attempt: True once none of the namespace's groups is left."""
        listed = client.list_consumer_groups(request_timeout=10).result()
        groups = [g.group_id for g in listed.valid if g.group_id.startswith(self.kafka_prefix)]
        done = True
        for fut in client.delete_consumer_groups(groups, request_timeout=30).values() if groups else ():
            try:
                fut.result()
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.NON_EMPTY_GROUP:
                    done = False  # a killed worker's member, not yet expired
                elif code != KafkaError.GROUP_ID_NOT_FOUND:
                    raise
        return done


@pytest.fixture()
def namespace(services: None, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    ns = Namespace(tmp_path)
    yield ns
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for w in ns.workers:
            print(f"--- {w.name} log tail ---\n{w.tail()}")
    ns.cleanup()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
