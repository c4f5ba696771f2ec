"""The ``tactful`` command line. The only place that reads the environment."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO

import click
import orjson

from streams.errors import EventsFileError, InputError, TactfulError, TopologyError

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
    click.echo(f"{len(catalog.topologies)} topologies valid; policies: lateness "
               f"{catalog.policies.lateness // 1000}s, retention {catalog.policies.retention // 86_400_000}d")


@main.command()
@click.option("--topologies", "topologies", required=True, type=click.Path(file_okay=False), help="Folder of topology *.yaml files and an optional policies.yaml.")
@click.option("--events", "events", required=True, type=click.Path(dir_okay=False), help="JSON Lines or Avro object container file.")
@click.option("--until", "until", default=None, help="Move the watermark here after the last event (epoch ms or ISO-8601).")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="Write decisions here instead of standard output.")
@click.option("--audit", is_flag=True, help="Write every decision with its status and cause.")
@click.option("--progress/--no-progress", default=None, help="Progress on standard error (default: when it is a terminal).")
def replay(topologies: str, events: str, until: str | None, out: str | None, audit: bool, progress: bool | None) -> None:
    """Run topologies over a file of events with no broker (contract section 6)."""
    from streams.replay import read_events, replay_numbered
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
    ticker = _Ticker(enabled=show)
    try:
        result = replay_numbered(catalog, read_events(Path(events)), until_ms, on_reject=reject, on_progress=ticker.tick)
    except EventsFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_EVENTS_UNREADABLE)
    ticker.done()
    elapsed = time.perf_counter() - started
    sink: IO[bytes]
    with (open(out, "wb") if out else _stdout()) as sink:
        for d in result.all_decisions:
            if audit or d.emitted:
                sink.write(orjson.dumps(d.to_json(audit=audit)) + b"\n")
    _print_summary(result.summary, elapsed)


class _Ticker:
    """A light progress line on standard error for large inputs."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()
        self.shown = False

    def tick(self, n: int) -> None:
        if not self.enabled or n % 50_000:
            return
        rate = n / max(time.perf_counter() - self.started, 1e-9)
        click.echo(f"\r  replaying: {n:,} events ({rate:,.0f}/s)", err=True, nl=False)
        self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo("", err=True)


def _stdout() -> IO[bytes]:
    class _Keep:
        def __enter__(self) -> IO[bytes]:
            return sys.stdout.buffer

        def __exit__(self, *exc: object) -> None:
            sys.stdout.buffer.flush()

    return _Keep()  # type: ignore[return-value]


def _print_summary(summary: dict[str, object], elapsed: float) -> None:
    events = summary["events"]
    parts = [f"{events} events", f"{summary['invalid']} invalid", f"{summary['late']} late",
             f"{summary['duplicates']} duplicates"]
    click.echo(f"summary: {', '.join(parts)} in {elapsed:.2f}s", err=True)
    decisions = summary["decisions"]
    assert isinstance(decisions, dict)
    for kind, statuses in decisions.items():
        text = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        click.echo(f"  {kind}: {text}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
