"""Every private Faust, mode or aiokafka name tactful relies on, pinned.

The list is the table in :mod:`streams.live.faust`'s docstring; each test
here checks one entry on the installed classes and instances: that it exists,
has the kind and signature the adapter expects, and (where the adapter copies
Faust's code) that Faust's code is still the one copied. An upgrade that
changes any of them fails here, by name, instead of quietly in a worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, MutableSet
from pathlib import Path
from typing import Any

import faust
import faust.transport.consumer as faust_consumer
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.stores.memory import Store as MemoryStore
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ConsumerMessage
from mode import Service

import streams.live.faust as adapter
from streams.live.faust.app import _patient_producers, faust_worker, producer
from streams.live.faust.consumer import batching_consumer
from streams.live.faust.table import state_table

# Faust's drain loop as streams/live/faust/consumer.py copied it (faust-streaming 0.15.3).
# A new Faust that changes the loop fails here: port the change into the copy, then
# update this digest.
DRAIN_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
# Faust's getmany (inlined into that loop) and ack (done in one pass by ack_all), likewise.
GETMANY_SHA256 = "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e"
ACK_SHA256 = "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f"


def params(fun: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fun).parameters)


def in_app(check: Callable[[faust.App], Any], **options: Any) -> Any:
    """Run ``check`` on a fresh app inside an event loop (Faust binds one when services are built)."""

    async def main() -> Any:
        app = faust.App("test-private-api", broker="kafka://127.0.0.1:1", web_enabled=False, **options)
        return check(app)

    return asyncio.run(main())


def test_the_adapter_docstring_lists_every_private_name_pinned_here() -> None:
    listed = set(
        re.findall(
            r"``[^`]*?(\._[a-z_]+|__aiter__|recovery\.completed|\.spinner|CONSUMER_FETCHING)", adapter.__doc__ or ""
        )
    )
    assert listed >= {
        "._drain_messages",
        "._new_consumer_thread",
        "._create_worker_consumer",
        "._fetch_max_wait_ms",
        "._commit",
        "._stopped",
        "._read_offset",
        "._commit_every",
        "._add_gap",
        "._ensure_producer",
        ".__aiter__",
        "recovery.completed",
        "._key_partition",
        ".spinner",
        "CONSUMER_FETCHING",
        "._compress",
        "._decompress",
        "._isolation_level",
        "._new_producer",
        "._build_highwaters",
        "._txn_manager",
        "._active_events_received_at",
        "._last_flush_at",
        "._wait_next_records",
        "._buffered_partitions",
        "._to_message",
        "._acked",
        "._acked_index",
        "._committed_offset",
        "._unacked_messages",
        "._waiting_for_ack",
        "._client",
    }


def test_drain_messages_is_the_loop_the_adapter_copied() -> None:
    # The batching consumer overrides it with a copy of this loop: a changed loop must be ported.
    drain = faust_consumer.Consumer._drain_messages
    assert faust_aiokafka.Consumer._drain_messages is drain  # the aiokafka driver does not override it
    assert inspect.iscoroutinefunction(drain)
    assert params(drain) == ["self", "fetcher"]
    digest = hashlib.sha256(inspect.getsource(drain).encode()).hexdigest()
    assert digest == DRAIN_LOOP_SHA256, f"Faust's _drain_messages changed (sha256 {digest}): port it"


@pytest.mark.parametrize(
    ("fun", "digest"),
    [(faust_consumer.Consumer.getmany, GETMANY_SHA256), (faust_consumer.Consumer.ack, ACK_SHA256)],
    ids=["getmany", "ack"],
)
def test_getmany_and_ack_are_the_code_the_adapter_reimplemented(fun: Callable[..., Any], digest: str) -> None:
    # The drain loop inlines getmany, per input partition; ack_all is ack in one pass. A
    # changed original must be ported into streams/live/faust/consumer.py, then the digest updated.
    got = hashlib.sha256(inspect.getsource(fun).encode()).hexdigest()
    assert got == digest, f"Faust's {fun.__name__} changed (sha256 {got}): port it"
    assert getattr(faust_aiokafka.Consumer, fun.__name__) is fun  # the aiokafka driver does not override it


def test_the_fields_the_inlined_getmany_and_the_batched_ack_read() -> None:
    from weakref import WeakSet

    from faust.types.tuples import ack_lock

    def check(app: faust.App) -> dict[str, Any]:
        consumer: Any = app.consumer
        return {
            "wait_next_records": consumer._wait_next_records,
            "buffered": consumer._buffered_partitions,
            "to_message": consumer._to_message,
            "acked": consumer._acked,
            "acked_index": consumer._acked_index,
            "committed": consumer._committed_offset,
            "unacked": consumer._unacked_messages,
            "waiting": consumer._waiting_for_ack,
            "track_end": app.monitor.track_tp_end_offset,
        }

    got = in_app(check)
    assert inspect.iscoroutinefunction(got["wait_next_records"]) and params(got["wait_next_records"]) == ["timeout"]
    assert "return records, active_partitions" in inspect.getsource(got["wait_next_records"])
    assert got["buffered"] == set()
    assert params(got["to_message"]) == ["tp", "record"]
    assert got["acked"]["t"] == [] and got["acked_index"]["t"] == set() and got["committed"]["t"] is None
    assert isinstance(got["unacked"], WeakSet)
    assert got["waiting"] is None
    assert params(got["track_end"]) == ["tp", "offset"]
    with ack_lock, ack_lock:  # reentrant, as Faust takes it inside Message.ack
        pass
    assert "self._clean_unacked_messages()" in inspect.getsource(faust_consumer.Consumer.wait_empty)
    assert "if message.acked" in inspect.getsource(faust_consumer.Consumer._clean_unacked_messages)


def test_the_consumer_thread_hooks_exist_with_their_signatures() -> None:
    assert params(faust_aiokafka.Consumer._new_consumer_thread) == ["self"]
    assert params(faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer) == ["self", "transport"]
    init = params(faust_aiokafka.AIOKafkaConsumerThread.__init__)
    assert {"loop", "beacon"} <= set(init) or "kwargs" in init


def test_the_consumer_asks_the_broker_for_the_configured_fetch_wait() -> None:
    # Faust hard-codes 1.5 s; the batching consumer's thread replaces it before aiokafka
    # builds its fetcher. An upgrade that renames the field must fail here, not quietly
    # bring the 1.5 s back.
    async def build() -> Any:
        app = faust.App("test-app-fetch-wait", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def handle(batch: list[Any]) -> None:
            return None

        app.transport.Consumer = batching_consumer("input", handle, 10, fetch_max_wait_ms=42)
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == 42
    # ...and the field is what aiokafka hands its fetcher when the consumer starts.
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_worker_consumer_reads_committed_records_only() -> None:
    # Set on the aiokafka consumer the thread builds (Faust asks read_committed only in its own
    # exactly-once mode), read by start() when it builds its fetcher.
    async def build() -> Any:
        app = faust.App("test-app-isolation", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def handle(batch: list[Any]) -> None:
            return None

        app.transport.Consumer = batching_consumer("input", handle, 10, transactional=True)
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer._isolation_level, consumer.commit.__name__
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == ("read_committed", "commit_others")
    assert "isolation_level=self._isolation_level" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_worker_clients_wait_for_a_broker_away_at_start() -> None:
    # aiokafka's start() bootstraps its client before anything else, and gives up on the first
    # failure; the adapter makes that bootstrap wait (streams/live/faust/bootstrap.py).
    assert inspect.getsource(AIOKafkaConsumer.start).count("await self._client.bootstrap()") == 1
    assert inspect.getsource(AIOKafkaProducer.start).count("await self.client.bootstrap()") == 1
    assert "self._new_producer()" in inspect.getsource(faust_aiokafka.Producer.on_start)

    async def build() -> tuple[str, str, str]:
        app = faust.App("test-app-patient", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def handle(batch: list[Any]) -> None:
            return None

        app.transport.Consumer = batching_consumer("input", handle, 10, start_timeout_s=5.0)
        consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        _patient_producers(app, 5.0)
        own = app.producer._new_producer()  # type: ignore[attr-defined]
        txn = app.producer._new_producer(transactional_id="app-input-0")  # type: ignore[attr-defined]
        try:
            return (
                consumer._client.bootstrap.__qualname__,
                own.client.bootstrap.__qualname__,
                txn.client.bootstrap.__qualname__,
            )
        finally:
            for made in (consumer, own, txn):
                await made.stop()

    assert asyncio.run(build()) == ("patient.<locals>.waiting",) * 3


def test_faust_builds_transactional_producers_with_the_workers_producer_settings() -> None:
    new = faust_aiokafka.Producer._new_producer
    assert params(new) == ["self", "transactional_id"]

    async def build() -> Any:
        app = faust.App(
            "test-app-tx-producer", broker="kafka://127.0.0.1:1", web_enabled=False, producer_max_batch_size=4242
        )
        made = app.producer._new_producer(transactional_id="app-input-3")  # type: ignore[attr-defined]
        try:
            return made._txn_manager.transactional_id, made._message_accumulator._batch_size
        finally:
            await made.stop()

    assert asyncio.run(build()) == ("app-input-3", 4242)


def test_a_fence_met_in_the_background_is_kept_by_the_transaction_manager() -> None:
    # streams.live.faust.transactions.is_fenced reads it: the fatal state, and the fence as the
    # exception of the transaction waiter.
    from aiokafka.errors import IllegalOperation, ProducerFenced

    from streams.live.faust.transactions import is_fenced

    async def build() -> tuple[bool, bool, bool]:
        app = faust.App("test-app-fence", broker="kafka://127.0.0.1:1", web_enabled=False)
        made = app.producer._new_producer(transactional_id="app-input-1")  # type: ignore[attr-defined]
        try:
            manager = made._txn_manager
            before = is_fenced(made, IllegalOperation())
            manager._transaction_waiter = asyncio.get_running_loop().create_future()  # as begin_transaction does
            manager.fatal_error(ProducerFenced())
            return before, manager.is_fatal_error(), is_fenced(made, IllegalOperation())
        finally:
            await made.stop()

    assert asyncio.run(build()) == (False, True, True)


def test_table_recovery_reads_each_changelog_end_from_the_consumers_highwaters_less_one() -> None:
    # The batching consumer's highwaters answers for the changelog (where its last committed
    # record is, past transaction markers): recovery must still ask it, and take one off.
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery._build_highwaters)
    assert "await consumer.highwaters(*tps)" in source
    assert "value - 1 if value is not None else -1" in source
    assert "T(self._build_highwaters)(" in inspect.getsource(Recovery._restart_recovery.fun)


def test_recovery_resumes_the_input_partitions_before_it_seeks_them() -> None:
    # The batching consumer holds the input partitions Faust resumes until its perform_seek has
    # returned (streams/live/faust/consumer.py); should Faust seek first one day, the hold is moot,
    # but should it resume them elsewhere without a seek after, they would stay paused: port it.
    from faust.tables.recovery import Recovery

    for method in (Recovery.on_recovery_completed, Recovery._resume_streams):
        source = inspect.getsource(method)
        assert source.count("consumer.resume_partitions(") == 1
        assert source.index("consumer.resume_partitions(") < source.index("consumer.perform_seek()")
    assert params(faust_consumer.Consumer.on_partitions_assigned) == ["self", "assigned", "generation_id"]
    assert params(faust_consumer.Consumer.perform_seek) == ["self"]
    assert params(faust_consumer.Consumer.resume_partitions) == ["self", "tps"]


def test_faust_commits_through_the_consumers_public_commit_with_empty_metadata() -> None:
    # The batching consumer's thread wraps the aiokafka consumer's `commit` to put each
    # input partition's stream time in the commit metadata; Faust's commits must go there.
    source = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._commit)
    assert 'OffsetAndMetadata(offset, "")' in source
    assert "await consumer.commit(aiokafka_offsets)" in source
    assert "consumer = self._ensure_consumer()" in source

    async def build() -> Any:
        app = faust.App("test-app-commit-metadata", broker="kafka://127.0.0.1:1", web_enabled=False)

        async def handle(batch: list[Any]) -> None:
            return None

        app.transport.Consumer = batching_consumer("input", handle, 10, commit_metadata=lambda p, o: f"{p}:{o}")
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return consumer.commit.__name__
        finally:
            await consumer.stop()

    assert asyncio.run(build()) == "commit_with_metadata"


def test_the_consumer_fields_the_drain_loop_reads() -> None:
    def check(app: faust.App) -> dict[str, Any]:
        consumer: Any = app.consumer
        return {
            "stopped": consumer._stopped,
            "read_offset": consumer._read_offset,
            "commit_every": consumer._commit_every,
            "n_acked": consumer._n_acked,
            "add_gap": consumer._add_gap,
            "unacked": consumer.unacked,
        }

    got = in_app(check, broker_commit_every=17)
    assert callable(got["stopped"].is_set) and not got["stopped"].is_set()  # mode's Event
    assert isinstance(got["read_offset"], defaultdict) and got["read_offset"]["any"] is None
    assert got["commit_every"] == 17
    assert got["n_acked"] == 0
    assert inspect.iscoroutinefunction(got["add_gap"])
    assert params(got["add_gap"]) == ["tp", "offset_from", "offset_to"]
    assert isinstance(got["unacked"], MutableSet)  # mutated: a message is tracked before processing
    assert isinstance(faust_consumer.CONSUMER_FETCHING, str)
    assert "_stopped" in inspect.getsource(Service.__init__)


def test_consumer_messages_carry_tracking_and_generation() -> None:
    assert {"tracked", "generation_id"} <= set(ConsumerMessage.__slots__) | set(faust.types.Message.__slots__)
    m = ConsumerMessage("t", 0, 1, 0.0, 1, [], b"k", b"v", None, generation_id=3)
    m.tracked = True
    assert m.generation_id == 3


def test_the_producer_accessor_reaches_aiokafkas_producer() -> None:
    ensure = faust_aiokafka.Producer._ensure_producer
    assert not inspect.iscoroutinefunction(ensure)
    assert params(ensure) == ["self"]
    assert "AIOKafkaProducer" in str(inspect.signature(ensure).return_annotation)

    def check(app: faust.App) -> None:
        from faust.exceptions import NotReady

        with pytest.raises(NotReady):  # not started yet: it exists, and says so
            producer(app)()

    in_app(check)


def test_iterating_a_topic_registers_it_with_the_conductor() -> None:
    def check(app: faust.App) -> bool:
        topic = app.topic("pinned-input", key_type=bytes, value_type=bytes)
        topic.__aiter__()
        return any("pinned-input" in t.topics for t in app.topics)

    assert in_app(check)


def test_table_recovery_has_a_completed_event() -> None:
    def check(app: faust.App) -> Any:
        return app.tables.recovery.completed  # type: ignore[attr-defined]

    completed = in_app(check)
    assert callable(completed.is_set) and not completed.is_set()


def test_the_memory_store_keeps_each_keys_partition() -> None:
    def check(app: faust.App) -> Any:
        return state_table(app, 4).data

    data = in_app(check, store="memory://")
    assert isinstance(data, MemoryStore)
    assert isinstance(data._key_partition, dict)
    # ...and reads it to drop the keys of partitions it no longer holds.
    assert "self._key_partition.items()" in inspect.getsource(MemoryStore.on_recovery_completed)


def test_the_memory_store_keeps_its_values_in_one_dict_that_recovery_fills() -> None:
    # The runtime is handed that dict (streams/live/faust/table.py's state_data).
    def check(app: faust.App) -> Any:
        return state_table(app, 4).data

    data = in_app(check, store="memory://")
    assert type(data.data) is dict
    assert "self.data.update(" in inspect.getsource(MemoryStore.apply_changelog_batch)
    assert "self._key_partition[key] = event.message.partition" in inspect.getsource(MemoryStore._create_batch_iterator)
    assert "self.data.pop(k, None)" in inspect.getsource(MemoryStore.on_recovery_completed)


def test_table_recovery_tracks_what_changelog_restore_reads_and_advances() -> None:
    # streams/live/faust/recovery.py does in place what _slurp_changelogs does with an active
    # partition's record: note its offset if beyond the last, buffer it, apply the buffer;
    # recovery is over once each active offset reaches its highwater.
    from collections import Counter

    from faust.tables.recovery import Recovery

    def check(app: faust.App) -> Any:
        return app.tables.recovery  # type: ignore[attr-defined]

    recovery = in_app(check)
    assert isinstance(recovery.active_tps, set)
    assert isinstance(recovery.active_highwaters, Counter) and isinstance(recovery.active_offsets, Counter)
    assert isinstance(recovery.buffers, defaultdict) and recovery.buffers.default_factory is list
    slurp = inspect.getsource(Recovery._slurp_changelogs.fun)
    for line in [
        "if tp in active_tps:",
        "offsets = active_offsets",
        "if seen_offset is None or offset > seen_offset:",
        "offsets[tp] = offset",
        "buf = buffers[table]",
        "table.apply_changelog_batch(buf)",
        "await _maybe_signal_recovery_end()",
    ]:
        assert line in slurp, line
    assert "tp: highwater - offsets[tp]" in inspect.getsource(Recovery.active_remaining)
    # Its progress log warns of partitions with no record received and of buffers never flushed.
    assert isinstance(recovery._active_events_received_at, dict)
    assert "active_events_received_at[tp] = now" in slurp and "self._last_flush_at = now" in slurp
    verify = inspect.getsource(Recovery._verify_remaining)
    assert "active_events_received_at" in verify and "self._last_flush_at" in verify


def test_the_worker_spinner_is_an_attribute_that_can_be_cleared() -> None:
    app = faust.App("test-private-api-spinner", broker="kafka://127.0.0.1:1", web_enabled=False)
    assert faust.Worker(app, loglevel="warning").spinner is not None
    assert faust_worker(app, "warning").spinner is None


def test_the_assignor_metadata_is_zlib_and_on_assignment_checks_the_url() -> None:
    # streams/live/faust/assignor.py decodes a static member's assignment and encodes it
    # again with the worker's current address, with these two, before Faust's check.
    from faust.assignor import PartitionAssignor

    assert inspect.getsource(PartitionAssignor._compress).strip().endswith("return zlib.compress(raw)")
    assert inspect.getsource(PartitionAssignor._decompress).strip().endswith("return zlib.decompress(compressed)")
    on_assignment = inspect.getsource(PartitionAssignor.on_assignment)
    assert "ClientMetadata.loads(self._decompress(assignment.user_data))" in on_assignment
    assert "assert metadata.url == str(self._url)" in on_assignment
    assert params(PartitionAssignor.on_assignment) == ["self", "assignment"]


STREAMS = Path(adapter.__file__).resolve().parents[2]
PRIVATE = (
    "_drain_messages",
    "_new_consumer_thread",
    "_create_worker_consumer",
    "_fetch_max_wait_ms",
    "_stopped",
    "_read_offset",
    "_commit_every",
    "_n_acked",
    "_add_gap",
    "_ensure_producer",
    "_key_partition",
    "__aiter__",
    "recovery.completed",
    "spinner",
    "CONSUMER_FETCHING",
    "_compress",
    "_decompress",
    "_isolation_level",
    "_new_producer",
    "_build_highwaters",
    "_txn_manager",
    "_client",
)
# Outside the adapter, what may import Faust or aiokafka: Faust's public credentials
# (settings) and aiokafka's public errors and structs (the sink, and its transactions).
OUTSIDE = {
    "settings.py": ["import faust"],
    "live/sink.py": [
        "from aiokafka.errors import KafkaError, ProducerFenced",
        "from aiokafka.structs import OffsetAndMetadata, TopicPartition",
    ],
}


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(STREAMS).as_posix() for p in STREAMS.rglob("*.py") if "faust" not in p.relative_to(STREAMS).parts
    ),
)
def test_faust_and_aiokafka_are_reached_only_through_the_adapter(path: str) -> None:
    text = (STREAMS / path).read_text()
    imports = re.findall(r"^\s*((?:import|from) (?:faust|mode|aiokafka)\b[^#\n]*?)\s*(?:#.*)?$", text, re.MULTILINE)
    assert imports == OUTSIDE.get(path, [])
    # Used, or overridden. A class's own attribute of the same name (self._stopped) is not Faust's.
    used = [n for n in PRIVATE if re.search(rf"(?<!\bself)\.{re.escape(n)}\b|\bdef {re.escape(n)}\b", text)]
    assert used == []


def test_the_runtime_loads_no_faust() -> None:
    code = (
        "import sys, streams.live.runtime; print(sorted(m for m in ('faust', 'mode', 'aiokafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
