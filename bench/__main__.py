"""``python -m bench``: the benchmarks' command line (a checkout's, not the wheel's).

Like ``tactful``'s, this is a command line: the one place in ``bench`` that
reads the environment (``TACTFUL_*`` through :class:`~streams.settings.Settings`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.errors import TactfulError, TopologyError

if TYPE_CHECKING:
    from streams.topology import Catalog

# The exit code of `tactful validate` and `tactful replay` for a folder that does not load.
EXIT_TOPOLOGIES_INVALID = 2
# bench.pipeline.SKIPPABLE, repeated so that --help imports no Kafka client (a test keeps them equal).
PIPELINE_SKIPPABLE = ("confluent", "engine", "naive_faust", "quix", "exactly_once", "latency", "recovery")


def with_holdouts(catalog: Catalog, global_h: int = 500, own_h: int = 1000) -> Catalog:
    """``catalog`` with a global control group of ``global_h`` and one of ``own_h`` per topology
    (hundredths of a percent): the arm step then runs on every fired match."""
    from dataclasses import replace

    from streams.topology.model import Catalog as Built

    return Built.build(
        [replace(t, holdout=own_h) for t in catalog.topologies], replace(catalog.policies, holdout=global_h)
    )


def _catalog(folder: str) -> Catalog:
    from streams.topology import load_folder

    try:
        return load_folder(folder)
    except TopologyError as exc:
        for p in exc.problems:
            click.echo(f"error: {p}", err=True)
        click.echo(f"{len(exc.problems)} problem(s) in {folder}", err=True)
        sys.exit(EXIT_TOPOLOGIES_INVALID)


@click.group()
def main() -> None:
    """Benchmarks that print figures (they assert nothing)."""


@main.command("replay")
@click.option("--topologies", default="topologies", show_default=True, type=click.Path(file_okay=False))
@click.option("--events", "total", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--customers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--workdir",
    default="out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the generated input is cached.",
)
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(1), help="Runs of each measurement.")
@click.option(
    "--holdouts",
    is_flag=True,
    help="Give every topology a 10%% control group and the policies a 5%% global one (contract 7.3).",
)
def bench_replay(
    topologies: str, total: int, customers: int, seed: int, workdir: str, repeat: int, holdouts: bool
) -> None:
    """Replay generated events through the engine on one core; print events/s, memory, state size."""
    from bench import engine as bench_engine

    catalog = _catalog(topologies)
    if holdouts:
        catalog = with_holdouts(catalog)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    click.echo(f"generating {total:,} events for {customers:,} customers (cached in {folder})...", err=True)
    path = bench_engine.events_file(folder, total, customers, seed)
    click.echo(bench_engine.report(bench_engine.run(catalog, path, customers, repeat)))
    if holdouts:
        click.echo("  catalog: every topology with a 10% control group, and a 5% global one (--holdouts)")


@main.command("pipeline")
@click.option(
    "--events",
    "total",
    default=None,
    type=click.IntRange(1000),
    help="Touchpoints produced once and read by every contender.  [default: 500,000, or --customers if more]",
)
@click.option("--customers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option(
    "--recovery-customers",
    default=None,
    type=click.IntRange(1),
    help="Customers' state recovered.  [default: --customers]",
)
@click.option(
    "--runs",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Measure every contender this many times; the table gives median (min-max), results.json each run.",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(PIPELINE_SKIPPABLE),
    help="Leave a measurement out (repeatable); the aiokafka limit and tactful at-least-once always run.",
)
@click.option("--quix-python", default=".venv-quix/bin/python", show_default=True, help="Python with quixstreams.")
@click.option("--out", "out", default="out/bench", show_default=True, type=click.Path(file_okay=False))
@click.option("--keep", is_flag=True, help="Keep the run's topics, groups and Redis keys (removed by default).")
def bench_pipeline(
    total: int | None,
    customers: int,
    recovery_customers: int | None,
    runs: int,
    skip: tuple[str, ...],
    quix_python: str,
    out: str,
    keep: bool,
) -> None:
    """Side by side on the local broker: limit, engine, naive Faust, Quix Streams, tactful at both guarantees,
    latency at two rates, recovery; then issue 13's targets, met or not."""
    import os

    from bench import pipeline
    from streams.errors import ConfigError
    from streams.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from exc
    if not settings.redis.url:
        raise click.UsageError("the pipeline benchmark mirrors to Redis: set TACTFUL_REDIS_URL")
    folder = Path(out)
    try:
        res = pipeline.run(
            settings.kafka.bootstrap_servers,
            settings.redis.url,
            events=total if total is not None else max(500_000, customers),
            customers=customers,
            recovery_customers=recovery_customers if recovery_customers is not None else customers,
            runs=runs,
            skip=frozenset(skip),
            quix_python=Path(quix_python),
            out=folder,
            say=lambda msg: click.echo(msg, err=True),
            keep=keep,
        )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    text = pipeline.table(res)
    (folder / "table.txt").write_text(text + "\n")
    click.echo(text)
    try:
        pipeline.chart(res, folder / "bench.png")
        click.echo(f"wrote {folder / 'results.json'}, {folder / 'table.txt'} and {folder / 'bench.png'}", err=True)
    except ImportError:
        click.echo("matplotlib is not installed (pip install -e '.[bench]'): no chart", err=True)


