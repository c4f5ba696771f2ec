"""Erasure end to end (contract section 9): `tactful forget` against a real worker, Kafka and Redis."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import orjson
import redis

from streams.codec import avro
from streams.decisions import Decision, Kind
from streams.live.codecs import resolver
from streams.live.forget import H_FORGET
from streams.live.topics import channels
from streams.mirror import forget_customer
from streams.topology import load_folder
from tests.integration.conftest import REPO, TACTFUL, Namespace, wait_until
from tests.integration.services import redis_url


def friction(cust: str, now: int) -> list[dict[str, Any]]:
    """post_purchase_friction, all of it before now: three SUPPRESS (14 days) and an ENGAGE."""
    return [
        {
            "event_id": "p",
            "customer_id": cust,
            "type": "purchase",
            "occurred_at": now - 180_000,
            "channel": "store",
            "attributes": {"category": "phone"},
        },
        {"event_id": "f", "customer_id": cust, "type": "activation_failed", "occurred_at": now - 120_000},
        {
            "event_id": "s",
            "customer_id": cust,
            "type": "support_contact",
            "occurred_at": now - 60_000,
            "attributes": {"resolved": "false"},
        },
    ]


def keys_of(r: redis.Redis, prefix: str, cust: str) -> list[bytes]:
    return list(r.scan_iter(match=f"{prefix}:s:{{{cust}}}:*", count=1000))


def headers(m: Any) -> dict[str, bytes]:
    return {k: v for k, v in (m.headers() or [])}


def test_forget_erases_a_suppressed_customer_everywhere(namespace: Namespace) -> None:
    w = namespace.worker().wait_ready()
    now = int(time.time() * 1000)
    cust = f"gone-{namespace.id}"
    prefix = namespace.redis_prefix
    r = redis.Redis.from_url(redis_url())
    namespace.feed(friction(cust, now))
    wait_until(lambda: len(keys_of(r, prefix, cust)) == 6, 30, "the suppressions mirrored (3 channels x 2 hashes)")
    namespace.wait_committed(3)
    assert w.get(f"/customers/{cust}", token=namespace.api_token)[0] == 200

    env = {**os.environ, **namespace.env()}
    done = subprocess.run([TACTFUL, "forget", cust], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"sent tactful.erase for {cust}" in done.stdout

    # Every channel topic gets one forget record, keyed by the customer, with no value, after its decisions.
    settings = namespace.settings()
    for channel in channels(load_folder(REPO / "topologies")):
        topic = settings.topics.decision(channel)
        got = namespace.read(topic, lambda ms: any(H_FORGET in headers(m) for m in ms))
        last = got[-1]
        assert (last.key(), last.value()) == (cust.encode(), None)
        assert len([m for m in got if H_FORGET in headers(m)]) == 1
    # The mirror holds none of the customer's keys.
    wait_until(lambda: not keys_of(r, prefix, cust), 30, "the customer's Redis keys deleted")
    # The changelog's last record for the customer is the tombstone, and only that.
    namespace.wait_committed(4)
    changelog = f"{settings.topics.app_id}-customer_state-changelog"
    key = orjson.dumps(cust)

    def tombstone_last(ms: list[Any]) -> bool:
        mine = [m for m in ms if m.key() == key]
        return bool(mine) and mine[-1].value() is not None and b'"x":' in mine[-1].value()

    got = namespace.read(changelog, tombstone_last)
    state = orjson.loads([m for m in got if m.key() == key][-1].value())
    assert state["e"] == [] and state["s"] == [] and state["m"] == [] and state["f"] == {}
    assert state["x"][0] <= int(time.time() * 1000)
    # The API knows the customer no more.
    status, body = w.get(f"/customers/{cust}", token=namespace.api_token)
    assert status == 404, body

    # The customer's old events again (a redelivery, or a producer's retry): the ids they had are gone
    # with the state, so only the tombstone keeps them from matching and firing once more.
    changelog_end = namespace.end_offsets(changelog)
    namespace.feed(friction(cust, now))
    namespace.wait_committed(7)
    assert not keys_of(r, prefix, cust)
    assert w.get(f"/customers/{cust}", token=namespace.api_token)[0] == 404
    resolve = resolver(settings)  # the workers write with the registry's ids
    for channel in ("ads", "email", "sms", "call_center"):
        topic = settings.topics.decision(channel)
        values = [m.value() for m in namespace.read(topic, lambda ms: any(H_FORGET in headers(m) for m in ms))]
        decided = [Decision.from_record(avro.decode(v, resolve)) for v in values if v is not None]
        assert len(decided) == 1 and values[-1] is None  # the one decision before the erase, then the forget
        assert decided[0].kind in (Kind.SUPPRESS, Kind.ENGAGE)
    assert namespace.end_offsets(changelog) == changelog_end  # nothing written for the erased events
    metrics = w.metrics()
    assert metrics['tactful_events_total{type="tactful.erase"}'] == 1


def test_forget_customer_deletes_exactly_one_customers_keys_on_real_redis(namespace: Namespace) -> None:
    """Key escaping and glob escaping as the real Redis reads them."""
    import asyncio

    from redis.asyncio import Redis

    prefix = namespace.redis_prefix
    customers = ["a", "a*", "a?", "[a]", "a\\b", "a:b", "ab"]
    r = redis.Redis.from_url(redis_url())
    from streams.mirror import channel_key

    for c in customers:
        r.hset(channel_key(prefix, c, "email"), "t|*", "1")
        r.hset(channel_key(prefix, c, "email") + ":*", "t", "1")

    async def forget(c: str) -> int:
        client = Redis.from_url(redis_url())
        try:
            return await forget_customer(client, prefix, c)
        finally:
            await client.aclose()

    for gone in ("a*", "[a]", "a\\b"):
        assert asyncio.run(forget(gone)) == 2
        left = {k.decode() for k in r.scan_iter(match=f"{prefix}:s:*", count=1000)}
        assert not any(k.startswith(channel_key(prefix, gone, "email")) for k in left)
    assert len(list(r.scan_iter(match=f"{prefix}:s:*", count=1000))) == 2 * (len(customers) - 3)
