"""Synthetic journeys: determinism, counts, scenarios, arrival disorder, output files."""

from __future__ import annotations

import inspect
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from streams.codec.avro import read_ocf
from streams.codec.jsonl import read_jsonl
from streams.errors import ConfigError, InvalidEvent
from streams.events import Event, validate_event
from streams.generate import (
    INVALID_TZ,
    NOISE_TYPES,
    SCENARIO_TYPES,
    Record,
    _time_formatter,
    count_scenario_events,
    customer_id,
    customer_tz,
    generate,
    generate_events,
    write,
)
from streams.timeutil import DAY, HOUR, MINUTE, format_time, parse_time

START = parse_time("2026-05-01T00:00:00Z")
MAX_DISPLACEMENT = 120_000
LATENESS = 10 * MINUTE


def small(**kwargs: Any) -> list[Record]:
    args: dict[str, Any] = {"customers": 3000, "seed": 11, "start_ms": START, **kwargs}
    return list(generate(**args))


def split(records: Iterable[Record]) -> tuple[list[Event], Counter[str]]:
    """Valid events in arrival order, and the invalid ones' reasons."""
    valid: list[Event] = []
    invalid: Counter[str] = Counter()
    for record in records:
        try:
            valid.append(validate_event(record))
        except InvalidEvent as exc:
            invalid[exc.reason] += 1
    return valid, invalid


def journeys(events: Iterable[Event]) -> dict[str, list[Event]]:
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.occurred_at):
        by_customer[event.customer_id].append(event)
    return by_customer


@pytest.fixture(scope="module")
def plain() -> list[Record]:
    return small()


@pytest.fixture(scope="module")
def plain_journeys(plain: list[Record]) -> dict[str, list[Event]]:
    valid, invalid = split(plain)
    assert not invalid
    return journeys(valid)


# --- determinism and streaming ---------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    kwargs = {"out_of_order_rate": 0.1, "duplicate_rate": 0.05, "invalid_rate": 0.05}
    assert small(**kwargs) == small(**kwargs)
    assert small(**kwargs) != small(seed=12, **kwargs)


def test_is_a_stream_not_a_list() -> None:
    stream = generate(1_000_000, 1, start_ms=START, out_of_order_rate=0.1)
    assert inspect.isgenerator(stream)
    first = list(itertools.islice(stream, 1000))
    assert len(first) == 1000
    plain_stream = generate(1_000_000, 1, start_ms=START)
    assert inspect.isgenerator(plain_stream)
    first_event = next(plain_stream)
    assert isinstance(first_event, dict) and first_event["event_id"] == "e1-1"


def test_arguments_are_checked_at_the_call() -> None:
    for kwargs in (
        {"customers": 0},
        {"days": 0},
        {"noise_per_customer": -1},
        {"scenario_rate": 1.5},
        {"out_of_order_rate": -0.1},
        {"duplicate_rate": 2},
        {"invalid_rate": 1.01},
        {"max_displacement_ms": -1},
    ):
        args: dict[str, Any] = {"customers": 10, "seed": 1, "start_ms": START, **kwargs}
        with pytest.raises(ConfigError):
            generate(**args)


# --- counts and shape -----------------------------------------------------------------


def test_noise_count_is_exact() -> None:
    records = small(customers=500, noise_per_customer=4.5, scenario_rate=0.0)
    assert len(records) == round(500 * 4.5)
    assert {r["type"] for r in records if isinstance(r, dict)} == set(NOISE_TYPES)


def test_generate_events_hits_the_total_exactly() -> None:
    records = list(generate_events(20_000, 2000, 5, start_ms=START))
    assert len(records) == 20_000
    scenario = count_scenario_events(2000, 5, 0.3)
    types = Counter(r["type"] for r in records if isinstance(r, dict))
    assert sum(types[t] for t in NOISE_TYPES) == 20_000 - scenario


def test_generate_events_refuses_a_total_below_the_scenarios() -> None:
    with pytest.raises(ConfigError, match="scenario"):
        generate_events(100, 1000, 5, start_ms=START)


