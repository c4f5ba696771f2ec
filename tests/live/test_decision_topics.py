"""Reading decision topics back: decoding and merging partitions, and the consumer it builds."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import confluent_kafka
import pytest

from streams.codec.avro import decision_schema, decision_schema_id, encode, local_registry
from streams.decisions import Decision, Kind
from streams.errors import InfraError
from streams.live.decision_topics import Forgotten, ReadStats, _value, decisions_from_partitions, read_decision_topics
from streams.live.forget import H_FORGET
from streams.settings import Settings
from tests.mirror.support import decision


def wire(d: Decision) -> bytes:
    return encode(d.to_record(), decision_schema(), decision_schema_id())


def test_decisions_from_partitions_merge_by_time_keep_partition_order_and_skip_bad_records() -> None:
    early = decision(customer="a", effective_at=1_000)
    late_found = decision(customer="a", effective_at=500)  # a late match, made after `early`
    b1 = decision(customer="b", effective_at=700)
    b2 = decision(Kind.RELEASE, customer="b", effective_at=1_500, expires_at=None)
    audit_copy = b1  # the same decision in the audit topic
    stats = ReadStats()
    got = decisions_from_partitions(
        {
            ("decisions.email", 1): [wire(b1), b"\x00\x00\x00\x00\x01junk", None, wire(b2)],
            ("decisions.email", 0): [wire(early), wire(late_found)],
            ("decisions.audit", 0): [wire(audit_copy), b"not avro"],
        },
        local_registry().resolve,
        stats,
    )
    assert [d.decision_id for d in got] == [b1.decision_id, early.decision_id, late_found.decision_id, b2.decision_id]
    assert got[0] == b1
    assert got[3].evidence == ("e1",)
    assert (stats.records, stats.skipped, stats.duplicates) == (8, 3, 1)
    assert stats.reasons == {"unknown_schema": 1, "malformed": 1, "tombstone": 1}


def test_a_forget_record_drops_its_customers_earlier_decisions_in_its_partition() -> None:
    """Contract section 9: a rebuild from the topics must not bring an erased customer back."""
    before = decision(customer="a", effective_at=1_000)
    kept = decision(customer="b", effective_at=1_100)
    after = decision(customer="a", effective_at=2_000)
    elsewhere = decision(customer="a", channel="sms", effective_at=900)  # its topic has no forget record yet
    stats = ReadStats()
    got = decisions_from_partitions(
        {
            ("decisions.email", 0): [wire(before), wire(kept), Forgotten("a"), wire(after)],
            ("decisions.sms", 0): [wire(elsewhere)],
        },
        local_registry().resolve,
        stats,
    )
    assert [d.decision_id for d in got] == [elsewhere.decision_id, kept.decision_id, after.decision_id]
    assert stats.forgotten == 1


@pytest.mark.parametrize(
    ("key", "value", "headers", "expected"),
    [
        (b"a", None, [(H_FORGET, b"2026-05-01T10:00:00.000Z")], Forgotten("a")),
        (b"a", None, None, None),  # a plain tombstone: not a forget record
        (b"a", b"v", [(H_FORGET, b"x")], b"v"),
    ],
    ids=["forget", "tombstone", "value"],
)
def test_a_forget_record_is_read_by_its_header(key: bytes, value: bytes | None, headers: Any, expected: Any) -> None:
    message = SimpleNamespace(key=lambda: key, value=lambda: value, headers=lambda: headers)
    assert _value(message) == expected


class FakeConsumer:
    """Stands in for confluent_kafka.Consumer: keeps its config; every topic exists with no partitions."""

    made: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.closed = False
        self.fail: Exception | None = None
        self.on_poll: Callable[[], None] | None = None
        FakeConsumer.made.append(self)

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.fail is not None:
            raise self.fail
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions={}, error=None)})

    def poll(self, timeout: float) -> None:
        if self.on_poll is not None:
            self.on_poll()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_consumer(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.made = []
    monkeypatch.setattr(confluent_kafka, "Consumer", FakeConsumer)
    return FakeConsumer


def test_the_consumer_carries_the_clusters_sasl_and_tls_options(fake_consumer: type[FakeConsumer]) -> None:
    settings = Settings.from_flat(
        {
            "bootstrap_servers": "broker-1:9093,broker-2:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "tactful",
            "sasl_password": "s3cret",
            "ssl_cafile": "/etc/tactful/ca.pem",
        }
    )
    given = settings.kafka.librdkafka()
    # The reader's own options go on top of whatever the caller passed for them.
    given_with_group = {**given, "group.id": "the-workers-group", "enable.auto.commit": True}

    assert read_decision_topics(given_with_group, ["tactful.decisions.email"], local_registry().resolve, 5) == []

    (consumer,) = fake_consumer.made
    assert consumer.closed
    config = consumer.config
    assert {key: config[key] for key in given} == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "tactful",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/tactful/ca.pem",
    }
    assert str(config["group.id"]).startswith("tactful-redis-rebuild-")
    assert (config["auto.offset.reset"], config["enable.auto.commit"], config["enable.partition.eof"]) == (
        "earliest",
        False,
        True,
    )


def test_a_kafka_failure_is_an_infra_error_naming_the_cluster(
    fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(config: dict[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(config)
        consumer.fail = confluent_kafka.KafkaException("broker down")
        return consumer

    monkeypatch.setattr(confluent_kafka, "Consumer", failing)
    with pytest.raises(InfraError, match="from broker-1:9093 failed: broker down"):
        read_decision_topics({"bootstrap.servers": "broker-1:9093"}, ["t"], local_registry().resolve, 5)
    assert fake_consumer.made[0].closed


def test_a_refused_login_ends_the_read_at_once_not_at_its_timeout(
    fake_consumer: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error callback (served by the poll between metadata attempts) raises; the read does not wait on."""

    def refused() -> None:
        raise InfraError("Kafka at broker-1:9093 refused the login")

    def refusing(config: dict[str, Any]) -> FakeConsumer:
        consumer = FakeConsumer(config)
        consumer.fail = confluent_kafka.KafkaException(
            confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
        )
        consumer.on_poll = refused
        return consumer

    monkeypatch.setattr(confluent_kafka, "Consumer", refusing)
    started = time.monotonic()
    with pytest.raises(InfraError, match="refused the login"):
        read_decision_topics({"bootstrap.servers": "broker-1:9093"}, ["t"], local_registry().resolve, 30)
    assert time.monotonic() - started < 5
    assert fake_consumer.made[0].closed
