"""PartitionHold: who waits for not_before, in what order things come out, where the commit point stays."""

from __future__ import annotations

from streams.channel.hold import Entry, PartitionHold


def entry(offset: int, customer: str, due: int | None = None) -> Entry[str]:
    return Entry(offset, customer, due, f"r{offset}")


def test_a_due_record_is_ready_and_pins_the_commit_point_until_finished() -> None:
    hold: PartitionHold[str] = PartitionHold()
    assert hold.commit_point() is None
    assert hold.add(entry(5, "a", due=10), now=10) is not None
    assert hold.commit_point() == 5
    hold.finish(5)
    assert hold.commit_point() == 6


def test_a_held_customer_keeps_its_order_and_others_pass() -> None:
    hold: PartitionHold[str] = PartitionHold()
    assert hold.add(entry(0, "a", due=100), now=0) is None
    assert hold.add(entry(1, "b"), now=0) is not None
    hold.finish(1)
    assert hold.add(entry(2, "a"), now=0) is None  # behind a's held record
    assert hold.add(entry(3, "a", due=50), now=0) is None
    assert hold.held_count == 3 and hold.next_due() == 100
    assert hold.commit_point() == 0
    assert list(hold.due(99)) == []
    assert [e.offset for e in hold.due(100)] == [0, 2, 3]
    assert hold.held_count == 0 and hold.next_due() is None
    assert hold.commit_point() == 0  # in hand until finished
    for offset in (0, 2, 3):
        hold.finish(offset)
    assert hold.commit_point() == 4


def test_heads_of_several_customers_come_out_in_offset_order() -> None:
    hold: PartitionHold[str] = PartitionHold()
    hold.add(entry(0, "a", due=20), now=0)
    hold.add(entry(1, "b", due=10), now=0)
    hold.add(entry(2, "c", due=30), now=0)
    assert [e.offset for e in hold.due(20)] == [0, 1]
    assert hold.commit_point() == 0
    hold.finish(0)
    hold.finish(1)
    assert hold.commit_point() == 2


def test_forget_drops_a_customers_held_records() -> None:
    hold: PartitionHold[str] = PartitionHold()
    hold.add(entry(0, "a", due=20), now=0)
    hold.add(entry(1, "a"), now=0)
    hold.add(entry(2, "b", due=20), now=0)
    assert [e.offset for e in hold.forget("a")] == [0, 1]
    assert hold.forget("a") == []
    assert hold.commit_point() == 2


def test_skipped_records_move_only_the_read_position() -> None:
    hold: PartitionHold[str] = PartitionHold()
    hold.add(entry(0, "a", due=20), now=0)
    hold.skip(1)
    assert hold.commit_point() == 0
    assert [e.offset for e in hold.due(20)] == [0]
    hold.finish(0)
    assert hold.commit_point() == 2
