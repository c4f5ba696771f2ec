"""``python -m bench latency``: only step (6) of ``make bench``, builds or settings side by side.

Each variant (a build, and the ``TACTFUL_*`` variables it runs with) gets a
worker of its own, fed the same way at the same fixed rate, under each
guarantee asked for; variants alternate order round after round, so that a
machine getting busier or quieter weighs on all alike. For every worker:
append-to-append quantiles, what a ``read_committed`` reader sees, and where
the time went by the worker's own metrics (:func:`bench.pipeline.latency`).
Compare within one invocation only: on two cores shared with the broker, an
absolute figure says as much about the neighbours as about tactful.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from bench.pipeline import REPO, WORKER, LatencyRun, _mode, cleanup, latency, latency_lines
from streams.topology import load_folder


def run(
    bootstrap: str,
    redis_url: str,
    variants: dict[str, tuple[list[str], dict[str, str]]],
    *,
    rate: float,
    seconds: float,
    rounds: int,
    guarantees: tuple[str, ...],
    out: Path,
    say: Callable[[str], None],
) -> dict[str, list[LatencyRun]]:
    """Label -> each worker's figures; a variant is (the command that starts a worker, or empty
    for this checkout's, and its extra ``TACTFUL_*`` variables)."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (REPO / ".run" / "bench").mkdir(parents=True, exist_ok=True)
    catalog = load_folder(REPO / "topologies")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    got: dict[str, list[LatencyRun]] = {label: [] for label in variants}
    labels = list(variants)
    try:
        for r in range(rounds):
            for guarantee in guarantees:
                for label in labels if r % 2 == 0 else labels[::-1]:
                    cmd, extra = variants[label]
                    lr = latency(
                        bootstrap,
                        redis_url,
                        catalog,
                        rate,
                        seconds,
                        logs,
                        prefix=f"{prefix}-{label}-{r}{guarantee[:3]}",
                        guarantee=guarantee,
                        worker=[*cmd, "worker", "--loglevel", "warning"] if cmd else WORKER,
                        extra=extra,
                    )
                    got[label].append(lr)
                    say(
                        f"round {r + 1}: {label} {_mode(guarantee)}: append p99 {lr.ms['p99']:.0f} ms, "
                        f"seen p99 {lr.visible_ms.get('p99', float('nan')):.0f} ms, {lr.where}"
                    )
        return got
    finally:
        cleanup(bootstrap, redis_url, prefix, out)


def table(got: dict[str, list[LatencyRun]], rate: float, seconds: float) -> str:
    workers = max(len(runs) for runs in got.values())
    lines = [f"latency at {rate:,.0f} events/s, {seconds:.0f} s of feed each, {workers} workers per variant"]
    for label, runs in got.items():
        lines.append(label)
        lines += latency_lines(runs)
    return "\n".join(lines)
