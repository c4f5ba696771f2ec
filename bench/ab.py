"""``python -m bench ab``: one worker's throughput, this checkout against another build, alternately.

For before/after figures of a change: the same Avro touchpoints on one
topic, and a worker of each build consuming all of them in turn (a fresh
consumer group each time), timed as ``make bench`` times tactful (first to
last offset commit). The order alternates every round (A B, B A, ...), so
that a machine getting busier or quieter during the run weighs on both
alike. Give the other build as its ``tactful`` executable, e.g. a worktree
of the commit before the change with its own virtualenv.
"""

from __future__ import annotations

import statistics
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.pipeline import (
    HISTORY_START,
    PARTITIONS,
    REPO,
    cleanup,
    create_topic,
    history_worker_env,
    process,
    time_group,
)
from streams.generate import generate_events
from streams.live.feed import feed
from streams.settings import Settings


def run(
    bootstrap: str,
    redis_url: str,
    builds: dict[str, list[str]],
    *,
    events: int,
    customers: int,
    rounds: int,
    out: Path,
    say: Callable[[str], None],
    guarantee: str = "at_least_once",
) -> dict[str, list[float]]:
    """Events/s per build (label -> one figure a round), each build's worker started by its command.

    Both run under ``guarantee``, named rather than left to each build's default: the default
    changed (exactly-once since 2026-11-29), and builds before exactly-once only ran at-least-once."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (REPO / ".run" / "bench").mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}"
    rates: dict[str, list[float]] = {label: [] for label in builds}
    try:
        topic = f"{prefix}.touchpoints"
        create_topic(bootstrap, topic)
        say(f"producing {events:,} Avro touchpoints for {customers:,} customers to {topic} ...")
        feed(
            Settings.from_flat({"bootstrap_servers": bootstrap, "input_topic": topic}),
            generate_events(events, customers, 3, start_ms=HISTORY_START, days=7.0),
        )
        labels = list(builds)
        for r in range(rounds):
            for label in labels if r % 2 == 0 else labels[::-1]:
                name = f"{prefix}-{label}-{r}"
                env = history_worker_env(bootstrap, redis_url, name, topic, guarantee)
                with process([*builds[label], "worker", "--loglevel", "warning"], logs / f"{name}.log", env) as proc:
                    rate = time_group(bootstrap, name, topic, events, proc, timeout=1800)
                rates[label].append(rate)
                say(f"round {r + 1}: {label} {rate:,.0f} events/s")
        return rates
    finally:
        cleanup(bootstrap, redis_url, prefix, out)


def table(rates: dict[str, list[float]], events: int, customers: int) -> str:
    labels = list(rates)
    base = statistics.median(rates[labels[-1]])
    lines = [
        f"one worker, {events:,} Avro touchpoints, {customers:,} customers, {PARTITIONS} partitions, "
        f"{len(rates[labels[0]])} rounds in alternating order",
        f"{'build':<10} {'median':>10} {'min':>10} {'max':>10} {'x ' + labels[-1]:>10}   each round",
    ]
    for label, figures in rates.items():
        med = statistics.median(figures)
        each = ", ".join(f"{f:,.0f}" for f in figures)
        lines.append(
            f"{label:<10} {med:>10,.0f} {min(figures):>10,.0f} {max(figures):>10,.0f} {med / base:>10.2f}   {each}"
        )
    return "\n".join(lines)


def this_build() -> list[str]:
    """This checkout's tactful, as the pipeline benchmark starts it."""
    return [sys.executable, "-m", "streams.cli"]
