"""The customer state table: a Faust table whose changelog the runtime writes itself.

The runtime writes a batch's changed states in record batches through the
sink (:mod:`streams.live.sink`), not through ``table.send_changelog``; Faust
still owns the table's recovery from the changelog on assignment, so keys are
written exactly as its table would write them (JSON), which a test pins.
(:mod:`streams.live.faust.recovery` applies most of a recovery's records in
place, as Faust would have.)

With the memory store (the default) the runtime is handed the store's own
dict (:func:`state_data`) and its index of each key's partition
(:func:`key_partitions`), which a starting partition lists its customers from.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import faust
import orjson
from faust.stores.memory import Store as MemoryStore
from orjson import dumps

from streams.live.runtime import ChangelogWriter, Sink

STATE_TABLE = "customer_state"


def state_table(app: faust.App, partitions: int) -> Any:
    """Customer id -> the state's bytes; the runtime writes its changelog (:func:`changelog_writer`)."""
    return app.Table(STATE_TABLE, default=None, partitions=partitions, key_type=str, value_type=bytes)


def state_data(table: Any) -> MutableMapping[str, Any]:
    """The map the runtime keeps state in: a memory store's own dict, which Faust's recovery
    fills and the store's every method reads (a get through the store's mapping costs three
    calls: at a million customers, seconds of a restart); any other store as it is."""
    store = table.data
    if type(store) is MemoryStore and type(store.data) is dict:
        data: MutableMapping[str, Any] = store.data
        return data
    return store  # type: ignore[no-any-return]


def key_partitions(table: Any) -> MutableMapping[str, int] | None:
    """Each key's partition, as a memory store keeps it (and drops the keys of revoked
    partitions by it); None for any other store. Private (Faust's memory
    ``Store._key_partition``), pinned by tests/live/faust/test_private_api.py."""
    store = table.data
    if type(store) is MemoryStore and isinstance(store._key_partition, dict):
        known: MutableMapping[str, int] = store._key_partition
        return known
    return None


def changelog_key(customer_id: str) -> bytes:
    """A state table key as Faust writes it: its tables serialise keys as JSON."""
    return orjson.dumps(customer_id)


def changelog_writer(table: Any, sink: Sink) -> ChangelogWriter:
    """Writes one customer's state (None: deleted) to the table's changelog partition."""
    topic = table.changelog_topic.get_topic_name()
    add = sink.add
    # The memory store forgets which partition a key came from unless it recovered it
    # itself; it needs that to drop keys of revoked partitions. Private (Faust's memory
    # Store._key_partition, never replaced, only filled and cleared), pinned by
    # tests/live/faust/test_private_api.py. Looked up once: this runs for every state written.
    known = getattr(table.data, "_key_partition", None)
    if not isinstance(known, dict):
        known = None

    def write(partition: int, key: str, value: bytes | None) -> None:
        # What table.send_changelog would write, in record batches. Faust's callback that
        # records a persisted offset matters only to a RocksDB store; without it such a
        # store recovers from the start of the changelog, which is slower, not wrong.
        add(topic, dumps(key), value, partition=partition, origin=partition)  # changelog_key(key), inline
        if known is not None:
            if value is None:
                known.pop(key, None)
            else:
                known[key] = partition

    return write
