"""The worker's HTTP API, with no web framework in it.

Each endpoint is a method answering an :class:`Answer` (a status and a JSON
value, or raw bytes); :mod:`streams.live.faust.web` serves them as Faust
views. What the API needs of the worker it is given: the runtime, the
mirror's status, and functions for what only the adapter knows (whether the
state table is recovering, whether a rebalance is under way, whether the
producer is warmed, which worker owns a customer).

- ``/metrics``: Prometheus text.
- ``/health``: 200 always; ``degraded`` while the Redis mirror is.
- ``/ready``: 200 once the worker has joined its consumer group (its
  assignment came, even an empty one), the broker answers, the table has
  recovered, no rebalance is under way and the producer knows every output
  topic; else 503. Holding no partition does not make a worker unready: in a
  group with more workers than partitions, or right after a restart before a
  rebalance gives it any, a healthy worker must not hold up a rolling deploy.
  It also shows the catalog version in force on each partition, and the newest
  known (``catalog``: :mod:`streams.live.catalog`).
- ``/customers/{id}``: the customer's state explained for a person (events
  kept, matches in progress with the steps still missing, suppressions in
  force, recent decisions with why, arms, open goals; ISO times; see
  :mod:`streams.engine.explain` and docs/live.md), the raw state too with
  ``?raw=1``; behind a bearer token: 401 without one, 403 with a wrong one (or
  while no token is set: the API is off); 404 for a customer with no state
  (unknown, or erased with nothing since: contract section 9); a customer owned
  by another worker is answered by that worker (one hop: a forwarded request is
  never forwarded again).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from yarl import URL

from streams.live.runtime import Runtime
from streams.settings import Settings

FORWARDED = "X-Tactful-Forwarded"
RAW = "raw"  # the query flag that adds the raw state to the customer view


@dataclass(frozen=True)
class Answer:
    status: int = 200
    json: Any = None
    raw: bytes | None = None  # served as it is, as ``content_type``; else ``json``
    content_type: str = "application/json"


class MirrorStatus(Protocol):
    @property
    def degraded(self) -> bool: ...
    @property
    def pending(self) -> int: ...
    @property
    def lag_seconds(self) -> float: ...


@dataclass(frozen=True)
class WorkerStatus:
    """What only the adapter knows, asked for at each request."""

    recovering: Callable[[], bool]  # the state table is being restored from its changelog
    rebalancing: Callable[[], bool]
    warmed: Callable[[], bool]  # the producer has every output topic's metadata
    joined: Callable[[], bool]  # the group has given this worker its assignment (possibly no partition)
    reachable: Callable[[], bool]  # the broker answered the last probe
    owner_url: Callable[[str], URL]  # the web address of the worker that owns a customer
    # The catalog versions in force (streams.live.catalog: LiveCatalog.status); None without the catalog topic.
    catalog: Callable[[], Mapping[str, Any]] | None = None


class WorkerApi:
    def __init__(
        self,
        runtime: Runtime,
        settings: Settings,
        registry: CollectorRegistry,
        mirror: MirrorStatus | None,
        status: WorkerStatus,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.registry = registry
        self.mirror = mirror
        self.status = status
        self.clock = clock
        self.started = clock()

    def metrics(self) -> Answer:
        return Answer(raw=generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    def health(self) -> Answer:
        mirror = self.mirror
        degraded = bool(mirror is not None and mirror.degraded)
        return Answer(
            json={
                "status": "degraded" if degraded else "ok",
                "uptime_seconds": round(self.clock() - self.started, 1),
                "partitions": sorted(self.runtime.runs),
                "redis_mirror": None
                if mirror is None
                else {"degraded": mirror.degraded, "pending": mirror.pending, "lag_seconds": mirror.lag_seconds},
            }
        )

    def ready(self) -> Answer:
        status = self.status
        recovering = status.recovering()
        joined = status.joined()
        reachable = status.reachable()
        # Warmed: the producer knows every output topic, so the first decisions go at once.
        # No partition is required: which worker holds which is the group's business.
        ok = joined and reachable and not recovering and not status.rebalancing() and status.warmed()
        return Answer(
            status=200 if ok else 503,
            json={
                "ready": ok,
                "joined": joined,
                "broker_reachable": reachable,
                "recovering": recovering,
                "partitions": sorted(self.runtime.runs),
                **({"catalog": status.catalog()} if status.catalog is not None else {}),
            },
        )

    async def customer(
        self, customer_id: str, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> Answer:
        token = self.settings.http.api_token.get_secret_value() if self.settings.http.api_token else None
        if not token:
            return Answer(403, {"error": "the customer API is off: set TACTFUL_API_TOKEN"})
        given = headers.get("Authorization")
        if not given:
            return Answer(401, {"error": "a bearer token is required"})
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Answer(403, {"error": "the bearer token is wrong"})
        raw = (query or {}).get(RAW, "") in ("1", "true", "yes")
        if self.runtime.owns(customer_id):
            view = self.runtime.customer_view(customer_id, raw=raw)
            if view is None:
                return Answer(404, {"error": "no state for this customer: unknown, or erased (docs/erasure.md)"})
            return Answer(json=view)
        if headers.get(FORWARDED):
            return Answer(503, {"error": "no worker owns this customer right now"})
        return await _forward(self.status.owner_url(customer_id), customer_id, headers, raw)


async def _forward(owner: URL, customer_id: str, headers: Mapping[str, str], raw: bool = False) -> Answer:
    import aiohttp

    url = owner.with_path(f"/customers/{customer_id}")
    if raw:
        url = url.with_query({RAW: "1"})
    sent = {"Authorization": headers.get("Authorization", ""), FORWARDED: "1"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=sent, timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            return Answer(resp.status, raw=await resp.read())
    except aiohttp.ClientError as exc:
        return Answer(502, {"error": f"the owning worker at {owner} did not answer: {exc}"})
