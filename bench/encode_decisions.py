"""Micro-benchmark of the worker's decision encoding (issue 13): µs per decision.

    .venv/bin/python -m bench.encode_decisions [--customers 20000] [--rounds 7]

Generates journeys (``tactful generate``), replays them with the shipped topologies
(``tactful replay --audit``) and encodes every decision of that audit, in replay order,
once per round: with the worker's ``encode_decision`` (``make_codecs``, a fresh one each
round; ``DecisionEncoder.decision``), with the general path (``Decision.to_record`` then
``avro.encode``, fastavro's ``schemaless_writer``), ``Decision.to_record`` alone and the
encoder on ``to_record``'s output. Prints the best round of each
(the least disturbed on a busy machine) and its ratio to the general path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main as cli
from streams.codec import avro
from streams.decisions import Decision
from streams.live.codecs import make_codecs
from streams.settings import Settings

TOPOLOGIES = Path(__file__).resolve().parent.parent / "topologies"


def replayed_decisions(customers: int, seed: int = 3) -> list[Decision]:
    """The decisions (every status) the engine makes on generated journeys, in replay order."""
    with tempfile.TemporaryDirectory() as tmp:
        events, audit = Path(tmp) / "events.jsonl", Path(tmp) / "audit.jsonl"
        runner = CliRunner()
        for args in (
            ["generate", "--customers", str(customers), "--seed", str(seed), "--out", str(events)],
            ["replay", "--topologies", str(TOPOLOGIES), "--events", str(events), "--audit", "--out", str(audit)],
        ):
            result = runner.invoke(cli, args)
            if result.exit_code != 0:
                raise SystemExit(f"tactful {args[0]} failed: {result.output}")
        lines = audit.read_text(encoding="utf-8").splitlines()
    return [Decision.from_record(avro.decision_to_avro(json.loads(line))) for line in lines]


def best_us(make: Callable[[], Callable[[Decision], object]], decisions: list[Decision], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        fn = make()
        start = time.perf_counter()
        for d in decisions:
            fn(d)
        best = min(best, time.perf_counter() - start)
    return best / len(decisions) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    decisions = replayed_decisions(args.customers)
    schema, schema_id = avro.decision_schema(), avro.decision_schema_id()

    def general(d: Decision) -> bytes:
        return avro.encode(d.to_record(), schema, schema_id)

    def of_record() -> Callable[[Decision], bytes]:
        encoder = avro.DecisionEncoder(schema_id)
        return lambda d: encoder(d.to_record())

    def worker() -> Callable[[Decision], bytes]:
        return make_codecs(Settings()).encode_decision

    cases: dict[str, Callable[[], Callable[[Decision], object]]] = {
        "general (to_record + avro.encode)": lambda: general,
        "Decision.to_record alone": lambda: Decision.to_record,
        "DecisionEncoder of to_record": of_record,
        "worker encode_decision": worker,
    }
    encode = worker()
    if any(encode(d) != general(d) for d in decisions):
        raise SystemExit("the worker's bytes differ from the general encoder's")
    print(f"{len(decisions):,} decisions of {args.customers:,} customers' replay, best of {args.rounds} rounds")
    base = 0.0
    for name, make in cases.items():
        us = best_us(make, decisions, args.rounds)
        base = base or us
        print(f"  {name:36} {us:7.2f} µs/decision  ({us / base:.2f} x general)")


if __name__ == "__main__":
    main()
