"""``tactful demo``: two live workers, generated journeys at a steady rate, a terminal view, a report.

It writes its two catalogs (:mod:`streams.live.demo_script`: a global control
group, short goal windows, one topology in shadow, then live), starts the
workers on the first as child processes (logs under ``.run/demo/``), feeds
generated touchpoints from a background thread, reads the audit and
dead-letter topics, and shows the newest decisions with counters. Half-way
it deploys the second catalog (from a thread: a deploy reads the catalog
topic and the committed offsets first) and shows, from each worker's
``/ready``, the version in force on its partitions, and the flipped
topology's decisions by version. Each engagement emitted goes to the
simulated channels, whose outcomes join the feed. It stops on Ctrl-C or
once ``duration`` seconds of feeding have passed (the workers' start-up
before is not counted), stops everything it started, then writes
``tactful report`` over the run's audit topic and touchpoints to
``out/demo-report.html`` and ``.json``.

The view is the only thing on the terminal while it runs: the demo's own log
lines (librdkafka's included, which :mod:`streams.clients` turns into Python
logging) go to ``.run/demo/demo.log``, the workers' to their own files. Its
columns have fixed widths (longer values are cut with an ellipsis), so the
table does not jump as rows come and go.
"""

from __future__ import annotations

import json
import logging
import os
import queue
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
from streams.decisions import Decision
from streams.errors import InfraError, TactfulError
from streams.live.catalog.deploy import DeployResult, deploy, read_versions, who_now
from streams.live.catalog.record import short
from streams.live.codecs import resolver
from streams.live.demo_script import (
    FLIPPED,
    FUNNEL,
    DemoCatalogs,
    ReportFiles,
    demo_catalogs,
    simulated_outcomes,
    start_time,
    switch_time,
    write_report,
)
from streams.live.feed import Hold, event_time_reached, feed, live_journeys, live_window
from streams.settings import Settings
from streams.timeutil import DAY, format_time, parse_time
from streams.topology import Catalog

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
    # The feed's event time: the first and newest occurred_at sent, and when the first was (monotonic).
    first_sent: int | None = None
    newest_sent: int | None = None
    first_sent_at: float = 0.0
    # The catalog story: the two versions, the deploy, and what each worker runs (/ready).
    catalog: list[str] = field(default_factory=list)  # lines about the versions, for the panel
    in_force: dict[int, dict[str, str]] = field(default_factory=dict)  # port -> partition -> hash
    flipped: str | None = None
    window: str = ""  # the event time the feed covers, for the panel
    outcomes: Counter[str] = field(default_factory=Counter)  # what the simulated channels reported
    flipped_decisions: Counter[tuple[int, str]] = field(default_factory=Counter)  # (version, status)

    def sent(self, occurred_at: int | None) -> None:
        self.fed += 1
        if occurred_at is None:
            return
        if self.first_sent is None:
            self.first_sent, self.first_sent_at = occurred_at, time.monotonic()
        self.newest_sent = occurred_at if self.newest_sent is None else max(self.newest_sent, occurred_at)


def _start_workers(
    settings: Settings, count: int, logs: Path, topologies: Path
) -> list[tuple[subprocess.Popen[bytes], int]]:
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
            # The demo's first catalog: published as the first version on an empty catalog topic.
            "TACTFUL_TOPOLOGIES": str(topologies),
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
    lines = [
        f"[b]events fed[/b] {board.fed:>9,}   [b]elapsed[/b] {min(elapsed, duration):>4.0f}s / {duration:.0f}s",
        *(
            [board.window + (f", fed up to {_short_time(board.newest_sent)}" if board.newest_sent else "")]
            if board.window
            else []
        ),
        f"[b]decisions[/b] {kinds}",
        f"[b]dead letters[/b] {dead}",
        *board.catalog,
    ]
    if board.in_force:
        lines.append("[b]in force[/b] " + "   ".join(_in_force(port, board.in_force.get(port, {})) for port in ports))
    if board.flipped is not None:
        lines.append(f"[b]{board.flipped}[/b] {_by_version(board.flipped_decisions)}")
    reported = ", ".join(f"{n} {stage}" for stage, n in sorted(board.outcomes.items(), key=_funnel_order))
    lines.append(f"[b]simulated channels[/b] {reported or 'no engagement yet'}")
    lines.append(f"[b]metrics[/b] {urls}")
    return Group(Panel("\n".join(lines), title="tactful demo: Ctrl-C to stop"), table)


