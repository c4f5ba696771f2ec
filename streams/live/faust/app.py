"""The Faust worker: builds the app and wires it to :class:`~streams.live.runtime.Runtime`.

:func:`create_worker` builds everything from one :class:`Settings` and a loaded
catalog; nothing happens at import time. Faust keeps the consumer group, the
partition assignment, the changelog-backed state table, offset commits, the
web server and timers. The batching consumer (:mod:`streams.live.faust.consumer`)
hands the input topic to the runtime one fetch at a time, one batch in flight,
the equivalent of an agent at ``concurrency=1`` (with more, Faust may commit
past an event still in flight, faust-streaming #606). A batch is acked only
after the runtime has published its decisions and written its state, so an
offset is never committed past an event whose effects have not landed.
The state table recovers from its changelog as Faust's would, but the
consumer applies most records in place (:mod:`~streams.live.faust.recovery`),
and the runtime keeps state in the memory store's own dict
(:func:`~streams.live.faust.table.state_data`).

With ``TACTFUL_PROCESSING_GUARANTEE=exactly_once`` the sink is a
:class:`~streams.live.sink.TransactionalSink` over one transactional producer
per input partition (:mod:`~streams.live.faust.transactions`), started as
partitions are assigned, before their state is recovered; Faust itself is
always told ``at_least_once``.

With ``TACTFUL_INSTANCE_ID`` the worker is a static member of its consumer
group: restarted under the same id it gets its partitions back at once
(:mod:`~streams.live.faust.assignor` for the one Faust check that got in the
way). ``/ready`` learns from :class:`_Schedule` whether the group has
assigned the worker yet and whether the broker answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaProducer

from streams.gctune import Freezer
from streams.live import metrics as live_metrics
from streams.live.api import WorkerApi, WorkerStatus
from streams.live.catalog import CatalogMetrics, LiveCatalog
from streams.live.codecs import Codecs, make_codecs
from streams.live.faust import web
from streams.live.faust.assignor import StaticMemberAssignor
from streams.live.faust.bootstrap import patient
from streams.live.faust.consumer import EXIT_BATCH_FAILED, BatchHandler, RecoveryEnds, Restore, batching_consumer
from streams.live.faust.recovery import ChangelogRestore
from streams.live.faust.source import FaustSource, committed_reader
from streams.live.faust.table import changelog_writer, key_partitions, state_data, state_table
from streams.live.faust.transactions import FENCED_GRACE, PartitionProducers, committed_ends, is_fenced
from streams.live.metrics import Metrics
from streams.live.runtime import Runtime, RuntimeIO, StateTable
from streams.live.sink import BatchSink, TransactionalSink
from streams.live.topics import channels, ensure_topics, record_limits
from streams.settings import Settings
from streams.topology import Catalog

log = logging.getLogger(__name__)

# Seconds between broker probes (/ready), and the longest a probe may wait for its answer.
PROBE_EVERY = 5.0


@dataclass
class Worker:
    app: faust.App
    runtime: Runtime
    settings: Settings
    mirror: Any | None


def build_app(settings: Settings, input_partitions: int) -> faust.App:
    """The Faust app, configured from the settings; no topic, table or agent yet."""
    # Faust makes only the last level of its data directory.
    settings.processing.data_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.topics.app_id,
        **settings.kafka.faust(),
        store=settings.processing.store,
        datadir=str(settings.processing.data_dir),
        # Always: tactful's exactly-once runs its own transactions, one per input partition and
        # batch (streams/live/faust/transactions.py says why not Faust's).
        processing_guarantee="at_least_once",
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
        # Static membership (KIP-345), when the worker has a stable name: restarted, it
        # takes over its member at once, where a new member would wait for the killed
        # one's session to expire before any partition moves (docs/live.md, restarts).
        consumer_group_instance_id=settings.topics.instance_id,
        PartitionAssignor=StaticMemberAssignor,
        broker_heartbeat_interval=max(settings.processing.session_timeout / 4, 0.5),
        topic_allow_declare=True,
        # Every record tactful writes is bytes it encoded itself (Avro, or state JSON).
        key_serializer="raw",
        value_serializer="raw",
    )


def producer(app: faust.App) -> Callable[[], AIOKafkaProducer]:
    """The aiokafka producer inside Faust's, for the sink: Faust starts it after the app is built,
    so the sink asks for it when it sends. Private (``Producer._ensure_producer``), pinned by a test."""
    faust_producer: Any = app.producer
    return lambda: faust_producer._ensure_producer()


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


def create_worker(
    settings: Settings, catalog: Catalog, live: LiveCatalog | None = None, follow_from: int = 0
) -> Worker:
    """Build the Faust app, its topics, table, consumer, timers, web views and the Redis mirror.

    With ``live`` (the versions read from the catalog topic, ``catalog`` the newest of them),
    partitions run the version in force at their watermark, and a task follows the catalog
    topic from offset ``follow_from`` (:mod:`streams.live.catalog`)."""
    input_partitions = ensure_topics(settings, catalog)
    app = build_app(settings, input_partitions)
    _patient_producers(app, settings.processing.start_timeout)
    metrics = live_metrics.create()
    codecs = make_codecs(settings, [settings.topics.decision(ch) for ch in channels(catalog)])
    # A catalog with no channel has nothing to mirror (and aiokafka subscribes to no empty list).
    mirror = _mirror(settings, catalog, codecs, metrics.registry) if settings.redis.url and channels(catalog) else None
    table = state_table(app, input_partitions)
    outputs = [settings.topics.decision(ch) for ch in channels(catalog)]
    outputs += [settings.topics.audit, settings.topics.dlq, settings.topics.input]
    # Faust creates the changelog later, with the broker's default limit: the default holds.
    limits = record_limits(settings, outputs, app.conf.producer_max_request_size)
    outputs.append(table.changelog_topic.get_topic_name())
    producers: PartitionProducers | None = None
    sink: BatchSink
    if settings.processing.guarantee == "exactly_once":
        producers = transactional_producers(app, settings)
        sink = TransactionalSink(
            producers.get,
            producers.retire,
            settings.topics.app_id,
            settings.topics.input,
            producer(app),
            limits,
            is_fenced=is_fenced,
        )
    else:
        sink = BatchSink(producer(app), limits)
    read = committed_reader(settings.kafka, settings.topics.app_id, settings.topics.input)
    source = FaustSource(app, settings.topics.input, input_partitions, read)
    io = RuntimeIO(
        source=source,
        sink=sink,
        state=StateTable(state_data(table), changelog_writer(table, sink), key_partitions(table)),
        codecs=codecs,
        metrics=metrics,
        limits=limits,
        catalog=live,
    )
    runtime = Runtime(settings, catalog, io)
    ends = _recovery_ends(app, settings, table.changelog_topic.get_topic_name(), producers)
    if live is not None:
        _follow_catalog(app, settings, live, runtime, metrics, follow_from)
    _consume(app, settings, runtime, source, ends, ChangelogRestore(app, table).take)
    schedule = _Schedule(app, settings, runtime, metrics, mirror, sink, outputs, source, producers)
    schedule.install()
    status = WorkerStatus(
        recovering=source.recovering,
        rebalancing=source.rebalancing,
        warmed=lambda: sink.warmed,
        joined=lambda: schedule.joined,
        reachable=lambda: schedule.reachable,
        owner_url=lambda cid: app.router.external_topic_key_store(app.topic(settings.topics.input), cid.encode()),
        catalog=live.status if live is not None else None,
    )
    web.register(app, WorkerApi(runtime, settings, metrics.registry, mirror, status))
    return Worker(app, runtime, settings, mirror)


def _follow_catalog(
    app: faust.App, settings: Settings, live: LiveCatalog, runtime: Runtime, metrics: Metrics, start: int
) -> None:
    """Export the catalog's metrics; follow the catalog topic; hand new versions' catalogs to the runtime."""
    from streams.live.faust.catalog_follower import CatalogFollower

    live.attach(CatalogMetrics(metrics.registry))
    for version in live.versions.versions():
        runtime.adopt(version.catalog)
    live.listeners.append(lambda version: runtime.adopt(version.catalog))
    app.task(CatalogFollower(settings, live, start).run)


def _patient_producers(app: faust.App, timeout_s: float) -> None:
    """Every aiokafka producer Faust makes (its own, and exactly-once's per partition) waits at
    start for a broker that is away (:mod:`~streams.live.faust.bootstrap`). Private
    (``Producer._new_producer``), pinned by a test."""
    faust_producer: Any = app.producer
    new = faust_producer._new_producer

    def patient_producer(transactional_id: str | None = None) -> AIOKafkaProducer:
        made: AIOKafkaProducer = new(transactional_id=transactional_id)
        patient(made.client, timeout_s)
        return made

    faust_producer._new_producer = patient_producer


def transactional_producers(app: faust.App, settings: Settings) -> PartitionProducers:
    """The per-input-partition transactional producers, built as Faust builds its own: the same
    settings as the worker's producer. Private (``Producer._new_producer``), pinned by a test."""
    faust_producer: Any = app.producer
    return PartitionProducers(
        lambda tid: faust_producer._new_producer(transactional_id=tid), settings.topics.app_id, settings.topics.input
    )


def _recovery_ends(
    app: faust.App, settings: Settings, changelog: str, producers: PartitionProducers | None
) -> RecoveryEnds:
    """Where recovery of the changelog's partitions ends: after the last committed record
    (streams/live/faust/transactions.py). With exactly-once, the producers of the active ones
    (this worker's input partitions) start first, fencing their previous owners."""
    read = committed_ends(settings.kafka, changelog, client_id=f"{settings.topics.app_id}-recovery-ends")
    input_topic = settings.topics.input

    async def ends(tps: list[Any]) -> dict[Any, int]:
        mine = [tp for tp in tps if tp.topic == changelog]
        if not mine:
            return {}
        if producers is not None:
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == input_topic}
            try:
                await producers.ensure(tp.partition for tp in mine if tp.partition in owned)
            except Exception as exc:  # started again at the partition's first commit
                log.warning("could not start the transactional producers before recovery: %r", exc)
        try:
            found = await read([tp.partition for tp in mine])
        except Exception as exc:  # Faust's answer then: right, but recovery may wait on markers
            log.warning("cannot read where changelog %s ends: %r", changelog, exc)
            return {}
        return {tp: found[tp.partition] for tp in mine}

    return ends


