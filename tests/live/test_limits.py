"""Record sizes as Kafka's v2 record batch counts them, and dead letters cut to fit."""

from __future__ import annotations

import hashlib

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from streams.live.limits import (
    H_ORIGINAL_SHA256,
    H_ORIGINAL_SIZE,
    H_TRUNCATED,
    RecordLimits,
    fit_dead_letter,
    fit_headers,
    record_size,
)

OWN = (("tactful.reason", b"too_large"), ("tactful.detail", b"d" * 1000))


def built(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> bytes:
    """A record batch of this one record, as aiokafka builds it for the broker."""
    batch = BatchBuilder(16384, 0, is_transactional=False, key_serializer=None, value_serializer=None)
    assert batch.append(timestamp=None, key=key, value=value, headers=headers) is not None
    batch.close()
    return bytes(batch._build())


@pytest.mark.parametrize(
    "key, value, headers",
    [
        (None, None, []),
        (b"k", b"v", []),
        (b"c" * 200, b"x" * 127, [("h", b"")]),
        (b"c", b"x" * 128, [("a", b"1"), ("bb", b"2" * 300)]),
        (b"c" * 20_000, b"x" * 2_000_000, [("h" * 200, b"y" * 70_000)]),
    ],
)
def test_record_size_bounds_what_aiokafka_builds_as_aiokafka_estimates_it(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    size = record_size(key, value, headers)
    assert size == DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)  # type: ignore[arg-type]
    assert len(built(key, value, headers)) <= size


@pytest.mark.parametrize(
    "key, value, original, cut",
    [
        (b"c1", b"\x00" * 2_000_000, [("trace", b"t")], ("value",)),
        (b"c1", b"\x00" * 2_000_000, [("big", b"h" * 3_000_000)], ("value", "headers")),
        (b"k" * 3_000_000, b"\x00" * 2_000_000, [], ("value", "key")),
        (None, b"\x00" * 10_000, [("big", b"h" * 3_000_000)], ("headers",)),
    ],
)
def test_a_dead_letter_is_cut_to_fit_its_topic_and_says_what_was_cut(
    key: bytes | None, value: bytes, original: list[tuple[str, bytes]], cut: tuple[str, ...]
) -> None:
    limit = 1_000_000
    fitted = fit_dead_letter(limit, key, value, original, OWN)
    assert fitted.cut == cut
    assert len(built(fitted.key, fitted.value, list(fitted.headers))) <= record_size(
        fitted.key, fitted.value, fitted.headers
    )
    assert record_size(fitted.key, fitted.value, fitted.headers) <= limit
    # As much of the value as fits is kept: little room goes unused.
    assert value.startswith(fitted.value or b"")
    if "value" in cut:
        assert record_size(fitted.key, fitted.value, fitted.headers) > limit - 64
    else:
        assert fitted.value == value
    headers = dict(fitted.headers)
    assert headers[H_TRUNCATED] == ",".join(cut).encode()
    assert headers[H_ORIGINAL_SIZE] == str(len(value)).encode()
    assert headers[H_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert all(headers[k] == v for k, v in OWN)


def test_a_dead_letter_that_fits_is_left_whole() -> None:
    fitted = fit_dead_letter(1_000_000, b"c1", b"x" * 900_000, [("trace", b"t")], OWN)
    assert (fitted.key, fitted.value, fitted.headers, fitted.cut) == (
        b"c1",
        b"x" * 900_000,
        (("trace", b"t"), *OWN),
        (),
    )


def test_headers_are_kept_when_they_fit_else_only_tactfuls_own() -> None:
    own = (("tactful.routed.from", b"t/1/2"),)
    assert fit_headers(1000, b"k", b"v", [("a", b"1")], own) == (("a", b"1"), *own)
    assert fit_headers(1000, b"k", b"v", [("a", b"1" * 2000)], own) == own
    assert fit_headers(50, b"k", b"v" * 100, [], own) is None


def test_limits_fall_back_to_the_default_for_topics_not_learnt() -> None:
    limits = RecordLimits({"dlq": 500}, default=2000)
    assert limits.of("dlq") == 500 and limits.of("other") == 2000
    assert limits.fits("other", b"k", b"v" * 1000, []) and not limits.fits("dlq", b"k", b"v" * 1000, [])


def test_a_built_batch_reads_back_the_cut_record() -> None:
    fitted = fit_dead_letter(100_000, b"c1", b"\x01" * 500_000, [], OWN)
    (rec,) = list(DefaultRecordBatch(built(fitted.key, fitted.value, list(fitted.headers))))
    assert rec.value == fitted.value and dict(rec.headers)[H_TRUNCATED] == b"value"
