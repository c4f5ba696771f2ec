"""Produce touchpoints to Kafka: Avro in the Confluent wire format, keyed by customer.

Uses librdkafka's ``murmur2_random`` partitioner, the Java client's, so every
event lands on its customer's partition and the worker never has to re-route.
Records Avro cannot hold (the generator's broken events) are sent as their
JSON bytes, so the dead-letter path sees them too. With a schema registry the
records carry its id for the touchpoint schema, registered at the start. Before the first record it
waits for the brokers (``TACTFUL_START_TIMEOUT``), so a feed with no broker
fails with one line instead of queueing records that can never be delivered.

Live traffic must not run ahead of the wall clock: a partition's watermark
follows the largest ``occurred_at`` it has seen, so one event from the future
makes every later real event of that partition late (dead-lettered). Nor may
it lag far behind: a worker whose partition was quiet for ``idle_after`` moves
its stream time to the wall clock (contract section 2), and then anything
older than ``lateness`` is late too. Hence:

* :func:`realtime_journeys` (``tactful feed``): the generator's journeys
  starting now, the browsing spread so that it arrives at about ``rate`` a
  second, each scenario's later steps when their time comes (minutes to days
  later), sent through a :class:`Hold`: the feed follows the wall clock, as
  real traffic does, and runs until its journeys end (or ``--duration``).
* :func:`live_journeys` (``tactful demo``, whose own workers never sit idle
  before its feed starts): ``days`` of event time laid out in the *past*,
  ending now, run through faster than real time, so absences and windows
  complete while you watch. A partition's stream time is kept across worker
  restarts, so a second run must not go back before where the first left it:
  :func:`event_time_reached` reads the newest ``occurred_at`` on the input
  topic, and the window starts there when that is later than ``days`` ago (a
  run right after another covers only the minutes between them; ``make wipe``
  starts afresh). (``tactful generate``'s offline files keep their own
  ``--start``.)
* :class:`Hold` makes :func:`feed` send no event before its ``occurred_at`` by
  the wall clock, or end the feed at one due more than ``max_wait_s`` ahead.
* :func:`events_from_file` reads your own events (JSON Lines or Avro),
  optionally shifted so the first is now, keeping the gaps; ``tactful feed
  --events`` sends them through a :class:`Hold`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from streams.clients import close_client, kafka_producer, kafka_reason, wait_for_kafka
from streams.codec import avro
from streams.errors import InfraError, InputError, MalformedRecord
from streams.generate import Record, generate
from streams.live.codecs import resolver, touchpoint_schema_id
from streams.settings import Settings
from streams.timeutil import DAY, parse_time


def producer(settings: Settings, **extra: str | int) -> Producer:
    return kafka_producer(
        settings.kafka,
        **{
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "enable.idempotence": "true",
            "compression.type": "lz4",
            **extra,
        },
    )


def encode_event(raw: Mapping[str, Any] | object, schema_id: int | None = None) -> tuple[bytes | None, bytes]:
    """(key, value) for one generated record; JSON bytes where Avro cannot hold it.

    ``schema_id``: the registry's id of the touchpoint schema (default: the local id).
    """
    key = raw.get("customer_id") if isinstance(raw, Mapping) else None
    key_bytes = key.encode() if isinstance(key, str) else None
    if schema_id is None:
        schema_id = avro.touchpoint_schema_id()
    try:
        value = avro.encode(avro.touchpoint_to_avro(raw), avro.touchpoint_schema(), schema_id)
    except MalformedRecord:
        value = orjson.dumps(raw)
    return key_bytes, value


NOISE_PER_CUSTOMER = 6.0  # generate()'s default: browsing events per customer


def realtime_journeys(
    customers: int,
    seed: int,
    *,
    now_ms: int,
    rate: float,
    scenario_rate: float = 0.5,
) -> Iterator[Record]:
    """Generated journeys unfolding in real time from ``now_ms`` (see the module docstring).

    The browsing noise spans ``customers * 6 / rate`` seconds, so with a
    :class:`Hold` it arrives at about ``rate`` events a second; scenarios
    start over that span and their later steps fall minutes to days after.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    span_ms = max(1_000, round(customers * NOISE_PER_CUSTOMER / rate * 1000))
    return generate(
        customers,
        seed,
        start_ms=now_ms,
        days=span_ms / DAY,
        noise_per_customer=NOISE_PER_CUSTOMER,
        scenario_rate=scenario_rate,
    )