@main.command("recovery")
@click.option("--customers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--restarts", default=3, show_default=True, type=click.IntRange(1))
@click.option(
    "--against",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Another checkout with its .venv (repeatable): its worker restarts over the same state in turn.",
)
@click.option("--out", "out", default="out/bench", show_default=True, type=click.Path(file_okay=False))
def bench_recovery(customers: int, restarts: int, against: tuple[str, ...], out: str) -> None:
    """Only step (7) of `pipeline`: a worker restarted over `customers` customers' state, several times."""
    import os
    import uuid

    from bench import pipeline
    from streams.settings import Settings

    settings = Settings.from_env(os.environ)
    if not settings.redis.url:
        raise click.UsageError("the worker mirrors to Redis: set TACTFUL_REDIS_URL")
    bootstrap = settings.kafka.bootstrap_servers
    logs = Path(out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    sides = [("this", pipeline.REPO), *(("against", Path(a).resolve()) for a in against)]
    try:
        click.echo(f"feeding and processing {customers:,} customers ...", err=True)
        env, at = pipeline.recovery_state(bootstrap, settings.redis.url, customers, logs, prefix)
        for i in range(restarts):
            for j, (side, repo) in enumerate(sides):
                probe = i * len(sides) + j + 1
                python = str(repo / ".venv" / "bin" / "python") if side == "against" else sys.executable
                log = logs / f"{env['TACTFUL_APP_ID']}-restart-{probe}.log"
                seconds = pipeline.restart(bootstrap, env, at, log, probe=probe, cwd=repo, python=python, timeout=900)
                click.echo(f"recovery of {customers:,} customers, {side} ({repo}): {seconds:.1f} s")
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        pipeline.cleanup(bootstrap, settings.redis.url, prefix, Path(out))


@main.command("chart")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", default="out/bench/bench-runs.png", show_default=True, type=click.Path(dir_okay=False))
def bench_chart(results: tuple[str, ...], out: str) -> None:
    """Draw the pipeline benchmark of several runs (their results.json): median, each run, min-max."""
    from bench import chart

    runs = chart.load([Path(r) for r in results])
    sizes = {(r["events"], r["customers"]) for r in runs}
    if len(sizes) > 1:
        raise click.UsageError(f"the runs differ in events and customers: {sorted(sizes)}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    try:
        chart.draw(runs, Path(out))
    except ImportError:
        click.echo("matplotlib is not installed (pip install -e '.[bench]'): no chart", err=True)
        sys.exit(1)
    click.echo(f"wrote {out} ({len(runs)} run{'s' if len(runs) != 1 else ''})", err=True)


@main.command("ab")
@click.option("--other", required=True, type=click.Path(exists=True, dir_okay=False), help="The other build's tactful.")
@click.option("--label", default="before", show_default=True, help="What to call the other build.")
@click.option("--events", "total", default=500_000, show_default=True, type=click.IntRange(1000))
@click.option("--customers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--out", "out", default="out/bench-ab", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--guarantee",
    type=click.Choice(["at_least_once", "exactly_once"]),
    default="at_least_once",
    show_default=True,
    help="Both builds' processing guarantee (builds before exactly-once ignore it).",
)
def bench_ab(other: str, label: str, total: int, customers: int, rounds: int, out: str, guarantee: str) -> None:
    """One worker's throughput: this checkout ("after") against another build, alternately."""
    import os

    from bench import ab
    from streams.errors import ConfigError
    from streams.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from exc
    if not settings.redis.url:
        raise click.UsageError("the worker mirrors to Redis: set TACTFUL_REDIS_URL")
    try:
        rates = ab.run(
            settings.kafka.bootstrap_servers,
            settings.redis.url,
            {label: [str(Path(other).resolve())], "after": ab.this_build()},
            events=total,
            customers=customers,
            rounds=rounds,
            out=Path(out),
            say=lambda msg: click.echo(msg, err=True),
            guarantee=guarantee,
        )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(ab.table(rates, total, customers))


@main.command("latency")
@click.option(
    "--other",
    help='Another build\'s tactful executable (its worker runs as "before"); without it, --before-set only.',
)
@click.option("--rate", default=13_000.0, show_default=True, type=click.FloatRange(1), help="Events per second fed.")
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(5), help="Feed time per worker.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option(
    "--guarantee",
    "guarantees",
    multiple=True,
    type=click.Choice(["exactly_once", "at_least_once"]),
    help="Repeatable; default: both, exactly-once first.",
)
@click.option("--set", "sets", multiple=True, help="NAME=VALUE: a TACTFUL_* variable for this checkout's worker.")
@click.option("--before-set", "before_sets", multiple=True, help='NAME=VALUE: a TACTFUL_* variable for "before".')
@click.option("--out", "out", default="out/latency", show_default=True, type=click.Path(file_okay=False))
def bench_latency(
    other: str | None,
    rate: float,
    seconds: float,
    rounds: int,
    guarantees: tuple[str, ...],
    sets: tuple[str, ...],
    before_sets: tuple[str, ...],
    out: str,
) -> None:
    """Only step (6) of `pipeline`: append-to-append latency at a fixed rate, "before" (another build,
    or other settings) against this checkout ("after"), in alternating order, with where the time went."""
    import os

    from bench import latency
    from streams.errors import ConfigError
    from streams.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from exc
    if not settings.redis.url:
        raise click.UsageError("the worker mirrors to Redis: set TACTFUL_REDIS_URL")

    def pairs(items: tuple[str, ...]) -> dict[str, str]:
        if any("=" not in item for item in items):
            raise click.UsageError("--set and --before-set take NAME=VALUE")
        return dict(item.split("=", 1) for item in items)

    variants: dict[str, tuple[list[str], dict[str, str]]] = {}
    if other or before_sets:
        variants["before"] = ([str(Path(other).resolve())] if other else [], pairs(before_sets))
    variants["after"] = ([], pairs(sets))
    try:
        got = latency.run(
            settings.kafka.bootstrap_servers,
            settings.redis.url,
            variants,
            rate=rate,
            seconds=seconds,
            rounds=rounds,
            guarantees=guarantees or ("exactly_once", "at_least_once"),
            out=Path(out),
            say=lambda msg: click.echo(msg, err=True),
        )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(latency.table(got, rate, seconds))


@main.command("transactions")
@click.option(
    "--backoff",
    "backoffs",
    multiple=True,
    type=click.IntRange(1),
    help="A producer retry backoff in ms (repeatable; default: aiokafka's 100 and tactful's 10).",
)
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--batches", default=100, show_default=True, type=click.IntRange(10), help="Batches per round.")
def bench_transactions(backoffs: tuple[int, ...], rounds: int, batches: int) -> None:
    """Exactly-once's transactions alone, a batch's worth at a time, per producer retry backoff."""
    import os
    import statistics

    from bench import latency
    from streams.errors import ConfigError
    from streams.settings import Settings

    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from exc
    got = latency.transactions(
        settings.kafka.bootstrap_servers,
        backoffs or (100, 10),
        rounds=rounds,
        batches=batches,
        say=lambda msg: click.echo(msg, err=True),
    )
    click.echo(f"ms per batch of 4 transactions, {rounds} rounds of {batches} batches in alternating order")
    click.echo(f"{'backoff':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for backoff, times in got.items():
        ordered = sorted(times)
        p90, p99 = (ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.9, 0.99))
        click.echo(f"{backoff:>6}ms {statistics.median(ordered):7.1f} {p90:7.1f} {p99:7.1f} {ordered[-1]:7.1f}")


@main.command("restarts")
@click.option("--rounds", default=10, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=3, show_default=True, type=click.IntRange(2))
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(1), help="Events per second fed.")
@click.option("--static/--dynamic", default=True, show_default=True, help="Give each worker a TACTFUL_INSTANCE_ID.")
@click.option("--cap", default=90.0, show_default=True, type=click.FloatRange(1), help="Seconds to wait per round.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--delay", default=0.0, show_default=True, type=click.FloatRange(0), help="Seconds between kill and restart."
)
@click.option("--set", "sets", multiple=True, help="NAME=VALUE: a TACTFUL_* variable for every worker.")
@click.option("--out", "out", default="out/restarts", show_default=True, type=click.Path(file_okay=False))
def bench_restarts(
    rounds: int,
    workers: int,
    partitions: int,
    rate: float,
    static: bool,
    cap: float,
    seed: int,
    delay: float,
    sets: tuple[str, ...],
    out: str,
) -> None:
    """Kill -9 a random worker and restart it, round after round; print how soon it holds partitions and decides.

    Runs against the integration tier's services (TACTFUL_RUN_DIR, TACTFUL_CACHE_DIR) in a namespace
    of its own, deleted at the end; worker logs stay in --out.
    """
    from bench import restarts

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    restarts.run(
        folder,
        rounds=rounds,
        workers=workers,
        partitions=partitions,
        rate=rate,
        static=static,
        cap=cap,
        seed=seed,
        delay=delay,
        env=dict(s.split("=", 1) for s in sets),
    )


