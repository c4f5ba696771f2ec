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
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (100_000, 50, 100)


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
