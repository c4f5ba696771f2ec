"""Live feeding: generated traffic never ahead of the wall clock; your own events from a file, shifted or not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.codec.avro import touchpoint_schema, touchpoint_to_avro, write_ocf
from streams.errors import InputError
from streams.live.feed import FileStats, Hold, events_from_file, live_journeys, live_window, realtime_journeys
from streams.timeutil import DAY, HOUR, parse_time

NOW = 1_780_000_000_000


class FakeClock:
    def __init__(self, now_s: float) -> None:
        self.now = now_s
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.mark.parametrize(
    ("reached", "expected"),
    [
        (None, (NOW - 3 * DAY, 3.0)),
        (NOW - 5 * DAY, (NOW - 3 * DAY, 3.0)),  # long ago: the full three days
        (NOW - 2 * HOUR, (NOW - 2 * HOUR, 2 / 24)),  # an earlier run left it two hours ago
        (NOW + HOUR, (NOW - 1_000, 1_000 / DAY)),  # ahead of now (an old feed): a second's worth
    ],
)
def test_the_live_window_ends_now_and_never_goes_back(reached: int | None, expected: tuple[int, float]) -> None:
    start, days = live_window(NOW, reached)
    assert start == expected[0]
    assert days == pytest.approx(expected[1])


def test_generated_live_journeys_start_in_the_past_and_mostly_end_by_now() -> None:
    times = [parse_time(e["occurred_at"]) for e in live_journeys(200, 7, now_ms=NOW) if isinstance(e, dict)]
    assert min(times) >= NOW - 3 * DAY
    # Only the later steps of scenarios that started near the end fall after now (Hold deals with them).
    assert sum(t > NOW for t in times) < len(times) * 0.05


def test_realtime_journeys_start_now_with_browsing_at_about_the_rate() -> None:
    records = [e for e in realtime_journeys(100, 7, now_ms=NOW, rate=50.0) if isinstance(e, dict)]
    times = [parse_time(e["occurred_at"]) for e in records]
    assert min(times) >= NOW
    browsing = [t for e, t in zip(records, times, strict=True) if e["type"] in ("page_view", "search", "product_view")]
    assert max(browsing) <= NOW + 12_000  # 100 customers x 6 events at 50 a second: 12 s of browsing
    assert max(times) > NOW + HOUR  # scenario steps come later, when their time comes
    with pytest.raises(ValueError):
        realtime_journeys(1, 1, now_ms=NOW, rate=0)


def test_hold_waits_until_an_event_is_due() -> None:
    clock = FakeClock(NOW / 1000)
    hold = Hold(clock=clock, sleep=clock.sleep)
    assert hold.wait({"occurred_at": NOW - 5}, lambda: False)
    assert clock.slept == []
    assert hold.wait({"occurred_at": NOW + 2_000}, lambda: False)
    assert clock.now >= (NOW + 2_000) / 1000 and max(clock.slept) <= 0.25
    assert hold.wait(["not", "an", "event"], lambda: False)  # broken records are not held


def test_hold_ends_the_feed_for_an_event_too_far_ahead_or_when_stopped() -> None:
    clock = FakeClock(NOW / 1000)
    hold = Hold(max_wait_s=60, clock=clock, sleep=clock.sleep)
    assert not hold.wait({"occurred_at": NOW + 61_000}, lambda: False)
    assert hold.cut and clock.slept == []
    patient = Hold(clock=clock, sleep=clock.sleep)
    assert not patient.wait({"occurred_at": NOW + 61_000}, lambda: len(clock.slept) > 3)
    assert not patient.cut


def events(n: int, start: int, gap: int) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"e{i}",
            "customer_id": "c1",
            "type": "page_view",
            "occurred_at": start + i * gap,
            "channel": "web",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("form", ["jsonl", "avro"])
def test_events_from_a_file_shifted_so_the_first_is_now_keeping_the_gaps(tmp_path: Path, form: str) -> None:
    path = tmp_path / f"events.{form}"
    recs = events(3, NOW - 10 * DAY, 90_000)
    if form == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    else:
        write_ocf(path, [touchpoint_to_avro(r) for r in recs], touchpoint_schema())
    shifted = list(events_from_file(path, shift_to_ms=NOW))
    assert [e["occurred_at"] for e in shifted] == [NOW, NOW + 90_000, NOW + 180_000]
    assert [e["event_id"] for e in shifted] == ["e0", "e1", "e2"]
    assert [e["occurred_at"] for e in events_from_file(path)] == [r["occurred_at"] for r in recs]


def test_records_that_break_the_contract_are_refused_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = events(2, NOW, 1_000)
    path.write_text(
        json.dumps(good[0])
        + "\n"
        + "{not json\n"
        + json.dumps({**good[1], "type": "Bad Type"})
        + "\n"
        + json.dumps({**good[1], "event_id": "e9"})
        + "\n"
    )
    refused: list[tuple[int, str]] = []
    stats = FileStats()

    def refuse(number: int, exc: InputError) -> None:
        refused.append((number, exc.reason))

    sent = list(events_from_file(path, shift_to_ms=NOW + 5, on_refuse=refuse, stats=stats))
    assert [e["event_id"] for e in sent] == ["e0", "e9"]
    assert [n for n, _ in refused] == [2, 3]
    assert (stats.events, stats.refused) == (2, 2)
    assert [e["occurred_at"] for e in sent] == [NOW + 5, NOW + 1_005]
