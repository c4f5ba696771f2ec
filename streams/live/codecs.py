"""Record codecs of a worker: Avro in the Confluent wire format.

Without a schema registry, schema ids are the project's local ids (see
``avro/README.md``): every process computes the same id from the schema
itself. With ``schema_registry_url`` set, the decision schema is registered
under ``<topic>-value`` subjects and incoming ids are looked up in the registry
(confluent-kafka's client), with the local ids still understood.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastavro

from streams.codec import avro
from streams.decisions import Decision
from streams.errors import InfraError
from streams.settings import Settings


def _decode_local_decision(value: bytes) -> Decision:
    return Decision.from_record(avro.decode(value, avro.local_registry().resolve))


@dataclass(frozen=True)
class Codecs:
    decode_touchpoint: Callable[[bytes], dict[str, Any]]
    encode_decision: Callable[[Decision], bytes]
    decision_schema_id: int
    # The Redis mirror reads the decision topics back.
    decode_decision: Callable[[bytes], Decision] = _decode_local_decision


def make_codecs(settings: Settings) -> Codecs:
    local = avro.local_registry()
    resolve: Callable[[int], Any] = local.resolve
    decision_id = avro.decision_schema_id()
    if settings.kafka.schema_registry_url:
        resolve, decision_id = _registry(settings, local.resolve)
    schema = avro.decision_schema()

    def decode_touchpoint(value: bytes) -> dict[str, Any]:
        return avro.decode(value, resolve)

    def encode_decision(d: Decision) -> bytes:
        return avro.encode(d.to_record(), schema, decision_id)

    def decode_decision(value: bytes) -> Decision:
        return Decision.from_record(avro.decode(value, resolve))

    return Codecs(decode_touchpoint, encode_decision, decision_id, decode_decision)


def _registry(settings: Settings, local: Callable[[int], Any]) -> tuple[Callable[[int], Any], int]:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient({"url": settings.kafka.schema_registry_url})
    text = avro.schema_path(avro.DECISION).read_text()
    try:
        decision_id = client.register_schema(f"{settings.topics.audit}-value", Schema(text, "AVRO"))
        touchpoint = Schema(avro.schema_path(avro.TOUCHPOINT).read_text(), "AVRO")
        client.register_schema(f"{settings.topics.input}-value", touchpoint)
    except SchemaRegistryError as exc:
        raise InfraError(
            f"the schema registry at {settings.kafka.schema_registry_url} refused a schema: {exc}"
        ) from exc

    @cache
    def from_registry(schema_id: int) -> Any:
        try:
            found = client.get_schema(schema_id)
        except SchemaRegistryError:
            return None
        if found.schema_str is None:
            return None
        parsed = fastavro.schema.parse_schema(json.loads(found.schema_str))
        return avro.reading_schema(parsed) if isinstance(parsed, dict) else None

    def resolve(schema_id: int) -> Any:
        return local(schema_id) or from_registry(schema_id)

    return resolve, int(decision_id)
