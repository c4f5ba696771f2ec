"""The ``tactful`` command line. The only place that reads the environment.

One error boundary (:class:`_Tactful`, the ``tactful`` group) turns every
expected failure into one line ``error: ...`` on standard error and a
documented exit code (:data:`EXIT_CODES`, also in ``tactful --help`` and the
README): commands raise (:mod:`streams.errors`, click's usage errors, ``OSError``
for files) and never print-and-exit themselves. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import orjson

from streams.errors import ConfigError, InfraError, InputError, TactfulError, TopologyError
from streams.timeutil import DURATION_FORMS

if TYPE_CHECKING:
    from streams.settings import Settings
    from streams.topology import Catalog

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # a file cannot be read or written; Kafka or Redis failed or did not answer in time
EXIT_EVENTS_UNREADABLE = EXIT_FAILED
EXIT_USAGE = 2  # an unknown flag or bad value, a bad TACTFUL_* setting, invalid topologies
EXIT_TOPOLOGIES_INVALID = EXIT_USAGE
EXIT_SUPPRESSED = 3  # `check`: the customer is suppressed
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

EXIT_CODES = {
    EXIT_OK: "done (check: the customer may be marketed to)",
    EXIT_FAILED: "a file cannot be read or written, or Kafka or Redis failed or did not answer in time",
    EXIT_USAGE: "bad usage: an unknown flag or bad value, a bad TACTFUL_* setting, invalid topologies"
    " (validate --strict: warnings too)",
    EXIT_SUPPRESSED: "check: the customer is suppressed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class _TopologiesInvalid(click.ClickException):
    """A topologies folder does not load: every problem on its own line, then how many."""

    exit_code = EXIT_TOPOLOGIES_INVALID

    def __init__(self, folder: str, error: TopologyError) -> None:
        super().__init__(f"{len(error.problems)} problem(s) in {folder}")
        self.problems = error.problems

    def show(self, file: IO[Any] | None = None) -> None:
        for p in self.problems:
            click.echo(f"error: {p}", err=True)
        click.echo(self.message, err=True)


def _exit_code(exc: BaseException) -> int:
    """Report an expected failure in one line and return its exit code; re-raise anything else."""
    if isinstance(exc, click.UsageError):
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc, click.Abort) and isinstance(exc.__cause__, KeyboardInterrupt)
    ):
        click.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, click.Abort):
        click.echo("error: aborted", err=True)
        return EXIT_FAILED
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, TactfulError):
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`tactful replay | head`): nothing to report to it.
        sys.stdout = click.utils.PacifyFlushWrapper(sys.stdout)
        return EXIT_FAILED
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return EXIT_FAILED
    raise exc


class _Tactful(click.Group):
    """The ``tactful`` group and its error boundary (see the module docstring)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (Exception, KeyboardInterrupt) as exc:
            code = _exit_code(exc)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _epilog() -> str:
    # \b keeps click from re-wrapping the table into one paragraph.
    rows = "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    return f"\b\nExit codes:\n{rows}"


def _load_catalog(folder: str | Path, setting: str | None = None, only: str | None = None) -> Catalog:
    """The topologies of ``folder`` (or its one file ``only``); with ``setting``, a missing folder says what to set."""
    from streams.topology import load_folder

    if setting is not None and not Path(folder).is_dir():
        raise ConfigError(
            f"no topologies folder at {Path(folder).absolute()}: set {setting} to the folder of your topology files"
        )
    try:
        return load_folder(folder, only=only)
    except TopologyError as exc:
        raise _TopologiesInvalid(str(Path(folder) / only) if only else str(folder), exc) from exc


class _StrictWarnings(click.ClickException):
    """`validate --strict` found warnings: they were printed; exit as for invalid topologies."""

    exit_code = EXIT_TOPOLOGIES_INVALID

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


@click.group(cls=_Tactful, epilog=_epilog())
@click.version_option(package_name="tactful")
def main() -> None:
    """tactful: stop tactless marketing across channels, in real time."""


