"""``python -m bench guarantees``: at-least-once and exactly-once side by side, in one run.

Two figures per processing guarantee (``TACTFUL_PROCESSING_GUARANTEE``):

- **events/s**: the same Avro touchpoints on one topic, consumed by one worker
  of this build at each guarantee in turn (a fresh consumer group and output
  topics each time), timed by the worker's own count of events taken in, from
  the first seen to the last (not by offset commits, whose cadence differs
  between the modes); the order alternates every round, so that a machine
  getting busier or quieter weighs on both alike;
- **restart-to-decide**: per guarantee, ``--workers`` workers with instance
  ids share a namespace of the integration tier's services under a steady
  feed; each round kills one with SIGKILL and starts it again at once, and
  times how soon it takes in an event again (``bench restarts``' last
  column). With exactly-once this includes fencing the killed worker's
  producers and recovering state that ends in transaction markers.

Figures only: it asserts nothing.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.pipeline import (
    HISTORY_START,
    PARTITIONS,
    cleanup,
    create_topic,
    history_worker_env,
    process,
    timed_by_metrics,
)
from bench.restarts import _events, _events_taken
from streams.generate import generate_events
from streams.live.feed import feed
from streams.settings import Settings

GUARANTEES = ("at_least_once", "exactly_once")


@dataclass
class Figures:
    rates: dict[str, list[float]] = field(default_factory=lambda: {g: [] for g in GUARANTEES})
    restarts: dict[str, list[float | None]] = field(default_factory=lambda: {g: [] for g in GUARANTEES})


def throughput(
    bootstrap: str,
    redis_url: str,
    build: list[str],
    figures: Figures,
    *,
    events: int,
    customers: int,
    rounds: int,
    out: Path,
    say: Callable[[str], None],
) -> None:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-g-{uuid.uuid4().hex[:8]}"
    try:
        topic = f"{prefix}.touchpoints"
        create_topic(bootstrap, topic)
        say(f"producing {events:,} Avro touchpoints for {customers:,} customers to {topic} ...")
        feed(
            Settings.from_flat({"bootstrap_servers": bootstrap, "input_topic": topic}),
            generate_events(events, customers, 3, start_ms=HISTORY_START, days=7.0),
        )
        for r in range(rounds):
            for guarantee in GUARANTEES if r % 2 == 0 else GUARANTEES[::-1]:
                name = f"{prefix}-{guarantee.replace('_', '')}-{r}"
                env = history_worker_env(bootstrap, redis_url, name, topic, guarantee)
                port = int(env["TACTFUL_WEB_PORT"])
                with process([*build, "worker", "--loglevel", "warning"], logs / f"{name}.log", env) as proc:
                    rate = timed_by_metrics(bootstrap, name, topic, events, proc, port, timeout=1800)
                figures.rates[guarantee].append(rate)
                say(f"round {r + 1}: {guarantee} {rate:,.0f} events/s")
    finally:
        cleanup(bootstrap, redis_url, prefix, out)


def restart_times(
    folder: Path,
    guarantee: str,
    *,
    rounds: int,
    workers: int,
    partitions: int,
    rate: float,
    cap: float,
    seed: int,
    say: Callable[[str], None],
) -> list[float | None]:
    """Seconds from each restart until the restarted worker takes in an event (None: not within ``cap``)."""
    from tests.integration.conftest import Namespace, wait_until
    from tests.integration.services import ensure_services

    ensure_services()
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    ns = Namespace(folder, TACTFUL_PARTITIONS=str(partitions), TACTFUL_PROCESSING_GUARANTEE=guarantee)
    stop = threading.Event()
    feeder = threading.Thread(target=lambda: feed(ns.settings(), _events(stop, 5000), rate=rate), daemon=True)
    times: list[float | None] = []
    try:
        names = [f"w{i + 1}" for i in range(workers)]
        procs = {n: ns.worker(n, TACTFUL_INSTANCE_ID=n) for n in names}
        for w in procs.values():
            w.wait_ready(120)
        feeder.start()
        wait_until(lambda: all(_events_taken(w) > 0 for w in procs.values()), 120, "every worker deciding", every=0.5)
        for r in range(1, rounds + 1):
            name = rng.choice(names)
            procs[name].stop(kill=True)
            t0 = time.monotonic()
            new = procs[name] = ns.worker(name, TACTFUL_INSTANCE_ID=name)
            took: float | None = None

            def deciding(w: Any = new) -> bool:
                return _events_taken(w) > 0

            with contextlib.suppress(AssertionError):
                wait_until(deciding, cap, "the restarted worker deciding", every=0.1)
                took = time.monotonic() - t0
            times.append(took)
            say(f"{guarantee} round {r}: killed {name}, deciding again after {_s(took)}")
        return times
    finally:
        stop.set()
        if feeder.is_alive():
            feeder.join(30)
        ns.cleanup(timeout=120)


def _s(v: float | None) -> str:
    return "never (cap)" if v is None else f"{v:.1f}s"


def table(figures: Figures, events: int, customers: int) -> str:
    lines = [
        f"one worker, {events:,} Avro touchpoints, {customers:,} customers, {PARTITIONS} partitions; "
        "restarts: kill -9 of one of the workers under a steady feed",
        f"{'guarantee':<14} {'events/s':>10} {'min':>10} {'max':>10}   {'restart-to-decide':>17} {'max':>8}",
    ]
    for g in GUARANTEES:
        rates = figures.rates[g]
        times: Sequence[float | None] = figures.restarts[g]
        known = [t for t in times if t is not None]
        rate = f"{statistics.median(rates):>10,.0f} {min(rates):>10,.0f} {max(rates):>10,.0f}" if rates else "-"
        med = f"{statistics.median(known):.1f}s" if known else "-"
        worst = "never" if None in times else (f"{max(known):.1f}s" if known else "-")
        lines.append(f"{g:<14} {rate}   {med:>17} {worst:>8}")
    return "\n".join(lines)