def _funnel_order(item: tuple[str, int]) -> int:
    stages = [stage for stage, _ in FUNNEL]
    return stages.index(item[0]) if item[0] in stages else len(stages)


def _in_force(port: int, partitions: dict[str, str]) -> str:
    """``:6066 1fb109e07a6e (p0 p1)``: the versions a worker runs, with their partitions (from /ready)."""
    by_hash: dict[str, list[str]] = {}
    for p, h in sorted(partitions.items(), key=lambda kv: int(kv[0])):
        by_hash.setdefault(short(h), []).append(f"p{p}")
    versions = " ".join(f"{h} ({' '.join(ps)})" for h, ps in by_hash.items()) or "no partition yet"
    return f":{port} {versions}"


def _by_version(counts: Counter[tuple[int, str]]) -> str:
    """``v1: shadow 35 · v2: emitted 12, held_out 3``: a topology's decisions by its version and status."""
    versions = sorted({v for v, _ in counts})
    return (
        " · ".join(
            f"v{v}: " + ", ".join(f"{s} {n}" for (w, s), n in sorted(counts.items()) if w == v) for v in versions
        )
        or "no decision yet"
    )


def run_demo(
    settings: Settings,
    *,
    duration: float,
    rate: float,
    workers: int,
    customers: int,
    console: Console,
    out: Path = Path("out"),
) -> int:
    from streams.live.topics import ensure_topics
    from streams.topology import load_folder

    logs = Path(".run/demo")
    cats = demo_catalogs(Path(settings.processing.topologies), logs / "catalog")
    before, after = load_folder(cats.before), load_folder(cats.after)
    ensure_topics(settings, before)
    procs = _start_workers(settings, workers, logs, cats.before)
    ports = [p for _, p in procs]
    stop = threading.Event()
    board = Board(flipped=cats.flipped)
    errors: list[BaseException] = []
    deploys: list[DeployResult] = []
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    engaged: queue.SimpleQueue[Decision] = queue.SimpleQueue()  # engagements for the simulated channels
    fed_since: int | None = None  # wall clock (epoch ms) of the feed's start: the report reads from there
    try:
        console.print(f"starting {workers} workers (logs in {logs}/)...")
        deadline = time.monotonic() + 120
        while not all(_ready(port) for port in ports):
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
        found = [event_time_reached(settings), *(_stream_time(port, now) for port in ports)]
        reached = max((t for t in found if t is not None), default=None)
        if reached is not None and reached > now - 3 * DAY:
            console.print(
                f"event time resumes at {format_time(reached)}, where the workers' stream time stands "
                f"({(now - reached) / 60_000:.0f} min ago); `make wipe` for a fresh three days."
            )
        window_start, window_days = live_window(now, reached, 3.0)
        board.window = f"[b]event time[/b] {_short_time(window_start)} to {_short_time(now)}" + (
            ""
            if window_days >= 1
            else f" (only {window_days * 24 * 60:.0f} min since the last run: `make wipe` for three days)"
        )
        first = _deploy_before(settings, cats.before, before, window_start)
        board.catalog = [
            f"[b]catalog[/b] {short(first.record.hash)}: {', '.join(cats.changes)}",
            f"[b]deploy[/b] {cats.after.name}/ half-way, at {duration / 2:.0f}s: {cats.flipped} live"
            if cats.flipped
            else f"[b]deploy[/b] none: {settings.processing.topologies} has no {FLIPPED} to flip from shadow",
        ]
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

        goals = {t.name: t.goal.pattern for t in after.topologies if t.goal is not None}

        def counted() -> Iterator[object]:
            for e in events:
                at = _occurred_at(e)
                # The simulated channels' reports, stamped where the feed's event time now stands.
                while at is not None and board.newest_sent is not None and not engaged.empty():
                    decision = engaged.get()
                    for outcome in simulated_outcomes(decision, goals.get(decision.topology), board.newest_sent):
                        yield outcome
                        board.outcomes[str(outcome["type"]).removeprefix("decision.")] += 1
                        board.sent(_occurred_at(outcome))
                yield e
                # Counted once sent: the feed asks for the next record only after this one
                # was produced (its Hold may first wait for an event due after the wall clock).
                board.sent(at)

        def feeder() -> None:
            try:
                feed(settings, counted(), rate=rate, duration=duration, should_stop=stop.is_set, hold=Hold())
            except TactfulError as exc:
                errors.append(exc)
                stop.set()

        def deployer() -> None:
            try:
                deploys.append(_deploy_after(settings, cats.after, after, board))
            except TactfulError as exc:
                errors.append(exc)
                stop.set()

        consumer = _consumer(settings)
        started = time.monotonic()
        fed_since = int(time.time() * 1000)
        threading.Thread(target=feeder, daemon=True).start()
        resolve = resolver(settings)  # the workers write with the registry's ids when there is one
        columns = _columns(console.width)
        deployer_thread: threading.Thread | None = None
        asked = 0.0
        with (
            _logs_to(logs / "demo.log"),
            Live(_view(board, ports, 0, duration, columns), console=console, refresh_per_second=4) as live,
        ):
            while not stop.is_set() and time.monotonic() - started < duration:
                half_way = time.monotonic() - started >= duration / 2
                if deployer_thread is None and half_way and board.newest_sent is not None and cats.flipped:
                    deployer_thread = threading.Thread(target=deployer, daemon=True)
                    deployer_thread.start()
                    board.catalog[1] = f"[b]deploy[/b] {cats.after.name}/: deploying..."
                if deploys and board.catalog[1].endswith("deploying..."):
                    board.catalog[1] = _deployed_line(deploys[0], cats, time.monotonic() - started)
                if time.monotonic() - asked >= 1.0:  # what each worker runs, from /ready
                    asked = time.monotonic()
                    for port in ports:
                        board.in_force[port] = _catalog_in_force(port)
                for m in consumer.consume(200, 0.25):
                    if m.error() is not None:
                        continue
                    if m.topic() == settings.topics.dlq:
                        reason = dict(m.headers() or []).get("tactful.reason") or b"?"
                        board.dead[reason.decode() if isinstance(reason, bytes) else reason] += 1
                        continue
                    d = avro.decode(m.value() or b"", resolve)
                    _show(board, d)
                    if d["kind"] == "ENGAGE" and d["status"] == "emitted":
                        engaged.put(Decision.from_record(d))
                live.update(_view(board, ports, time.monotonic() - started, duration, columns))
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
    if deploys:
        console.print(_switch_summary(board, deploys[0]), highlight=False)
    if not total:
        return 1
    assert fed_since is not None
    console.print("writing the report over this run's audit topic and touchpoints...")
    files = report_from_topics(settings, since=fed_since, catalog=after, out=out)
    for line in files.lines:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"report: {files.html} (open it in a browser), {files.json}", soft_wrap=True)
    console.print(  # one line, whatever the terminal's width: it is to be copied
        "the same at any time: tactful report --from-topic --events-from-topic"
        f" --since {format_time(fed_since)} --topologies {cats.after} --html {files.html}",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _occurred_at(raw: object) -> int | None:
    """A generated record's ``occurred_at`` in epoch ms (None for the broken ones the generator adds)."""
    value = raw.get("occurred_at") if isinstance(raw, dict) else None
    if isinstance(value, int):
        return value
    try:
        return parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _show(board: Board, d: dict[str, object]) -> None:
    """Count one audit record and put it at the top of the table."""
    kind, status, topology = str(d["kind"]), str(d["status"]), str(d["topology"])
    board.decisions[(kind, status)] += 1
    if topology == board.flipped and kind != "GOAL":
        board.flipped_decisions[(int(str(d["topology_version"])), status)] += 1
    # A GOAL record has no channel nor action: its cause is the match's arm.
    what = (d.get("cause") if kind == "GOAL" else d.get("action") or d.get("category")) or ""
    channel = d.get("channel") or "-"
    effective = d["effective_at"]
    board.recent.append(
        (
            _short_time(effective if isinstance(effective, int) else 0),
            str(d["customer_id"]),
            kind,
            str(channel),
            str(what),
            topology,
            status,
        )
    )


def _catalog_in_force(port: int) -> dict[str, str]:
    """The catalog version in force on each of a worker's partitions, from its /ready (empty: not known)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return {}
    partitions = body.get("catalog", {}).get("partitions", {}) if isinstance(body, dict) else {}
    return {str(p): str(h) for p, h in partitions.items()} if isinstance(partitions, dict) else {}


def _deploy_before(settings: Settings, folder: Path, catalog: Catalog, window_start: int) -> DeployResult:
    """The first catalog in force: a worker published it on an empty catalog topic (then this is a no-op);
    on a topic with an earlier run's versions, it is deployed again for where this run's feed starts."""
    live, _ = read_versions(settings)
    newest = live.versions.newest()
    lateness = (newest.catalog if newest else catalog).policies.lateness
    at = start_time(window_start, lateness, newest.at if newest else None)
    return deploy(settings, folder, catalog, at, who_now())


def _deploy_after(settings: Settings, folder: Path, catalog: Catalog, board: Board) -> DeployResult:
    """Half-way: deploy the changed catalog for the event time the watermarks reach a few seconds from now."""
    live, _ = read_versions(settings)
    newest = live.versions.newest()
    if board.newest_sent is None or board.first_sent is None:
        raise InfraError("nothing was fed by half-way: no time to deploy the changed catalog at")
    at = switch_time(
        board.newest_sent,
        board.first_sent,
        time.monotonic() - board.first_sent_at,
        (newest.catalog if newest else catalog).policies.lateness,
        floor=newest.at if newest else 0,
    )
    return deploy(settings, folder, catalog, at, who_now())


def _deployed_line(result: DeployResult, cats: DemoCatalogs, elapsed: float) -> str:
    record = result.record
    what = f"{cats.flipped} live" if cats.flipped else record.changes.summary()
    return (
        f"[b]deploy[/b] {short(record.hash)} at {elapsed:.0f}s: {what} from event time {_short_time(record.at)},"
        " on every partition"
    )


def _switch_summary(board: Board, deployed: DeployResult) -> str:
    """Whether every partition the workers last showed runs the version deployed half-way."""
    new = deployed.record.hash
    runs = [h for partitions in board.in_force.values() for h in partitions.values()]
    if runs and all(h == new for h in runs):
        return f"catalog: all {len(runs)} partitions switched to {short(new)} at {format_time(deployed.record.at)}."
    behind = sum(h != new for h in runs)
    return (
        f"catalog: {behind} of {len(runs)} partitions still on the version before {short(new)} when the demo"
        " stopped (their watermarks had not reached its time, or a worker refused it: see .run/demo/worker*.log)."
    )


def report_from_topics(settings: Settings, *, since: int, catalog: Catalog, out: Path) -> ReportFiles:
    """``tactful report --from-topic --events-from-topic --since SINCE``, written to ``out/demo-report.*``."""
    from streams.clients import kafka_options
    from streams.report import inputs

    resolve = resolver(settings)
    options = kafka_options(settings.kafka)
    audit = inputs.open_topic(
        options, settings.topics.audit, since=since, until=None, decode=inputs.avro_decision(resolve)
    )
    touchpoints = inputs.open_topic(
        options, settings.topics.input, since=since, until=None, decode=inputs.avro_touchpoint(resolve)
    )
    return write_report(audit, touchpoints, catalog, out)
