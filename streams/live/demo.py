"""``tactful demo``: two live workers, generated journeys at a steady rate, a terminal view.

It starts the workers as child processes (logs under ``.run/demo/``), feeds
generated touchpoints from a background thread, reads the audit and
dead-letter topics, and shows the newest decisions with counters. It stops on
Ctrl-C or once ``duration`` seconds of feeding have passed (the workers'
start-up before is not counted), and stops everything it started.

The view is the only thing on the terminal while it runs: the demo's own log
lines (librdkafka's included, which :mod:`streams.clients` turns into Python
logging) go to ``.run/demo/demo.log``, the workers' to their own files. Its
columns have fixed widths (longer values are cut with an ellipsis), so the
table does not jump as rows come and go.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
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
from streams.live.codecs import resolver
from streams.live.feed import Hold, event_time_reached, feed, live_journeys
from streams.settings import Settings
from streams.timeutil import DAY, format_time

STOP_TIMEOUT_S = 15.0  # workers get this long to stop cleanly, then are killed


@contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """While the view runs, log lines go to ``path``, not the terminal (they would tear the view)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    try:
        yield
    finally:
        root.handlers[:] = saved
        handler.close()


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
        env = {
            **os.environ,
            # The brokers and Redis the demo itself found (the command line may have derived them).
            "TACTFUL_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "TACTFUL_REDIS_URL": settings.redis.url or "",
            "TACTFUL_WEB_PORT": str(port),
            "TACTFUL_DATA_DIR": str(logs / f"worker{i}"),
        }
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


_STREAM_TIME = re.compile(r'^tactful_stream_time_(ahead|behind)_seconds\{partition="\d+"\} (\S+)$', re.MULTILINE)


def _stream_time(port: int, now_ms: int) -> int | None:
    """The newest stream time of a worker's partitions, from its /metrics (None: none has one yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return _newest_stream_time(text, now_ms)


def _newest_stream_time(text: str, now_ms: int) -> int | None:
    """The newest stream time in a worker's /metrics text (ahead and behind gauges), epoch ms."""
    times = [
        now_ms + round(float(value) * 1000) * (1 if side == "ahead" else -1)
        for side, value in _STREAM_TIME.findall(text)
        if float(value) > 0
    ]
    return max(times) if times else None


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


# (header, width): fixed for the run, so the table keeps its shape whatever the rows hold.
# 118 characters with borders and padding: one 120-column terminal line.
COLUMNS = (
    ("event time", 14),
    ("customer", 10),
    ("kind", 8),
    ("channel", 11),
    ("what", 22),
    ("topology", 22),
    ("status", 9),
)
_FLEXIBLE = ("what", "topology")  # narrower terminals take their room from these, never from the rest


def _columns(terminal: int) -> tuple[tuple[str, int], ...]:
    """:data:`COLUMNS` fitted to a terminal ``terminal`` characters wide (chosen once, at the start).

    "what" and "topology" give up room first, down to 8 each; below that the
    topology column goes and "what" takes what is left (at least 6).
    """
    columns = list(COLUMNS)
    short = sum(w + 3 for _, w in columns) + 1 - terminal  # cells, padding and borders
    if short <= 0:
        return COLUMNS
    if short > 2 * (22 - 8):
        columns = [c for c in columns if c[0] != "topology"]
        short -= 22 + 3
        return tuple((name, max(6, w - short) if name == "what" else w) for name, w in columns)
    each = 22 - (short + 1) // 2
    return tuple((name, each if name in _FLEXIBLE else w) for name, w in columns)


def _short_time(ms: int) -> str:
    """``11-29 16:50:23``: month, day and time of day (UTC), all the view has room for."""
    return format_time(ms)[5:19].replace("T", " ")


def _view(
    board: Board, ports: list[int], elapsed: float, duration: float, columns: tuple[tuple[str, int], ...] = COLUMNS
) -> Group:
    table = Table(title="newest decisions", expand=False)
    for col, width in columns:
        table.add_column(col, width=width, min_width=width, max_width=width, no_wrap=True, overflow="ellipsis")
    shown = {name for name, _ in columns}
    keep = [i for i, (name, _) in enumerate(COLUMNS) if name in shown]  # rows hold every column of COLUMNS
    for row in reversed(board.recent):
        table.add_row(*(row[i] for i in keep))
    for _ in range((board.recent.maxlen or 0) - len(board.recent)):
        table.add_row(*([""] * len(columns)))  # a steady height too
    kinds = ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(board.decisions.items())) or "none yet"
    dead = ", ".join(f"{r}: {n}" for r, n in board.dead.most_common()) or "none"
    urls = "  ".join(f"http://127.0.0.1:{p}/metrics" for p in ports)
    stats = (
        f"[b]events fed[/b] {board.fed:>9,}   [b]elapsed[/b] {min(elapsed, duration):>4.0f}s / {duration:.0f}s\n"
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
        # Three days of event time run by over the demo, so absences and windows
        # complete while you watch; they end now, so the watermark never runs ahead
        # of the wall clock (streams/live/feed.py); ids are new each run.
        seed = int(time.time())
        now = int(time.time() * 1000)
        # A partition's stream time survives the workers, and follows the wall clock once it
        # idles: start no earlier than where an earlier run left it or the workers now stand.
        found = [event_time_reached(settings), *(_stream_time(port, now) for _, port in procs)]
        reached = max((t for t in found if t is not None), default=None)
        if reached is not None and reached > now - 3 * DAY:
            console.print(
                f"event time resumes at {format_time(reached)}, where the workers' stream time stands "
                f"({(now - reached) / 60_000:.0f} min ago); `make wipe` for a fresh three days."
            )
        events = live_journeys(
            customers,
            seed,
            now_ms=now,
            reached=reached,
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
                feed(settings, counted(), rate=rate, duration=duration, should_stop=stop.is_set, hold=Hold())
            except TactfulError as exc:
                errors.append(exc)
                stop.set()

        consumer = _consumer(settings)
        started = time.monotonic()
        threading.Thread(target=feeder, daemon=True).start()
        resolve = resolver(settings)  # the workers write with the registry's ids when there is one
        columns = _columns(console.width)
        with (
            _logs_to(logs / "demo.log"),
            Live(
                _view(board, [p for _, p in procs], 0, duration, columns),
                console=console,
                refresh_per_second=4,
                transient=False,
            ) as live,
        ):
            while not stop.is_set() and time.monotonic() - started < duration:
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
                            _short_time(d["effective_at"]),
                            d["customer_id"],
                            d["kind"],
                            d["channel"],
                            what,
                            d["topology"],
                            d["status"],
                        )
                    )
                live.update(_view(board, [p for _, p in procs], time.monotonic() - started, duration, columns))
            consumer.close()
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        console.print("stopping workers...")
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        # One bound for all of them: a demo that said 30 s should not linger a minute after.
        give_up = time.monotonic() + STOP_TIMEOUT_S
        for proc, _ in procs:
            try:
                proc.wait(timeout=max(0.1, give_up - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        console.print("workers stopped.")
    if errors:
        raise errors[0]
    total = sum(board.decisions.values())
    console.print(
        f"demo done: {board.fed:,} events fed, {total:,} decisions, {sum(board.dead.values()):,} dead letters."
    )
    return 0 if total else 1
