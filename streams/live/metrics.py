"""Prometheus metrics of a worker (names and meanings: docs/metrics.md).

Built on a given registry by :func:`create`, never at import time, so tests
and several workers in one process do not clash.

Levels are gauges named for what they hold (``tactful_timers_pending``), not
counters' ``_total``. The three gauges that once carried ``_total`` are also
exported under their old names until release 0.3.0 (:data:`DEPRECATED`): a
collector copies the new gauge's samples at scrape time, so the code sets one
gauge and the two can never disagree.

Fired matches and goals are counted by topology and arm (contract 7.3, 7.4)
from the records the runtime publishes, so the counters equal what a count of
the audit topic gives: a fired match is one (topology, version, evidence)
among a batch's SUPPRESS and ENGAGE records (every fired match makes at least
one, skipped included), a goal is one GOAL record. A match's arm is the cause
of its shadow or held-out records, ``treated`` if any of them was emitted;
only when none says (all blocked, outranked or skipped) is it asked of the
engine's own rule (:func:`count_fired`). No customer id is ever a label.

Per-partition series (``partition`` label) are the runtime's to keep current:
:meth:`Metrics.forget_partition` drops them when the worker no longer holds
the partition, so a revoked partition's last value does not linger.
"""

from __future__ import annotations

import contextlib
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.decisions import Arm, Decision, Kind, Status

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Old name -> new name, exported alongside until this release drops them (docs/metrics.md).
DEPRECATED = {
    "tactful_timers_pending_total": "tactful_timers_pending",
    "tactful_state_customers_total": "tactful_state_customers",
    "tactful_worker_degraded_total": "tactful_worker_degraded",
}
DEPRECATED_UNTIL = "0.3.0"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events: Counter
    rejected: Counter
    duplicates: Counter
    routed: Counter
    decisions: Counter
    latency: Histogram
    batch: Histogram
    watermark_lag: Gauge
    consumer_lag_records: Gauge
    consumer_lag_seconds: Gauge
    stream_time_ahead: Gauge
    stream_time_behind: Gauge
    timers: Gauge
    customers: Gauge
    state_bytes: Counter
    degraded: Gauge
    matches: Counter
    goals: Counter

    def count_fired(self, decisions: Sequence[Decision], arm_of: Callable[[str, str], str]) -> None:
        """Count the fired matches and the goals among ``decisions`` (one evaluation's or more,
        never part of one): ``arm_of(topology, customer)`` is asked only when no record says."""
        matches, goals = fired(decisions, arm_of)
        for (topology, arm), n in matches.items():
            self.matches.labels(topology, arm).inc(n)
        for (topology, arm, outcome), n in goals.items():
            self.goals.labels(topology, arm, outcome).inc(n)

    def partition_gauges(self) -> tuple[Gauge, ...]:
        return (
            self.watermark_lag,
            self.consumer_lag_records,
            self.consumer_lag_seconds,
            self.stream_time_ahead,
            self.stream_time_behind,
            self.timers,
        )

    def forget_lag(self, partition: str) -> None:
        """Drop the partition's consumer lag series (the worker cannot tell its lag now)."""
        for gauge in (self.consumer_lag_records, self.consumer_lag_seconds):
            with contextlib.suppress(KeyError):  # never set for this partition
                gauge.remove(partition)

    def forget_partition(self, partition: str) -> None:
        """Drop every per-partition series of ``partition`` (the worker no longer holds it)."""
        for gauge in self.partition_gauges():
            with contextlib.suppress(KeyError):  # never set for this partition
                gauge.remove(partition)


_HOLDING = (Status.SHADOW, Status.HELD_OUT)


def fired(
    decisions: Sequence[Decision], arm_of: Callable[[str, str], str]
) -> tuple[Tally[tuple[str, str]], Tally[tuple[str, str, str]]]:
    """Fired matches by (topology, arm) and goals by (topology, arm, outcome) among ``decisions``."""
    goals: Tally[tuple[str, str, str]] = Tally()
    arms: dict[tuple[str, int, str, tuple[str, ...]], str | None] = {}
    for d in decisions:
        kind = d.kind
        if kind == Kind.GOAL:
            goals[(d.topology, d.cause or Arm.TREATED, d.status)] += 1
            continue
        if kind == Kind.RELEASE:
            continue
        match = (d.topology, d.topology_version, d.customer_id, d.evidence)
        if d.status in _HOLDING:
            arms[match] = d.cause
        elif d.status == Status.EMITTED:
            arms[match] = Arm.TREATED
        else:
            arms.setdefault(match, None)  # blocked, outranked or skipped: says nothing of the arm
    matches: Tally[tuple[str, str]] = Tally()
    for (topology, _, customer, _), arm in arms.items():
        matches[(topology, arm or arm_of(topology, customer))] += 1
    return matches, goals


