"""What a channel topic's record is: a decision, a forget record, or something to skip (and why)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.decisions import H_FORGET, Decision, forgotten
from streams.errors import InfraError, InputError
from streams.timeutil import parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Forget:
    """A forget record: ``customer_id`` was erased at ``erased_at`` (epoch ms); see docs/erasure.md."""

    customer_id: str
    erased_at: int


def decision_or_forget(
    message: Any, decode: Callable[[bytes], Decision], skip: Callable[[str], object]
) -> Decision | Forget | None:
    """A confluent-kafka message as a decision or a forget record; None (``skip(reason)``) for anything else.

    Consumer errors that librdkafka retries are None too (logged at DEBUG);
    a fatal one raises :class:`InfraError`.
    """
    error = message.error()
    if error is not None:
        if error.fatal():
            raise InfraError(f"reading {message.topic()} failed: {error}")
        log.debug("Kafka consumer error (retried by librdkafka): %s", error)
        return None
    value: bytes | None = message.value()
    key: bytes | None = message.key()
    if value is None:
        headers = message.headers()
        if key is not None and forgotten(headers):
            stamp = dict(headers or []).get(H_FORGET) or b""
            try:
                return Forget(key.decode("utf-8", "replace"), parse_time(bytes(stamp).decode()))
            except ValueError:
                skip("bad_forget")
                return None
        skip("tombstone")
        return None
    try:
        return decode(value)
    except InputError as exc:
        skip(exc.reason)
    except (KeyError, TypeError, ValueError):
        skip("not_a_decision")
    return None
