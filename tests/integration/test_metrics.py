"""What a worker's /metrics says about its partitions (issue 9: metrics that tell the truth).

After `tactful feed` a partition's stream time stood days ahead of the wall
clock, every live event after it was dead-lettered as late, and the watermark
lag read 0. Here a real worker takes one event stamped nine days ahead and
must say so: stream time ahead, watermark lag negative, consumer caught up.
"""

from __future__ import annotations

import re
import time

from streams.live.partitioning import Partitioner
from tests.integration.conftest import Namespace, WorkerProcess, wait_until

DAY = 86_400.0
SERIES = re.compile(r'^(\w+)\{partition="(\d+)"\}$')


def by_partition(w: WorkerProcess, name: str) -> dict[int, float]:
    out = {}
    for key, value in w.metrics().items():
        m = SERIES.match(key)
        if m and m.group(1) == name:
            out[int(m.group(2))] = value
    return out


def test_a_partition_ahead_of_the_wall_clock_is_visible_and_explains_the_late_events(namespace: Namespace) -> None:
    w = namespace.worker().wait_ready()
    cust = f"ahead-{namespace.id}"
    partition = Partitioner(namespace.settings().topics.partitions)(cust)
    now = int(time.time() * 1000)

    def event(eid: str, at: int) -> dict[str, object]:
        return {
            "event_id": eid,
            "customer_id": cust,
            "type": "purchase",  # a type topologies read: the customer gets state and timers
            "occurred_at": at,
            "channel": "store",
            "attributes": {"category": "phone"},
        }

    namespace.feed([event("future", now + int(9 * DAY * 1000))])
    ahead = wait_until(
        lambda: by_partition(w, "tactful_stream_time_ahead_seconds").get(partition, 0) > 0 or None,
        60,
        "stream time ahead on the fed partition",
    )
    assert ahead
    got = {
        name: by_partition(w, name)
        for name in (
            "tactful_stream_time_ahead_seconds",
            "tactful_stream_time_behind_seconds",
            "tactful_watermark_lag_seconds",
            "tactful_consumer_lag_records",
            "tactful_consumer_lag_seconds",
        )
    }
    assert 9 * DAY - 120 < got["tactful_stream_time_ahead_seconds"][partition] <= 9 * DAY
    assert got["tactful_stream_time_behind_seconds"][partition] == 0
    assert got["tactful_watermark_lag_seconds"][partition] < -8 * DAY  # not clamped to 0
    # Caught up; and only the partition with a processed record has a lag (no guess for the others).
    wait_until(
        lambda: (
            by_partition(w, "tactful_consumer_lag_records") == {partition: 0}
            and by_partition(w, "tactful_consumer_lag_seconds") == {partition: 0}
        ),
        30,
        "the fed partition's consumer lag at 0",
    )

    # What the gauge warns of: an event stamped now is behind the watermark.
    namespace.feed([event("present", int(time.time() * 1000))])
    wait_until(
        lambda: w.metrics().get('tactful_events_rejected_total{reason="late"}', 0) == 1, 60, "the live event late"
    )

    # The gauges' new names, and the old `_total` ones alongside until 0.3.0.
    metrics = w.metrics()
    assert (
        metrics[f'tactful_timers_pending{{partition="{partition}"}}']
        == (metrics[f'tactful_timers_pending_total{{partition="{partition}"}}'])
    )
    assert metrics["tactful_state_customers"] == metrics["tactful_state_customers_total"] >= 1
    assert metrics['tactful_worker_degraded{cause="redis"}'] == metrics['tactful_worker_degraded_total{cause="redis"}']
