"""Prometheus metrics of a worker (names and meanings: docs/metrics.md).

Built on a given registry by :func:`create`, never at import time, so tests
and several workers in one process do not clash.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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
    timers: Gauge
    customers: Gauge
    state_bytes: Counter
    degraded: Gauge


def create(registry: CollectorRegistry | None = None) -> Metrics:
    reg = registry if registry is not None else CollectorRegistry()
    return Metrics(
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
            "tactful_watermark_lag_seconds", "Wall clock minus the partition's watermark.", ["partition"], registry=reg
        ),
        timers=Gauge("tactful_timers_pending_total", "Absence deadlines waiting.", ["partition"], registry=reg),
        customers=Gauge("tactful_state_customers_total", "Customers whose state this worker holds.", registry=reg),
        state_bytes=Counter(
            "tactful_state_written_bytes", "Bytes of customer state written to the changelog.", registry=reg
        ),
        degraded=Gauge("tactful_worker_degraded_total", "1 while degraded for that cause.", ["cause"], registry=reg),
    )
