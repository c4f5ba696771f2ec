"""Record codecs: Avro (Confluent wire format and object container files) and JSON Lines.

Submodules are imported explicitly (``streams.codec.avro``, ``streams.codec.jsonl``)
so that reading JSON Lines does not pull in fastavro and the other way round.
"""

from __future__ import annotations

# One encoded record (a JSON line or a Kafka value) may be at most this many
# bytes; anything larger is dead-lettered as ``too_large`` before it is parsed,
# which also bounds what a hostile length prefix inside an Avro body can claim.
MAX_RECORD_BYTES = 65_536

__all__ = ["MAX_RECORD_BYTES"]