@main.command(
    help="Check a topologies folder, or one topology file of it (with the folder's policies.yaml); "
    "print every problem (exit 2) and every warning: files that are not read, engagements always "
    "blocked by a suppression made before them, channel names policies.yaml does not declare. "
    "Warnings leave the exit status 0 unless --strict.\n\n"
    f"Durations are {DURATION_FORMS}."
)
@click.argument("path", metavar="FOLDER|FILE", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Exit 2 on warnings too, as on problems.")
def validate(path: Path, strict: bool) -> None:
    from streams.timeutil import format_duration
    from streams.topology.lint import catalog_warnings, folder_warnings
    from streams.topology.loader import POLICIES_FILE

    if not path.exists():
        raise click.UsageError(f"{path}: no such folder or file; expected a folder of topology *.yaml files or one")
    if path.is_file() and path.name == POLICIES_FILE:
        raise click.UsageError(f"{path} holds the policies, not a topology: validate its folder, {path.parent}")
    warnings = folder_warnings(path)
    # Before loading: a folder of *.yml files fails to load, and the warning says why.
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    catalog = _load_catalog(path.parent, only=path.name) if path.is_file() else _load_catalog(path)
    later = catalog_warnings(catalog)
    for w in later:
        click.echo(f"warning: {w}", err=True)
    warnings += later
    for t in catalog.topologies:
        click.echo(f"ok  {t.name} v{t.version}  ({t.file}, priority {t.priority})")
    n = len(catalog.topologies)
    policies = catalog.policies
    click.echo(
        f"{n} {'topology' if n == 1 else 'topologies'} valid; policies: lateness "
        f"{format_duration(policies.lateness)}, retention {format_duration(policies.retention)}"
        + (f"; {len(warnings)} warning(s)" if warnings else "")
    )
    if warnings and strict:
        raise _StrictWarnings(f"{len(warnings)} warning(s) in {path} (--strict)")


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
    if out:
        _check_writable(Path(out))

    source = open_events(Path(events))
    unreadable = 0  # records that are not JSON (or too large) at all

    def reject(number: int, exc: InputError) -> None:
        nonlocal unreadable
        if exc.reason in ("malformed", "too_large"):
            unreadable += 1
        click.echo(f"{source.unit} {number}: {exc.reason}: {exc.detail}", err=True)

    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    with _ProgressBar(show, source.size, source.position) as bar:
        result = replay_numbered(catalog, source.records, until_ms, on_reject=reject, on_progress=bar.tick)
    elapsed = time.perf_counter() - started
    sink: IO[bytes]
    with open(out, "wb") if out else _stdout() as sink:
        for d in result.all_decisions:
            if audit or d.emitted:
                sink.write(orjson.dumps(d.to_json(audit=audit)) + b"\n")
    _print_summary(result.summary, elapsed)
    # Still exit 0 (docs/contract-notes.md, "Replay"): the file was read, its records are what is wrong.
    count = result.counts["events"]
    if count == 0:
        click.echo(f"warning: {events} holds no events", err=True)
    elif unreadable == count:
        click.echo(
            f"warning: no {source.unit} of {events} is JSON: "
            "--events takes JSON Lines or an Avro object container file",
            err=True,
        )


def _check_writable(path: Path) -> None:
    """Fail before a long run, not after it, when ``path`` cannot be written (``OSError``)."""
    import errno
    import os

    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"its folder {folder} does not exist", str(path))
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise PermissionError(errno.EACCES, "not writable", str(path))


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

    _check_writable(Path(out))
    try:
        start_ms = parse_time_option(start)
    except TactfulError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from exc
    try:
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
        raise ConfigError(f"invalid settings: {exc}") from exc


class _EchoHandler(logging.Handler):
    """Log records to whatever standard error is when they are written (click's runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a log line must never take the command down
            self.handleError(record)


@contextmanager
def _startup_logging(level: str) -> Iterator[None]:
    """Log lines on standard error until Faust's worker sets up logging its own way."""
    handler = _EchoHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)s] [%(levelname)s] %(message)s"))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