def test_all_valid_in_time_order_with_unique_ids(plain: list[Record]) -> None:
    valid, invalid = split(plain)
    assert not invalid and len(valid) == len(plain)
    times = [e.occurred_at for e in valid]
    assert times == sorted(times)
    assert len({e.event_id for e in valid}) == len(valid)
    assert [e.event_id for e in valid[:3]] == ["e11-1", "e11-2", "e11-3"]
    assert all(e.customer_id.startswith("c") and len(e.customer_id) == 7 for e in valid)
    assert times[0] >= START
    assert sum(t < START + 3 * DAY for t in times) > 0.95 * len(times)


def test_json_form(plain: list[Record]) -> None:
    for record in plain[:2000]:
        assert isinstance(record, dict)
        assert set(record) <= {
            "event_id",
            "customer_id",
            "type",
            "occurred_at",
            "channel",
            "attributes",
        }
        stamp = record["occurred_at"]
        assert isinstance(stamp, str) and stamp.endswith("Z") and len(stamp) == 24
        assert format_time(parse_time(stamp)) == stamp
        assert all(isinstance(v, str) for v in record.get("attributes", {}).values())


def test_time_formatter_matches_format_time() -> None:
    fmt = _time_formatter()
    rng = random.Random(3)
    stamps = [START + rng.randrange(-DAY, 3 * DAY) for _ in range(20_000)]
    stamps += [0, -1, 59_999, 60_000, 253_402_300_799_999, -62_135_596_800_000]
    stamps += sorted(stamps[:5000])
    for ms in stamps:
        assert fmt(ms) == format_time(ms)


def test_customer_helpers() -> None:
    assert customer_id(123) == "c000123"
    assert customer_id(1_234_567) == "c1234567"
    assert customer_tz(5, 1) == customer_tz(5, 1)
    zones = Counter(customer_tz(i, 1) for i in range(100_000))
    assert INVALID_TZ in zones and zones[INVALID_TZ] < 1500
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"} <= set(zones)


def test_customers_keep_one_tz_and_most_show_it(plain_journeys: dict[str, list[Event]]) -> None:
    shown = 0
    zones: Counter[str] = Counter()
    for journey in plain_journeys.values():
        tzs = {e.attributes["tz"] for e in journey if "tz" in e.attributes}
        assert len(tzs) <= 1
        shown += bool(tzs)
        zones.update(tzs)
    assert shown > 0.9 * len(plain_journeys)
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"} <= set(zones)


def test_some_customers_have_the_invalid_zone() -> None:
    records = small(customers=20_000, noise_per_customer=2.0, scenario_rate=0.0)
    assert any(isinstance(r, dict) and r.get("attributes", {}).get("tz") == INVALID_TZ for r in records)


# --- scenarios ---------------------------------------------------------------------


def test_every_scenario_type_is_present(plain: list[Record]) -> None:
    types = Counter(r["type"] for r in plain if isinstance(r, dict))
    for etype in (*SCENARIO_TYPES, *NOISE_TYPES):
        assert types[etype] > 0, etype
    noise = sum(types[t] for t in NOISE_TYPES)
    assert noise > 0.7 * len(plain)  # ordinary browsing is most of the stream


def _of(journey: list[Event], etype: str, **attrs: str) -> list[Event]:
    return [e for e in journey if e.type == etype and all(e.attributes.get(k) == v for k, v in attrs.items())]


def _friction(journey: list[Event]) -> str | None:
    """How a post_purchase_friction journey ends, judged against its YAML."""
    purchases = [e for e in _of(journey, "purchase") if e.attributes.get("category") in ("phone", "tablet")]
    failed = _of(journey, "activation_failed")
    contacts = _of(journey, "support_contact")
    if not (purchases and failed and contacts):
        return None
    bought, fail, contact = purchases[0], failed[0], contacts[0]
    if contact.attributes["resolved"] == "true":
        return "resolved"
    if fail.occurred_at - bought.occurred_at > 72 * HOUR or contact.occurred_at - fail.occurred_at > 48 * HOUR:
        return "too_slow"
    if any(bought.occurred_at < s.occurred_at <= contact.occurred_at for s in _of(journey, "activation_succeeded")):
        return "unless"
    return "fires"


def _login(journey: list[Event]) -> str | None:
    times = [e.occurred_at for e in _of(journey, "login_failed")]
    if not times:
        return None
    fires = any(sum(t - 15 * MINUTE < u <= t for u in times) >= 5 for t in times)
    return "fires" if fires else f"{len(times)}_quiet"


