"""``tactful replay``: the engine over a file of events, no broker (contract section 6).

The input is one partition read in file order; after the last event the
watermark moves to ``until`` (default: the largest ``occurred_at``) so due
deadlines fire. Each record takes the same :class:`~streams.engine.Step`
(validate, process, classify, reject) as in the live workers.

Later catalogs (``--switch TIME=DIR``, contract section 8) take force when
the watermark reaches their time, through a
:class:`~streams.engine.CatalogSchedule` given to the processor; a change the
final watermark never reaches is never applied. With no change, the processor
has no schedule and runs exactly as before.

The output is the emitted decisions; the audit output is every record, also
the shadow and held-out decisions and the GOAL records of contract 7, sorted
together by section 6's key. Goals still open after the final watermark give
no record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.decisions import Decision
from streams.engine import CatalogSchedule, DictStore, Engine, Outcome, Processor, Step
from streams.errors import InputError
from streams.gctune import tuned
from streams.timeutil import parse_time
from streams.topology import Catalog, load_folder

Numbered = Iterable[tuple[int, object]]
RejectHook = Callable[[int, InputError], None]
_COUNTED = {Outcome.INVALID: "invalid", Outcome.LATE: "late"}  # the summary's names of rejected outcomes
# The summary's names of the outcomes of contract section 9 (none of them is rejected).
_ERASURE = {Outcome.ERASE: "erasures", Outcome.STALE_ERASE: "stale_erasures", Outcome.ERASED: "erased"}


@dataclass
class ReplayResult:
    all_decisions: list[Decision]  # every decision, in output order
    rejected: list[tuple[int, str]]  # (line number, reason) for invalid and late events
    counts: Counter[str] = field(default_factory=Counter)
    engine_stats: Counter[str] = field(default_factory=Counter)
    customers: int = 0

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """Emitted decisions in the output form."""
        return [d.to_json() for d in self.all_decisions if d.emitted]

    @property
    def audit(self) -> list[dict[str, Any]]:
        """Every decision, with ``status`` and ``cause``."""
        return [d.to_json(audit=True) for d in self.all_decisions]

    @property
    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, Counter[str]] = {}
        for d in self.all_decisions:
            # Plain strings, so the summary stays JSON for any encoder (orjson refuses enum keys).
            by_kind.setdefault(d.kind.value, Counter())[d.status.value] += 1
        return {
            "events": self.counts["events"],
            "invalid": self.counts["invalid"],
            "late": self.counts["late"],
            "duplicates": self.counts["duplicates"],
            # Contract section 9: erases applied, erases that changed nothing, events ignored as erased.
            "erasures": self.counts["erasures"],
            "stale_erasures": self.counts["stale_erasures"],
            "erased": self.counts["erased"],
            "decisions": {k: dict(v) for k, v in sorted(by_kind.items())},
            "matches_held_by_cooldown": self.engine_stats["cooldown_held"],
            # Contract 8, only with --switch: how many catalog changes the watermark reached, of how many.
            **(
                {"catalog_changes": self.counts["catalog_changes"], "catalog_changes_given": self.counts["switches"]}
                if "switches" in self.counts
                else {}
            ),
        }


def replay_numbered(
    catalog: Catalog,
    records: Numbered,
    until: int | None = None,
    *,
    on_reject: RejectHook | None = None,
    on_progress: Callable[[int], None] | None = None,
    switches: Sequence[tuple[int, Catalog]] = (),
) -> ReplayResult:
    """Replay decoded records (or :class:`InputError` for undecodable lines), numbered by line.

    ``switches`` are later catalogs with the time each takes force (contract 8), in the order given.
    """
    with tuned():
        return _replay(catalog, records, until, on_reject, on_progress, switches)


def _replay(
    catalog: Catalog,
    records: Numbered,
    until: int | None,
    on_reject: RejectHook | None,
    on_progress: Callable[[int], None] | None,
    switches: Sequence[tuple[int, Catalog]],
) -> ReplayResult:
    engine = Engine(catalog)
    store = DictStore()
    schedule: CatalogSchedule | None = None
    if switches:
        schedule = CatalogSchedule(catalog, engine)
        for at, later in switches:
            schedule.add(at, later)
    proc = Processor(engine, store, schedule=schedule)
    take = Step(proc).take
    out: list[Decision] = []
    rejected: list[tuple[int, str]] = []
    counts: Counter[str] = Counter()
    seen = 0
    evaluated, ignored, duplicate = Outcome.EVALUATED, Outcome.IGNORED, Outcome.DUPLICATE
    for line, record in records:
        seen += 1
        if on_progress is not None and seen % 10_000 == 0:
            on_progress(seen)
        outcome, decisions, _, rejection = take(record)
        if decisions:
            out.extend(decisions)
        if outcome is evaluated or outcome is ignored:
            continue
        if rejection is not None:
            counts[_COUNTED[outcome]] += 1
            rejected.append((line, rejection.reason))
            if on_reject is not None:
                on_reject(line, rejection.as_error())
        elif outcome is duplicate:
            counts["duplicates"] += 1
        elif outcome in _ERASURE:
            counts[_ERASURE[outcome]] += 1
    counts["events"] = seen
    final = until if until is not None else proc.stream_time
    if final is not None:
        out.extend(proc.advance_watermark(final))
    out.sort(key=Decision.sort_key)
    stats = engine.stats
    if schedule is not None:
        stats = sum((e.stats for e in schedule.engines()), Counter())
        counts["catalog_changes"] = proc.applied
        counts["switches"] = len(switches)
    return ReplayResult(out, rejected, counts, stats, len(store.data))


def run(
    topologies_dir: Path | str,
    records: Iterable[object],
    until: int | str | None = None,
    switches: Sequence[tuple[int | str, Path | str]] = (),
) -> ReplayResult:
    """Replay an iterable of decoded event records (line numbers start at 1).

    ``switches``: (time, topologies folder) of each later catalog (contract 8), every one loaded first.
    """
    catalog = load_folder(topologies_dir)
    later = [(parse_time(at), load_folder(folder)) for at, folder in switches]
    until_ms = parse_time(until) if until is not None else None
    return replay_numbered(catalog, enumerate(records, start=1), until_ms, switches=later)


@dataclass
class EventsFile:
    """A JSON Lines or Avro events file being read: its records and how far in it is.

    ``unit`` is what the record numbers count: ``line`` (JSON Lines) or
    ``record`` (Avro), for messages about one of them.
    """

    records: Iterator[tuple[int, object]]
    size: int
    position: Callable[[], int]
    unit: str = "line"


def open_events(path: Path) -> EventsFile:
    """Numbered records of a JSON Lines or Avro object container file (sniffed by content)."""
    from streams.codec.avro import read_ocf
    from streams.codec.jsonl import read_jsonl
    from streams.errors import EventsFileError

    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
        if magic == b"Obj\x01":
            return EventsFile(enumerate(read_ocf(path), start=1), size, lambda: 0, unit="record")
        fo = path.open("rb")
    except OSError as exc:
        raise EventsFileError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def records() -> Iterator[tuple[int, object]]:
        with fo:
            yield from read_jsonl(fo)

    return EventsFile(records(), size, lambda: fo.tell() if not fo.closed else size)


def read_events(path: Path) -> Iterator[tuple[int, object]]:
    return open_events(path).records
