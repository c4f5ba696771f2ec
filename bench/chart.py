"""The chart of ``make bench``: the peers compared at a glance, with the spread of repeated runs.

Two things made the old single bar chart hard to read: the engine alone (no
broker, several times faster than anything that consumes a topic) set the
scale, so the figures that matter (the consume+decode limit, Quix Streams,
tactful) shared the left tenth of it; and one run showed no spread, on a
machine where a busy neighbour moves a figure by a third.

So, four panels:

- **throughput**: the contenders that consume the topic (the limit, naive
  Faust, Quix Streams, tactful at-least-once and exactly-once) on one linear
  scale. Every run is a dot, the median a bar, the lowest to highest run a
  whisker. Issue 13's targets are dashed marks on each tactful row (1.2x
  the median Quix, 0.5x the median limit); the panel's title gives the
  ratios they are stated in, the medians of each run's own ratio, so that a
  run on a busier machine weighs on both sides alike;
- **engine alone**, which consumes nothing: a panel and a scale of its own;
- **latency** at the two rates (half and 80% of tactful's): p50, p95 and p99
  side by side, on a log scale (a busy machine puts p99 two orders above
  p50), with the 25 ms target;
- **recovery**, with its 30 s target.

Input is ``results.json``: an invocation of ``python -m bench pipeline``
(:class:`bench.pipeline.Bench` as a dict, its ``runs``), or one run as
earlier versions wrote it; ``python -m bench chart out/bench-*/results.json``
draws several together.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Run = Mapping[str, Any]

# Display order and short names; a figure a run has beyond these is drawn after them, by its key.
ORDER = ("limit_aiokafka", "limit_confluent", "naive_faust", "quix", "tactful", "tactful_eos")
NAMES = {
    "limit_aiokafka": "limit: consume + decode\n(aiokafka)",
    "limit_confluent": "limit: consume + decode\n(confluent-kafka)",
    "naive_faust": "naive Faust\n(count table)",
    "quix": "Quix Streams\n(count state)",
    "tactful": "tactful, one worker\n(at-least-once)",
    "tactful_eos": "tactful, one worker\n(exactly-once)",
    "engine": "engine alone\n(in-process)",
}
ALONE = "engine"  # consumes no topic: not on the peers' scale
# Issue 13's targets: tactful at least this many times Quix, and this share of the aiokafka limit;
# p99 at half of tactful's rate, and recovery.
TARGET_QUIX = 1.2
TARGET_LIMIT = 0.5
TARGET_P99_MS = 25.0
TARGET_RECOVERY_S = 30.0
QUANTILES = ("p50", "p95", "p99")

GREY, BLUE, LIGHT_BLUE, GOLD, RED = "#9aa5b1", "#2f6fde", "#8fb1ef", "#c9a227", "#d9534f"
SHADES = {"p50": "#b9cdf4", "p95": "#6f98e6", "p99": "#1f4fae"}


def load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The runs of these ``results.json`` files, in order (an invocation's file holds several)."""
    return [r for p in paths for r in load_runs(json.loads(Path(p).read_text()))]


