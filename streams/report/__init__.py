"""``tactful report``: do the decisions help? Uplift, outcomes and journeys from the audit.

Pieces, each in its own module:

- :mod:`~streams.report.inputs`: the audit (``replay --audit`` output, or the
  live audit topic over a time range) and the touchpoints (JSON Lines or Avro
  file, or the input topic), streamed as plain dicts;
- :mod:`~streams.report.aggregate`: one pass over the audit, then one over
  the touchpoints, into counters per topology, arm, status and channel, and
  each fired match's path (memory grows with matches, not events);
- :mod:`~streams.report.arms`: the contract's bucket function (7.3), for the
  matches whose records show no arm;
- :mod:`~streams.report.stats`: Wilson, Newcombe and log-ratio intervals, the
  verdict and incremental goals;
- :mod:`~streams.report.sankey`: the journey Sankey's nodes and links;
- :mod:`~streams.report.render`: the terminal tables, JSON and the HTML page.

The JSON (``--json``) is the data every renderer reads::

    {"inputs": {audit_records, audit_records_unreadable, touchpoints, touchpoints_unreadable,
                matches, arms_from_catalog, path_length},
     "topologies": [{"topology", "versions", "matches": {arm: n}, "matches_total",
                     "decisions": [{"kind", "status", "cause", "count"}],
                     "goal": null | {"arms": {arm: RATE}, "control": RATE,
                                     "uplift": {"absolute", "absolute_interval", "relative",
                                                "relative_interval", "verdict", "incremental_goals",
                                                "incremental_interval"}}}],
     "channels": [{"channel", "sent", "delivered", "opened", "clicked", "converted", "dismissed",
                   "complained", "unsubscribed", "failed", "topologies": [{"topology", ...same counts}]}],
     "sankey": {"all": SANKEY, "topologies": {name: SANKEY}},
     "customer": null | {"customer_id", "timeline": [...], "matches": [...], "sankey": SANKEY}}

    RATE   = {"reached", "missed", "open", "rate", "interval": [low, high] | null}
    SANKEY = {"nodes": [{"stage", "label"}], "links": [{"source", "target", "value"}]}

Rates are fractions (0..1); intervals are 95%; a figure that is undefined
(an empty arm) is ``null``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from streams.report.aggregate import Aggregator
from streams.report.arms import HoldoutCatalog
from streams.report.inputs import Source

__all__ = ["Aggregator", "HoldoutCatalog", "Source", "build"]

Progress = Callable[[Source], AbstractContextManager[Callable[[], None]]]


def _ticking(source: Source, tick: Callable[[], None], every: int = 20_000) -> Iterator[dict[str, Any]]:
    n = 0
    for record in source.records:
        n += 1
        if n == every:
            n = 0
            tick()
        yield record


def build(
    audit: Source,
    touchpoints: Source | None = None,
    *,
    catalog: HoldoutCatalog | None = None,
    customer: str | None = None,
    path_length: int = 3,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read the audit, then the touchpoints, and return the report data (the ``--json`` shape)."""
    agg = Aggregator(catalog, customer=customer, path_length=path_length)
    for source, add in ((audit, agg.add_audit_records), (touchpoints, agg.add_touchpoint_records)):
        if source is None:
            continue
        context = progress(source) if progress is not None else nullcontext(lambda: None)
        with context as tick:
            add(_ticking(source, tick))
    agg.bad_audit += audit.bad_records
    if touchpoints is not None:
        agg.bad_touchpoints += touchpoints.bad_records
    return agg.result()
