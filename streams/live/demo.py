"""``tactful demo``: two live workers, generated journeys at a steady rate, a terminal view.

It starts the workers as child processes (logs under ``.run/demo/``), feeds
generated touchpoints from a background thread, reads the audit and
dead-letter topics, and shows the newest decisions with counters. It stops on
Ctrl-C or after ``duration`` seconds and stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from streams.clients import kafka_consumer
from streams.codec import avro
from streams.errors import InfraError, TactfulError
from streams.generate import generate
from streams.live.codecs import resolver
from streams.live.feed import feed
from streams.settings import Settings
from streams.timeutil import format_time


@dataclass
class Board:
    fed: int = 0
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    recent: deque[tuple[str, ...]] = field(default_factory=lambda: deque(maxlen=14))


def _start_workers(settings: Settings, count: int, logs: Path) -> list[tuple[subprocess.Popen[bytes], int]]:
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(count):
        port = settings.http.port + i
        env = {**os.environ, "TACTFUL_WEB_PORT": str(port), "TACTFUL_DATA_DIR": str(logs / f"worker{i}")}
        with (logs / f"worker{i}.log").open("ab") as out:
            procs.append(
                (
                    subprocess.Popen(
                        [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    ),
                    port,
                )
            )
    return procs


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _consumer(settings: Settings) -> Consumer:
    c = kafka_consumer(settings.kafka, **{"group.id": f"demo-view-{uuid.uuid4().hex}", "enable.auto.commit": False})
    assignment = []
    for topic in (settings.topics.audit, settings.topics.dlq):
        meta = c.list_topics(topic, timeout=10).topics[topic]
        for p in meta.partitions:
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            assignment.append(TopicPartition(topic, p, high))  # only what this demo run makes
    c.assign(assignment)
    return c


def _view(board: Board, ports: list[int], elapsed: float, duration: float) -> Group:
    table = Table(title="newest decisions", expand=True)
    for col in ("effective (event time)", "customer", "kind", "channel", "what", "topology", "status"):
        table.add_column(col, overflow="fold")
    for row in reversed(board.recent):
        table.add_row(*row)
    kinds = ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(board.decisions.items())) or "none yet"
    dead = ", ".join(f"{r}: {n}" for r, n in board.dead.most_common()) or "none"
    urls = "  ".join(f"http://127.0.0.1:{p}/metrics" for p in ports)
    stats = (
        f"[b]events fed[/b] {board.fed:,}   [b]elapsed[/b] {elapsed:.0f}s / {duration:.0f}s\n"
        f"[b]decisions[/b] {kinds}\n[b]dead letters[/b] {dead}\n[b]metrics[/b] {urls}"
    )
    return Group(Panel(stats, title="tactful demo: Ctrl-C to stop"), table)


def run_demo(
    settings: Settings, *, duration: float, rate: float, workers: int, customers: int, console: Console
) -> int:
    from streams.live.topics import ensure_topics
    from streams.topology import load_folder

    logs = Path(".run/demo")
    ensure_topics(settings, load_folder(settings.processing.topologies))
    procs = _start_workers(settings, workers, logs)
    stop = threading.Event()
    board = Board()
    errors: list[BaseException] = []
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        console.print(f"starting {workers} workers (logs in {logs}/)...")
        deadline = time.monotonic() + 120
        while not all(_ready(port) for _, port in procs):
            for proc, port in procs:
                if proc.poll() is not None:
                    raise InfraError(f"worker on port {port} exited; see {logs}/")
            if time.monotonic() > deadline or stop.is_set():
                raise InfraError(f"workers not ready in time; see {logs}/")
            time.sleep(0.5)
        # Event time starts now and runs three days over the demo, so absences and
        # windows complete while you watch; ids are new each run.
        seed = int(time.time())
        events = generate(
            customers,
            seed,
            start_ms=int(time.time() * 1000),
            days=3.0,
            scenario_rate=0.5,
            duplicate_rate=0.01,
            invalid_rate=0.01,
            out_of_order_rate=0.02,
        )

        def counted() -> Iterator[object]:
            for e in events:
                board.fed += 1
                yield e

        def feeder() -> None:
            try:
                feed(settings, counted(), rate=rate, duration=duration, should_stop=stop.is_set)
            except TactfulError as exc:
                errors.append(exc)
                stop.set()

        threading.Thread(target=feeder, daemon=True).start()
        consumer = _consumer(settings)
        started = time.monotonic()
        resolve = resolver(settings)  # the workers write with the registry's ids when there is one
        with Live(
            _view(board, [p for _, p in procs], 0, duration), console=console, refresh_per_second=4, transient=False
        ) as live:
            while not stop.is_set() and time.monotonic() - started < duration + 5:
                for m in consumer.consume(200, 0.25):
                    if m.error() is not None:
                        continue
                    if m.topic() == settings.topics.dlq:
                        reason = dict(m.headers() or []).get("tactful.reason") or b"?"
                        board.dead[reason.decode() if isinstance(reason, bytes) else reason] += 1
                        continue
                    d = avro.decode(m.value() or b"", resolve)
                    board.decisions[(d["kind"], d["status"])] += 1
                    what = d.get("action") or d.get("category") or ""
                    board.recent.append(
                        (
                            format_time(d["effective_at"]),
                            d["customer_id"],
                            d["kind"],
                            d["channel"],
                            what,
                            d["topology"],
                            d["status"],
                        )
                    )
                live.update(_view(board, [p for _, p in procs], time.monotonic() - started, duration))
        consumer.close()
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        console.print("workers stopped.")
    if errors:
        raise errors[0]
    total = sum(board.decisions.values())
    console.print(
        f"demo done: {board.fed:,} events fed, {total:,} decisions, {sum(board.dead.values()):,} dead letters."
    )
    return 0 if total else 1
