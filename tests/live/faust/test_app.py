"""The Faust worker wrapper: what it changes in Faust's defaults, and why it matters."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import faust
import pytest

from streams.live.faust.app import faust_worker
from streams.live.faust.table import changelog_key, state_table


@pytest.mark.parametrize("loglevel", ["warning", "error", "info"])
def test_the_root_logger_keeps_the_level_asked_for(loglevel: str) -> None:
    # Faust's spinner would set the root logger to DEBUG at warning and above, and
    # every aiokafka send would then build a log record (11% of a busy worker's samples).
    app = faust.App("test-app-logging", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust_worker(app, loglevel)
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.NullHandler())
    worker.on_setup_root_logger(logger, logging.getLevelName(loglevel.upper()))
    assert logger.level == logging.WARNING
    assert not logger.isEnabledFor(logging.DEBUG)
    assert [type(h) for h in logger.handlers] == [logging.NullHandler]


def test_faust_alone_would_turn_debug_on() -> None:
    # The hazard the wrapper exists for; if Faust drops it, this says so.
    app = faust.App("test-app-logging-plain", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust.Worker(app, loglevel="warning")
    logger = logging.Logger("root-under-test", level=logging.WARNING)
    logger.addHandler(logging.NullHandler())
    worker.on_setup_root_logger(logger, logging.WARNING)
    assert logger.isEnabledFor(logging.DEBUG)


@pytest.mark.parametrize("customer_id", ["c000123", 'q"uo\\te', "é-ü", "tab\tx", "\u2028"])
def test_state_is_written_under_the_key_faust_would_write_and_reads_back(customer_id: str) -> None:
    # The runtime writes the changelog itself (in record batches); Faust's recovery must
    # read it as if the table had written it.
    app = faust.App("test-app-changelog", broker="kafka://127.0.0.1:1", key_serializer="raw", value_serializer="raw")
    table = state_table(app, 4)
    faust_key, _ = table.changelog_topic.prepare_key(customer_id, None)
    assert changelog_key(customer_id) == faust_key
    assert app.serializers.loads_key(str, changelog_key(customer_id), serializer=table.key_serializer) == customer_id


def test_the_changelog_writer_keeps_the_memory_stores_key_partitions() -> None:
    # Without them the memory store would keep keys of partitions revoked from this worker.
    from streams.live.faust.table import changelog_writer

    class Sink:
        def __init__(self) -> None:
            self.added: list[tuple[str, bytes | None, bytes | None, int | None]] = []

        def add(
            self,
            topic: str,
            key: bytes | None,
            value: bytes | None,
            *,
            partition: int | None = None,
            headers: Any = (),
            origin: int | None = None,
        ) -> None:
            self.added.append((topic, key, value, partition))

    async def main() -> tuple[Any, Any, Sink]:
        app = faust.App("test-app-writer", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
        table = state_table(app, 4)
        sink = Sink()
        write = changelog_writer(table, sink)  # type: ignore[arg-type]
        write(2, "c1", b"state")
        seen = dict(table.data._key_partition)
        write(2, "c1", None)
        return seen, dict(table.data._key_partition), sink

    seen, after, sink = asyncio.run(main())
    assert seen == {"c1": 2} and after == {}
    topic = "test-app-writer-customer_state-changelog"
    assert sink.added == [(topic, changelog_key("c1"), b"state", 2), (topic, changelog_key("c1"), None, 2)]


def test_the_source_of_an_app_not_started_is_recovering_and_knows_no_high_watermark() -> None:
    from streams.live.faust.source import FaustSource

    async def main() -> tuple[bool, bool, int | None, int]:
        app = faust.App("test-app-source", broker="kafka://127.0.0.1:1", web_enabled=False)
        source = FaustSource(app, "input", 4)
        return source.recovering(), source.recovered(), source.highwater(0), source.partitions

    assert asyncio.run(main()) == (True, False, None, 4)


def test_commits_of_the_input_topic_carry_the_metadata_the_runtime_gives() -> None:
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    from streams.live.faust.consumer import with_metadata

    committed: list[Any] = []

    async def commit(offsets: Any = None) -> None:
        committed.append(offsets)

    wrapped = with_metadata(commit, "input", lambda p, o: f"st {p}/{o}" if p != 2 else None)
    offsets = {
        TopicPartition("input", 0): OffsetAndMetadata(7, ""),
        TopicPartition("input", 2): OffsetAndMetadata(9, ""),  # nothing known: left as it was
        TopicPartition("changelog", 0): OffsetAndMetadata(3, ""),
    }
    asyncio.run(wrapped(offsets))
    asyncio.run(wrapped(None))
    assert committed == [
        {
            TopicPartition("input", 0): OffsetAndMetadata(7, "st 0/7"),
            TopicPartition("input", 2): OffsetAndMetadata(9, ""),
            TopicPartition("changelog", 0): OffsetAndMetadata(3, ""),
        },
        None,
    ]


def test_stream_times_are_loaded_on_assignment_and_batches_wait_for_the_load() -> None:
    import threading

    from streams.live.faust.source import FaustSource
    from streams.live.runtime import encode_stream_time

    release = threading.Event()
    asked: list[list[int]] = []

    def read(partitions: list[int]) -> dict[int, tuple[int, str | None]]:
        asked.append(partitions)
        release.wait(10)
        if 3 in partitions:
            raise OSError("broker gone")
        return {0: (42, encode_stream_time(1_790_000_000_000)), 1: (7, ""), 2: (-1, None)}

    source = FaustSource(Any, "input", 4, read)  # type: ignore[arg-type]  # the app is not used here

    async def go() -> None:
        loading = asyncio.ensure_future(source.load_stream_times([2, 0, 1, 0]))
        for _ in range(500):  # until the read is under way in its thread
            if asked:
                break
            await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(source.stream_times_loaded())
        for _ in range(10):
            await asyncio.sleep(0)
        assert asked and not waiting.done()  # a batch would wait here until the load is done
        release.set()
        await loading
        await asyncio.wait_for(waiting, 5)
        assert [source.committed_stream_time(p) for p in range(3)] == [1_790_000_000_000, None, None]
        assert [source.committed_offset(p) for p in range(3)] == [42, None, None]  # the one it came with
        await source.load_stream_times([3])  # a failed read: nothing restored, nothing held up
        assert source.committed_stream_time(3) is None
        await asyncio.wait_for(source.stream_times_loaded(), 5)

    asyncio.run(go())
    assert asked == [[0, 1, 2], [3]]


def _assignment_made_for(app: faust.App, url: str) -> Any:
    """What the broker hands a static member on rejoin: the assignment its previous process was given."""
    import zlib

    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
    from faust.assignor.client_assignment import ClientAssignment, ClientMetadata

    assigned = ClientAssignment(actives={"in": [0, 3]}, standbys={})
    metadata = ClientMetadata(assignment=assigned, url=url, changelog_distribution={url: {"in": [0, 3]}})
    return ConsumerProtocolMemberAssignment(
        app.assignor.version, sorted(assigned.kafka_protocol_assignment(app.tables)), zlib.compress(metadata.dumps())
    )


@pytest.mark.parametrize("before", ["http://127.0.0.1:6066", "http://127.0.0.1:7000", "http://10.0.0.9:6066"])
def test_a_static_member_takes_the_assignment_made_for_its_previous_address(before: str) -> None:
    # A restarted worker with TACTFUL_INSTANCE_ID gets its old member's assignment back,
    # made with the address it had then; Faust's own assignor asserted it unchanged,
    # and the failed assertion ended aiokafka's coordinator: no partition, for good.
    from faust.types import TP

    from streams.live.faust.assignor import StaticMemberAssignor

    async def main() -> set[TP]:
        app = faust.App(
            "test-app-assignor",
            broker="kafka://127.0.0.1:1",
            web_enabled=False,
            canonical_url="http://127.0.0.1:6066",
            PartitionAssignor=StaticMemberAssignor,
        )
        app.assignor.on_assignment(_assignment_made_for(app, before))
        return set(app.assignor.assigned_actives())

    assert asyncio.run(main()) == {TP("in", 0), TP("in", 3)}


def test_faust_alone_refuses_an_assignment_made_for_another_address() -> None:
    # The hazard the assignor exists for; if Faust drops the assertion, this says so.
    async def main() -> None:
        app = faust.App("test-app-assignor-plain", broker="kafka://127.0.0.1:1", canonical_url="http://127.0.0.1:6066")
        with pytest.raises(AssertionError):
            app.assignor.on_assignment(_assignment_made_for(app, "http://127.0.0.1:7000"))

    asyncio.run(main())


@pytest.mark.parametrize("instance_id", [None, "tactful-1"])
def test_the_app_uses_the_instance_id_and_the_static_member_assignor(instance_id: str | None) -> None:
    from streams.live.faust.app import build_app
    from streams.live.faust.assignor import StaticMemberAssignor
    from streams.settings import Settings

    env = {"TACTFUL_INSTANCE_ID": instance_id} if instance_id else {}

    async def main() -> tuple[Any, Any]:
        settings = Settings.from_env({**env, "TACTFUL_DATA_DIR": "/tmp/tactful-test-app-static"})
        app = build_app(settings, 4)
        return app.conf.consumer_group_instance_id, type(app.assignor)

    assert asyncio.run(main()) == (instance_id, StaticMemberAssignor)


class _Client:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    async def force_metadata_update(self) -> bool:
        if self.answer == "hangs":
            await asyncio.sleep(10)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return bool(self.answer)


class _Producer:
    def __init__(self, answer: object) -> None:
        self.client = _Client(answer)


@pytest.mark.parametrize(
    "answer, reachable",
    [(True, True), (False, False), (ConnectionError("refused"), False), ("hangs", False)],
)
def test_the_broker_probe_says_whether_the_broker_answered(
    answer: object, reachable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /ready turns false while the broker does not answer, even with partitions held.
    from streams.live.faust import app as faust_app

    monkeypatch.setattr(faust_app, "PROBE_EVERY", 0.05)
    schedule = object.__new__(faust_app._Schedule)
    schedule.reachable = not reachable
    schedule.producer = lambda: _Producer(answer)
    asyncio.run(schedule.probe_broker())
    assert schedule.reachable is reachable


def test_a_worker_has_joined_once_the_group_assigns_it_even_no_partition() -> None:
    from streams.live.faust import app as faust_app

    assigned: list[list[int]] = []

    class Runtime:
        fenced: ClassVar[dict[int, float]] = {}

        def assign(self, partitions: Any) -> None:
            assigned.append(list(partitions))

    class Source:
        async def load_stream_times(self, partitions: list[int]) -> None:
            pass

    schedule = object.__new__(faust_app._Schedule)
    schedule.runtime = Runtime()  # type: ignore[assignment]
    schedule.source = Source()  # type: ignore[assignment]
    schedule.input = "in"
    schedule.joined = False
    asyncio.run(schedule.on_assigned(None, set()))
    assert schedule.joined and assigned == [[]]


def test_a_batch_that_waited_through_a_rebalance_processes_only_the_new_generation() -> None:
    """The batch handler waits for the stream times of a new assignment; if a rebalance came
    meanwhile, the messages fetched under the old generation are neither processed (another worker
    may own their partition now) nor acked: an ack lets Faust commit past them, and the
    rebalance's seek reads them again (tests/live/faust/test_consumer.py)."""
    from types import SimpleNamespace

    from streams.live.faust.consumer import BatchHandler

    acked: list[int] = []
    processed: list[list[int]] = []
    consumer = SimpleNamespace(unacked=[], ack=lambda m: acked.append(m.offset))
    consumer.unacked = SimpleNamespace(add=lambda m: None)
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=1,
        flow_control=SimpleNamespace(is_active=lambda: True),
    )

    async def ready() -> None:
        app.consumer_generation_id = 2  # the rebalance lands while the batch waits

    async def process(messages: list[Any]) -> None:
        processed.append([m.offset for m in messages])

    def message(offset: int, generation: int) -> Any:
        return SimpleNamespace(offset=offset, generation_id=generation, tracked=False)

    handler = BatchHandler(app, process, ready)
    asyncio.run(handler([message(0, 1), message(1, 1)]))
    assert processed == [] and acked == []

    acked.clear()
    asyncio.run(handler([message(2, 2)]))  # no rebalance now: processed, acked by the runtime
    assert processed == [[2]] and acked == []
