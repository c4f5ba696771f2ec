"""``tactful tail CHANNEL``: a channel's decisions as they arrive, one line each, for people.

It reads the channel's decision topic with a throwaway consumer group that
commits nothing (so it never moves a real consumer's offsets), from the end
(or with ``from_beginning`` from the start), ``read_committed`` like the
channel client. Forget records are shown too. :func:`line` and
:func:`json_line` are the two output forms.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import orjson

from streams.channel.records import Forget, decision_or_forget
from streams.decisions import Decision, Kind
from streams.errors import ConfigError, InfraError
from streams.settings import Settings
from streams.timeutil import format_time

log = logging.getLogger(__name__)


def line(item: Decision | Forget) -> str:
    """One readable line: when, what, for whom, why."""
    if isinstance(item, Forget):
        return f"{format_time(item.erased_at)}  {'FORGET':<8}  {item.customer_id}  erased: forget this customer"
    d = item
    if d.kind == Kind.ENGAGE:
        what = d.action or ""
    else:
        what = f"category {d.category}" if d.category is not None else "every category"
    when = []
    if d.not_before is not None:
        when.append(f"not before {format_time(d.not_before)}")
    if d.expires_at is not None:
        when.append(f"{'until' if d.kind == Kind.SUPPRESS else 'expires'} {format_time(d.expires_at)}")
    extra = f"  ({', '.join(when)})" if when else ""
    return (
        f"{format_time(d.effective_at)}  {d.kind:<8}  {d.customer_id}  {what}{extra}"
        f"  [{d.topology} v{d.topology_version}]  {d.reason}"
    )


def json_line(item: Decision | Forget) -> str:
    """The decision's output form (as ``tactful replay`` writes it), or ``{"forget": ..., "erased_at": ...}``."""
    if isinstance(item, Forget):
        return orjson.dumps({"forget": item.customer_id, "erased_at": format_time(item.erased_at)}).decode()
    return orjson.dumps(item.to_json()).decode()


def tail(
    settings: Settings,
    channel: str,
    emit: Callable[[Decision | Forget], None],
    *,
    from_beginning: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    on_skip: Callable[[str], None] = lambda reason: None,
) -> None:
    """Call ``emit`` for each decision (and forget record) of ``channel`` until ``should_stop()``.

    Raises :class:`ConfigError` when the channel has no topic and
    :class:`InfraError` when Kafka does not answer (``TACTFUL_START_TIMEOUT``)
    or fails.
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

    from streams.clients import kafka_consumer, kafka_reason
    from streams.live.codecs import make_codecs

    topic = settings.topics.decision(channel)
    decode = make_codecs(settings).decode_decision
    consumer = kafka_consumer(
        settings.kafka,
        **{
            "group.id": f"tactful-tail-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        },
    )
    try:
        try:
            meta = consumer.list_topics(timeout=settings.processing.start_timeout)
        except KafkaException as exc:
            raise InfraError(
                f"Kafka at {settings.kafka.bootstrap_servers} did not answer within "
                f"{settings.processing.start_timeout:g}s (set by TACTFUL_START_TIMEOUT): {kafka_reason(exc)}"
            ) from exc
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            prefix = settings.topics.decision_prefix
            known = sorted(t[len(prefix) :] for t in meta.topics if t.startswith(prefix) and t != settings.topics.audit)
            raise ConfigError(
                f"no decision topic {topic!r} for channel {channel!r}"
                + (f"; channels with a topic: {', '.join(known)}" if known else "")
            )
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(info.partitions)])
        while not should_stop():
            try:
                messages = consumer.consume(200, 0.5)
            except KafkaException as exc:
                raise InfraError(f"reading {topic} failed: {kafka_reason(exc)}") from exc
            for m in messages:
                item = decision_or_forget(m, decode, on_skip)
                if item is not None:
                    emit(item)
    finally:
        consumer.close()