def load_runs(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs of one parsed ``results.json``: an invocation's ``runs``, or the one run it is."""
    return [normal(r) for r in data["runs"]] if "runs" in data else [normal(data)]


def normal(run: Run) -> dict[str, Any]:
    """A run in the current shape: a run written before there were two rates has its one latency as half."""
    out = dict(run)
    if "latency" not in out:
        ms = out.get("latency_ms") or {}
        out["latency"] = (
            [{"share": 0.5, "rate": out.get("latency_rate", 0.0), "ms": ms, "samples": out.get("latency_samples", 0)}]
            if ms
            else []
        )
    return out


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


def latencies(runs: Sequence[Run], share: float, quantile: str) -> list[float]:
    """One latency quantile at one share of tactful's rate, a value per run that measured it."""
    return [
        float(lat["ms"][quantile])
        for r in map(normal, runs)
        for lat in r["latency"]
        if lat["share"] == share and quantile in lat["ms"]
    ]


def shares(runs: Sequence[Run]) -> list[float]:
    return sorted({float(lat["share"]) for r in map(normal, runs) for lat in r["latency"]})


def recoveries(runs: Sequence[Run]) -> list[float]:
    return [float(r["recovery_seconds"]) for r in runs if r.get("recovery_seconds") is not None]


def peers(runs: Sequence[Run]) -> list[str]:
    """The keys on the shared scale: the known ones in order, then any other a run has."""
    seen = {k for r in runs for k in r.get("rates", {})}
    extra = sorted(seen - set(ORDER) - {ALONE})
    return [k for k in ORDER if k in seen] + extra


def colour(key: str) -> str:
    if key.startswith("limit"):
        return GREY
    if key.startswith("tactful"):
        return LIGHT_BLUE if key.endswith("eos") else BLUE
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
    said = []
    for share in shares(runs):
        p50, p99 = latencies(runs, share, "p50"), latencies(runs, share, "p99")
        if p99:
            said.append(f"latency at {share:.0%}: p50 {_range(p50, '.0f')} ms, p99 {_range(p99, '.0f')} ms")
    rec = recoveries(runs)
    if rec:
        said.append(f"recovery of {first.get('recovery_customers', 0):,} customers {_range(rec, '.1f')} s")
    return "\n".join([head, "; ".join(said)] if said else [head])


def draw(runs: Sequence[Run], path: Path) -> None:
    """Write the chart of these runs (one or more ``results.json``'s) as a PNG."""
    if not runs:
        raise ValueError("no runs to draw")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [normal(r) for r in runs]
    keys = peers(runs)
    fig, axes = plt.subplots(
        2,
        2,
        figsize=(12, 0.7 * max(len(keys), 3) + 5.5),
        gridspec_kw={"width_ratios": [4, 1], "height_ratios": [max(len(keys), 3), 3.2]},
        squeeze=False,
    )
    _throughput(axes[0][0], runs, keys)
    _engine(axes[0][1], figures(runs, ALONE))
    _latency(axes[1][0], runs)
    _recovery(axes[1][1], runs)
    fig.suptitle(title(runs), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _thousands() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:,.0f}k")


def _throughput(ax: Any, runs: Sequence[Run], keys: Sequence[str]) -> None:
    top = 0.0
    for row, key in enumerate(reversed(keys)):
        top = max(top, _row(ax, row, key, figures(runs, key), len(runs)))
    ax.set_yticks(range(len(keys)), [NAMES.get(k, k) for k in reversed(keys)], fontsize=9)
    ax.set_xlim(0, top * 1.28)
    ax.set_xlabel("events per second (higher is better), consuming the topic")
    ax.grid(axis="x", alpha=0.3)
    rows = [len(keys) - 1 - keys.index(k) for k in ("tactful", "tactful_eos") if k in keys]
    if rows:
        _targets(ax, runs, min(rows), max(rows))
        said = [_ratios(runs, k) for k in ("tactful", "tactful_eos") if k in keys]
        ax.set_title("; ".join(s for s in said if s), fontsize=9, color=BLUE, loc="left")
    ax.xaxis.set_major_formatter(_thousands())


def _engine(ax: Any, alone: Sequence[float]) -> None:
    import matplotlib.ticker

    if not alone:
        ax.set_axis_off()
        return
    top = _row(ax, 0, ALONE, alone)
    ax.set_xlim(0, top * 1.9)  # room for the label in a narrow panel
    ax.set_yticks([0], [NAMES[ALONE]], fontsize=9)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("events/s, no broker\n(its own scale)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.xaxis.set_major_formatter(_thousands())
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))


def _row(ax: Any, row: int, key: str, values: Sequence[float], runs: int = 1) -> float:
    """One contender: a bar at the median, each run a dot, a whisker from min to max; returns the max.

    A figure measured in fewer of the ``runs`` than the others (naive Faust: the first only) says so.
    """
    med, lo, hi = spread(values)
    ax.barh(row, med, color=colour(key), alpha=0.85, height=0.6)
    if len(values) > 1:
        ax.plot([lo, hi], [row, row], color="black", linewidth=1.2)
        ax.scatter(values, [row] * len(values), color="black", s=10, zorder=3)
    fewer = f" ({len(values)} of {runs} runs)" if len(values) < runs else ""
    ax.text(hi, row, f"  {med:,.0f}/s{fewer}", va="center", fontsize=9)
    return hi


