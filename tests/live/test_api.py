"""The worker's HTTP API without Faust: statuses and bodies of each endpoint."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from yarl import URL

from streams.live.api import FORWARDED, Answer, WorkerApi, WorkerStatus
from streams.live.runtime import Runtime
from tests.live.test_runtime import NOW, Log, event, make, records

TOKEN = "s3cret"


@dataclass
class Mirror:
    degraded: bool = False
    pending: int = 0
    lag_seconds: float = 0.0


@dataclass
class Flags:
    recovering: bool = False
    rebalancing: bool = False
    warmed: bool = True
    joined: bool = True
    reachable: bool = True


def api(mirror: Mirror | None = None, flags: Flags | None = None, token: str = TOKEN) -> tuple[WorkerApi, Runtime]:
    rt, _ = make(Log(), [NOW / 1000], api_token=token)
    f = flags or Flags()
    status = WorkerStatus(
        recovering=lambda: f.recovering,
        rebalancing=lambda: f.rebalancing,
        warmed=lambda: f.warmed,
        joined=lambda: f.joined,
        reachable=lambda: f.reachable,
        owner_url=lambda cid: URL("http://127.0.0.1:1"),  # nobody listens there
    )
    return WorkerApi(rt, rt.settings, rt.metrics.registry, mirror, status, clock=lambda: 100.0), rt


def test_metrics_are_prometheus_text() -> None:
    a = api()[0].metrics()
    assert (a.status, a.content_type) == (200, "text/plain")
    assert a.raw is not None and b"tactful_events_rerouted_total" in a.raw


@pytest.mark.parametrize(
    "mirror, status, redis",
    [
        (None, "ok", None),
        (Mirror(), "ok", {"degraded": False, "pending": 0, "lag_seconds": 0.0}),
        (Mirror(True, 12, 3.5), "degraded", {"degraded": True, "pending": 12, "lag_seconds": 3.5}),
    ],
)
def test_health_reports_the_mirror(mirror: Mirror | None, status: str, redis: object) -> None:
    a = api(mirror)[0].health()
    assert a == Answer(json={"status": status, "uptime_seconds": 0.0, "partitions": [], "redis_mirror": redis})


@pytest.mark.parametrize(
    "flags, started, ready",
    [
        (Flags(), True, True),
        # Joined with no partition (more workers than partitions, or none given yet): ready,
        # so that a rolling deploy does not wait on the group's assignment.
        (Flags(), False, True),
        (Flags(joined=False), False, False),  # started, not in the group yet
        (Flags(joined=False), True, False),
        (Flags(reachable=False), True, False),  # the broker does not answer
        (Flags(reachable=False), False, False),
        (Flags(recovering=True), True, False),
        (Flags(recovering=True), False, False),
        (Flags(rebalancing=True), True, False),
        (Flags(warmed=False), True, False),
        (Flags(warmed=False), False, False),
    ],
)
def test_ready_once_joined_recovered_reachable_and_warmed_with_or_without_partitions(
    flags: Flags, started: bool, ready: bool
) -> None:
    a, rt = api(flags=flags)
    if started:
        rt.assign([2])
        asyncio.run(rt.tick())
    answer = a.ready()
    assert answer.status == (200 if ready else 503)
    assert answer.json == {
        "ready": ready,
        "joined": flags.joined,
        "broker_reachable": flags.reachable,
        "recovering": flags.recovering,
        "partitions": [2] if started else [],
    }


def customer(a: WorkerApi, cid: str, headers: dict[str, str], query: dict[str, str] | None = None) -> Answer:
    return asyncio.run(a.customer(cid, headers, query))


@pytest.mark.parametrize(
    "token, headers, status",
    [
        ("", {}, 403),  # no token set: the API is off for everyone
        ("", {"Authorization": "Bearer "}, 403),
        (TOKEN, {}, 401),  # missing
        (TOKEN, {"Authorization": ""}, 401),
        (TOKEN, {"Authorization": "Bearer wrong"}, 403),  # wrong
        (TOKEN, {"Authorization": TOKEN}, 403),  # not a bearer token
        (TOKEN, {"Authorization": f"Bearer {TOKEN}x"}, 403),
        (TOKEN, {"Authorization": f"Bearer {TOKEN}"}, 404),  # right: an unknown customer of this worker
    ],
)
def test_the_customer_api_needs_its_token(token: str, headers: dict[str, str], status: int) -> None:
    a, rt = api(token=token)
    rt.assign([0, 1, 2, 3])
    asyncio.run(rt.tick())
    got = customer(a, "c1", headers)
    assert got.status == status, got.json
    assert "error" in got.json


def test_a_customer_of_this_worker_is_answered_here() -> None:
    a, rt = api()
    asyncio.run(rt.handle(records(("c7", event("p", "c7", "purchase", NOW, category="phone")))))
    got = customer(a, "c7", {"Authorization": f"Bearer {TOKEN}"})
    assert got.status == 200 and got.json["customer_id"] == "c7"
    assert [e["event_id"] for e in got.json["events"]] == ["p"]
    assert "state" not in got.json  # the raw state only when asked
    raw = customer(a, "c7", {"Authorization": f"Bearer {TOKEN}"}, {"raw": "1"})
    assert raw.status == 200 and raw.json["state"]["e"][0][2] == "p"
    assert {k: v for k, v in raw.json.items() if k != "state"} == got.json


def test_a_customer_of_another_worker_is_forwarded_once() -> None:
    a, _ = api()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert customer(a, "c8", {**auth, FORWARDED: "1"}).status == 503  # forwarded already: no second hop
    got = customer(a, "c8", auth)
    assert got.status == 502 and "did not answer" in got.json["error"]
