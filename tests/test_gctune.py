"""The collector settings, and the promise that lets a bounded run switch the collector off:
the hot path (decode, validate, process, decide) makes no reference cycles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.codec.jsonl import read_jsonl
from streams.gctune import THRESHOLDS, Freezer, tune, tuned
from streams.generate import generate, write
from streams.replay import replay_numbered
from streams.timeutil import parse_time
from streams.topology import load_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the collector as the test found it."""
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False])
def test_tuned_switches_the_collector_off_inside_and_back_as_it_was(collector: None, enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    with tuned():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled


def test_tune_sets_the_thresholds(collector: None) -> None:
    tune()
    assert gc.get_threshold() == THRESHOLDS


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Leave nothing frozen behind (the test runner's objects included)."""
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_freezer_freezes_what_is_tracked_so_that_collections_pass_it_over(unfrozen: None) -> None:
    gc.unfreeze()
    kept = Cycle()
    Freezer(full_every_s=3600, clock=lambda: 0.0)()
    assert gc.get_freeze_count() > 0
    # Frozen: it becomes garbage, and no ordinary collection frees it (nor walks it).
    lost = weakref.ref(kept)
    del kept
    gc.collect()
    assert lost() is not None


def test_the_freezer_unfreezes_and_collects_everything_once_a_period(unfrozen: None) -> None:
    now = [0.0]
    freeze = Freezer(full_every_s=60, clock=lambda: now[0])
    gc.unfreeze()
    kept = Cycle()
    freeze()
    lost = weakref.ref(kept)
    del kept  # frozen, then garbage
    now[0] = 59.0
    freeze()
    assert lost() is not None
    now[0] = 61.0
    freeze()
    assert lost() is None


def test_a_replay_of_dirty_input_leaves_no_cyclic_garbage(collector: None, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = generate(
        300, 7, start_ms=parse_time("2026-05-04T00:00:00Z"), days=7.0,
        out_of_order_rate=0.05, duplicate_rate=0.02, invalid_rate=0.05,
    )  # fmt: skip
    write(path, events)
    with path.open("ab") as fo:
        fo.write(b'not json\n{"event_id": \n[1, 2]\n' * 20)
    catalog = load_folder(REPO / "topologies")
    replay_numbered(catalog, read_jsonl(path))  # first use: imports and caches may make cycles
    gc.disable()
    gc.collect()
    result = replay_numbered(catalog, read_jsonl(path))
    assert result.counts["invalid"] > 60  # malformed lines and invalid events both went through
    assert result.engine_stats["matches_fired"] > 0
    assert gc.collect() == 0


def test_what_a_bounded_run_leaves_alive_is_old_and_owes_no_young_collection(collector: None) -> None:
    gc.enable()
    with tuned():
        survivor = [[i] for i in range(10_000)]  # tracked containers, as state is
    assert gc.get_count()[0] < 100  # no young collection owed over them
    assert any(o is survivor for o in gc.get_objects(generation=2))
    assert not any(o is survivor for o in gc.get_objects(generation=0))
