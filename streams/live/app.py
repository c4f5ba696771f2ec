"""The Faust worker: a thin adapter around :class:`~streams.live.runtime.Runtime`.

:func:`create_worker` builds everything from one :class:`Settings` and a loaded
catalog; nothing happens at import time. Faust keeps the consumer group, the
partition assignment, the changelog-backed state table, offset commits, the
web server and timers. The batching consumer (:mod:`streams.live.consumer`)
hands the input topic to the runtime one fetch at a time, one batch in flight,
the equivalent of an agent at ``concurrency=1`` (with more, Faust may commit
past an event still in flight, faust-streaming #606). A batch is acked only
after the runtime has published its decisions and written its state, so an
offset is never committed past an event whose effects have not landed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from faust.web import Request, Response, View, Web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from streams.live import metrics as live_metrics
from streams.live.codecs import Codecs, make_codecs
from streams.live.consumer import BatchHandler, batching_consumer
from streams.live.runtime import Runtime
from streams.live.sink import BatchSink
from streams.live.topics import channels, ensure_topics
from streams.settings import Settings
from streams.topology import Catalog

log = logging.getLogger(__name__)

STATE_TABLE = "customer_state"


@dataclass
class Worker:
    app: faust.App
    runtime: Runtime
    settings: Settings
    mirror: Any | None


def state_table(app: faust.App, partitions: int) -> Any:
    """Customer id -> the state's bytes; the runtime writes its changelog (:func:`changelog_key`)."""
    return app.Table(STATE_TABLE, default=None, partitions=partitions, key_type=str, value_type=bytes)


def changelog_key(customer_id: str) -> bytes:
    """A state table key as Faust writes it: its tables serialise keys as JSON."""
    return orjson.dumps(customer_id)


def faust_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """Faust's worker, without its start-up spinner.

    At ``--loglevel warning`` or above, Faust keeps a terminal spinner that it
    drives from log records, and to feed it sets the root logger to DEBUG. Every
    debug call in aiokafka (one per produced record) and Faust then builds a
    record and walks the stack: 11% of a busy worker's samples in a profile.
    Without the spinner the root logger keeps the level asked for.
    """
    worker = faust.Worker(app, loglevel=loglevel)
    worker.spinner = None
    return worker


