"""The state table restored from the consumer's fetches ends as Faust's own recovery would leave it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.live.faust.recovery import ChangelogRestore
from streams.live.faust.table import changelog_key, state_table

PARTITION = 2
# Offsets 0-7 of one changelog partition: rewrites, a tombstone, a key written again after it.
RECORDS: list[tuple[str, bytes | None]] = [
    ("c1", b"one"),
    ("c2", b"two"),
    ('q"uo\\te', b"three"),
    ("c1", b"one again"),
    ("c2", None),
    ("é-ü", b"four"),
    ("c2", b"two again"),
    ("c3", b"last"),
]


def messages(topic: str, records: list[tuple[str, bytes | None]], partition: int = PARTITION) -> list[Any]:
    tp = TP(topic, partition)
    return [
        ConsumerMessage(topic, partition, offset, 0.0, 0, None, changelog_key(key), value, None, tp=tp)
        for offset, (key, value) in enumerate(records)
    ]


def recovering(app: faust.App, table: Any, highwater: int, *, active: bool = True) -> TP:
    """The recovery service as Faust leaves it before it resumes the changelog: offsets from -1."""
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    tp = TP(table.changelog_topic.get_topic_name(), PARTITION)
    (recovery.active_tps if active else recovery.standby_tps).add(tp)
    (recovery.active_highwaters if active else recovery.standby_highwaters)[tp] = highwater
    (recovery.active_offsets if active else recovery.standby_offsets)[tp] = -1
    recovery.tp_to_table[tp] = table
    return tp


def run(check: Callable[[faust.App, Any], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        app = faust.App("test-restore", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
        return await check(app, state_table(app, 4))

    return asyncio.run(main())


async def decoded(table: Any, message: Any) -> Any:
    """The event Faust's changelog channel makes of ``message``, as its recovery buffers it."""
    return await table.changelog_topic.decode(message, propagate=True)


def test_records_before_the_end_are_applied_as_faust_would_and_the_last_is_left_to_faust() -> None:
    async def faust_only(app: faust.App, table: Any) -> tuple[dict[Any, Any], dict[Any, int]]:
        batch = messages(table.changelog_topic.get_topic_name(), RECORDS)
        table.apply_changelog_batch([await decoded(table, m) for m in batch])
        return dict(table.data.data), dict(table.data._key_partition)

    async def restored(app: faust.App, table: Any) -> tuple[list[bool], Any, dict[Any, Any], dict[Any, int]]:
        tp = recovering(app, table, highwater=len(RECORDS) - 1)
        restore = ChangelogRestore(app, table)
        batch = messages(tp.topic, RECORDS)
        taken = [restore.take(m) for m in batch]
        offset = app.tables.recovery.active_offsets[tp]  # type: ignore[attr-defined]
        # The last one goes Faust's way, which applies it after the rest.
        table.apply_changelog_batch([await decoded(table, batch[-1])])
        return taken, offset, dict(table.data.data), dict(table.data._key_partition)

    taken, offset, data, partitions = run(restored)
    assert taken == [True] * (len(RECORDS) - 1) + [False]
    assert offset == len(RECORDS) - 2  # Faust notes the last one's offset itself, and ends recovery
    assert (data, partitions) == run(faust_only)
    assert data == {"c1": b"one again", 'q"uo\\te': b"three", "é-ü": b"four", "c2": b"two again", "c3": b"last"}
    assert set(partitions.values()) == {PARTITION}


@pytest.mark.parametrize("why", ["standby partition", "another topic", "past the end", "unknown partition"])
def test_what_faust_must_see_is_not_taken(why: str) -> None:
    async def check(app: faust.App, table: Any) -> tuple[bool, dict[Any, Any]]:
        topic = table.changelog_topic.get_topic_name()
        recovering(app, table, highwater=5, active=why != "standby partition")
        if why == "another topic":
            message = messages("another-topic", RECORDS[:1])[0]
        elif why == "past the end":
            message = messages(topic, RECORDS)[6]
        elif why == "unknown partition":
            message = messages(topic, RECORDS[:1], partition=PARTITION + 1)[0]
        else:
            message = messages(topic, RECORDS[:1])[0]
        return ChangelogRestore(app, table).take(message), dict(table.data.data)

    taken, data = run(check)
    assert not taken and data == {}


def test_records_faust_buffered_earlier_are_applied_first_and_stale_ones_skipped() -> None:
    async def check(app: faust.App, table: Any) -> tuple[list[bool], dict[Any, Any], list[Any], int]:
        tp = recovering(app, table, highwater=7)
        batch = messages(tp.topic, RECORDS)
        recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
        # Offset 0 reached Faust's buffer (say, while the partition was a standby), not the store.
        recovery.buffers[table].append(await decoded(table, batch[0]))
        recovery.active_offsets[tp] = 0
        restore = ChangelogRestore(app, table)
        taken = [restore.take(m) for m in [batch[0], batch[1], batch[3], batch[1]]]
        return taken, dict(table.data.data), list(recovery.buffers[table]), restore.restored

    taken, data, buffered, restored = run(check)
    assert taken == [True, True, True, True]
    assert data == {"c1": b"one again", "c2": b"two"}  # c1's first value (Faust's) overwritten in order
    assert buffered == [] and restored == 2


def test_the_runtime_keeps_state_in_the_memory_stores_own_dict_and_lists_customers_from_its_index() -> None:
    from streams.live.faust.table import key_partitions, state_data
    from streams.live.partitioning import Partitioner
    from streams.live.runtime import PartitionStore

    async def check(app: faust.App, table: Any) -> tuple[bool, bool, dict[int, list[str]], dict[int, list[str]]]:
        tp = recovering(app, table, highwater=10_000)
        restore = ChangelogRestore(app, table)
        owner = Partitioner(4)
        customers = [f"r{i:06d}" for i in range(400)]
        # As the changelog holds them: each on its customer's partition.
        for offset, cid in enumerate(customers):
            partition = owner(cid)
            message = ConsumerMessage(tp.topic, partition, offset, 0.0, 0, None, changelog_key(cid), b"s", None)
            message.tp = TP(tp.topic, partition)
            recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
            recovery.active_tps.add(message.tp)
            recovery.active_highwaters[message.tp] = 10_000
            assert restore.take(message)
        data, index = state_data(table), key_partitions(table)
        assert index is not None
        listed = {p: sorted(PartitionStore(p, data, owner, index).customers()) for p in range(4)}
        hashed = {p: sorted(PartitionStore(p, data, owner).customers()) for p in range(4)}
        return data is table.data.data, index is table.data._key_partition, listed, hashed

    same_data, same_index, listed, hashed = run(check)
    assert same_data and same_index
    assert listed == hashed and sum(map(len, listed.values())) == 400 and all(listed.values())


def test_any_other_store_is_handed_to_the_runtime_as_it_is() -> None:
    from streams.live.faust.table import key_partitions, state_data

    class Table:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

    table = Table()
    assert state_data(table) is table.data and key_partitions(table) is None
