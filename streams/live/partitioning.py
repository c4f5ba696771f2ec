"""Which partition a customer's state lives on: the Java client's murmur2.

Producers that key by customer id with the Java-compatible partitioner (Java,
aiokafka, Faust, or librdkafka with ``partitioner=murmur2_random``) put every
event on its customer's partition; anything else is re-routed by the worker,
at the cost of one extra hop.
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils.murmur2, as a signed 32-bit int."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    base = length & ~3
    if extra >= 3:
        h ^= data[base + 2] << 16
    if extra >= 2:
        h ^= data[base + 1] << 8
    if extra >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


class Partitioner:
    """Customer id -> partition, cached: customers come back, hashing in Python is not free."""

    def __init__(self, partitions: int, cache_size: int = 1_000_000) -> None:
        self.partitions = partitions
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def of_bytes(self, key: bytes) -> int:
        """The partition of a record key, as the default partitioner picks it."""
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    def __call__(self, customer_id: str) -> int:
        p = self._cache.get(customer_id)
        if p is None:
            p = (murmur2(customer_id.encode("utf-8")) & 0x7FFFFFFF) % self.partitions
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[customer_id] = p
        return p
