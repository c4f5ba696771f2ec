"""The decoder fuzz: mutated inputs through the JSON Lines and Avro decoders and ``validate_event``.

Every input must either give an event or raise :class:`~streams.errors.InputError`
(the dead-letter path); anything else is a *crash*: in a worker it would stop
the partition. Inputs, in equal shares, from a seeded generator:

* random bytes (0-300 of them; half start with the Avro wire header);
* bit flips (1-8) of a valid event's Avro and JSON encodings;
* truncations of those encodings at every kind of offset;
* JSON values of every type (null, booleans, ints at the edges, floats incl.
  NaN/inf as JSON allows them, strings empty, long and odd, lists, objects)
  in every field of a valid event, and as the whole record, through
  ``validate_event`` directly and through the JSON Lines decoder.

In-process and single-threaded; about 1 µs-20 µs per input.
"""

from __future__ import annotations

import io
import random
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.codec import avro, jsonl
from streams.errors import InputError
from streams.events import validate_event

FIELDS = ("event_id", "customer_id", "type", "occurred_at", "channel", "attributes")
VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**64,
    10**30,
    0.0,
    -0.5,
    1e308,
    1.5e-300,
    "",
    " ",
    "x",
    "2026-05-04T00:00:00Z",
    "2026-05-04T00:00:00",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00Z",
    "x" * 5000,
    "\u0000",
    "\ud7ff\ue000",
    "é" * 200,
    [],
    [1, "a"],
    [[[]]],
    {},
    {"a": "b"},
    {"a": 1},
    {"": ""},
    {"k" * 200: "v"},
    {f"k{i}": "v" for i in range(70)},
    {"a": None},
    {"a": ["b"]},
    {"a": {"b": "c"}},
)

BASE: dict[str, Any] = {
    "event_id": "e-1",
    "customer_id": "c-1",
    "type": "purchase",
    "occurred_at": "2026-05-04T10:00:00Z",
    "channel": "web",
    "attributes": {"order_id": "o-1", "amount": "12.50"},
}


@dataclass
class FuzzResult:
    inputs: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)  # exception type -> count
    examples: list[dict[str, str]] = field(default_factory=list)  # first few crashing inputs


def _json_decode(data: bytes) -> object:
    """The JSON Lines decoder on one line: its value, or the MalformedRecord it yields, raised."""
    for _, item in jsonl.read_jsonl(io.BytesIO(data)):
        if isinstance(item, InputError):
            raise item
        return item
    raise InputError("blank", "no record on the line")  # a blank line is skipped, not a crash


def _avro_decode(data: bytes) -> object:
    return avro.decode(data, avro.local_registry().resolve)


def _flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def _inputs(rng: random.Random) -> Iterator[tuple[str, Callable[[bytes], object] | None, Any]]:
    """(family, decoder or None for a value given to validate_event directly, input), forever."""
    seeds: list[dict[str, Any]] = [
        BASE,
        {**BASE, "channel": None, "attributes": None},
        {**BASE, "occurred_at": 1_777_000_000_000},
    ]
    avro_seeds = [
        avro.encode(avro.touchpoint_to_avro(s), avro.touchpoint_schema(), avro.touchpoint_schema_id()) for s in seeds
    ]
    json_seeds = [orjson.dumps(s) for s in seeds]
    header = struct.pack(">BI", 0, avro.touchpoint_schema_id())
    while True:
        r = rng.random()
        if r < 0.2:
            n = rng.randrange(300)
            data = rng.randbytes(n)
            if rng.random() < 0.5:
                data = header + data
            yield "random", _avro_decode if rng.random() < 0.5 else _json_decode, data
        elif r < 0.4:
            if rng.random() < 0.5:
                yield "bitflip", _avro_decode, _flip(rng.choice(avro_seeds), rng)
            else:
                yield "bitflip", _json_decode, _flip(rng.choice(json_seeds), rng)
        elif r < 0.6:
            if rng.random() < 0.5:
                src = rng.choice(avro_seeds)
                yield "truncate", _avro_decode, src[: rng.randrange(len(src))]
            else:
                src = rng.choice(json_seeds)
                yield "truncate", _json_decode, src[: rng.randrange(len(src))]
        else:
            value = rng.choice(VALUES)
            if rng.random() < 0.05:
                rec: Any = value  # the whole record is that value
            else:
                rec = dict(rng.choice(seeds))
                rec[rng.choice(FIELDS)] = value
                if rng.random() < 0.3:
                    rec[rng.choice(FIELDS)] = rng.choice(VALUES)
                if rng.random() < 0.1 and isinstance(rec, dict):
                    del rec[rng.choice(FIELDS)]
            if rng.random() < 0.5:
                yield "json_types", None, rec
            else:
                try:
                    data = orjson.dumps(rec)
                except (TypeError, orjson.JSONEncodeError):  # 2**64: not JSON, give it directly
                    yield "json_types", None, rec
                    continue
                yield "json_types", _json_decode, data


def fuzz(n: int, seed: int, progress: Callable[[int], None] | None = None) -> FuzzResult:
    rng = random.Random(seed)
    res = FuzzResult()
    for family, decode, item in _inputs(rng):
        if res.inputs >= n:
            break
        res.inputs += 1
        try:
            validate_event(decode(item) if decode is not None else item)
            res.accepted += 1
        except InputError as exc:
            res.rejected[exc.reason] += 1
        except Exception as exc:  # the point: anything else is a crash
            name = f"{family}: {type(exc).__name__}"
            res.crashes[name] += 1
            if len(res.examples) < 20:
                res.examples.append({"family": family, "error": repr(exc)[:300], "input": repr(item)[:300]})
        if progress is not None and res.inputs % 100_000 == 0:
            progress(res.inputs)
    return res