def _cart(journey: list[Event]) -> str | None:
    carts = _of(journey, "cart_add")
    if not carts:
        return None
    cart = carts[0]
    assert cart.channel in ("web", "app")
    if "category" not in cart.attributes:
        return "no_category"
    bought = any(0 < p.occurred_at - cart.occurred_at <= 24 * HOUR for p in _of(journey, "purchase"))
    return "bought" if bought else "fires"


def _delivery(journey: list[Event]) -> str | None:
    shipped, delayed = _of(journey, "order_shipped"), _of(journey, "delivery_delayed")
    delivered = _of(journey, "order_delivered")
    if not shipped:
        return None
    if not delayed:
        return "on_time"
    if delayed[0].occurred_at - shipped[0].occurred_at > 10 * 24 * HOUR:
        return "too_late"
    if delivered and delivered[0].occurred_at <= delayed[0].occurred_at:
        return "delivered_first"
    return "fires_released" if delivered else "fires"


def _nudge(journey: list[Event]) -> str | None:
    # Only journeys that are nothing but a device purchase and maybe activation.
    if {e.type for e in journey} - {"purchase", "activation_succeeded", *NOISE_TYPES}:
        return None
    purchases = _of(journey, "purchase")
    if not purchases or purchases[0].attributes.get("category") not in ("phone", "tablet"):
        return None
    t0 = purchases[0].occurred_at
    on_time = any(0 < s.occurred_at - t0 <= 24 * HOUR for s in _of(journey, "activation_succeeded"))
    return "activated" if on_time else "fires"


@pytest.mark.parametrize(
    ("judge", "outcomes"),
    [
        (_friction, {"fires", "resolved", "too_slow", "unless"}),
        (_login, {"fires", "3_quiet", "5_quiet"}),
        (_cart, {"fires", "bought", "no_category"}),
        (_delivery, {"fires", "fires_released", "on_time", "too_late", "delivered_first"}),
        (_nudge, {"fires", "activated"}),
    ],
)
def test_scenarios_come_in_variants_that_fire_and_that_do_not(
    plain_journeys: dict[str, list[Event]], judge: Any, outcomes: set[str]
) -> None:
    seen = Counter(judge(j) for j in plain_journeys.values())
    seen.pop(None, None)
    assert outcomes <= set(seen), seen
    assert seen["fires"] + seen["fires_released"] > 0.3 * sum(seen.values())


def test_other_scenarios_have_their_variants(plain_journeys: dict[str, list[Event]]) -> None:
    complaints = Counter(len(_of(j, "complaint")) for j in plain_journeys.values())
    assert complaints[1] and complaints[2] and complaints[3]
    outages = [o for j in plain_journeys.values() for o in _of(j, "service_outage")]
    assert any("region" in o.attributes for o in outages)
    assert any("region" not in o.attributes for o in outages)
    assert any(_of(j, "service_restored") for j in plain_journeys.values())
    assert any(_of(j, "password_reset") for j in plain_journeys.values())
    assert any(_of(j, "complaint_resolved") for j in plain_journeys.values())
    # Released after firing: activation_succeeded after the unresolved contact.
    assert any(
        _friction(j) == "fires"
        and any(s.occurred_at > _of(j, "support_contact")[0].occurred_at for s in _of(j, "activation_succeeded"))
        for j in plain_journeys.values()
    )


def test_scenario_customers_are_distinct(plain_journeys: dict[str, list[Event]]) -> None:
    kinds = (
        "cart_add",
        "login_failed",
        "order_shipped",
        "complaint",
        "service_outage",
        "activation_failed",
    )
    for journey in plain_journeys.values():
        assert sum(bool(_of(journey, k)) for k in kinds) <= 1


# --- arrival: out of order, duplicates, invalid -------------------------------------------


DISORDER = {"out_of_order_rate": 0.1, "duplicate_rate": 0.05, "invalid_rate": 0.04}


@pytest.fixture(scope="module")
def disorderly() -> list[Record]:
    return small(**DISORDER)