@dataclass(frozen=True)
class Alias:
    old: str
    new: str
    labels: tuple[str, ...]
    gauge: Gauge


class DeprecatedNames(Collector):
    """Exports gauges again under their old names, with the same samples."""

    def __init__(self, aliases: Iterable[Alias]) -> None:
        self.aliases = list(aliases)

    def describe(self) -> Iterator[Metric]:
        for a in self.aliases:
            yield self._family(a)

    def collect(self) -> Iterator[Metric]:
        for a in self.aliases:
            family = self._family(a)
            for metric in a.gauge.collect():
                for s in metric.samples:
                    family.add_metric([s.labels[n] for n in a.labels], s.value)
            yield family

    @staticmethod
    def _family(a: Alias) -> GaugeMetricFamily:
        doc = f"Deprecated: the same as {a.new}, removed in {DEPRECATED_UNTIL}."
        return GaugeMetricFamily(a.old, doc, labels=a.labels)


def create(registry: CollectorRegistry | None = None) -> Metrics:
    reg = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(
        registry=reg,
        events=Counter("tactful_events", "Valid events taken in, by type.", ["type"], registry=reg),
        rejected=Counter(
            "tactful_events_rejected", "Events sent to the dead-letter topic, by reason.", ["reason"], registry=reg
        ),
        duplicates=Counter("tactful_events_duplicate", "Events ignored as duplicates.", registry=reg),
        routed=Counter("tactful_events_rerouted", "Events forwarded to their customer's partition.", registry=reg),
        decisions=Counter(
            "tactful_decisions", "Decisions made.", ["kind", "channel", "topology", "status"], registry=reg
        ),
        latency=Histogram(
            "tactful_event_to_decision_seconds",
            "From the event's append to the broker to its decision's acknowledged send.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        batch=Histogram(
            "tactful_batch_seconds", "Time to process one micro-batch.", buckets=LATENCY_BUCKETS, registry=reg
        ),
        watermark_lag=Gauge(
            "tactful_watermark_lag_seconds",
            "Wall clock minus the partition's watermark; negative while the watermark is ahead of the wall clock.",
            ["partition"],
            registry=reg,
        ),
        consumer_lag_records=Gauge(
            "tactful_consumer_lag_records",
            "Records of the partition on the broker not yet processed (high watermark minus next offset).",
            ["partition"],
            registry=reg,
        ),
        consumer_lag_seconds=Gauge(
            "tactful_consumer_lag_seconds",
            "How long the partition has had unprocessed records (0 when caught up); see docs/metrics.md.",
            ["partition"],
            registry=reg,
        ),
        stream_time_ahead=Gauge(
            "tactful_stream_time_ahead_seconds",
            "The partition's stream time minus the wall clock, when ahead (else 0).",
            ["partition"],
            registry=reg,
        ),
        stream_time_behind=Gauge(
            "tactful_stream_time_behind_seconds",
            "The wall clock minus the partition's stream time, when behind (else 0).",
            ["partition"],
            registry=reg,
        ),
        timers=Gauge("tactful_timers_pending", "Absence deadlines waiting.", ["partition"], registry=reg),
        customers=Gauge("tactful_state_customers", "Customers whose state this worker holds.", registry=reg),
        state_bytes=Counter(
            "tactful_state_written_bytes", "Bytes of customer state written to the changelog.", registry=reg
        ),
        degraded=Gauge("tactful_worker_degraded", "1 while degraded for that cause.", ["cause"], registry=reg),
        matches=Counter(
            "tactful_matches_fired",
            "Matches fired, by topology and arm (contract 7.3).",
            ["topology", "arm"],
            registry=reg,
        ),
        goals=Counter(
            "tactful_goals",
            "Goals of fired matches ended, by topology, arm and outcome (reached or missed; contract 7.4).",
            ["topology", "arm", "outcome"],
            registry=reg,
        ),
    )
    labelled = {
        "tactful_timers_pending": (("partition",), metrics.timers),
        "tactful_state_customers": ((), metrics.customers),
        "tactful_worker_degraded": (("cause",), metrics.degraded),
    }
    reg.register(DeprecatedNames(Alias(old, new, *labelled[new]) for old, new in DEPRECATED.items()))
    return metrics
