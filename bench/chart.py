"""The chart of ``make bench``: the peers compared at a glance, with the spread of repeated runs.

Two things made the old single bar chart hard to read: the engine alone (no
broker, several times faster than anything that consumes a topic) set the
scale, so the figures that matter (the consume+decode limit, Quix Streams,
tactful) shared the left tenth of it; and one run showed no spread, on a
machine where a busy neighbour moves a figure by a third.

So: the contenders that consume the topic share one panel and one linear
scale; the engine alone, which consumes nothing, has a panel of its own.
Every run is a dot, the median a bar, the lowest to highest run a whisker.
The ratios the targets are stated in (tactful against Quix Streams and
against the limit) are the medians of each run's own ratio, so that a run on
a busier machine weighs on both sides alike; the targets are drawn as dashed
lines. Latency and recovery go in the title, as median and range.

Input is the ``results.json`` of each run (:class:`bench.pipeline.Results`
as a dict): ``python -m bench chart out/bench-*/results.json``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Run = Mapping[str, Any]

# Display order and short names; a figure a run has beyond these is drawn after them, by its key.
ORDER = ("limit_aiokafka", "limit_confluent", "naive_faust", "quix", "tactful")
NAMES = {
    "limit_aiokafka": "limit: consume + decode\n(aiokafka)",
    "limit_confluent": "limit: consume + decode\n(confluent-kafka)",
    "naive_faust": "naive Faust\n(count table)",
    "quix": "Quix Streams\n(count state)",
    "tactful": "tactful\n(one worker)",
    "engine": "engine alone\n(in-process)",
}
ALONE = "engine"  # consumes no topic: not on the peers' scale
# Issue 13's targets: tactful at least this many times Quix, and this share of the aiokafka limit.
TARGET_QUIX = 1.2
TARGET_LIMIT = 0.5

GREY, BLUE, GOLD, RED = "#9aa5b1", "#2f6fde", "#c9a227", "#d9534f"


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The runs' figures, one ``results.json`` each."""
    return [json.loads(Path(p).read_text()) for p in paths]


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def figures(runs: Sequence[Run], key: str) -> list[float]:
    return [float(r["rates"][key]) for r in runs if key in r.get("rates", {})]


def ratio(runs: Sequence[Run], key: str, base: str) -> list[float]:
    """Each run's own ratio of two of its figures (runs missing either are left out)."""
    return [
        r["rates"][key] / r["rates"][base] for r in runs if r.get("rates", {}).get(key) and r.get("rates", {}).get(base)
    ]


def peers(runs: Sequence[Run]) -> list[str]:
    """The keys on the shared scale: the known ones in order, then any other a run has."""
    seen = {k for r in runs for k in r.get("rates", {})}
    extra = sorted(seen - set(ORDER) - {ALONE})
    return [k for k in ORDER if k in seen] + extra


def colour(key: str) -> str:
    if key.startswith("limit"):
        return GREY
    if key.startswith("tactful"):
        return BLUE
    return GOLD if key == ALONE else RED


def _range(values: Sequence[float], fmt: str) -> str:
    med, lo, hi = spread(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(lo, fmt)}-{format(hi, fmt)})"


def title(runs: Sequence[Run]) -> str:
    first = runs[0]
    head = f"tactful vs. peers: {first['events']:,} events, {first['customers']:,} customers"
    head += f", {len(runs)} runs (median, whisker min-max)" if len(runs) > 1 else f" ({first['date']})"
    lines = [head]
    p99 = [r["latency_ms"]["p99"] for r in runs if r.get("latency_ms", {}).get("p99") is not None]
    if p99:
        p50 = [r["latency_ms"].get("p50", 0.0) for r in runs]
        rate = [r.get("latency_rate", 0.0) for r in runs]
        lines.append(
            f"latency p50 {_range(p50, '.0f')} ms, p99 {_range(p99, '.0f')} ms at {_range(rate, ',.0f')}/s; "
            + (
                f"recovery of {first.get('recovery_customers', 0):,} customers "
                f"{_range([r.get('recovery_seconds', 0.0) for r in runs], '.1f')} s"
            )
        )
    return "\n".join(lines)


def draw(runs: Sequence[Run], path: Path) -> None:
    """Write the chart of these runs (one or more ``results.json``) as a PNG."""
    if not runs:
        raise ValueError("no runs to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    keys = peers(runs)
    alone = figures(runs, ALONE)
    fig, (ax, ax_alone) = plt.subplots(
        1, 2, figsize=(11, 0.75 * max(len(keys), 3) + 2.2), gridspec_kw={"width_ratios": [4, 1]}
    )
    top = 0.0
    for row, key in enumerate(reversed(keys)):
        top = max(top, _row(ax, row, key, figures(runs, key)))
    ax.set_yticks(range(len(keys)), [NAMES.get(k, k) for k in reversed(keys)], fontsize=9)
    ax.set_xlim(0, top * 1.28)
    ax.set_xlabel("events per second (higher is better), consuming the topic")
    ax.grid(axis="x", alpha=0.3)
    if "tactful" in keys:
        _targets(ax, runs, len(keys) - 1 - keys.index("tactful"))
    thousands = matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k")
    ax.xaxis.set_major_formatter(thousands)

    if alone:
        top = _row(ax_alone, 0, ALONE, alone)
        ax_alone.set_xlim(0, top * 1.45)
        ax_alone.set_yticks([0], [NAMES[ALONE]], fontsize=9)
        ax_alone.set_ylim(-1, 1)
        ax_alone.set_xlabel("events/s, no broker\n(its own scale)", fontsize=9)
        ax_alone.grid(axis="x", alpha=0.3)
        ax_alone.xaxis.set_major_formatter(thousands)
        ax_alone.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
    else:
        ax_alone.set_axis_off()
    fig.suptitle(title(runs), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _row(ax: Any, row: int, key: str, values: Sequence[float]) -> float:
    """One contender: a bar at the median, each run a dot, a whisker from min to max; returns the max."""
    med, lo, hi = spread(values)
    ax.barh(row, med, color=colour(key), alpha=0.85, height=0.6)
    if len(values) > 1:
        ax.plot([lo, hi], [row, row], color="black", linewidth=1.2)
        ax.scatter(values, [row] * len(values), color="black", s=10, zorder=3)
    ax.text(hi, row, f"  {med:,.0f}/s", va="center", fontsize=9)
    return hi


def _targets(ax: Any, runs: Sequence[Run], row: int) -> None:
    """Issue 13's targets as dashed marks across tactful's row, and its ratios in the corner."""
    quix, limit = figures(runs, "quix"), figures(runs, "limit_aiokafka")
    said = []
    targets = (("quix", quix, TARGET_QUIX, "Quix"), ("limit_aiokafka", limit, TARGET_LIMIT, "limit"))
    for n, (base, base_figures, target, name) in enumerate(targets):
        ratios = ratio(runs, "tactful", base)
        if not base_figures or not ratios:
            continue
        x = target * statistics.median(base_figures)
        ax.vlines(x, row - 0.42, row + 0.42, color=BLUE, linestyle="--", linewidth=1.1)
        # One label above the row, the other below: the two targets are often close.
        y, va = (row + 0.44, "bottom") if n == 0 else (row - 0.44, "top")
        ax.text(x, y, f"target {target:g}x {name}", color=BLUE, fontsize=8, va=va, ha="center")
        said.append(f"{_range(ratios, '.2f')}x {name}")
    if said:
        ax.set_title("tactful = " + ", ".join(said), fontsize=9, color=BLUE, loc="left")