def live_journeys(
    customers: int,
    seed: int,
    *,
    now_ms: int,
    days: float = 3.0,
    reached: int | None = None,
    scenario_rate: float = 0.5,
    duplicate_rate: float = 0.0,
    invalid_rate: float = 0.0,
    out_of_order_rate: float = 0.0,
) -> Iterator[Record]:
    """Generated journeys for a live feed: ``days`` of event time that end at ``now_ms`` (see the module docstring).

    With ``reached`` (:func:`event_time_reached`) they start no earlier than
    that. The rates are :func:`streams.generate.generate`'s.
    """
    start, span = live_window(now_ms, reached, days)
    return generate(
        customers,
        seed,
        start_ms=start,
        days=span,
        scenario_rate=scenario_rate,
        duplicate_rate=duplicate_rate,
        invalid_rate=invalid_rate,
        out_of_order_rate=out_of_order_rate,
    )


def event_time_reached(settings: Settings, timeout_s: float = 10.0, last: int = 20) -> int | None:
    """The newest ``occurred_at`` among the last ``last`` records of each input partition (None: empty topic).

    Waits for the brokers as :func:`feed` does (``TACTFUL_START_TIMEOUT``),
    then reads for at most ``timeout_s``. Records that are not touchpoints
    (broken ones the generator sends) are passed over. Raises
    :class:`InfraError` when Kafka does not answer.
    """
    from confluent_kafka import TopicPartition

    from streams.clients import kafka_admin, kafka_consumer

    topic = settings.topics.input
    meta = wait_for_kafka(kafka_admin(settings.kafka), settings.kafka, settings.processing.start_timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return None
    consumer = kafka_consumer(
        settings.kafka, **{"group.id": f"tactful-feed-{time.time_ns()}", "enable.auto.commit": False}
    )
    resolve = resolver(settings)  # with a schema registry, the feed wrote its ids
    newest: int | None = None
    try:
        ends: dict[int, int] = {}
        starts = []
        for p in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, max(low, high - last)))
        if not starts:
            return None
        consumer.assign(starts)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for m in consumer.consume(500, 0.5):
                if m.error() is not None:
                    continue
                part, offset = int(m.partition() or 0), int(m.offset() or 0)
                if offset + 1 >= ends.get(part, 0):
                    ends.pop(part, None)
                try:
                    at = int(avro.decode(m.value() or b"", resolve)["occurred_at"])
                except (InputError, KeyError, TypeError, ValueError):
                    continue
                newest = at if newest is None else max(newest, at)
    except KafkaException as exc:
        raise InfraError(
            f"reading {topic} from {settings.kafka.bootstrap_servers} failed: {kafka_reason(exc)}"
        ) from exc
    finally:
        consumer.close()
    return newest


def live_window(now_ms: int, reached: int | None, days: float = 3.0) -> tuple[int, float]:
    """(start, days) of generated live traffic: ``days`` ending now, not before the event time ``reached``."""
    start = now_ms - int(days * DAY)
    if reached is not None and reached > start:
        start = min(reached, now_ms - 1_000)  # at least a second of event time
    return start, (now_ms - start) / DAY


@dataclass
class Hold:
    """Send no event before its ``occurred_at`` by the wall clock (``clock``, epoch seconds).

    An event due more than ``max_wait_s`` ahead ends the feed instead
    (``cut`` is then set); ``None`` waits however long it takes. Records
    without a readable ``occurred_at`` are not held.
    """

    max_wait_s: float | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    cut: bool = False
    waited_s: float = 0.0

    def wait(self, raw: object, stopped: Callable[[], bool]) -> bool:
        """Wait until ``raw`` is due; False when the feed must end instead (too far ahead, or stopped)."""
        due = _occurred_s(raw)
        if due is None:
            return True
        ahead = due - self.clock()
        if ahead <= 0:
            return True
        if self.max_wait_s is not None and ahead > self.max_wait_s:
            self.cut = True
            return False
        while ahead > 0:
            if stopped():
                return False
            step = min(ahead, 0.25)
            self.sleep(step)
            self.waited_s += step
            ahead = due - self.clock()
        return True


