"""Garbage-collector settings for the hot path.

The engine allocates many small containers per event (decoded records, events,
state entries) and keeps millions alive, so CPython's default thresholds
(700 allocations) run young-generation collections thousands of times a
second, each walking survivors: measured, about 45% of validation time. The
hot path makes no reference cycles (``tests/test_gctune.py`` holds it to
that), so collecting far less often is safe; cycles elsewhere are still
collected, just later.

A long-running worker (:func:`tune`) keeps collecting, with high thresholds:
its memory must stay bounded, and a collection pauses it, which is latency.
A worker also freezes (:class:`Freezer`, once a second from its clock):
every object alive then, a million customers' state above all, moves
to the collector's permanent generation, so that no collection walks it
again. Without it, every full collection walked all of it, and one came each
time a quarter as many objects as were alive had survived young collections
(a single worker at 300,000 customers ran 1.39 times as fast with the
collector off, ``python -m bench ab``, two noisy rounds). A freeze alone costs
nothing; collecting the young generations first, each second, was 5.7% of a
busy worker's samples, so it does not: cyclic garbage that happens to be young
at a freeze (rare: the hot path makes none) waits, with anything frozen that
later becomes cyclic garbage, for the full collection of everything, unfrozen,
once an hour.

A bounded run (:func:`tuned`: replay, diff, the benchmarks) switches the
collector off and back on after: at a million customers its
collections (walking millions of live state objects, most of them out of
cache) cost a third of the engine's time. At the end, what the run left alive
goes to the oldest generation unexamined (:func:`gc.freeze` then
:func:`gc.unfreeze`), so switching the collector back on owes no collection
over it either. Only cyclic garbage made inside the run waits, for the next
full collection, and the hot path makes none: no recursive closure left
bound, no exception kept with its traceback.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

THRESHOLDS = (100_000, 50, 100)
FULL_EVERY_S = 3600.0


def tune() -> None:
    """For a long-running worker: set the thresholds for the process."""
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def tuned() -> Iterator[None]:
    """For a bounded run (replay, benchmarks): the collector off inside, as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What the run left alive (a million customers' state, the decisions) is long-lived: moved
        # to the oldest generation unexamined (freeze then unfreeze: two list splices), instead of
        # the young collection switching the collector back on would owe, walking all of it to find
        # no garbage (measured: 5-9% of a replay). Cyclic garbage made inside waits for the next
        # full collection, not forever.
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


class Freezer:
    """For a long-running worker, called periodically (its one-second clock): freezes every object
    tracked; every ``full_every_s``, unfreezes everything and collects it all first."""

    def __init__(self, full_every_s: float = FULL_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.full_every_s = full_every_s
        self.clock = clock
        self._last_full = clock()

    def __call__(self) -> None:
        now = self.clock()
        if now - self._last_full >= self.full_every_s:
            self._last_full = now
            gc.unfreeze()
            gc.collect()
        gc.freeze()
