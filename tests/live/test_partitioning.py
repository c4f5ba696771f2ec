"""murmur2 as the Java client computes it: the partition a keyed record goes to."""

from __future__ import annotations

import random

import pytest

from streams.live.partitioning import Partitioner, murmur2

# org.apache.kafka.common.utils.UtilsTest.testMurmur2
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def reference(data: bytes) -> int:
    """The algorithm word by word, as Utils.murmur2 writes it."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    for i in range(len(data) // 4):
        k = int.from_bytes(data[i * 4 : i * 4 + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = data[len(data) & ~3 :]
    for i in reversed(range(len(tail))):
        h ^= tail[i] << (8 * i)
    if tail:
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@pytest.mark.parametrize(("key", "want"), JAVA_VECTORS.items(), ids=[k.decode()[:12] for k in JAVA_VECTORS])
def test_murmur2_matches_the_java_client(key: bytes, want: int) -> None:
    assert murmur2(key) == want == reference(key)


def test_murmur2_matches_the_reference_at_every_length() -> None:
    # Past 256 bytes (64 words) the word layout is built per call rather than cached.
    rng = random.Random(13)
    for length in [*range(0, 80), 255, 256, 257, 259, 1000]:
        data = rng.randbytes(length)
        assert murmur2(data) == reference(data), length


def test_the_partitioner_takes_the_hash_mod_the_partitions_by_str_and_by_bytes() -> None:
    owner = Partitioner(7)
    for cid in ["c1", "customer-000042", "é-ü"]:
        want = (reference(cid.encode()) & 0x7FFFFFFF) % 7
        assert owner(cid) == owner.of_bytes(cid.encode()) == want
