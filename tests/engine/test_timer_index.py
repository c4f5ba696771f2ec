"""The processor's timer index fires in exactly the order of one heap of (deadline, customer) pairs.

It is a heap of deadlines with the customers due at each (cheaper per pop at a million
customers); the order is what decides which customer's deadline decisions come first, so
it is pinned here against the plain heap it replaced, with entries armed between pops
(as firing a deadline arms a customer's next one), repeated pairs and shared deadlines.
"""

from __future__ import annotations

import heapq
import random
from pathlib import Path

import pytest

from streams.engine import DictStore, Engine, Processor
from streams.topology import load_folder

TOPOLOGIES = Path(__file__).resolve().parents[1] / "golden" / "topologies-v1"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_folder(TOPOLOGIES))


@pytest.mark.parametrize("seed", range(20))
def test_pops_as_a_heap_of_pairs(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    proc = Processor(engine, DictStore())
    reference: list[tuple[int, str]] = []
    popped: list[tuple[int, str]] = []
    expected: list[tuple[int, str]] = []
    # Few deadlines and customers, so that deadlines are shared and pairs repeat.
    for _ in range(400):
        if reference and rng.random() < 0.45:
            popped.append(proc._pop_due())
            expected.append(heapq.heappop(reference))
        else:
            entry = (rng.randrange(8), f"c{rng.randrange(12)}")
            proc._arm(*entry)
            heapq.heappush(reference, entry)
        assert proc.pending_timers() == len(reference)
    while reference:
        popped.append(proc._pop_due())
        expected.append(heapq.heappop(reference))
    assert popped == expected
    assert proc.pending_timers() == 0 and not proc._timers and not proc._due
