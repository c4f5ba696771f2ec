"""The runtime's :class:`~streams.live.runtime.Source` port over Faust's consumer and tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust
from faust.types import TP

from streams.live.runtime import Incoming


class FaustSource:
    def __init__(self, app: faust.App, topic: str, partitions: int) -> None:
        self.app = app
        self.topic = topic
        self._partitions = partitions

    @property
    def partitions(self) -> int:
        return self._partitions

    def ack(self, records: Sequence[Incoming]) -> None:
        # The records are Faust's own consumer messages (streams.live.faust.consumer).
        ack: Callable[[Any], object] = self.app.consumer.ack
        for m in records:
            ack(m)

    def recovering(self) -> bool:
        """The state table is still being restored from its changelog."""
        # Not in Faust's typed interface (TableManagerT has no `recovery`); pinned by a test.
        recovery: Any = self.app.tables.recovery  # type: ignore[attr-defined]
        return not recovery.completed.is_set()

    def rebalancing(self) -> bool:
        return bool(self.app.rebalancing)

    def recovered(self) -> bool:
        return not self.recovering() and not self.rebalancing()

    def highwater(self, partition: int) -> int | None:
        try:
            high = self.app.consumer.highwater(TP(self.topic, partition))
        except Exception:  # an unassigned or unfetched partition has no answer
            return None
        return None if high is None else int(high)
