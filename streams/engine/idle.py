"""When a quiet partition's stream time follows the wall clock.

Stream time moves only with events (contract section 2), so a partition
whose traffic stops would never reach an absence deadline. Live, a partition
that has been quiet for ``idle_after`` and has nothing waiting to be read
(caught up) has its stream time moved to ``wall - idle_after``; it never
moves back, and due timers fire as they would for an event at that time.

The wall clock is passed in as a function, never read here: live workers pass
``time.time``, tests a fake one, so a replay-speed test can walk a partition
through days of silence. ``replay`` passes no policy at all: a file has no
wall clock, its end is ``--until``.
"""

from __future__ import annotations

from collections.abc import Callable

Wall = Callable[[], float]  # seconds since the epoch, as time.time


class IdleAdvance:
    """One partition's idle policy: how long it has been quiet, and where its stream time may go."""

    __slots__ = ("heard_at", "idle_after_ms", "wall")

    def __init__(self, idle_after_ms: int, wall: Wall) -> None:
        self.idle_after_ms = idle_after_ms
        self.wall = wall
        self.heard_at = wall()  # a partition just started counts as just heard from

    def heard(self) -> None:
        """A record arrived on the partition (valid or not: only silence counts as idle)."""
        self.heard_at = self.wall()

    def due(self, backlog: int | None) -> int | None:
        """The stream time an idle partition moves to, or None if it is not idle.

        ``backlog`` is how many records wait to be read (None: unknown). A
        partition with a backlog is lagging, not quiet: advancing it by the
        clock would make that backlog late.
        """
        now = self.wall()
        if backlog != 0 or (now - self.heard_at) * 1000 < self.idle_after_ms:
            return None
        return int(now * 1000) - self.idle_after_ms
