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
EXIT_DIFFERENT = 4  # `diff --fail-on-difference`: the two catalogs do not decide alike
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

EXIT_CODES = {
    EXIT_OK: "done (check: the customer may be marketed to)",
    EXIT_FAILED: "a file cannot be read or written, or Kafka or Redis failed or did not answer in time",
    EXIT_USAGE: "bad usage: an unknown flag or bad value, a bad TACTFUL_* setting, invalid topologies"
    " (validate --strict: warnings too)",
    EXIT_SUPPRESSED: "check: the customer is suppressed",
    EXIT_DIFFERENT: "diff --fail-on-difference: the catalogs do not decide alike",
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
@click.option(
    "--switch",
    "switch",
    multiple=True,
    metavar="TIME=DIR",
    help="From TIME (as --until) on, run the topologies of DIR instead: a catalog change (contract section 8). "
    "Repeatable; equal times apply in the order given.",
)
def replay(
    topologies: str,
    events: str,
    until: str | None,
    out: str | None,
    audit: bool,
    progress: bool | None,
    switch: tuple[str, ...],
) -> None:
    """Run topologies over a file of events with no broker (contract sections 6 and 8)."""
    from streams.replay import open_events, replay_numbered
    from streams.timeutil import parse_time_option

    catalog = _load_catalog(topologies)
    switches = _switches(switch, parse_time_option)
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
        result = replay_numbered(
            catalog, source.records, until_ms, on_reject=reject, on_progress=bar.tick, switches=switches
        )
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


def _switches(values: tuple[str, ...], parse: Callable[[str], int]) -> list[tuple[int, Catalog]]:
    """Each ``--switch TIME=DIR``, its catalog loaded now (before the first event), in the order given."""
    out: list[tuple[int, Catalog]] = []
    for value in values:
        at, sep, folder = value.partition("=")
        if not sep or not at.strip() or not folder:
            raise click.BadParameter(f"{value!r}: expected TIME=DIR", param_hint="--switch")
        try:
            when = parse(at)
        except TactfulError as exc:
            raise click.BadParameter(f"{value!r}: {exc}", param_hint="--switch") from exc
        if not Path(folder).is_dir():
            raise click.BadParameter(f"{value!r}: no topologies folder at {folder}", param_hint="--switch")
        from streams.topology import load_folder

        try:
            out.append((when, load_folder(folder)))
        except TopologyError as exc:
            raise _TopologiesInvalid(f"{folder} (--switch {value})", exc) from exc
    return out


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
        # After create_worker: a broker that refuses us is then the one line a user sees.
        if settings.topics.instance_id is None:
            log.warning(
                "TACTFUL_INSTANCE_ID is not set: dynamic group membership, so a restarted worker can wait "
                "a minute or more for partitions; give each worker a stable id (README: Live)"
            )
    faust_worker(built.app, loglevel).execute_from_commandline()


def _redis_failed(settings: Settings, exc: Exception) -> InfraError:
    """One line for a Redis that did not answer, naming it (without its password)."""
    from redis.exceptions import AuthenticationError, MovedError, NoPermissionError

    from streams.clients import redacted

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    where = f"Redis at {redacted(settings.redis.url or '')}"
    if isinstance(cause, MovedError):
        return InfraError(f"{where} is a Redis Cluster node (it answered MOVED {cause}): set TACTFUL_REDIS_CLUSTER")
    if isinstance(cause, AuthenticationError | NoPermissionError):
        user = settings.redis.username or "default"
        return InfraError(f"{where} refused user {user}: {cause}")
    return InfraError(f"{where} did not answer: {cause}")


@main.command()
@click.argument("customer")
@click.argument("channel")
@click.argument("category", required=False)
@click.option("--redis-url", default=None, help="Redis URL (TACTFUL_REDIS_URL).")
@click.pass_context
def check(ctx: click.Context, customer: str, channel: str, category: str | None, redis_url: str | None) -> None:
    """May I market to CUSTOMER on CHANNEL (for CATEGORY)? Exit 0: yes; 3: suppressed."""
    import asyncio

    from redis.exceptions import RedisClusterException, RedisError

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
    except (MirrorUnavailable, RedisError, RedisClusterException, OSError) as exc:
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

    from redis.exceptions import RedisClusterException, RedisError

    from streams.clients import kafka_options, redis_client
    from streams.errors import MirrorUnavailable
    from streams.live.codecs import resolver
    from streams.live.decision_topics import read_decision_topics
    from streams.live.topics import channels
    from streams.mirror import RedisClient, rebuild, wall_clock_ms

    settings = _settings()
    catalog = _load_catalog(settings.processing.topologies, setting="TACTFUL_TOPOLOGIES")
    if not settings.redis.url:
        raise ConfigError("no Redis: set TACTFUL_REDIS_URL")
    topics = [settings.topics.decision(ch) for ch in channels(catalog)]

    async def on_redis(work: Callable[[RedisClient], Awaitable[T]]) -> T:
        client = redis_client(settings.redis, timeout_s=10.0)
        try:
            return await work(client)
        except (MirrorUnavailable, RedisError, RedisClusterException, OSError) as exc:
            raise _redis_failed(settings, exc) from exc
        finally:
            await client.aclose()

    # Redis first: no point reading every decision topic for a Redis that is not there.
    asyncio.run(on_redis(lambda client: client.ping()))
    # Read on this thread, not in asyncio's executor: Ctrl-C must not wait for the read's timeout.
    decisions = read_decision_topics(kafka_options(settings.kafka), topics, resolver(settings), timeout)
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
@click.option(
    "--rate",
    default=None,
    type=click.FloatRange(min=0),
    help="Generated journeys: about this many browsing events a second (default 200). "
    "With --events: at most this many a second (default: no limit but each event's time).",
)
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=None, type=int, help="Default: the current time, so ids are new each run.")
@click.option(
    "--events",
    "events_file",
    default=None,
    # Not click.Path: an unreadable events file exits 1, as with replay.
    help="Send your own events from this JSON Lines or Avro object container file instead.",
)
@click.option(
    "--shift-to-now",
    is_flag=True,
    help="With --events: move every occurred_at so the file's first event is now, keeping the gaps.",
)
def feed(
    customers: int,
    rate: float | None,
    duration: float | None,
    seed: int | None,
    events_file: str | None,
    shift_to_now: bool,
) -> None:
    """Produce generated journeys (or your own events) to the input topic, never ahead of the wall clock.

    Generated journeys unfold in real time from now, as real traffic does:
    the browsing arrives at about --rate events a second, each scenario's
    later steps when their time comes (minutes to days later), so the feed
    runs until they end, Ctrl-C or --duration. With --events, each event is
    sent once its occurred_at has come (at once for a file of past events; with
    --shift-to-now, as the file's own rhythm replays from now); records that
    break the contract are reported and not sent. It waits up to
    TACTFUL_START_TIMEOUT seconds (default 60) for the brokers, then exits 1.
    """
    from streams.live.feed import NOISE_PER_CUSTOMER, FileStats, Hold, events_from_file, realtime_journeys
    from streams.live.feed import feed as produce

    if shift_to_now and events_file is None:
        raise click.UsageError("--shift-to-now needs --events FILE")
    settings = _settings()
    now = int(time.time() * 1000)
    stats = FileStats()
    announce: Callable[[], None] | None = None
    if events_file is not None:

        def refuse(number: int, exc: InputError) -> None:
            click.echo(f"{events_file}: record {number}: {exc.reason}: {exc.detail} (not sent)", err=True)

        events: Any = events_from_file(
            Path(events_file), shift_to_ms=now if shift_to_now else None, on_refuse=refuse, stats=stats
        )
        hold = Hold()
        pace = rate or None
    else:
        if rate == 0:
            raise click.BadParameter("generated journeys unfold in real time: give a rate above 0", param_hint="--rate")
        pace = 200.0 if rate is None else rate
        events = realtime_journeys(customers, seed if seed is not None else now // 1000, now_ms=now, rate=pace)
        hold = Hold()
        browsing = customers * NOISE_PER_CUSTOMER / pace

        def announce_journeys() -> None:
            click.echo(
                f"journeys unfold in real time from now: browsing for about {browsing:.0f}s, "
                "scenario steps up to days later; stop with Ctrl-C or --duration",
                err=True,
            )

        announce = announce_journeys
    with _startup_logging("warning"):
        sent = produce(settings, events, rate=pace, duration=duration, hold=hold, on_ready=announce)
    click.echo(f"sent {sent:,} events to {settings.topics.input}", err=True)
    if stats.refused:
        click.echo(f"warning: {stats.refused:,} records of {events_file} were not sent", err=True)


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
    """Live demo: workers, generated journeys, a catalog deploy half-way, a terminal view, then the report
    (out/demo-report.html; docs/demo.md)."""
    import os

    from rich.console import Console

    from streams.live.demo import run_demo

    # The demo runs on the local services: with `TACTFUL_KAFKA_PORT=... make up` (services.sh's
    # ports), find them there unless the addresses are set outright.
    local: dict[str, object] = {}
    if "TACTFUL_BOOTSTRAP_SERVERS" not in os.environ and os.environ.get("TACTFUL_KAFKA_PORT"):
        local["bootstrap_servers"] = f"127.0.0.1:{os.environ['TACTFUL_KAFKA_PORT']}"
    if "TACTFUL_REDIS_URL" not in os.environ and os.environ.get("TACTFUL_REDIS_PORT"):
        local["redis_url"] = f"redis://127.0.0.1:{os.environ['TACTFUL_REDIS_PORT']}/0"
    settings = _settings(**local)
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


@main.command()
@click.argument("channel")
@click.option("--from-beginning", is_flag=True, help="Start at the topic's oldest decision, not at its end.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (the decisions' output form).")
@click.pass_context
def tail(ctx: click.Context, channel: str, from_beginning: bool, as_json: bool) -> None:
    """Print CHANNEL's decisions as they arrive, one line each, until Ctrl-C (exit 130).

    Reads the channel's decision topic with a throwaway consumer group that
    commits nothing; forget records (erased customers) show as FORGET. It waits
    up to TACTFUL_START_TIMEOUT seconds (default 60) for the brokers, then exits 1.
    """
    from streams.channel.tail import json_line, line
    from streams.channel.tail import tail as follow

    settings = _settings()
    form = json_line if as_json else line
    skipped = 0

    def skip(reason: str) -> None:
        nonlocal skipped
        skipped += 1
        log.warning("skipped a record of the %s topic that is not a decision (%s)", channel, reason)

    with _startup_logging("warning"):
        try:
            follow(settings, channel, lambda item: click.echo(form(item)), from_beginning=from_beginning, on_skip=skip)
        except KeyboardInterrupt:
            # Ctrl-C is how tail ends: no "error: interrupted" line, only the exit status.
            ctx.exit(EXIT_INTERRUPTED)


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
    if "catalog_changes" in summary:  # only with --switch (contract 8)
        parts.append(f"{summary['catalog_changes']} of {summary['catalog_changes_given']} catalog changes applied")
    click.echo(f"summary: {', '.join(parts)} in {elapsed:.2f}s", err=True)
    decisions = summary["decisions"]
    assert isinstance(decisions, dict)
    for kind, statuses in decisions.items():
        text = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        click.echo(f"  {kind}: {text}", err=True)


@main.command()
@click.option("--audit", "audit", default=None, help="Audit file written by `replay --audit` (JSON Lines or Avro).")
@click.option("--from-topic", is_flag=True, help="Read the live audit topic (TACTFUL_AUDIT_TOPIC) instead of --audit.")
@click.option("--since", default=None, help="With --from-topic: records stamped at or after (epoch ms or ISO-8601).")
@click.option("--until", default=None, help="With --from-topic: records stamped at or before (epoch ms or ISO-8601).")
@click.option("--events", "events", default=None, help="Touchpoints (JSON Lines or Avro) for the funnel and paths.")
@click.option("--events-from-topic", is_flag=True, help="Read the touchpoints from the input topic (same range).")
@click.option(
    "--topologies",
    default=None,
    type=click.Path(file_okay=False),
    help="Catalog whose holdouts decide the arm of matches no record shows one for.",
)
@click.option("--customer", default=None, help="Also a timeline and journey of this one customer.")
@click.option("--path-length", default=3, show_default=True, type=click.IntRange(1, 12), help="Events per path.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False), help="Write a self-contained page.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="With a topic: seconds to wait for the broker's partition offsets.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal)."
)
def report(
    audit: str | None,
    from_topic: bool,
    since: str | None,
    until: str | None,
    events: str | None,
    events_from_topic: bool,
    topologies: str | None,
    customer: str | None,
    path_length: int,
    as_json: bool,
    html_out: str | None,
    timeout: float,
    progress: bool | None,
) -> None:
    """Uplift per topology, outcome funnels and journeys, from the audit (README: Report)."""
    from rich.console import Console

    from streams.report import build, inputs, render
    from streams.report.arms import HoldoutCatalog
    from streams.timeutil import parse_time_option

    if (audit is None) == (not from_topic):
        raise click.UsageError("give exactly one of --audit FILE and --from-topic")
    if events is not None and events_from_topic:
        raise click.UsageError("give at most one of --events FILE and --events-from-topic")
    if (since or until) and not (from_topic or events_from_topic):
        raise click.UsageError("--since and --until go with --from-topic or --events-from-topic")
    bounds: dict[str, int | None] = {}
    for name, text in (("--since", since), ("--until", until)):
        try:
            bounds[name] = parse_time_option(text) if text is not None else None
        except TactfulError as exc:
            raise click.BadParameter(str(exc), param_hint=name) from exc
    if html_out:
        _check_writable(Path(html_out))
    catalog = HoldoutCatalog.from_catalog(_load_catalog(topologies)) if topologies else None
    settings = _settings() if from_topic or events_from_topic else None

    def topic_source(topic: str, audit_topic: bool) -> inputs.Source:
        from streams.clients import kafka_options
        from streams.live.codecs import resolver

        assert settings is not None
        # The workers write with the schema registry's ids when there is one; local ids are read too.
        resolve = resolver(settings)
        decode = inputs.avro_decision(resolve) if audit_topic else inputs.avro_touchpoint(resolve)
        return inputs.open_topic(
            kafka_options(settings.kafka),
            topic,
            since=bounds["--since"],
            until=bounds["--until"],
            decode=decode,
            timeout_s=timeout,
        )

    if audit is not None:
        audit_source = inputs.open_file(audit)
    else:
        assert settings is not None
        audit_source = topic_source(settings.topics.audit, True)
    touch_source = None
    if events is not None:
        touch_source = inputs.open_file(events)
    elif events_from_topic:
        assert settings is not None
        touch_source = topic_source(settings.topics.input, False)
    show = sys.stderr.isatty() if progress is None else progress
    data = build(
        audit_source,
        touch_source,
        catalog=catalog,
        customer=customer,
        path_length=path_length,
        progress=_report_progress if show else None,
    )
    for source in (audit_source, touch_source):
        if source is not None and source.bad_records:
            click.echo(f"warning: {source.bad_records:,} unreadable records in {source.name} skipped", err=True)
    if html_out:
        Path(html_out).write_text(render.to_html(data), encoding="utf-8")
        click.echo(f"wrote {html_out}", err=True)
    if as_json:
        sys.stdout.buffer.write(render.to_json(data))
        sys.stdout.buffer.flush()
    else:
        render.to_terminal(data, Console())


@contextmanager
def _report_progress(source: Any) -> Iterator[Callable[[], None]]:
    """A progress bar on standard error over one report input (bytes of a file, records of a topic)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn(f"reading {source.name}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("read", total=source.total or None)
    with bar:
        yield lambda: bar.update(task, completed=source.done())


@main.command()
@click.option(
    "--base", "base", required=True, type=click.Path(file_okay=False), help="The catalog in force (topologies folder)."
)
@click.option("--candidate", "candidate", required=True, type=click.Path(file_okay=False), help="The changed catalog.")
@click.option("--events", "events", default=None, help="JSON Lines or Avro object container file, as replay reads.")
@click.option("--from-topic", is_flag=True, help="Read the input topic (TACTFUL_INPUT_TOPIC) instead of --events.")
@click.option("--since", default=None, help="With --from-topic: records stamped at or after (epoch ms or ISO-8601).")
@click.option("--until", default=None, help="With --from-topic: records stamped at or before (epoch ms or ISO-8601).")
@click.option(
    "--out", "out", default=None, type=click.Path(dir_okay=False), help="Write every difference here (JSON Lines)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts and samples as JSON instead of a table.")
@click.option(
    "--samples", default=3, show_default=True, type=click.IntRange(0), help="Sample customers per difference."
)
@click.option("--all", "every", is_flag=True, help="Also the table's rows with no difference.")
@click.option("--fail-on-difference", is_flag=True, help="Exit 4 when the catalogs do not decide alike (for CI).")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="With --from-topic: seconds to wait for the broker's partition offsets.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal)."
)
@click.pass_context
def diff(
    ctx: click.Context,
    base: str,
    candidate: str,
    events: str | None,
    from_topic: bool,
    since: str | None,
    until: str | None,
    out: str | None,
    as_json: bool,
    samples: int,
    every: bool,
    fail_on_difference: bool,
    timeout: float,
    progress: bool | None,
) -> None:
    """Backtest a change: both catalogs over the same events, their decisions compared (docs/diff.md)."""
    from streams import diff as backtest
    from streams.timeutil import parse_time_option

    if (events is None) == (not from_topic):
        raise click.UsageError("give exactly one of --events FILE and --from-topic")
    if (since or until) and not from_topic:
        raise click.UsageError("--since and --until go with --from-topic")
    bounds: dict[str, int | None] = {}
    for name, text in (("--since", since), ("--until", until)):
        try:
            bounds[name] = parse_time_option(text) if text is not None else None
        except TactfulError as exc:
            raise click.BadParameter(str(exc), param_hint=name) from exc
    base_catalog, candidate_catalog = _load_catalog(base), _load_catalog(candidate)
    if out:
        _check_writable(Path(out))

    records: Iterator[tuple[int, object]]
    skipped: Callable[[], int] = int  # records of the topic that do not decode (0 for a file)
    if events is not None:
        from streams.replay import open_events

        source = open_events(Path(events))
        size, position = source.size, source.position
        records = ((0, record) for _, record in source.records)
    else:
        from streams.clients import kafka_options
        from streams.live.codecs import resolver
        from streams.report import inputs

        settings = _settings()
        topic = inputs.open_topic(
            kafka_options(settings.kafka),
            settings.topics.input,
            since=bounds["--since"],
            until=bounds["--until"],
            decode=inputs.avro_touchpoint(resolver(settings)),
            timeout_s=timeout,
        )
        size, position, lane = topic.total, topic.done, topic.partition
        records = ((lane(), record) for record in topic.records)
        skipped = functools.partial(getattr, topic, "bad_records")

    show = sys.stderr.isatty() if progress is None else progress
    with _ProgressBar(show, size, position) as bar:
        result = backtest.run(base_catalog, candidate_catalog, records, on_progress=bar.tick)
    if skipped():
        click.echo(f"warning: {skipped():,} unreadable records of the input topic skipped", err=True)
    if out:
        with open(out, "wb") as sink:
            for d in result.differences:
                sink.write(orjson.dumps(d.to_json()) + b"\n")
    if as_json:
        data = backtest.to_data(result, base, candidate, samples)
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.buffer.flush()
    else:
        for text in backtest.to_text(result, base, candidate, samples, every):
            click.echo(text)
    if fail_on_difference and result.different:
        ctx.exit(EXIT_DIFFERENT)


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


if __name__ == "__main__":  # pragma: no cover
    main()