@main.command()
@click.option("--topologies", default=None, help="Topologies folder (TACTFUL_TOPOLOGIES).")
@click.option("--web-port", type=int, default=None, help="HTTP port for /metrics, /health, /ready (TACTFUL_WEB_PORT).")
@click.option("--bootstrap-servers", default=None, help="Kafka bootstrap servers (TACTFUL_BOOTSTRAP_SERVERS).")
@click.option("--data-dir", default=None, help="Local state folder (TACTFUL_DATA_DIR).")
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False),
)
def worker(
    topologies: str | None, web_port: int | None, bootstrap_servers: str | None, data_dir: str | None, loglevel: str
) -> None:
    """Run a live worker: consume touchpoints, publish decisions, mirror suppressions to Redis.

    The catalog topic (TACTFUL_CATALOG_TOPIC) governs which topologies run:
    with no version on it yet, the topologies folder is published as the first
    (see `tactful deploy`). It waits up to TACTFUL_START_TIMEOUT seconds
    (default 60) for the brokers, then exits 1.
    """
    import asyncio

    from streams.gctune import tune
    from streams.live.faust import create_worker, faust_worker

    settings = _settings(
        topologies=topologies, web_port=web_port, bootstrap_servers=bootstrap_servers, data_dir=data_dir
    )
    folder = settings.processing.topologies
    catalog = _load_catalog(folder, setting="TACTFUL_TOPOLOGIES (or --topologies)")
    with _startup_logging(loglevel):
        log.info(
            "topologies from %s: %s",
            folder,
            ", ".join(f"{t.name} v{t.version}" for t in catalog.topologies) or "none",
        )
        if settings.topics.instance_id is None:
            log.warning(
                "TACTFUL_INSTANCE_ID is not set: dynamic group membership, so a restarted worker can wait "
                "a minute or more for partitions; give each worker a stable id (README: Live)"
            )
        tune()
        # uvloop must be the loop before the app exists: building the app binds one.
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            asyncio.set_event_loop(asyncio.new_event_loop())
        except ImportError:  # optional on platforms without it
            pass
        from streams.live.catalog.deploy import first_version, who_now

        live, follow_from = first_version(settings, Path(folder), who_now())
        newest = live.versions.newest()
        assert newest is not None  # first_version publishes the folder when the topic has none
        built = create_worker(settings, newest.catalog, live, follow_from)
    faust_worker(built.app, loglevel).execute_from_commandline()


def _redis_failed(settings: Settings, exc: Exception) -> InfraError:
    """One line for a Redis that did not answer, naming it (without its password)."""
    from streams.clients import redacted

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return InfraError(f"Redis at {redacted(settings.redis.url or '')} did not answer: {cause}")


@main.command()
@click.argument("customer")
@click.argument("channel")
@click.argument("category", required=False)
@click.option("--redis-url", default=None, help="Redis URL (TACTFUL_REDIS_URL).")
@click.pass_context
def check(ctx: click.Context, customer: str, channel: str, category: str | None, redis_url: str | None) -> None:
    """May I market to CUSTOMER on CHANNEL (for CATEGORY)? Exit 0: yes; 3: suppressed."""
    import asyncio

    from redis.exceptions import RedisError

    from streams.clients import redis_client
    from streams.errors import MirrorUnavailable
    from streams.mirror import explain, is_suppressed

    settings = _settings(redis_url=redis_url)
    if not settings.redis.url:
        raise ConfigError("no Redis: set TACTFUL_REDIS_URL or --redis-url")

    async def ask() -> tuple[bool, list[tuple[str, str, int]]]:
        client = redis_client(settings.redis)
        try:
            found = await is_suppressed(client, settings.redis.prefix, customer, channel, category)
            why = await explain(client, settings.redis.prefix, customer, channel, category) if found else []
            return found, why
        finally:
            await client.aclose()

    try:
        suppressed, why = asyncio.run(ask())
    except (MirrorUnavailable, RedisError, OSError) as exc:
        raise _redis_failed(settings, exc) from exc
    from streams.timeutil import format_time

    if not suppressed:
        click.echo(f"yes: {customer} may be marketed to on {channel}" + (f" for {category}" if category else ""))
        return
    click.echo(f"no: {customer} is suppressed on {channel}" + (f" for {category}" if category else ""))
    for topology, cat, expires in why:
        click.echo(f"  {topology}: category {cat} until {format_time(expires)}")
    ctx.exit(EXIT_SUPPRESSED)


@main.command("redis-rebuild")
@click.option("--keep", is_flag=True, help="Do not clear the mirror's keys first.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to read the decision topics.",
)
def redis_rebuild(keep: bool, timeout: float) -> None:
    """Restore the Redis suppression mirror from the decision topics (Kafka is the source of truth)."""
    import asyncio

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from streams.clients import kafka_options, redis_client
    from streams.codec import avro
    from streams.errors import MirrorUnavailable
    from streams.live.decision_topics import read_decision_topics
    from streams.live.topics import channels
    from streams.mirror import rebuild, wall_clock_ms

    settings = _settings()
    catalog = _load_catalog(settings.processing.topologies, setting="TACTFUL_TOPOLOGIES")
    if not settings.redis.url:
        raise ConfigError("no Redis: set TACTFUL_REDIS_URL")
    topics = [settings.topics.decision(ch) for ch in channels(catalog)]

    async def on_redis(work: Callable[[Redis], Awaitable[T]]) -> T:
        client = redis_client(settings.redis, timeout_s=10.0)
        try:
            return await work(client)
        except (MirrorUnavailable, RedisError, OSError) as exc:
            raise _redis_failed(settings, exc) from exc
        finally:
            await client.aclose()

    # Redis first: no point reading every decision topic for a Redis that is not there.
    asyncio.run(on_redis(lambda client: client.ping()))
    # Read on this thread, not in asyncio's executor: Ctrl-C must not wait for the read's timeout.
    decisions = read_decision_topics(kafka_options(settings.kafka), topics, avro.local_registry().resolve, timeout)
    stats = asyncio.run(
        on_redis(
            lambda client: rebuild(
                client, decisions, prefix=settings.redis.prefix, now_ms=wall_clock_ms(), clear=not keep
            )
        )
    )
    count = len(decisions)
    click.echo(f"read {count:,} decisions from {len(topics)} topics; {stats}")


