"""How large a record each output topic takes, and cutting a dead letter down to it.

A broker refuses a record batch larger than its topic's ``max.message.bytes``
(for a compressed batch, its compressed size), and aiokafka refuses a record
larger than the producer's ``max_request_size``. An input record can be far
larger than either allows on another topic: sent compressed (lz4 of a 2 MB
run of zeros is a few kilobytes), or on an input topic whose limit was
raised. Copied whole to the dead-letter topic it was refused there, the batch
failed, the worker exited and read the same batch again: the partition
stalled for good.

:class:`RecordLimits` holds each topic's limit, learnt at start-up
(:func:`streams.live.topics.record_limits`), and sizes a record as Kafka's
v2 record batch format does (a batch of one record: the 61-byte batch header
plus the record's own varints, key, value and headers; aiokafka's
``DefaultRecordBatchBuilder.estimate_size_in_bytes`` bounds it the same way,
which a test pins). :func:`fit_dead_letter` keeps what fits of a rejected
record and says so in headers.

Everything else the runtime writes is bounded before it gets here: a
re-routed record is a *valid* event, at most
:data:`~streams.codec.MAX_RECORD_BYTES` of value (only its copied headers can
be large, and :func:`fit_headers` drops them when they do not fit); decisions
are built from validated fields (ids of at most 256 characters, templates
from the catalog); see ``docs/live.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Headers = Sequence[tuple[str, bytes]]

# A v2 record batch's header, and the most a record's own varints can take
# (length 5, attributes 1, timestamp delta 10, offset delta 5): aiokafka's
# DefaultRecordBatchBuilder.HEADER_STRUCT.size and MAX_RECORD_OVERHEAD.
BATCH_OVERHEAD = 61
RECORD_OVERHEAD = 21

# Kafka's default max.message.bytes is 1,048,588; Faust's producer_max_request_size
# defaults to 1,000,000. The smaller, for a topic whose limit was not learnt.
DEFAULT_LIMIT = 1_000_000

H_TRUNCATED = "tactful.truncated"
H_ORIGINAL_SIZE = "tactful.original.size"
H_ORIGINAL_SHA256 = "tactful.original.sha256"


def _varint_size(n: int) -> int:
    """Bytes of a zigzag varint, as Kafka writes lengths in a v2 record."""
    z = (n << 1) ^ (n >> 63)
    size = 1
    while z >= 0x80:
        z >>= 7
        size += 1
    return size


def _field(data: bytes | None) -> int:
    return 1 if data is None else _varint_size(len(data)) + len(data)


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The most a record batch holding this one record takes on the wire (uncompressed)."""
    size = _field(key) + _field(value) + _varint_size(len(headers))
    for k, v in headers:
        size += _field(k.encode()) + _field(v)
    return BATCH_OVERHEAD + RECORD_OVERHEAD + size


@dataclass(frozen=True)
class RecordLimits:
    """The largest record batch each topic takes, in bytes; ``default`` for the others."""

    topics: Mapping[str, int] = field(default_factory=dict)
    default: int = DEFAULT_LIMIT

    def of(self, topic: str) -> int:
        return self.topics.get(topic, self.default)

    def fits(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> bool:
        return record_size(key, value, headers) <= self.of(topic)


@dataclass(frozen=True)
class Fitted:
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    cut: tuple[str, ...] = ()  # what was cut: "value", "headers", "key"


def fit_headers(
    limit: int, key: bytes | None, value: bytes | None, original: Headers, own: Headers
) -> tuple[tuple[str, bytes], ...] | None:
    """``original + own`` if the record fits with them, ``own`` alone if only that fits, else None."""
    for headers in ((*original, *own), tuple(own)):
        if record_size(key, value, headers) <= limit:
            return tuple(headers)
    return None


def fit_dead_letter(limit: int, key: bytes | None, value: bytes | None, original: Headers, own: Headers) -> Fitted:
    """A dead letter that fits in ``limit`` bytes, with as much of the original as fits.

    Whole if it fits. Otherwise tactful's own headers are kept (small and
    bounded), then the original headers and the key if they fit with an empty
    value (else the headers are dropped, then the key is cut), and the value
    gets what room is left: its prefix. ``tactful.truncated`` names what was
    cut; ``tactful.original.size`` and ``tactful.original.sha256`` describe
    the original value, so that the record can be matched with its source.
    """
    whole = (*original, *own)
    if record_size(key, value, whole) <= limit:
        return Fitted(key, value, whole)
    raw = value or b""
    marks = [
        (H_ORIGINAL_SIZE, str(len(raw)).encode()),
        (H_ORIGINAL_SHA256, hashlib.sha256(raw).hexdigest().encode()),
    ]
    cut: set[str] = set()
    headers: tuple[tuple[str, bytes], ...] = whole
    spare = b"value,headers,key"  # the longest mark: sized once, so the mark never overflows

    def room(k: bytes | None, hs: Headers) -> int:
        # The value's length varint grows with the value: up to 5 bytes for any length.
        return limit - record_size(k, b"", (*hs, *marks, (H_TRUNCATED, spare))) - 4

    if room(key, headers) < 0 and original:
        headers = tuple(own)
        cut.add("headers")
    if room(key, headers) < 0 and key is not None:
        key = key[: max(0, len(key) + room(key, headers) - 4)]
        cut.add("key")
    n = max(0, room(key, headers))
    kept = value
    if value is not None and len(value) > n:
        kept = value[:n]
        cut.add("value")
    order = tuple(c for c in ("value", "headers", "key") if c in cut)
    final = (*headers, *marks, (H_TRUNCATED, ",".join(order).encode()))
    return Fitted(key, kept, final, order)
