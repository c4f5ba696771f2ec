"""Kill-and-restart rounds against real workers: how soon a restarted worker works again.

Three (or ``--workers``) ``tactful worker`` processes share one namespace of
topics (the integration tier's :class:`~tests.integration.conftest.Namespace`,
so the local services and the same cleanup), a steady feed runs beside them,
and each round kills a random worker with SIGKILL and starts it again at
once, with the same name, data folder and (with ``--static``) the same
``TACTFUL_INSTANCE_ID``. Per round it prints the seconds from the restart
until the restarted worker's ``/health`` lists partitions, until ``/ready``
answers 200, and until its ``/metrics`` count an event taken in (it has run
the engine on its partitions' events again), and the partition spread across
the workers once the group has settled. Figures only: it asserts nothing.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.live.feed import feed


def _events(stop: threading.Event, customers: int) -> Iterator[dict[str, Any]]:
    n = 0
    while not stop.is_set():
        n += 1
        yield {
            "event_id": f"e{n}",
            "customer_id": f"c{n % customers}",
            "type": "page_view",
            "occurred_at": int(time.time() * 1000),
            "channel": "web",
        }


def _events_taken(w: Any) -> float:
    try:
        return float(sum(v for k, v in w.metrics().items() if k.startswith("tactful_events_total")))
    except OSError:
        return 0.0


def _partitions(w: Any) -> list[int]:
    try:
        return list(w.partitions())
    except (OSError, KeyError, TypeError):
        return []


def _ready(w: Any) -> bool:
    try:
        return bool(w.get("/ready")[0] == 200)
    except OSError:
        return False


def run(
    folder: Path,
    *,
    rounds: int,
    workers: int,
    partitions: int,
    rate: float,
    static: bool,
    cap: float,
    seed: int,
    env: dict[str, str] | None = None,
    delay: float = 0.0,
) -> None:
    from tests.integration.conftest import Namespace, wait_until
    from tests.integration.services import ensure_services

    ensure_services()
    rng = random.Random(seed)
    ns = Namespace(folder, TACTFUL_PARTITIONS=str(partitions), **(env or {}))
    stop = threading.Event()
    feeder = threading.Thread(target=lambda: feed(ns.settings(), _events(stop, 5000), rate=rate), daemon=True)
    rows: list[tuple[int, str, float | None, float | None, float | None, str]] = []
    try:
        names = [f"w{i + 1}" for i in range(workers)]
        procs = {n: ns.worker(n, **({"TACTFUL_INSTANCE_ID": n} if static else {})) for n in names}
        for w in procs.values():
            w.wait_ready(120)
        feeder.start()

        def settled() -> bool:
            held = [_partitions(w) for w in procs.values()]
            return sum(len(h) for h in held) == partitions and all(held)

        wait_until(settled, 120, "every worker holding partitions", every=0.5)
        print(f"{workers} workers, {partitions} partitions, feed {rate:.0f}/s, static membership: {static}")
        for r in range(1, rounds + 1):
            name = rng.choice(names)
            old = procs[name]
            old.stop(kill=True)
            if delay:
                time.sleep(delay)  # a supervisor's back-off before it starts the worker again
            t0 = time.monotonic()
            new = ns.worker(name, **({"TACTFUL_INSTANCE_ID": name} if static else {}))
            procs[name] = new
            t_parts = t_ready = t_decide = None
            while time.monotonic() - t0 < cap and None in (t_parts, t_ready, t_decide):
                now = time.monotonic() - t0
                if t_parts is None and _partitions(new):
                    t_parts = now
                if t_ready is None and _ready(new):
                    t_ready = now
                if t_decide is None and _events_taken(new) > 0:
                    t_decide = now
                time.sleep(0.25)
            with contextlib.suppress(AssertionError):  # reported as the spread
                wait_until(settled, cap, "the group to settle", every=0.5)
            spread = " ".join(f"{n}:{len(_partitions(procs[n]))}" for n in names)
            rows.append((r, name, t_parts, t_ready, t_decide, spread))
            print(_row(rows[-1]), flush=True)
        print()
        print(f"{'round':>5} {'killed':>6} {'partitions_s':>12} {'ready_s':>8} {'decides_s':>9}  spread after")
        for row in rows:
            print(_row(row))
        for i, label in ((2, "partitions"), (3, "ready"), (4, "decides")):
            got = [row[i] for row in rows]
            worst = "never (cap)" if None in got else f"{max(g for g in got if g is not None):.1f}s"
            print(f"max restart-to-{label}: {worst}")
    finally:
        stop.set()
        feeder.join(30)
        ns.cleanup(timeout=120)


def _row(row: tuple[int, str, float | None, float | None, float | None, str]) -> str:
    r, name, p, ready, d = row[:5]

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return f"{r:>5} {name:>6} {s(p):>12} {s(ready):>8} {s(d):>9}  {row[5]}"