def create_worker(settings: Settings, catalog: Catalog) -> Worker:
    """Build the Faust app, its topics, table, agent, timers, web views and the Redis mirror."""
    input_partitions = ensure_topics(settings, catalog)
    # Faust makes only the last level of its data directory.
    settings.processing.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.topics.app_id,
        **settings.kafka.faust(),
        store=settings.processing.store,
        datadir=str(settings.processing.data_dir),
        processing_guarantee=settings.processing.guarantee,
        topic_partitions=input_partitions,
        topic_replication_factor=settings.topics.replication,
        web_host=settings.http.host,
        web_port=settings.http.port,
        web_bind=settings.http.host,
        canonical_url=settings.http.advertised(),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.processing.producer_linger,
        # The runtime hands over a batch's records per partition as one record batch
        # (streams/live/sink.py); 16 KiB (Faust's default) cut a 2,000-event batch's
        # state writes into about five per partition, each waiting for the one before.
        producer_max_batch_size=256 * 1024,
        stream_wait_empty=False,
        broker_session_timeout=settings.processing.session_timeout,
        broker_heartbeat_interval=max(settings.processing.session_timeout / 4, 0.5),
        topic_allow_declare=True,
        # Every record tactful writes is bytes it encoded itself (Avro, or state JSON).
        key_serializer="raw",
        value_serializer="raw",
    )
    metrics = live_metrics.create()
    mirror = _mirror(settings, metrics.registry) if settings.redis.url else None
    codecs: Codecs = make_codecs(settings)
    source = app.topic(
        settings.topics.input, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    table = state_table(app, input_partitions)

    # Started by Faust after the app is built; the sink asks for it when it sends.
    sink = BatchSink(lambda: cast(Any, app.producer)._ensure_producer())
    changelog_topic = table.changelog_topic.get_topic_name()

    def write_changelog(partition: int, key: str, value: bytes | None) -> None:
        # What table.send_changelog would write, in record batches. Faust's callback that
        # records a persisted offset matters only to a RocksDB store; without it such a
        # store recovers from the start of the changelog, which is slower, not wrong.
        sink.add(changelog_topic, changelog_key(key), value, partition=partition)
        # The memory store forgets which partition a key came from unless it
        # recovered it itself; it needs that to drop keys of revoked partitions.
        known = getattr(table.data, "_key_partition", None)
        if isinstance(known, dict):
            if value is None:
                known.pop(key, None)
            else:
                known[key] = partition

    runtime = Runtime(
        settings,
        catalog,
        sink=sink,
        data=table.data,
        changelog=write_changelog,
        decode=codecs.decode_touchpoint,
        encode=codecs.encode_decision,
        metrics=metrics,
        input_partitions=input_partitions,
        mirror=mirror,
        recovered=lambda: bool(app.tables.recovery.completed.is_set()) and not app.rebalancing,  # type: ignore[attr-defined]
        backlog=lambda p: _backlog(app, settings.topics.input, p, runtime),
    )

    # Iterating the topic registers it with Faust's conductor, as an agent would,
    # so the consumer subscribes to it and tracks its acks; its messages then come
    # to the runtime a fetch at a time through the batching consumer.
    source.__aiter__()

    async def process(messages: list[Any]) -> object:
        return await runtime.handle(messages)

    # Before the worker starts: Faust builds its consumer from this class then.
    app.transport.Consumer = batching_consumer(  # type: ignore[misc]
        settings.topics.input,
        BatchHandler(app, process),
        settings.processing.batch_max,
        fetch_max_wait_ms=round(settings.processing.fetch_max_wait * 1000),
    )

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def clock() -> None:
        await runtime.tick()
        if mirror is not None:
            metrics.degraded.labels("redis").set(1 if mirror.degraded else 0)

    @app.task  # type: ignore[untyped-decorator]
    async def warm_producer() -> None:
        decisions = [settings.topics.decision(ch) for ch in channels(catalog)]
        await sink.warm(
            [*decisions, settings.topics.audit, settings.topics.dlq, settings.topics.input, changelog_topic]
        )

    if mirror is not None:

        @app.task  # type: ignore[untyped-decorator]
        async def mirror_writer() -> None:
            await mirror.run()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust passes the set positionally
    async def on_assigned(_app: Any, assigned: Iterable[Any], **_: Any) -> None:
        runtime.assign(tp.partition for tp in assigned if tp.topic == settings.topics.input)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(_app: Any, revoked: Iterable[Any], **_: Any) -> None:
        runtime.revoke(tp.partition for tp in revoked if tp.topic == settings.topics.input)

    _add_views(app, runtime, settings, metrics, mirror, sink)
    return Worker(app, runtime, settings, mirror)


def _mirror(settings: Settings, registry: Any) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from streams.mirror import SuppressionMirror

    assert settings.redis.url is not None

    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    # Few client-side retries and short timeouts: the mirror retries forever itself,
    # and redis-py's default retrying would hide an outage for seconds per write.
    client = Redis.from_url(
        settings.redis.url,
        password=password,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )
    return SuppressionMirror(client, prefix=settings.redis.prefix, registry=registry)


def _backlog(app: faust.App, topic: str, partition: int, runtime: Runtime) -> int | None:
    """Records of the partition not yet processed, by the consumer's last known high watermark."""
    from faust.types import TP

    try:
        high = app.consumer.highwater(TP(topic, partition))
    except Exception:  # an unassigned or unfetched partition has no answer
        return None
    run = runtime.runs.get(partition)
    if high is None or run is None:
        return None
    return int(high) - (run.next_offset or 0)


def _add_views(
    app: faust.App, runtime: Runtime, settings: Settings, metrics: Any, mirror: Any | None, sink: BatchSink
) -> None:
    started = time.time()

    # Faust's hints expect View methods; plain (web, request) functions are what it documents.
    @app.page("/metrics")  # type: ignore[arg-type]
    async def metrics_view(web: Web, request: Request) -> Response:
        return web.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")  # type: ignore[arg-type]
    async def health(web: Web, request: Request) -> Response:
        degraded = bool(mirror is not None and mirror.degraded)
        body = {
            "status": "degraded" if degraded else "ok",
            "uptime_seconds": round(time.time() - started, 1),
            "partitions": sorted(runtime.runs),
            "redis_mirror": None
            if mirror is None
            else {
                "degraded": mirror.degraded,
                "pending": mirror.pending,
                "lag_seconds": mirror.lag_seconds,
            },
        }
        return web.json(body)

    @app.page("/ready")  # type: ignore[arg-type]
    async def ready(web: Web, request: Request) -> Response:
        recovering = not app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        # Warmed: the producer knows every output topic, so the first decisions go at once.
        ok = not recovering and not app.rebalancing and bool(runtime.runs) and sink.warmed
        return web.json(
            {"ready": ok, "recovering": recovering, "partitions": sorted(runtime.runs)}, status=200 if ok else 503
        )

    @app.page("/customers/{customer_id}")
    class CustomerView(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            token = settings.http.api_token.get_secret_value() if settings.http.api_token else None
            if not token:
                return self.json({"error": "the customer API is off: set TACTFUL_API_TOKEN"}, status=403)
            if request.headers.get("Authorization") != f"Bearer {token}":
                return self.json({"error": "a bearer token is required"}, status=401)
            if runtime.owns(customer_id):
                return self.json(runtime.customer_view(customer_id))
            if request.headers.get("X-Tactful-Forwarded"):
                return self.json({"error": "no worker owns this customer right now"}, status=503)
            owner = app.router.external_topic_key_store(app.topic(settings.topics.input), customer_id.encode())
            return await _forward(self, owner, request, customer_id)


async def _forward(view: View, owner: URL, request: Request, customer_id: str) -> Response:
    import aiohttp

    url = owner.with_path(f"/customers/{customer_id}")
    headers = {"Authorization": request.headers.get("Authorization", ""), "X-Tactful-Forwarded": "1"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            return view.bytes(await resp.read(), status=resp.status, content_type="application/json")
    except aiohttp.ClientError as exc:
        return view.json({"error": f"the owning worker at {owner} did not answer: {exc}"}, status=502)
