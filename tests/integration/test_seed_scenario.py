"""The seed scenario end to end: Kafka in, channel topics and Redis out, metrics counted."""

from __future__ import annotations

import time

import redis

from streams.decisions import Kind
from tests.integration.conftest import Namespace, wait_until
from tests.integration.services import redis_url


def test_seed_scenario_suppresses_engages_and_releases(namespace: Namespace) -> None:
    w = namespace.worker().wait_ready()
    now = int(time.time() * 1000)
    cust = f"seed-{namespace.id}"
    namespace.feed(
        [
            {
                "event_id": "p",
                "customer_id": cust,
                "type": "purchase",
                "occurred_at": now,
                "channel": "store",
                "attributes": {"category": "phone"},
            },
            {
                "event_id": "f",
                "customer_id": cust,
                "type": "activation_failed",
                "occurred_at": now + 60_000,
                "channel": "app",
            },
            {
                "event_id": "s",
                "customer_id": cust,
                "type": "support_contact",
                "occurred_at": now + 120_000,
                "channel": "call_center",
                "attributes": {"resolved": "false", "tz": "UTC"},
            },
        ]
    )
    effective = now + 120_000
    for channel in ("ads", "email", "sms"):
        got = namespace.decisions(channel, lambda ds: len(ds) >= 1)
        assert [(d.kind, d.category, d.evidence, d.effective_at) for d in got] == [
            (Kind.SUPPRESS, "phone", ("p", "f", "s"), effective)
        ]
        assert got[0].expires_at == effective + 14 * 86_400_000
    engaged = namespace.decisions("call_center", lambda ds: len(ds) >= 1)
    assert [(d.kind, d.action) for d in engaged] == [(Kind.ENGAGE, "proactive_activation_help")]

    r = redis.Redis.from_url(redis_url())
    prefix = f"t{namespace.id}"
    for channel in ("ads", "email", "sms"):
        key = f"{prefix}:s:{{{cust}}}:{channel}:phone"
        wait_until(lambda key=key: r.exists(key), 20, f"redis key {key}")
        # PEXPIREAT is the suppression's end: 14 days after the match, give or take the test's runtime.
        ttl_ms = r.pttl(key)
        expected = effective + 14 * 86_400_000 - int(time.time() * 1000)
        assert abs(ttl_ms - expected) < 60_000, (ttl_ms, expected)
        assert r.exists(f"{prefix}:s:{{{cust}}}:{channel}:phone", f"{prefix}:s:{{{cust}}}:{channel}:*") == 1
    assert r.exists(f"{prefix}:s:{{{cust}}}:push:phone") == 0

    metrics = w.metrics()
    assert metrics['tactful_events_total{type="purchase"}'] == 1
    assert (
        metrics[
            'tactful_decisions_total{channel="ads",kind="SUPPRESS",status="emitted",topology="post_purchase_friction"}'
        ]
        == 1
    )

    namespace.feed(
        [
            {
                "event_id": "ok",
                "customer_id": cust,
                "type": "activation_succeeded",
                "occurred_at": now + 180_000,
                "channel": "app",
            }
        ]
    )
    released = namespace.decisions("ads", lambda ds: len(ds) >= 2)
    assert [(d.kind, d.category, d.evidence) for d in released[1:]] == [(Kind.RELEASE, "phone", ("ok",))]
    for channel in ("ads", "email", "sms"):
        key = f"{prefix}:s:{{{cust}}}:{channel}:phone"
        wait_until(lambda key=key: not r.exists(key), 20, f"redis key {key} removed")

    status, view = w.get(f"/customers/{cust}", token=namespace.api_token)
    assert status == 200 and view["customer_id"] == cust and view["active_suppressions"] == []
    assert w.get(f"/customers/{cust}")[0] == 401
