"""A worker's clients wait for a broker that is away at start, up to the start timeout."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.live.faust.bootstrap import LONGEST_PAUSE_S, patient


class Client:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def bootstrap(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("failures", [0, 1, 12])
def test_a_broker_back_within_the_timeout_is_waited_for(failures: int) -> None:
    client, clock = Client(failures), Clock()
    patient(client, 60.0, clock=clock, sleep=clock.sleep)
    asyncio.run(client.bootstrap())
    assert client.calls == failures + 1
    assert len(clock.pauses) == failures
    assert all(p <= LONGEST_PAUSE_S for p in clock.pauses)
    assert clock.pauses == sorted(clock.pauses)  # the pause grows, never shrinks


def test_a_broker_still_away_at_the_timeout_fails_the_start_with_its_error() -> None:
    client, clock = Client(failures=10_000), Clock()
    patient(client, 5.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        asyncio.run(client.bootstrap())
    assert clock.now == pytest.approx(5.0)  # the last pause is cut to the time left
    assert client.calls == len(clock.pauses) + 1


def test_other_errors_are_not_retried() -> None:
    class Broken(Client):
        async def bootstrap(self) -> None:
            self.calls += 1
            raise ValueError("not a connection problem")

    client, clock = Broken(0), Clock()
    patient(client, 60.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(ValueError):
        asyncio.run(client.bootstrap())
    assert client.calls == 1
