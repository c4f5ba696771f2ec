"""A worker restarted over real state holds every customer's state exactly as it was.

Most of a recovery's records are applied in place by the consumer
(streams/live/faust/recovery.py), the last of each partition by Faust: the
restored state must not tell the two apart, whatever each customer's history.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import Namespace, WorkerProcess, wait_until

TOKEN = "recovery-test-token"
CUSTOMERS = 120


def wave(customers: list[str], now: int, n: int) -> list[dict[str, Any]]:
    """The n-th wave of events: every customer a purchase, some a complaint or a failed activation too."""
    events: list[dict[str, Any]] = []
    for i, cust in enumerate(customers):
        at = now + n * 60_000
        events.append(
            {
                "event_id": f"p{n}-{i}",
                "customer_id": cust,
                "type": "purchase",
                "occurred_at": at,
                "channel": "web",
                "attributes": {"category": "phone"},
            }
        )
        if i % 3 == n % 3:
            events.append(
                {
                    "event_id": f"c{n}-{i}",
                    "customer_id": cust,
                    "type": "complaint",
                    "occurred_at": at + 1000,
                    "channel": "email",
                    "attributes": {"category": "billing"},
                }
            )
        if i % 4 == 0:
            events.append(
                {"event_id": f"f{n}-{i}", "customer_id": cust, "type": "activation_failed", "occurred_at": at + 2000}
            )
    return events


def states(worker: WorkerProcess, customers: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for cust in customers:
        status, body = worker.get(f"/customers/{cust}?raw=1", TOKEN)
        if status != 200:
            return {}  # not every partition has started yet
        found[cust] = body["state"]
    return found


@pytest.mark.parametrize("kill", [True, False], ids=["killed", "stopped"])
def test_a_restarted_worker_holds_every_customers_state_exactly_as_before(namespace: Namespace, kill: bool) -> None:
    now = int(time.time() * 1000) - 3_600_000
    customers = [f"s{i:03d}-{namespace.id}" for i in range(CUSTOMERS)]
    first = namespace.worker("first", TACTFUL_API_TOKEN=TOKEN).wait_ready()
    fed = 0
    # Three waves, each committed before the next: several changelog records per customer.
    for n in range(3):
        fed += namespace.feed(wave(customers, now, n))
        namespace.wait_committed(fed, timeout=120)
    before = wait_until(lambda: states(first, customers) or None, 60, "every customer's state on the first worker")
    assert len(before) == CUSTOMERS and all(s["e"] for s in before.values())
    first.stop(kill=kill)

    second = namespace.worker("second", TACTFUL_API_TOKEN=TOKEN).wait_ready()
    after = wait_until(lambda: states(second, customers) or None, 60, "every customer's state after the restart")
    assert after == before
