"""Record codecs of a worker: Avro in the Confluent wire format.

Without a schema registry, schema ids are the project's local ids (see
``avro/README.md``): every process computes the same id from the schema
itself. With ``schema_registry_url`` set (``docs/registry.md``), the worker
registers the decision schema under the ``<topic>-value`` subjects of the
audit and channel topics and the touchpoint schema under the input topic's,
each subject set to ``BACKWARD`` compatibility, writes decisions with the
registry's id, and resolves incoming ids there (local ids are still
understood). Touchpoints are read against the worker's own touchpoint schema,
so a newer compatible version registered while the worker runs (a field added
with a default) is read without a restart. Touchpoints of the worker's own
layout, under any id, take :class:`~streams.codec.avro.TouchpointDecoder`'s
fast path; other layouts are resolved by :func:`~streams.codec.avro.decode`.
Decisions are written by :class:`~streams.codec.avro.DecisionEncoder`: the bytes
of :func:`~streams.codec.avro.encode`, by code written for the decision layout;
they are read back (by the Redis mirror, the channel client, ``tactful tail``) by
:class:`~streams.codec.avro.DecisionDecoder`, whose ``inert`` lets the mirror
pass over, undecoded, the decisions that change no suppression.

:attr:`Codecs.prepare` is awaited before each batch: it resolves the batch's
new schema ids off the event loop and waits out a registry outage with
backoff (:meth:`~streams.codec.registry.RegistryResolver.prepare`), so the
decoding that follows never blocks and never takes a good record for unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.codec import avro
from streams.decisions import Decision
from streams.settings import Settings


def _decode_local_decision(value: bytes) -> Decision:
    return Decision.from_record(avro.decode(value, avro.local_registry().resolve))


async def _nothing_to_prepare(values: Iterable[bytes | None]) -> None:
    return None


def _never_inert(value: bytes, now_ms: int) -> bool:
    return False


@dataclass(frozen=True)
class Codecs:
    decode_touchpoint: Callable[[bytes], dict[str, Any]]
    encode_decision: Callable[[Decision], bytes]
    decision_schema_id: int
    # The Redis mirror reads the decision topics back.
    decode_decision: Callable[[bytes], Decision] = _decode_local_decision
    # Awaited with a batch's record values before they are decoded.
    prepare: Callable[[Iterable[bytes | None]], Awaitable[None]] = _nothing_to_prepare
    # (value, now ms) -> True when a decision record certainly changes no suppression: the
    # mirror passes it over undecoded (DecisionDecoder.inert). False: decode it.
    inert_decision: Callable[[bytes, int], bool] = _never_inert


def make_codecs(settings: Settings, channel_topics: Iterable[str] = ()) -> Codecs:
    """The worker's codecs; with a registry, its schemas are registered first.

    ``channel_topics`` are the decision topics besides the audit topic, whose
    subjects get the decision schema too. Waits up to the start timeout for an
    unreachable registry, then raises :class:`~streams.errors.RegistryUnavailable`.
    """
    local = avro.local_registry()
    resolve: avro.Resolver = local.resolve
    decision_id = avro.decision_schema_id()
    prepare = _nothing_to_prepare
    if settings.kafka.schema_registry_url:
        from streams.codec import registry

        client = registry.RegistryClient(settings.kafka.schema_registry_url)
        resolver = registry.RegistryResolver(client, local)
        timeout = settings.processing.start_timeout
        decision_id = registry.register_own(
            client, resolver, avro.DECISION, [settings.topics.audit, *channel_topics], timeout=timeout
        )
        registry.register_own(client, resolver, avro.TOUCHPOINT, [settings.topics.input], timeout=timeout)
        resolve = resolver.resolve
        prepare = resolver.prepare
    touchpoint_reader = local.resolve(avro.touchpoint_schema_id())
    decision_reader = local.resolve(avro.decision_schema_id())

    # The worker's output path: avro.encode's bytes and errors, a layout-specific writer first.
    encode_decision = avro.DecisionEncoder(decision_id).decision

    # The mirror's and the channels' reading: Decision.from_record(avro.decode(...))'s results
    # and errors, a layout-specific reader first.
    decisions = avro.DecisionDecoder(resolve, decision_reader)

    # The worker's hot path: avro.decode's results and errors, a layout-specific reader first.
    decode_touchpoint = avro.TouchpointDecoder(resolve, touchpoint_reader)
    return Codecs(decode_touchpoint, encode_decision, decision_id, decisions, prepare, decisions.inert)


def resolver(settings: Settings) -> avro.Resolver:
    """What reads tactful's records outside a worker (the command line, the demo's view):
    local ids, and with a registry its ids too, fetched on demand (an unreachable registry
    raises :class:`~streams.errors.RegistryUnavailable`)."""
    if not settings.kafka.schema_registry_url:
        return avro.local_registry().resolve
    from streams.codec import registry

    return registry.RegistryResolver(registry.RegistryClient(settings.kafka.schema_registry_url)).resolve


def touchpoint_schema_id(settings: Settings) -> int:
    """The id a producer writes touchpoints with: the registry's (registered under the input
    topic's subject, compatibility ``BACKWARD``), or the local id without a registry."""
    if not settings.kafka.schema_registry_url:
        return avro.touchpoint_schema_id()
    from streams.codec import registry

    client = registry.RegistryClient(settings.kafka.schema_registry_url)
    resolver_ = registry.RegistryResolver(client)
    return registry.register_own(
        client, resolver_, avro.TOUCHPOINT, [settings.topics.input], timeout=settings.processing.start_timeout
    )
