"""``python -m chaos``: the chaos suite (``make chaos``). Exits 1 when anything was lost or crashed."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from chaos.report import failures, write
from chaos.run import Options, run
from chaos.services import REPO


def main(argv: list[str] | None = None) -> int:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--events", type=int, default=d.events, help="valid events fed (default %(default)s)")
    p.add_argument("--customers", type=int, default=d.customers)
    p.add_argument("--rate", type=float, default=d.rate, help="records per second (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--fuzz", type=int, default=d.fuzz, help="decoder fuzz inputs; 0 for none")
    p.add_argument("--no-big", dest="big", action="store_false", help="leave out the broker-sized records")
    p.add_argument("--calm", dest="faults", action="store_false", help="no kills, no outages: checks the suite itself")
    p.add_argument("--stall", type=float, default=d.stall_s, help="seconds without progress that end the wait")
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ["TACTFUL_CACHE_DIR"]) if os.environ.get("TACTFUL_CACHE_DIR") else d.cache_dir,
        help="where services.sh finds the Kafka jars (default: TACTFUL_CACHE_DIR, else the checkout's .cache)",
    )
    p.add_argument("--keep-run-dir", action="store_true", help="keep the services' and workers' folder")
    p.add_argument(
        "--guarantee",
        choices=("at_least_once", "exactly_once"),
        default=d.guarantee,
        help="the workers' TACTFUL_PROCESSING_GUARANTEE (default %(default)s)",
    )
    a = p.parse_args(argv)
    opts = Options(
        events=a.events,
        customers=a.customers,
        rate=a.rate,
        seed=a.seed,
        workers=a.workers,
        fuzz=a.fuzz,
        big=a.big,
        faults=a.faults,
        stall_s=a.stall,
        out=a.out,
        cache_dir=a.cache_dir,
        keep_run_dir=a.keep_run_dir,
        guarantee=a.guarantee,
    )
    outcome = run(opts)
    print(write(outcome, opts.out))
    print(
        f"(written to {opts.out.relative_to(REPO) if opts.out.is_relative_to(REPO) else opts.out}/summary.txt, .json)"
    )
    return 1 if failures(outcome) else 0


if __name__ == "__main__":
    sys.exit(main())
