"""A worker that starts while its broker is away waits for it, as a running one rides out an outage.

The command line waits ``TACTFUL_START_TIMEOUT`` seconds for the brokers before it
builds the worker, but Faust starts its producer and consumer seconds later, and
aiokafka's ``start()`` gives up on the first failed bootstrap ("Unable to bootstrap"):
a broker that went away in those seconds (a restart during a broker outage, as
``make chaos`` does) ended the worker with exit 1. :func:`patient` makes a client's
bootstrap retry, with a growing pause, until the same timeout; a broker still away
then fails the start as before. aiokafka's ``bootstrap()`` raises before it changes
any state, so calling it again is safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 0.1
LONGEST_PAUSE_S = 2.0


def patient(
    client: Any,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Make ``client.bootstrap()`` (an aiokafka ``AIOKafkaClient``) retry for ``timeout_s``."""
    bootstrap: Callable[[], Awaitable[None]] = client.bootstrap

    async def waiting() -> None:
        deadline = clock() + timeout_s
        pause = FIRST_PAUSE_S
        warned = False
        while True:
            try:
                await bootstrap()
            except KafkaConnectionError as exc:
                left = deadline - clock()
                if left <= 0:
                    raise
                if not warned:
                    log.warning("Kafka did not answer at start (%s); waiting up to %.0fs more", exc, left)
                    warned = True
                await sleep(min(pause, left))
                pause = min(pause * 2, LONGEST_PAUSE_S)
            else:
                if warned:
                    log.warning("Kafka answered; starting")
                return

    client.bootstrap = waiting