@main.command()
@click.option("--customers", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=200.0, show_default=True, help="Events per second; 0 for as fast as possible.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=None, type=int, help="Default: the current time, so ids are new each run.")
def feed(customers: int, rate: float, duration: float | None, seed: int | None) -> None:
    """Produce generated journeys to the input topic (event time starting now).

    It waits up to TACTFUL_START_TIMEOUT seconds (default 60) for the brokers,
    then exits 1.
    """
    from streams.generate import generate
    from streams.live.feed import feed as produce

    settings = _settings()
    now = int(time.time() * 1000)
    events = generate(customers, seed if seed is not None else now // 1000, start_ms=now, scenario_rate=0.5)
    with _startup_logging("warning"):
        sent = produce(settings, events, rate=rate or None, duration=duration)
    click.echo(f"sent {sent:,} events to {settings.topics.input}", err=True)


@main.command()
@click.argument("customer_id")
@click.option(
    "--at", "at", default=None, help="The erase's occurred_at (epoch ms or ISO-8601); default: now, by this clock."
)
def forget(customer_id: str, at: str | None) -> None:
    """Erase CUSTOMER_ID: write a tactful.erase event for it to the input topic (contract section 9).

    The workers then delete the customer's state, timers and Redis keys and
    tell every channel to forget the customer (docs/erasure.md). It waits up
    to TACTFUL_START_TIMEOUT seconds (default 60) for the brokers, then exits 1.
    """
    import uuid

    from streams.errors import InvalidEvent
    from streams.events import ERASE_TYPE, validate_event
    from streams.live.feed import feed as produce
    from streams.timeutil import format_time, parse_time_option

    try:
        at_ms = parse_time_option(at) if at is not None else int(time.time() * 1000)
    except TactfulError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    record = {
        "event_id": f"erase-{uuid.uuid4().hex}",
        "customer_id": customer_id,
        "type": ERASE_TYPE,
        "occurred_at": at_ms,
    }
    try:
        validate_event(record)
    except InvalidEvent as exc:
        raise click.BadParameter(exc.detail, param_hint="CUSTOMER_ID") from exc
    settings = _settings()
    with _startup_logging("warning"):
        produce(settings, [record])
    click.echo(
        f"sent {ERASE_TYPE} for {customer_id} at {format_time(at_ms)} to {settings.topics.input}"
        f" (event_id {record['event_id']})"
    )


@main.command()
@click.option("--duration", default=60.0, show_default=True, help="Seconds to run (Ctrl-C stops earlier).")
@click.option("--rate", default=200.0, show_default=True, help="Events per second fed.")
@click.option("--workers", "count", default=2, show_default=True, type=click.IntRange(1, 8))
@click.pass_context
def demo(ctx: click.Context, duration: float, rate: float, count: int) -> None:
    """Live demo: workers, generated journeys at a steady rate, a terminal view of decisions."""
    from rich.console import Console

    from streams.live.demo import run_demo

    settings = _settings()
    _load_catalog(settings.processing.topologies, setting="TACTFUL_TOPOLOGIES")
    # About eight events per customer: enough customers that the feed lasts the whole run.
    customers = max(50, int(rate * duration / 8))
    with _startup_logging("warning"):
        code = run_demo(
            settings,
            duration=duration,
            rate=rate,
            workers=count,
            customers=customers,
            console=Console(stderr=False),
        )
    ctx.exit(code)


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


_ERASURE_SUMMARY = (
    ("erasures", "erasures"),
    ("stale_erasures", "erasures that changed nothing"),
    ("erased", "ignored as erased"),
)


def _print_summary(summary: dict[str, object], elapsed: float) -> None:
    events = summary["events"]
    parts = [
        f"{events} events",
        f"{summary['invalid']} invalid",
        f"{summary['late']} late",
        f"{summary['duplicates']} duplicates",
    ]
    # Only when there were any: input with no tactful.* event reports as before.
    erasure = [(summary.get(k, 0), text) for k, text in _ERASURE_SUMMARY]
    parts += [f"{n} {text}" for n, text in erasure if n]
    click.echo(f"summary: {', '.join(parts)} in {elapsed:.2f}s", err=True)
    decisions = summary["decisions"]
    assert isinstance(decisions, dict)
    for kind, statuses in decisions.items():
        text = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        click.echo(f"  {kind}: {text}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()


@main.command(
    help="Publish a topologies folder as a new catalog version on the catalog topic "
    "(TACTFUL_CATALOG_TOPIC): every worker applies it on each partition when the partition's "
    "watermark reaches TIME (docs/catalog.md). Publishing the newest version's folder again does nothing."
)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--at",
    "at",
    default=None,
    help="When it governs (epoch ms or ISO-8601); default: the workers' largest committed stream time"
    " (ahead of every partition's watermark by `lateness`), or now if nothing was processed yet.",
)
def deploy(folder: Path, at: str | None) -> None:
    from streams.live.catalog.deploy import deploy as publish_version
    from streams.live.catalog.deploy import who_now
    from streams.live.catalog.record import short
    from streams.timeutil import format_time, parse_time_option

    catalog = _load_catalog(folder)
    try:
        at_ms = parse_time_option(at) if at is not None else None
    except TactfulError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc
    settings = _settings()
    with _startup_logging("warning"):
        result = publish_version(settings, folder, catalog, at_ms, who_now())
    record = result.record
    if not result.published:
        click.echo(
            f"{folder} is the newest version already ({short(record.hash)}, at {format_time(record.at)}):"
            " nothing deployed"
        )
        return
    click.echo(
        f"deployed {short(record.hash)} at {format_time(record.at)} to {settings.topics.catalog}"
        f" (offset {result.offset}): {record.changes.summary()}"
    )


@main.group(invoke_without_command=True)
@click.pass_context
def catalog(ctx: click.Context) -> None:
    """List the catalog versions on the catalog topic (TACTFUL_CATALOG_TOPIC), oldest first, and the
    version in force on each input partition by the watermark committed with its offset."""
    if ctx.invoked_subcommand is not None:
        return
    from streams.live.catalog.deploy import read_versions
    from streams.live.catalog.kafka import committed_stream_times
    from streams.live.catalog.record import short
    from streams.timeutil import format_time

    settings = _settings()
    with _startup_logging("warning"):
        live, _ = read_versions(settings)
    versions = live.versions.versions()
    if not versions:
        click.echo(f"no catalog version on {settings.topics.catalog}")
        return
    click.echo(f"{'hash':<12}  {'at':<24}  {'deployed':<40}  changes")
    for v in versions:
        d = v.record.deployed
        who = f"{d.by}@{d.host} {format_time(d.at)[:19]}Z"
        click.echo(f"{short(v.hash):<12}  {format_time(v.at):<24}  {who:<40}  {v.record.changes.summary()}")
    # Which version the committed watermarks have reached: what a restarted worker would run.
    with _startup_logging("warning"):
        stream_times = committed_stream_times(settings)
    lateness = versions[-1].catalog.policies.lateness
    by_version: dict[str, list[int]] = {}
    for p, st in sorted(stream_times.items()):
        governing = live.versions.in_force(st - lateness)
        if governing is not None:
            by_version.setdefault(short(governing.hash), []).append(p)
    for h, parts in by_version.items():
        click.echo(f"in force at the committed watermarks: {h} on partition(s) {', '.join(map(str, parts))}")


@catalog.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--events", default="EVENTS", show_default=True, help="The events file to name in the replay command.")
def catalog_export(out: Path, events: str) -> None:
    """Write every version's folder under OUT and print the `replay` command that reproduces the period."""
    import shlex

    from streams.live.catalog.deploy import export, read_versions
    from streams.timeutil import format_time

    settings = _settings()
    with _startup_logging("warning"):
        live, _ = read_versions(settings)
    versions = live.versions.versions()
    if not versions:
        raise ConfigError(f"no catalog version on {settings.topics.catalog} to export")
    written = export(versions, out)
    base = written[0][1]
    args = ["tactful", "replay", "--topologies", str(base)]
    for at_ms, folder in written[1:]:
        args += ["--switch", f"{format_time(at_ms)}={folder}"]
    args += ["--events", events]
    click.echo(f"wrote {len(written)} version(s) to {out}", err=True)
    click.echo(shlex.join(args))