def _occurred_s(raw: object) -> float | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return parse_time(raw.get("occurred_at")) / 1000
    except ValueError:
        return None


@dataclass
class FileStats:
    """What :func:`events_from_file` read: events, and records refused (not sent)."""

    events: int = 0
    refused: int = 0


def events_from_file(
    path: Path,
    *,
    shift_to_ms: int | None = None,
    on_refuse: Callable[[int, InputError], None] = lambda number, exc: None,
    stats: FileStats | None = None,
) -> Iterator[dict[str, Any]]:
    """The events of a JSON Lines or Avro object container file, in file order, as their records.

    Each record is checked against contract section 1 first: one that breaks
    it is refused (``on_refuse(number, error)``, counted) and not sent, as
    ``tactful replay`` reports it. With ``shift_to_ms``, every ``occurred_at``
    moves by the same amount so that the file's first event is at
    ``shift_to_ms`` (the gaps between events stay). Raises
    :class:`~streams.errors.EventsFileError` when the file cannot be opened
    (at the call) or read.
    """
    from streams.replay import open_events

    # Opened now, not at the first event: a missing file fails before any wait for the brokers.
    records = open_events(path).records
    return _checked(records, shift_to_ms, on_refuse, FileStats() if stats is None else stats)


def _checked(
    records: Iterable[tuple[int, object]],
    shift_to_ms: int | None,
    on_refuse: Callable[[int, InputError], None],
    tally: FileStats,
) -> Iterator[dict[str, Any]]:
    from streams.events import validate_event

    delta: int | None = None
    for number, raw in records:
        try:
            event = validate_event(raw)
        except InputError as exc:
            tally.refused += 1
            on_refuse(number, exc)
            continue
        record = event.to_record()
        if shift_to_ms is not None:
            if delta is None:
                delta = shift_to_ms - event.occurred_at
            record["occurred_at"] = event.occurred_at + delta
        tally.events += 1
        yield record


def feed(
    settings: Settings,
    events: Iterable[Mapping[str, Any] | object],
    *,
    rate: float | None = None,
    duration: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    topic: str | None = None,
    hold: Hold | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    """Send events (at ``rate`` per second if given; none before it is due with ``hold``); returns how many.

    ``on_ready`` is called once the brokers answered, before the first event: a failure to
    connect is then the only thing a user sees."""
    prod = producer(settings)
    target = topic or settings.topics.input
    try:
        wait_for_kafka(prod, settings.kafka, settings.processing.start_timeout)
    except BaseException:
        # Destroyed now, not at interpreter exit: the error travels on in a traceback that
        # holds this frame, and librdkafka calling back into a finalising interpreter crashed
        # the process (SIGSEGV after a refused TLS handshake).
        close_client(prod)
        raise
    # With a schema registry, the id it gives the touchpoint schema (docs/registry.md).
    schema_id = touchpoint_schema_id(settings)
    if on_ready is not None:
        on_ready()
    sent = 0
    started = time.monotonic()

    def stopped() -> bool:
        return should_stop() or (duration is not None and time.monotonic() - started >= duration)

    try:
        for raw in events:
            if stopped():
                break
            if hold is not None:
                prod.poll(0)  # serve deliveries before a wait
                if not hold.wait(raw, stopped):
                    break
            key, value = encode_event(raw, schema_id)
            while True:
                try:
                    prod.produce(target, value=value, key=key)
                    break
                except BufferError:
                    prod.poll(0.05)  # the local queue is full: let deliveries drain
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    prod.poll(0)
                    time.sleep(ahead)
            elif sent % 10_000 == 0:
                prod.poll(0)
        left = prod.flush(60)
    except KafkaException as exc:
        raise InfraError(f"producing to {target} failed: {kafka_reason(exc)}") from exc
    if left:
        raise InfraError(f"{left} records were not delivered to {target} within 60s")
    return sent
