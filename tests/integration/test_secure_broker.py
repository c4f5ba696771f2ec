"""tactful against a broker that demands SASL_SSL with SCRAM-SHA-512 (deploy/local/kafka-secure.sh).

The module starts its own secured broker (a CA and a broker certificate made
by openssl, a SCRAM user made with Kafka's StorageTool) in a temporary run
dir on free ports, and wipes it at the end; a broker that cannot start fails
the module, never skips it. Redis is the shared one, under a prefix of the
test's own.

Every Kafka client tactful has goes through TLS and SCRAM here: the worker
(Faust and aiokafka, the topic admin, the Redis mirror's consumer), `tactful
feed` and the Python feed (librdkafka producer), the decision reader
(librdkafka consumer) and `tactful redis-rebuild`. A wrong password or a CA
that does not sign the broker's certificate must end each command in one
error line and exit 1, in seconds, not after the start timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

from streams.clients import kafka_admin, kafka_options, redis_client
from streams.decisions import Kind
from streams.live.codecs import resolver
from streams.live.decision_topics import read_decision_topics
from streams.live.topics import channels
from streams.mirror import clear_mirror
from streams.topology import load_folder
from tests.integration.conftest import REPO, TACTFUL, Namespace, free_port, wait_until

SECURE_SH = REPO / "deploy" / "local" / "kafka-secure.sh"
# The broker start (JVM, formatting, TLS) takes about 10 s on a quiet machine.
_UP_TIMEOUT_S = 150


class SecureBroker:
    """One running kafka-secure.sh broker and the client variables that reach it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.password = f"pw-{os.urandom(8).hex()}"
        self.script_env = {
            **os.environ,
            "TACTFUL_RUN_DIR": str(run_dir),
            # The script's readiness check needs confluent_kafka: this interpreter has it.
            "TACTFUL_PYTHON": os.environ.get("TACTFUL_PYTHON", sys.executable),
            "TACTFUL_SECURE_KAFKA_PORT": str(free_port()),
            "TACTFUL_SECURE_KAFKA_CONTROLLER_PORT": str(free_port()),
            "TACTFUL_SASL_USERNAME": "tactful-it",
            "TACTFUL_SASL_PASSWORD": self.password,
        }
        self.env: dict[str, str] = {}

    def script(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SECURE_SH), command],
            cwd=REPO,
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> None:
        done = self.script("up", _UP_TIMEOUT_S)
        if done.returncode != 0:
            raise AssertionError(f"kafka-secure.sh up exited {done.returncode}\n{done.stdout}{done.stderr}")
        printed = self.script("env")
        assert printed.returncode == 0, printed.stderr
        for line in printed.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value
        assert self.env["TACTFUL_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert self.env["TACTFUL_SASL_PASSWORD"] == self.password

    def wipe(self) -> None:
        done = self.script("wipe")
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (self.run_dir / "kafka-secure").exists()


@pytest.fixture(scope="module")
def secure_broker(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    broker = SecureBroker(tmp_path_factory.mktemp("secure-run"))
    try:
        broker.up()
        yield broker
    finally:
        broker.wipe()


class SecureNamespace(Namespace):
    """The conftest namespace, its clients pointed at the secured broker.

    Its topics and groups go with the broker's wipe; cleanup leaves only Redis
    keys and data folders to delete.
    """

    def committed(self) -> int:
        group, topic = self.settings().topics.app_id, self.settings().topics.input
        client = kafka_admin(self.settings().kafka)
        try:
            listed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
        except KafkaException:
            return 0
        return sum(tp.offset for tp in listed.topic_partitions or [] if tp.topic == topic and tp.offset >= 0)

    def cleanup(self, timeout: float = 60) -> None:
        self.close()
        clear_redis(self)
        shutil.rmtree(self.data, ignore_errors=True)


def clear_redis(ns: Namespace) -> None:
    async def clear() -> None:
        client = redis_client(ns.settings().redis)
        try:
            await clear_mirror(client, ns.redis_prefix)
        finally:
            await client.aclose()

    asyncio.run(clear())


@pytest.fixture()
def secure(secure_broker: SecureBroker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SecureNamespace]:
    ns = SecureNamespace(tmp_path, **secure_broker.env)
    yield ns
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for w in ns.workers:
            print(f"--- {w.name} log tail ---\n{w.tail()}")
    ns.cleanup()


def tactful(ns: Namespace, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TACTFUL, *args],
        cwd=REPO,
        env={**os.environ, **ns.env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def friction(cust: str, now: int) -> list[dict[str, Any]]:
    """post_purchase_friction, all of it before now: three SUPPRESS (14 days) and an ENGAGE."""
    return [
        {
            "event_id": "p",
            "customer_id": cust,
            "type": "purchase",
            "occurred_at": now - 180_000,
            "channel": "store",
            "attributes": {"category": "phone"},
        },
        {"event_id": "f", "customer_id": cust, "type": "activation_failed", "occurred_at": now - 120_000},
        {
            "event_id": "s",
            "customer_id": cust,
            "type": "support_contact",
            "occurred_at": now - 60_000,
            "attributes": {"resolved": "false"},
        },
    ]


def test_worker_feed_check_reader_and_rebuild_over_sasl_ssl(secure: SecureNamespace) -> None:
    secure.worker().wait_ready()
    cust = f"sec-{secure.id}"
    now = int(time.time() * 1000)
    secure.feed(friction(cust, now))  # the Python feed: three SUPPRESS (14 days) and an ENGAGE for cust
    fed = tactful(secure, "feed", "--customers", "20", "--rate", "100", "--duration", "4", "--seed", "12")
    assert fed.returncode == 0, fed.stderr
    sent = int(fed.stderr.split("sent ")[1].split(" events")[0].replace(",", ""))
    assert sent > 0
    secure.wait_committed(3 + sent)

    # The decision reader, over TLS and SCRAM, as redis-rebuild uses it.
    settings = secure.settings()
    topics = [settings.topics.decision(ch) for ch in channels(load_folder(REPO / "topologies"))]
    decisions = read_decision_topics(kafka_options(settings.kafka), topics, resolver(settings), 30)
    mine = sorted((d.kind, d.channel) for d in decisions if d.customer_id == cust)
    assert mine == [
        (Kind.ENGAGE, "call_center"),
        (Kind.SUPPRESS, "ads"),
        (Kind.SUPPRESS, "email"),
        (Kind.SUPPRESS, "sms"),
    ]

    # The worker's mirror consumer (aiokafka over TLS and SCRAM) wrote the suppression to Redis.
    wait_until(lambda: tactful(secure, "check", cust, "email").returncode == 3, 30, f"{cust} suppressed on email")

    # Stopped, so that its mirror cannot refill Redis: only redis-rebuild may bring the keys back.
    secure.close()
    clear_redis(secure)
    assert tactful(secure, "check", cust, "email").returncode == 0
    rebuilt = tactful(secure, "redis-rebuild", "--timeout", "30")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"read {len(decisions):,} decisions from {len(topics)} topics" in rebuilt.stdout
    checked = tactful(secure, "check", cust, "email")
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert f"no: {cust} is suppressed on email" in checked.stdout


def wrong_password(broker: SecureBroker, folder: Path) -> dict[str, str]:
    return {"TACTFUL_SASL_PASSWORD": broker.password + "-wrong"}


def wrong_ca(broker: SecureBroker, folder: Path) -> dict[str, str]:
    """A CA of its own, which did not sign the broker's certificate."""
    key, cert = folder / "other-ca.key", folder / "other-ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=not the broker's CA", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return {"TACTFUL_SSL_CAFILE": str(cert)}


COMMANDS: dict[str, list[str]] = {
    "worker": ["worker", "--loglevel", "warning"],
    "feed": ["feed", "--customers", "3", "--rate", "10", "--duration", "5"],
    "redis-rebuild": ["redis-rebuild", "--timeout", "30"],
}
FAULTS: dict[str, tuple[Any, str]] = {
    "wrong password": (wrong_password, "refused the login: SASL authentication error"),
    "wrong CA": (wrong_ca, "failed the TLS handshake: SSL handshake failed"),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_credentials_are_one_error_line_and_exit_1_at_once(
    secure: SecureNamespace, secure_broker: SecureBroker, tmp_path: Path, command: str, fault: str
) -> None:
    make_env, reason = FAULTS[fault]
    env = {
        **make_env(secure_broker, tmp_path),
        # Far above the limit below: an answer within it came from the refusal, not from giving up.
        "TACTFUL_START_TIMEOUT": "60",
        "TACTFUL_WEB_PORT": str(free_port()),
        "TACTFUL_DATA_DIR": str(secure.data / "w"),
    }
    started = time.monotonic()
    done = tactful(secure, *COMMANDS[command], timeout=90, **env)
    elapsed = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: Kafka at {secure_broker.env['TACTFUL_BOOTSTRAP_SERVERS']} {reason}"), lines
    assert elapsed < 20, f"{command} took {elapsed:.1f}s to give up"


def test_check_reads_only_redis_so_kafka_credentials_do_not_matter(secure: SecureNamespace) -> None:
    done = tactful(secure, "check", f"nobody-{secure.id}", "email", TACTFUL_SASL_PASSWORD="wrong")
    assert done.returncode == 0, done.stderr
