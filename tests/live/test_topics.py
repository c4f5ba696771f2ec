"""What the worker learns of its topics at start-up, against a fake admin client."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.live import topics
from streams.settings import Settings


class Entry:
    def __init__(self, value: str) -> None:
        self.value = value


class Resource:
    def __init__(self, name: str) -> None:
        self.name = name


class Admin:
    def __init__(self, limits: dict[str, int | None]) -> None:
        self.limits = limits
        self.asked: list[str] = []

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Resource, Future[Any]]:
        out: dict[Resource, Future[Any]] = {}
        for res in resources:
            self.asked.append(res.name)
            fut: Future[Any] = Future()
            limit = self.limits.get(res.name)
            if limit is None:
                fut.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            else:
                fut.set_result({"max.message.bytes": Entry(str(limit)), "retention.ms": Entry("1")})
            out[Resource(res.name)] = fut
        return out


def test_each_topics_limit_is_read_and_capped_by_the_producers_request_size(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = Admin({"dlq": 500_000, "input": 8_000_000, "audit": 1_048_588, "missing": None})
    monkeypatch.setattr(topics, "kafka_admin", lambda kafka: admin)
    settings = Settings.from_flat({"redis_url": ""})
    limits = topics.record_limits(settings, ["dlq", "input", "audit", "missing", "dlq"], 1_000_000, timeout=1)
    assert sorted(admin.asked) == ["audit", "dlq", "input", "missing"]
    assert (limits.of("dlq"), limits.of("input"), limits.of("audit")) == (500_000, 1_000_000, 1_000_000)
    assert limits.of("missing") == limits.default == 1_000_000  # not readable: the default holds