def _targets(ax: Any, runs: Sequence[Run], low: int, high: int) -> None:
    """Issue 13's throughput targets as dashed marks across the tactful rows (``low`` to ``high``)."""
    marks = []
    for base, target, name in (("quix", TARGET_QUIX, "Quix"), ("limit_aiokafka", TARGET_LIMIT, "limit")):
        base_figures = figures(runs, base)
        if base_figures:
            marks.append((target * statistics.median(base_figures), f"{target:g}x {name}"))
    marks.sort()
    for n, (x, text) in enumerate(marks):
        ax.vlines(x, low - 0.42, high + 0.42, color=BLUE, linestyle="--", linewidth=1.1)
        # Above the rows, the lower mark's label to its left and the higher's to its right: they are often close.
        ha = "right" if n == 0 and len(marks) > 1 else "left"
        ax.text(x, high + 0.44, f" {text} ", color=BLUE, fontsize=8, va="bottom", ha=ha)


def _ratios(runs: Sequence[Run], key: str) -> str:
    """tactful's ratios the targets are stated in, as median (min-max) of each run's own."""
    said = [
        f"{_range(ratio(runs, key, base), '.2f')}x {name}"
        for base, name in (("quix", "Quix"), ("limit_aiokafka", "limit"))
        if ratio(runs, key, base)
    ]
    mode = "exactly-once" if key.endswith("eos") else "at-least-once"
    return f"tactful {mode} = " + ", ".join(said) if said else ""


def _latency(ax: Any, runs: Sequence[Run]) -> None:
    """p50/p95/p99 at each rate: bars at the median, a dot per run, the p99 target dashed."""
    import matplotlib.ticker

    found = shares(runs)
    if not found:
        ax.set_axis_off()
        return
    width = 0.26
    for i, share in enumerate(found):
        for j, q in enumerate(QUANTILES):
            values = latencies(runs, share, q)
            if not values:
                continue
            x = i + (j - 1) * width
            med, lo, hi = spread(values)
            ax.bar(x, med, width=width * 0.9, color=SHADES[q], label=q if i == 0 else None)
            if len(values) > 1:
                ax.plot([x, x], [lo, hi], color="black", linewidth=1.2)
                ax.scatter([x] * len(values), values, color="black", s=10, zorder=3)
            ax.text(x, hi * 1.08, f"{med:.0f}", ha="center", va="bottom", fontsize=8)
    labels = []
    for share in found:
        rate = [lat["rate"] for r in runs for lat in r["latency"] if lat["share"] == share]
        labels.append(f"at {share:.0%} of tactful's rate\n({_range(rate, ',.0f')} events/s)")
    ax.set_xticks(range(len(found)), labels, fontsize=9)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    bottom, top = ax.get_ylim()
    ax.set_ylim(min(bottom, 1.0), max(top, TARGET_P99_MS * 2) * 1.6)
    half = found.index(0.5) if 0.5 in found else None
    if half is not None:
        ax.hlines(TARGET_P99_MS, half - 0.45, half + 0.45, color=RED, linestyle="--", linewidth=1.1)
        ax.text(half + 0.45, TARGET_P99_MS, f" p99 target {TARGET_P99_MS:g} ms", color=RED, fontsize=8, va="center")
    ax.set_ylabel("ms, append to append (log scale)")
    ax.set_title("latency (lower is better)", fontsize=9, loc="left")
    ax.legend(fontsize=8, loc="upper left", ncols=3, frameon=False)
    ax.grid(axis="y", alpha=0.3, which="both")


def _recovery(ax: Any, runs: Sequence[Run]) -> None:
    rec = recoveries(runs)
    if not rec:
        ax.set_axis_off()
        return
    med, lo, hi = spread(rec)
    ax.bar(0, med, width=0.6, color=BLUE, alpha=0.85)
    if len(rec) > 1:
        ax.plot([0, 0], [lo, hi], color="black", linewidth=1.2)
        ax.scatter([0] * len(rec), rec, color="black", s=10, zorder=3)
    ax.text(0, hi, f"{med:.1f} s\n", ha="center", va="bottom", fontsize=9)
    ax.axhline(TARGET_RECOVERY_S, color=RED, linestyle="--", linewidth=1.1)
    ax.text(0.32, TARGET_RECOVERY_S, f"target\n{TARGET_RECOVERY_S:g} s", color=RED, fontsize=8, va="bottom")
    ax.set_ylim(0, max(hi, TARGET_RECOVERY_S) * 1.3)
    ax.set_xlim(-0.6, 0.8)
    customers = runs[0].get("recovery_customers", 0)
    ax.set_xticks([0], [f"recovery of\n{customers:,} customers"], fontsize=9)
    ax.set_ylabel("s to the next decision")
    ax.grid(axis="y", alpha=0.3)