def test_journeys_do_not_change_with_arrival_rates(plain: list[Record], disorderly: list[Record]) -> None:
    valid, _ = split(disorderly)
    unique = {e.event_id: e for e in valid}
    assert sorted(unique.values(), key=lambda e: int(e.event_id.split("-")[1])) == split(plain)[0]


def test_out_of_order_is_bounded_and_never_late(disorderly: list[Record]) -> None:
    valid, _ = split(disorderly)
    stream_time = None
    behind = []
    for event in valid:
        if stream_time is not None:
            behind.append(stream_time - event.occurred_at)
        stream_time = max(stream_time or event.occurred_at, event.occurred_at)
    displaced = [b for b in behind if b > 0]
    assert len(displaced) > 0.05 * len(valid)
    assert max(displaced) <= MAX_DISPLACEMENT < LATENESS


def test_out_of_order_respects_a_custom_bound() -> None:
    valid, _ = split(small(customers=500, out_of_order_rate=0.5, max_displacement_ms=5000))
    stream_time = valid[0].occurred_at
    worst = 0
    for event in valid:
        worst = max(worst, stream_time - event.occurred_at)
        stream_time = max(stream_time, event.occurred_at)
    assert 0 < worst <= 5000


def test_duplicates_share_ids_and_content(disorderly: list[Record], plain: list[Record]) -> None:
    valid, _ = split(disorderly)
    by_id: dict[str, list[Event]] = defaultdict(list)
    for event in valid:
        by_id[event.event_id].append(event)
    repeats = [events for events in by_id.values() if len(events) > 1]
    assert all(len(events) == 2 and events[0] == events[1] for events in repeats)
    rate = len(repeats) / len(plain)
    assert 0.04 < rate < 0.06


def test_invalid_events_really_fail_and_vary(disorderly: list[Record], plain: list[Record]) -> None:
    _, invalid = split(disorderly)
    assert set(invalid) == {
        "invalid_customer_id",
        "invalid_type",
        "invalid_occurred_at",
        "invalid_attributes",
        "invalid_event_id",
        "not_an_object",
    }
    rate = sum(invalid.values()) / len(plain)
    assert 0.03 < rate < 0.05
    assert any(isinstance(r, list) for r in disorderly)
    assert any(isinstance(r, dict) and r.get("type") == "Bad Type!" for r in disorderly)
    assert any(isinstance(r, dict) and r.get("occurred_at") == "yesterday" for r in disorderly)
    assert any(isinstance(r, dict) and len(r.get("customer_id", "")) == 200 for r in disorderly)


def test_zero_displacement_still_duplicates() -> None:
    records = small(customers=300, duplicate_rate=0.2, out_of_order_rate=0.5, max_displacement_ms=0)
    valid, _ = split(records)
    times = [e.occurred_at for e in valid]
    assert times == sorted(times)
    assert len(valid) > len({e.event_id for e in valid})


# --- files ---------------------------------------------------------------------------


def test_write_jsonl(tmp_path: Path, disorderly: list[Record]) -> None:
    path = tmp_path / "events.jsonl"
    assert write(path, iter(disorderly)) == (len(disorderly), 0)
    assert [v for _, v in read_jsonl(path)] == disorderly


def test_write_avro_keeps_what_fits(tmp_path: Path, disorderly: list[Record]) -> None:
    path = tmp_path / "events.avro"
    result = write(path, iter(disorderly))
    back = list(read_ocf(path))
    assert result.written == len(back)
    unfit = [
        r
        for r in disorderly
        if not isinstance(r, dict)
        or "customer_id" not in r
        or r["occurred_at"] == "yesterday"
        or any(not isinstance(v, str) for v in r.get("attributes", {}).values())
    ]
    assert result.skipped == len(unfit) > 0
    valid_json, _ = split(disorderly)
    valid_avro, invalid_avro = split(back)
    assert valid_avro == valid_json
    assert set(invalid_avro) == {"invalid_type", "invalid_customer_id", "invalid_event_id"}


# --- speed (printed, not asserted) ---------------------------------------------------------


def test_print_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    count = sum(1 for _ in generate_events(200_000, 20_000, 1, start_ms=START))
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\ngenerate_events: {count} events in {elapsed:.2f}s = {count / elapsed:,.0f} events/s")
