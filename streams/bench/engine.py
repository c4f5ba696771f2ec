"""``tactful bench replay``: the engine on one core, figures printed, nothing asserted.

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
from streams.generate import generate_events, write
from streams.replay import replay_numbered
from streams.timeutil import parse_time
from streams.topology import Catalog

START = parse_time("2026-05-04T00:00:00Z")


@dataclass(frozen=True)
class EngineFigures:
    events: int
    customers: int
    file_seconds: float
    memory_seconds: float
    decisions: int
    peak_rss_mib: float
    state_bytes_per_customer: float
    customers_with_state: int

    @property
    def file_rate(self) -> float:
        return self.events / self.file_seconds

    @property
    def memory_rate(self) -> float:
        return self.events / self.memory_seconds


def events_file(folder: Path, events: int, customers: int, seed: int) -> Path:
    path = folder / f"bench-events-{events}-{customers}-{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write(tmp, generate_events(events, customers, seed, start_ms=START, days=7.0))
        tmp.rename(path)
    return path


def run(catalog: Catalog, path: Path, customers: int) -> EngineFigures:
    gc.collect()
    started = time.perf_counter()
    result = replay_numbered(catalog, read_jsonl(path))
    file_seconds = time.perf_counter() - started
    n = result.counts["events"]

    records = [rec for _, rec in read_jsonl(path)]
    gc.collect()
    store = DictStore()
    proc = Processor(Engine(catalog), store)
    started = time.perf_counter()
    for rec in records:
        proc.process(validate_event(rec))
    if proc.stream_time is not None:
        proc.advance_watermark(proc.stream_time)
    memory_seconds = time.perf_counter() - started
    del records

    sizes = [len(s.to_bytes()) for s in store.data.values()]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return EngineFigures(
        events=n,
        customers=customers,
        file_seconds=file_seconds,
        memory_seconds=memory_seconds,
        decisions=len(result.all_decisions),
        peak_rss_mib=peak,
        # Averaged over all customers of the input: those left with no state count as 0 bytes.
        state_bytes_per_customer=sum(sizes) / customers,
        customers_with_state=len(sizes),
    )


def report(f: EngineFigures) -> str:
    return "\n".join(
        [
            f"engine benchmark: {f.events:,} events, {f.customers:,} customers, all shipped topologies, one core",
            f"  replay from JSON Lines (decode+validate+engine): {f.file_rate:>10,.0f} events/s"
            f"  ({f.file_seconds:.2f}s)",
            f"  engine on decoded records (validate+engine):     {f.memory_rate:>10,.0f} events/s"
            f"  ({f.memory_seconds:.2f}s)",
            f"  decisions (all statuses):                        {f.decisions:>10,}",
            f"  state per customer (serialised, mean):           {f.state_bytes_per_customer:>10,.0f} bytes"
            f"  ({f.customers_with_state:,} customers hold state)",
            f"  peak memory (RSS, whole process):                {f.peak_rss_mib:>10,.0f} MiB",
        ]
    )
