"""Recovery of the state table straight from the consumer's fetches, not through Faust's conductor.

Faust recovers a table by sending each changelog record down the path of a
stream's event: the consumer loop awaits the conductor's callback for it,
which decodes it into an ``Event`` and queues it; the recovery service takes
it off the queue again, under an ``asyncio.wait_for``, notes its offset,
buffers it and applies the buffer to the store a thousand at a time. For a
million customers that was most of a restart's 78 s.

:class:`ChangelogRestore` takes those records off the consumer's loop
(:mod:`streams.live.faust.consumer` hands it every changelog message before
Faust's callback) and, for an *active* changelog partition still short of
the end Faust recovers it to, does what that path would have done, in place:
decodes the key as the table's changelog topic encodes it (JSON), stores the
value's bytes as they are (decoded on first use, by the runtime's partition
store) or drops the key on a tombstone, records the key's partition (the
memory store drops the keys of revoked partitions by it) and advances the
recovery's offset of the partition. Whatever the encoding of the state, a
record costs a dict write.

It leaves Faust's path to everything else, so Faust still decides when
recovery ends: the partition's last record before that end (offset equal to
Faust's highwater), records beyond it, standby partitions and other tables'
changelogs go through the conductor as before, and on the last one Faust's
recovery service notices the partition is complete, flushes its buffers and
ends recovery as usual (with an end that no record reaches, exactly-once's
aborted tail, its own five-second check ends it, as it would have).

Order is kept: the records of one partition come in offset order, every one
before the end is taken here and every one from the end on goes to Faust; a
record Faust buffered earlier (the partition was a standby a moment ago) is
applied before any taken here, and a stale one still queued for Faust is
dropped by Faust itself, as its offset is not beyond the one recorded here.

Only a memory store is restored here (``memory://``, tactful's default);
with another store every record goes Faust's way. The private names read
(the recovery's ``active_tps``, ``active_highwaters``, ``active_offsets``,
``buffers``, and for its progress log ``_active_events_received_at`` and
``_last_flush_at``; the memory store's ``data`` and ``_key_partition``) are listed
in :mod:`streams.live.faust` and pinned by ``tests/live/faust/test_private_api.py``.
"""

from __future__ import annotations

import logging
from time import monotonic
from typing import Any

from faust.stores.memory import Store as MemoryStore
from orjson import loads

log = logging.getLogger(__name__)


class ChangelogRestore:
    """Applies the state table's changelog records of active partitions during recovery.

    ``take(message)`` is asked for every changelog message the consumer
    fetches; true means applied here and done with (Faust must not see it).
    """

    def __init__(self, app: Any, table: Any) -> None:
        self.app = app
        self.table = table
        self.topic: str = table.changelog_topic.get_topic_name()
        self.restored = 0  # records applied here, for tests and the log
        # What every record needs, looked up on the first (the store exists once the app
        # runs; Faust never replaces these objects, only fills and clears them).
        self._bound: tuple[Any, dict[Any, Any], dict[Any, int], list[Any], dict[Any, float]] | None = None
        self._memory: bool | None = None

    def _bind(self) -> tuple[Any, dict[Any, Any], dict[Any, int], list[Any], dict[Any, float]] | None:
        store = self.table.data
        self._memory = type(store) is MemoryStore
        if not self._memory:
            return None
        recovery = self.app.tables.recovery
        received = recovery._active_events_received_at
        self._bound = (recovery, store.data, store._key_partition, recovery.buffers[self.table], received)
        return self._bound

    def take(self, message: Any) -> bool:
        """Apply ``message`` (of the changelog topic) if it is an active partition's record before the end."""
        if message.topic != self.topic:
            return False
        bound = self._bound
        if bound is None and (self._memory is False or (bound := self._bind()) is None):
            return False
        recovery, data, key_partition, pending, received = bound
        tp = message.tp
        if tp not in recovery.active_tps:
            return False
        offset = message.offset
        highwater = recovery.active_highwaters.get(tp)
        if highwater is None or offset >= highwater:
            return False  # the last record before the end, or past it: Faust's, so that it ends recovery
        offsets = recovery.active_offsets
        seen = offsets.get(tp)
        if seen is not None and offset <= seen:
            return True  # applied already (Faust would skip it too)
        if pending:  # Faust's, of an earlier offset: theirs first
            self.table.apply_changelog_batch(pending)
            pending.clear()
        offsets[tp] = offset
        # Faust's progress log reads these: without them it warns that no record came and
        # nothing was flushed, though each record is applied as it comes.
        received[tp] = recovery._last_flush_at = monotonic()
        key = loads(message.key)
        value = message.value
        if value is None:
            data.pop(key, None)
            key_partition.pop(key, None)
        else:
            data[key] = value
            key_partition[key] = tp.partition
        self.restored += 1
        return True
