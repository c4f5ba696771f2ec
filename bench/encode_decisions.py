"""Micro-benchmark of the worker's decision encoding (issue 13): µs per decision.

    .venv/bin/python -m bench.encode_decisions [--rounds 7] [--repeat 20]

Encodes the decisions of the committed golden audits (``tests/golden/*-audit.jsonl``,
real engine output) with the worker's ``encode_decision`` (``make_codecs``), and for
comparison the general path (``Decision.to_record`` then ``avro.encode``, fastavro's
``schemaless_writer``) and ``Decision.to_record`` alone. Prints the best round of each
(the least disturbed on a busy machine) and the ratio to the general path.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from streams.codec import avro
from streams.decisions import Decision
from streams.live.codecs import make_codecs
from streams.settings import Settings

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"


def golden_decisions() -> list[Decision]:
    out: list[Decision] = []
    for path in sorted(GOLDEN.glob("*-audit.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            out.append(Decision.from_record(avro.decision_to_avro(json.loads(line))))
    return out


def best_us(fn: Callable[[Decision], object], decisions: list[Decision], rounds: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            for d in decisions:
                fn(d)
        best = min(best, time.perf_counter() - start)
    return best / (repeat * len(decisions)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    decisions = golden_decisions()
    schema, schema_id = avro.decision_schema(), avro.decision_schema_id()
    worker = make_codecs(Settings()).encode_decision

    def general(d: Decision) -> bytes:
        return avro.encode(d.to_record(), schema, schema_id)

    cases: dict[str, Callable[[Decision], object]] = {
        "general (to_record + avro.encode)": general,
        "Decision.to_record alone": Decision.to_record,
        "worker encode_decision": worker,
    }
    assert all(worker(d) == general(d) for d in decisions)
    print(f"{len(decisions)} golden decisions x {args.repeat}, best of {args.rounds} rounds")
    base = None
    for name, fn in cases.items():
        us = best_us(fn, decisions, args.rounds, args.repeat)
        base = base or us
        print(f"  {name:36} {us:7.2f} µs/decision  ({us / base:.2f} x general)")


if __name__ == "__main__":
    main()
