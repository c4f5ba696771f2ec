"""``python -m bench replay`` (``make bench-engine``): the engine on one core, figures printed, nothing asserted.

Events are generated once into a JSON Lines file (cached by its parameters),
then replayed twice in this process: from the file (JSON decoding, validation
and the engine, as ``tactful replay`` does) and from decoded records held in
memory (validation and the engine only).
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from streams.codec.jsonl import read_jsonl
from streams.engine import DictStore, Engine, Processor
from streams.events import validate_event
from streams.gctune import tuned
from streams.generate import generate_events, write
from streams.replay import replay_numbered
from streams.timeutil import parse_time
from streams.topology import Catalog

START = parse_time("2026-05-04T00:00:00Z")


@dataclass(frozen=True)
class EngineFigures:
    events: int
    customers: int
    file_rates: list[float]  # events/s of each repeat
    memory_rates: list[float]
    decisions: int
    peak_rss_mib: float
    state_bytes_per_customer: float
    customers_with_state: int


def _spread(rates: list[float]) -> str:
    ordered = sorted(rates)
    median = ordered[len(ordered) // 2]
    return f"{median:>10,.0f} events/s  (median of {len(rates)}; best {ordered[-1]:,.0f}, worst {ordered[0]:,.0f})"


def events_file(folder: Path, events: int, customers: int, seed: int) -> Path:
    path = folder / f"bench-events-{events}-{customers}-{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write(tmp, generate_events(events, customers, seed, start_ms=START, days=7.0))
        tmp.rename(path)
    return path


def run(catalog: Catalog, path: Path, customers: int, repeat: int = 3) -> EngineFigures:
    file_rates: list[float] = []
    result = None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = replay_numbered(catalog, read_jsonl(path))
        file_rates.append(result.counts["events"] / (time.perf_counter() - started))
    assert result is not None
    n = result.counts["events"]
    replay_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    records = [rec for _, rec in read_jsonl(path)]
    memory_rates: list[float] = []
    store = DictStore()
    for _ in range(repeat):
        gc.collect()
        store = DictStore()
        proc = Processor(Engine(catalog), store)
        started = time.perf_counter()
        with tuned():
            for rec in records:
                proc.process(validate_event(rec))
            if proc.stream_time is not None:
                proc.advance_watermark(proc.stream_time)
        # Timed past the end of tuned(): the collection the collector owes when it is switched
        # back on (everything the run left alive) is part of the run, as it is in a replay.
        memory_rates.append(n / (time.perf_counter() - started))
    del records

    sizes = [len(s.to_bytes()) for s in store.data.values()]
    return EngineFigures(
        events=n,
        customers=customers,
        file_rates=file_rates,
        memory_rates=memory_rates,
        decisions=len(result.all_decisions),
        peak_rss_mib=replay_peak,
        # Averaged over all customers of the input: those left with no state count as 0 bytes.
        state_bytes_per_customer=sum(sizes) / customers,
        customers_with_state=len(sizes),
    )


def report(f: EngineFigures) -> str:
    return "\n".join(
        [
            f"engine benchmark: {f.events:,} events, {f.customers:,} customers, all shipped topologies, one core",
            f"  replay from JSON Lines (decode+validate+engine): {_spread(f.file_rates)}",
            f"  engine on decoded records (validate+engine):     {_spread(f.memory_rates)}",
            f"  decisions (all statuses):                        {f.decisions:>10,}",
            f"  state per customer (serialised, mean):           {f.state_bytes_per_customer:>10,.0f} bytes"
            f"  ({f.customers_with_state:,} customers hold state)",
            f"  peak memory of the file replay (RSS):            {f.peak_rss_mib:>10,.0f} MiB",
        ]
    )