def _consume(
    app: faust.App,
    settings: Settings,
    runtime: Runtime,
    port: FaustSource,
    recovery_ends: RecoveryEnds,
    restore: Restore | None = None,
) -> None:
    """Subscribe to the input topic and hand its messages to the runtime a fetch at a time."""
    source = app.topic(
        settings.topics.input, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    # Iterating the topic registers it with Faust's conductor, as an agent would, so
    # the consumer subscribes to it and tracks its acks; its messages then come to
    # the runtime a fetch at a time through the batching consumer.
    source.__aiter__()
    # Before the worker starts: Faust builds its consumer from this class then.
    app.transport.Consumer = batching_consumer(  # type: ignore[misc]
        settings.topics.input,
        BatchHandler(app, runtime.handle, port.stream_times_loaded),
        settings.processing.batch_max,
        fetch_max_wait_ms=round(settings.processing.fetch_max_wait * 1000),
        commit_metadata=runtime.commit_metadata,
        transactional=settings.processing.guarantee == "exactly_once",
        recovery_ends=recovery_ends,
        restore=restore,
        start_timeout_s=settings.processing.start_timeout,
    )


class _Schedule:
    """What runs beside the batches: the clock, the producer's warm-up, the broker
    probe, the Redis mirror's consumer, and the partition assignment signals.

    ``joined`` turns true at the first assignment the group hands this worker,
    even one with no partition; ``reachable`` says whether the broker answered
    the last metadata request, made every :data:`PROBE_EVERY` seconds. Both
    feed ``/ready`` (:mod:`streams.live.api`). With exactly-once, ``producers`` are the
    input partitions' transactional producers, kept in step with the assignment.
    """

    producers: PartitionProducers | None = None

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        runtime: Runtime,
        metrics: Metrics,
        mirror: Any | None,
        sink: BatchSink,
        outputs: list[str],
        source: FaustSource,
        producers: PartitionProducers | None = None,
    ) -> None:
        self.app = app
        self.producers = producers
        self.fenced_grace = max(FENCED_GRACE, 3 * settings.processing.session_timeout)
        self.input = settings.topics.input
        self.runtime = runtime
        self.metrics = metrics
        self.mirror = mirror
        self.sink = sink
        self.outputs = outputs
        self.source = source
        self.producer = producer(app)
        self.joined = False
        # Joining the group takes the broker, so until the first probe it counts as reachable.
        self.reachable = True
        # Customer state lives long: frozen once a second, no collection walks it again.
        self.freeze = Freezer()

    def install(self) -> None:
        app = self.app
        app.timer(interval=1.0)(self.clock)
        app.timer(interval=PROBE_EVERY)(self.probe_broker)
        app.task(self.warm_producer)
        if self.mirror is not None:
            app.task(self.mirror_writer)
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        if self.producers is not None:
            app.on_before_shutdown.connect(self.close_producers)  # type: ignore[arg-type]

    async def clock(self) -> None:
        await self.runtime.tick()
        self.freeze()
        self._check_fenced()
        if self.mirror is not None:
            self.metrics.degraded.labels("redis").set(1 if self.mirror.degraded else 0)

    def _check_fenced(self) -> None:
        """A fenced partition the group has not moved away: the state here may be ahead of what
        was committed and nothing reloads it while the worker holds the partition. Restart,
        as after a failed batch: the restart recovers the committed state."""
        fenced = self.runtime.fenced
        if not fenced:
            return
        oldest = min(fenced.values())
        if self.runtime.clock() - oldest > self.fenced_grace:
            self._exit(
                f"input partition(s) {sorted(fenced)} fenced {self.runtime.clock() - oldest:.0f}s ago"
                " and still assigned here; restarting"
            )

    @staticmethod
    def _exit(why: str) -> None:
        log.critical("%s", why)
        logging.shutdown()
        os._exit(EXIT_BATCH_FAILED)

    async def close_producers(self, _app: Any, **_: Any) -> None:
        """Once the consumer has stopped: no batch is in flight, no transaction open."""
        if self.producers is not None:
            await self.producers.close()

    async def warm_producer(self) -> None:
        await self.sink.warm(self.outputs)

    async def probe_broker(self) -> None:
        """Ask the broker for the producer's topics' metadata; unanswered within the timeout, unreachable."""
        try:
            updated = await asyncio.wait_for(self.producer().client.force_metadata_update(), PROBE_EVERY)
        except Exception:  # whatever the cause (not started, refused, timed out): no answer
            updated = False
        if updated != self.reachable:
            log.warning("the broker %s", "answers again" if updated else "does not answer: not ready")
        self.reachable = bool(updated)

    async def mirror_writer(self) -> None:
        assert self.mirror is not None
        await self.mirror.run()

    # Faust passes the set of topic partitions positionally, after the sender.
    async def on_assigned(self, _app: Any, assigned: Iterable[Any], **_: Any) -> None:
        partitions = [tp.partition for tp in assigned if tp.topic == self.input]
        kept = sorted(set(self.runtime.fenced) & set(partitions))
        if kept:
            # Given back a partition whose producer was fenced, without its leaving this worker in
            # between: Faust does not recover a partition it kept, and the state here lacks what the
            # other owner committed. Restart, which recovers it, as a failed batch does.
            self._exit(f"input partition(s) {kept} fenced and assigned here again; restarting")
        if self.producers is not None:
            # Usually started already, before recovery (_recovery_ends); not for a partition
            # that stayed here, whose producer is kept.
            await self.producers.retain(partitions)
            await self.producers.ensure(partitions)
        # Before the runtime may start them: their stream time is restored as they start.
        await self.source.load_stream_times(partitions)
        self.runtime.assign(partitions)
        self.joined = True

    async def on_revoked(self, _app: Any, revoked: Iterable[Any], **_: Any) -> None:
        await self.runtime.revoke([tp.partition for tp in revoked if tp.topic == self.input])


def _mirror(settings: Settings, catalog: Catalog, codecs: Codecs, registry: Any) -> Any:
    """The Redis mirror: a consumer of the channels' decision topics in a group of its own
    (streams/mirror/consumer.py), run as a task of this worker; the group spreads the
    partitions over the workers."""
    from streams.clients import redis_client
    from streams.live.faust.mirror_log import KafkaDecisionLog, mirror_group
    from streams.mirror import MirrorConsumer

    # No client-side retries and short timeouts: the mirror retries forever itself,
    # and redis-py's retrying would hide an outage for seconds per write.
    client = redis_client(settings.redis, timeout_s=2.0, retries=0)
    topics = [settings.topics.decision(ch) for ch in channels(catalog)]
    group = mirror_group(settings.topics.app_id)
    source = KafkaDecisionLog(settings.kafka, group, topics, client_id=group)
    return MirrorConsumer(
        client,
        source,
        codecs.decode_decision,
        inert=codecs.inert_decision,
        prefix=settings.redis.prefix,
        registry=registry,
    )