@main.command("guarantees")
@click.option("--events", "total", default=300_000, show_default=True, type=click.IntRange(1000))
@click.option("--customers", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1), help="Throughput runs of each.")
@click.option("--restarts", default=5, show_default=True, type=click.IntRange(0), help="Kill-and-restart rounds each.")
@click.option("--workers", default=3, show_default=True, type=click.IntRange(2))
@click.option("--partitions", default=6, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=200.0, show_default=True, type=click.FloatRange(1), help="Events/s fed in restarts.")
@click.option("--cap", default=90.0, show_default=True, type=click.FloatRange(1), help="Seconds to wait per restart.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", "out", default="out/bench-guarantees", show_default=True, type=click.Path(file_okay=False))
def bench_guarantees(
    total: int,
    customers: int,
    rounds: int,
    restarts: int,
    workers: int,
    partitions: int,
    rate: float,
    cap: float,
    seed: int,
    out: str,
) -> None:
    """At-least-once and exactly-once in one run: one worker's events/s, and restart-to-decide after kill -9.

    Runs against the integration tier's services (TACTFUL_RUN_DIR, TACTFUL_CACHE_DIR); worker logs stay in --out.
    """
    from bench import ab, guarantees
    from tests.integration.services import ensure_services, kafka_bootstrap, redis_url

    ensure_services()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figures = guarantees.Figures()

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    try:
        guarantees.throughput(
            kafka_bootstrap(),
            redis_url(),
            ab.this_build(),
            figures,
            events=total,
            customers=customers,
            rounds=rounds,
            out=folder,
            say=say,
        )
        for g in guarantees.GUARANTEES if restarts else ():
            figures.restarts[g] = guarantees.restart_times(
                folder / g,
                g,
                rounds=restarts,
                workers=workers,
                partitions=partitions,
                rate=rate,
                cap=cap,
                seed=seed,
                say=say,
            )
    except TactfulError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    text = guarantees.table(figures, total, customers)
    (folder / "table.txt").write_text(text + "\n")
    click.echo(text)


@main.command("report")
@click.option("--customers", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--workdir", default="out", show_default=True, type=click.Path(file_okay=False), help="Where the input is cached."
)
def bench_report(customers: int, seed: int, workdir: str) -> None:
    """`tactful report` over a synthetic v1.1 audit and touchpoints of CUSTOMERS customers, on one core."""
    from bench import report

    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    click.echo(f"generating the audit and touchpoints of {customers:,} customers (cached in {folder})...", err=True)
    files = report.generate(customers, seed, folder)
    figures = report.measure(files)
    size = (files.audit.stat().st_size + files.events.stat().st_size) / 2**20
    click.echo(f"report benchmark: {customers:,} customers, one core")
    click.echo(
        f"  input: {files.audit_records:,} audit records, {files.events_written:,} touchpoints ({size:,.0f} MiB)"
    )
    click.echo(f"  fired matches: {figures['matches']:,.0f}")
    click.echo(f"  report (read, aggregate, JSON): {figures['wall_s']:.1f} s wall, {figures['cpu_s']:.1f} s CPU")
    click.echo(f"  peak memory (RSS): {figures['peak_rss_mib']:,.0f} MiB")


if __name__ == "__main__":  # pragma: no cover
    main()
