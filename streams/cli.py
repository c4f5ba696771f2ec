"""The ``tactful`` command line. The only place that reads the environment."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click
import orjson

from streams.errors import ConfigError, EventsFileError, InputError, TactfulError, TopologyError

if TYPE_CHECKING:
    from streams.settings import Settings

EXIT_EVENTS_UNREADABLE = 1
EXIT_TOPOLOGIES_INVALID = 2


def _load_catalog(folder: str):  # type: ignore[no-untyped-def]
    from streams.topology import load_folder

    try:
        return load_folder(folder)
    except TopologyError as exc:
        for p in exc.problems:
            click.echo(f"error: {p}", err=True)
        click.echo(f"{len(exc.problems)} problem(s) in {folder}", err=True)
        sys.exit(EXIT_TOPOLOGIES_INVALID)


@click.group()
@click.version_option(package_name="tactful")
def main() -> None:
    """tactful: stop tactless marketing across channels, in real time."""


@main.command()
@click.argument("folder", type=click.Path(file_okay=False))
def validate(folder: str) -> None:
    """Check a topologies folder; print every problem (exit 2 on errors)."""
    catalog = _load_catalog(folder)
    for t in catalog.topologies:
        click.echo(f"ok  {t.name} v{t.version}  ({t.file}, priority {t.priority})")
    click.echo(
        f"{len(catalog.topologies)} topologies valid; policies: lateness "
        f"{catalog.policies.lateness // 1000}s, retention {catalog.policies.retention // 86_400_000}d"
    )


@main.command()
@click.option(
    "--topologies",
    "topologies",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of topology *.yaml files and an optional policies.yaml.",
)
@click.option(
    "--events",
    "events",
    required=True,
    # Not click.Path: an unreadable events file must exit 1 (contract section 6), not click's 2.
    help="JSON Lines or Avro object container file.",
)
@click.option(
    "--until", "until", default=None, help="Move the watermark here after the last event (epoch ms or ISO-8601)."
)
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write decisions here instead of standard output.",
)
@click.option("--audit", is_flag=True, help="Write every decision with its status and cause.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal)."
)
def replay(
    topologies: str, events: str, until: str | None, out: str | None, audit: bool, progress: bool | None
) -> None:
    """Run topologies over a file of events with no broker (contract section 6)."""
    from streams.replay import open_events, replay_numbered
    from streams.timeutil import parse_time_option

    catalog = _load_catalog(topologies)
    try:
        until_ms = parse_time_option(until) if until is not None else None
    except TactfulError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from exc

    def reject(line: int, exc: InputError) -> None:
        click.echo(f"line {line}: {exc.reason}: {exc.detail}", err=True)

    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    try:
        source = open_events(Path(events))
        with _ProgressBar(show, source.size, source.position) as bar:
            result = replay_numbered(catalog, source.records, until_ms, on_reject=reject, on_progress=bar.tick)
    except EventsFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_EVENTS_UNREADABLE)
    elapsed = time.perf_counter() - started
    sink: IO[bytes]
    with open(out, "wb") if out else _stdout() as sink:
        for d in result.all_decisions:
            if audit or d.emitted:
                sink.write(orjson.dumps(d.to_json(audit=audit)) + b"\n")
    _print_summary(result.summary, elapsed)


@main.command()
@click.option("--customers", default=1000, show_default=True, type=click.IntRange(1), help="How many customers.")
@click.option(
    "--events", "total", default=None, type=click.IntRange(1), help="Exactly this many valid events (noise fills up)."
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--start", default="2026-05-04T00:00:00Z", show_default=True, help="Time of the first event.")
@click.option("--days", default=3.0, show_default=True, type=click.FloatRange(min=0.01))
@click.option(
    "--scenario-rate",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of customers living a shipped scenario.",
)
@click.option(
    "--out-of-order",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of events arriving displaced (within lateness).",
)
@click.option(
    "--duplicates", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="Share of events sent twice."
)
@click.option(
    "--invalid", default=0.0, show_default=True, type=click.FloatRange(0, 1), help="Share of broken events added."
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output file: .jsonl, or .avro for an Avro object container.",
)
def generate(
    customers: int,
    total: int | None,
    seed: int,
    start: str,
    days: float,
    scenario_rate: float,
    out_of_order: float,
    duplicates: float,
    invalid: float,
    out: str,
) -> None:
    """Write synthetic touchpoint journeys (the shipped scenarios amid browsing noise)."""
    from streams import generate as gen
    from streams.timeutil import parse_time_option

    try:
        start_ms = parse_time_option(start)
        events = (
            functools.partial(gen.generate_events, total, customers, seed)
            if total
            else functools.partial(gen.generate, customers, seed)
        )
        result = gen.write(
            out,
            events(
                start_ms=start_ms,
                days=days,
                scenario_rate=scenario_rate,
                out_of_order_rate=out_of_order,
                duplicate_rate=duplicates,
                invalid_rate=invalid,
            ),
        )
    except TactfulError as exc:
        raise click.UsageError(str(exc)) from exc
    extra = f" ({result.skipped} that Avro cannot hold were left out)" if result.skipped else ""
    click.echo(f"wrote {result.written:,} events for {customers:,} customers to {out}{extra}", err=True)


def _settings(**overrides: object) -> Settings:
    """Settings from TACTFUL_* variables, with command-line values on top."""
    import os

    from streams.settings import Settings, unknown_variables

    for warning in unknown_variables(os.environ):
        click.echo(f"warning: {warning}", err=True)
    try:
        return Settings.from_env(os.environ, **overrides)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from exc


@main.command()
@click.option("--topologies", default=None, help="Topologies folder (TACTFUL_TOPOLOGIES).")
@click.option("--web-port", type=int, default=None, help="HTTP port for /metrics, /health, /ready (TACTFUL_WEB_PORT).")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers (TACTFUL_BOOTSTRAP_SERVERS).")
@click.option("--data-dir", default=None, help="Local state folder (TACTFUL_DATA_DIR).")
@click.option("--loglevel", default="info", show_default=True)
def worker(
    topologies: str | None, web_port: int | None, bootstrap_servers: str | None, data_dir: str | None, loglevel: str
) -> None:
    """Run a live worker: consume touchpoints, publish decisions, mirror suppressions to Redis."""
    import asyncio

    from streams.gctune import tune
    from streams.live.faust import create_worker, faust_worker

    tune()
    # uvloop must be the loop before the app exists: building the app binds one.
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.set_event_loop(asyncio.new_event_loop())
    except ImportError:  # optional on platforms without it
        pass

    settings = _settings(
        topologies=topologies, web_port=web_port, bootstrap_servers=bootstrap_servers, data_dir=data_dir
    )
    catalog = _load_catalog(str(settings.processing.topologies))
    try:
        built = create_worker(settings, catalog)
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    faust_worker(built.app, loglevel).execute_from_commandline()


@main.command()
@click.argument("customer")
@click.argument("channel")
@click.argument("category", required=False)
@click.option("--redis-url", default=None, help="Redis URL (TACTFUL_REDIS_URL).")
def check(customer: str, channel: str, category: str | None, redis_url: str | None) -> None:
    """May I market to CUSTOMER on CHANNEL (for CATEGORY)? Exit 0: yes; 3: suppressed."""
    import asyncio

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from streams.live.mirror import explain, is_suppressed

    settings = _settings(redis_url=redis_url)
    if not settings.redis.url:
        raise click.UsageError("no Redis: set TACTFUL_REDIS_URL or --redis-url")

    async def ask() -> tuple[bool, list[tuple[str, str, int]]]:
        client = Redis.from_url(settings.redis.url or "", socket_timeout=2.0)
        try:
            found = await is_suppressed(client, settings.redis.prefix, customer, channel, category)
            why = await explain(client, settings.redis.prefix, customer, channel, category) if found else []
            return found, why
        finally:
            await client.aclose()

    try:
        suppressed, why = asyncio.run(ask())
    except RedisError as exc:
        click.echo(f"error: Redis at {settings.redis.url} did not answer: {exc}", err=True)
        sys.exit(1)
    from streams.timeutil import format_time

    if not suppressed:
        click.echo(f"yes: {customer} may be marketed to on {channel}" + (f" for {category}" if category else ""))
        return
    click.echo(f"no: {customer} is suppressed on {channel}" + (f" for {category}" if category else ""))
    for topology, cat, expires in why:
        click.echo(f"  {topology}: category {cat} until {format_time(expires)}")
    sys.exit(3)


@main.command("redis-rebuild")
@click.option("--keep", is_flag=True, help="Do not clear the mirror's keys first.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to read the decision topics.")
def redis_rebuild(keep: bool, timeout: float) -> None:
    """Restore the Redis suppression mirror from the decision topics (Kafka is the source of truth)."""
    import asyncio

    from redis.asyncio import Redis

    from streams.codec import avro
    from streams.live.mirror import read_decision_topics, rebuild, wall_clock_ms
    from streams.live.topics import channels

    settings = _settings()
    catalog = _load_catalog(str(settings.processing.topologies))
    if not settings.redis.url:
        raise click.UsageError("no Redis: set TACTFUL_REDIS_URL")
    topics = [settings.topics.decision(ch) for ch in channels(catalog)]
    try:
        decisions = read_decision_topics(
            settings.kafka.bootstrap_servers, topics, avro.local_registry().resolve, timeout
        )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)

    async def apply() -> object:
        client = Redis.from_url(settings.redis.url or "")
        try:
            return await rebuild(
                client, decisions, prefix=settings.redis.prefix, now_ms=wall_clock_ms(), clear=not keep
            )
        finally:
            await client.aclose()

    stats = asyncio.run(apply())
    click.echo(f"read {len(decisions):,} decisions from {len(topics)} topics; {stats}")


@main.command()
@click.option("--customers", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=200.0, show_default=True, help="Events per second; 0 for as fast as possible.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=None, type=int, help="Default: the current time, so ids are new each run.")
def feed(customers: int, rate: float, duration: float | None, seed: int | None) -> None:
    """Produce generated journeys to the input topic (event time starting now)."""
    import time

    from streams.generate import generate
    from streams.live.feed import feed as produce

    settings = _settings()
    now = int(time.time() * 1000)
    events = generate(customers, seed if seed is not None else now // 1000, start_ms=now, scenario_rate=0.5)
    try:
        sent = produce(settings, events, rate=rate or None, duration=duration)
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"sent {sent:,} events to {settings.topics.input}", err=True)


@main.command()
@click.option("--duration", default=60.0, show_default=True, help="Seconds to run (Ctrl-C stops earlier).")
@click.option("--rate", default=200.0, show_default=True, help="Events per second fed.")
@click.option("--workers", "count", default=2, show_default=True, type=click.IntRange(1, 8))
def demo(duration: float, rate: float, count: int) -> None:
    """Live demo: workers, generated journeys at a steady rate, a terminal view of decisions."""
    from rich.console import Console

    from streams.live.demo import run_demo

    settings = _settings()
    # About eight events per customer: enough customers that the feed lasts the whole run.
    customers = max(50, int(rate * duration / 8))
    try:
        sys.exit(
            run_demo(
                settings,
                duration=duration,
                rate=rate,
                workers=count,
                customers=customers,
                console=Console(stderr=False),
            )
        )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


class _ProgressBar:
    """A progress bar on standard error over the bytes of the events file."""

    def __init__(self, enabled: bool, size: int, position: Callable[[], int]) -> None:
        self.enabled = enabled and size > 0
        self.size = size
        self.position = position
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("replaying"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[events]:,} events"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("replay", total=self.size, events=0)
        return self

    def tick(self, events: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=self.position(), events=events)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stdout() -> IO[bytes]:
    class _Keep:
        def __enter__(self) -> IO[bytes]:
            return sys.stdout.buffer

        def __exit__(self, *exc: object) -> None:
            sys.stdout.buffer.flush()

    return _Keep()  # type: ignore[return-value]


def _print_summary(summary: dict[str, object], elapsed: float) -> None:
    events = summary["events"]
    parts = [
        f"{events} events",
        f"{summary['invalid']} invalid",
        f"{summary['late']} late",
        f"{summary['duplicates']} duplicates",
    ]
    click.echo(f"summary: {', '.join(parts)} in {elapsed:.2f}s", err=True)
    decisions = summary["decisions"]
    assert isinstance(decisions, dict)
    for kind, statuses in decisions.items():
        text = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        click.echo(f"  {kind}: {text}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
