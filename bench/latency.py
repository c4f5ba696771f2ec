"""``python -m bench latency``: only step (6) of ``make bench``, builds or settings side by side.

Each variant (a build, and the ``TACTFUL_*`` variables it runs with) gets a
worker of its own, fed the same way at the same fixed rate, under each
guarantee asked for; variants alternate order round after round, so that a
machine getting busier or quieter weighs on all alike. For every worker:
append-to-append quantiles, what a ``read_committed`` reader sees, and where
the time went by the worker's own metrics (:func:`bench.pipeline.latency`).
Compare within one invocation only: on two cores shared with the broker, an
absolute figure says as much about the neighbours as about tactful.

``python -m bench transactions`` times exactly-once's transactions alone
(:func:`transactions`), per producer retry backoff: the wait that dominated
an exactly-once batch at low rates.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.pipeline import PARTITIONS, REPO, WORKER, LatencyRun, _mode, cleanup, latency, latency_lines
from streams.topology import load_folder


def run(
    bootstrap: str,
    redis_url: str,
    variants: dict[str, tuple[list[str], dict[str, str]]],
    *,
    rate: float,
    seconds: float,
    rounds: int,
    guarantees: tuple[str, ...],
    out: Path,
    say: Callable[[str], None],
) -> dict[str, list[LatencyRun]]:
    """Label -> each worker's figures; a variant is (the command that starts a worker, or empty
    for this checkout's, and its extra ``TACTFUL_*`` variables)."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (REPO / ".run" / "bench").mkdir(parents=True, exist_ok=True)
    catalog = load_folder(REPO / "topologies")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    got: dict[str, list[LatencyRun]] = {label: [] for label in variants}
    labels = list(variants)
    try:
        for r in range(rounds):
            for guarantee in guarantees:
                for label in labels if r % 2 == 0 else labels[::-1]:
                    cmd, extra = variants[label]
                    lr = latency(
                        bootstrap,
                        redis_url,
                        catalog,
                        rate,
                        seconds,
                        logs,
                        prefix=f"{prefix}-{label}-{r}{guarantee[:3]}",
                        guarantee=guarantee,
                        worker=[*cmd, "worker", "--loglevel", "warning"] if cmd else WORKER,
                        extra=extra,
                    )
                    got[label].append(lr)
                    say(
                        f"round {r + 1}: {label} {_mode(guarantee)}: append p99 {lr.ms['p99']:.0f} ms, "
                        f"seen p99 {lr.visible_ms.get('p99', float('nan')):.0f} ms, {lr.where}"
                    )
        return got
    finally:
        cleanup(bootstrap, redis_url, prefix, out)


def table(got: dict[str, list[LatencyRun]], rate: float, seconds: float) -> str:
    workers = max(len(runs) for runs in got.values())
    lines = [f"latency at {rate:,.0f} events/s, {seconds:.0f} s of feed each, {workers} workers per variant"]
    for label, runs in got.items():
        lines.append(label)
        lines += latency_lines(runs)
    return "\n".join(lines)


def transactions(
    bootstrap: str,
    backoffs_ms: Sequence[int],
    *,
    rounds: int,
    batches: int,
    say: Callable[[str], None],
) -> dict[int, list[float]]:
    """Milliseconds per batch of exactly-once's transactions alone, per producer retry backoff.

    A batch as the worker's runtime commits one: a transaction on each of 4 producers at
    once (one per input partition), each with records to a decision topic, the audit topic
    and the changelog, and its input offset; the next batch right after. No worker, no
    engine: what is left is the broker's round trips and the client's waits, so that on a
    busy machine the comparison says more than a whole worker's latency does. Backoffs
    alternate order round after round."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    tag = uuid.uuid4().hex[:8]
    names = [f"bench-{tag}-txn-{t}" for t in ("decisions", "audit", "changelog", "input")]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        fut.result()
    got: dict[int, list[float]] = {b: [] for b in backoffs_ms}
    try:
        for r in range(rounds):
            for backoff in backoffs_ms if r % 2 == 0 else backoffs_ms[::-1]:
                times = asyncio.run(
                    _transaction_batches(bootstrap, names, f"bench-{tag}-{r}-{backoff}", backoff, batches)
                )
                got[backoff] += times
                say(f"round {r + 1}: backoff {backoff} ms: median {statistics.median(times):.1f} ms a batch")
        return got
    finally:
        for fut in admin.delete_topics(names).values():
            fut.result()


async def _transaction_batches(
    bootstrap: str, topics: list[str], tid: str, backoff_ms: int, batches: int
) -> list[float]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    *outputs, source = topics
    producers = [
        AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=f"{tid}-{p}",
            acks="all",
            enable_idempotence=True,
            retry_backoff_ms=backoff_ms,
        )
        for p in range(PARTITIONS)
    ]
    for producer in producers:
        await producer.start()

    async def one(p: int, n: int) -> None:
        producer = producers[p]
        await producer.begin_transaction()
        sent = [await producer.send(t, b"x" * 200, key=b"c%d" % i, partition=p) for t in outputs for i in range(10)]
        await asyncio.gather(*sent)
        await producer.send_offsets_to_transaction({TopicPartition(source, p): n}, f"{tid}-group")
        await producer.commit_transaction()

    times = []
    try:
        for n in range(batches):
            started = time.perf_counter()
            await asyncio.gather(*(one(p, n) for p in range(PARTITIONS)))
            times.append((time.perf_counter() - started) * 1000)
    finally:
        for producer in producers:
            await producer.stop()
    return times[3:]  # the first transactions find the coordinator
