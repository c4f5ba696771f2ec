"""Synthetic customer journeys: browsing noise plus the shipped topologies' scenarios.

Everything is a pure function of its arguments and streamed: events come out in
arrival order as JSON-ready dicts (contract section 1, ``occurred_at`` as
ISO-8601 UTC with milliseconds and ``Z``), and memory stays bounded by the
scenarios in flight, not by the number of events.

How the stream is built:

* **Noise.** ``round(customers * noise_per_customer)`` browsing events
  (``page_view``, ``search``, ``product_view``, ``app_open``, ``email_open``,
  ``ad_impression``, ``ad_click``) at uniform random times over ``days``, each
  for a uniformly chosen customer. The times are drawn directly in ascending
  order (order statistics, one ``pow`` per event), so nothing is sorted.
* **Scenarios.** ``round(customers * scenario_rate)`` distinct customers each
  live through one scenario of a shipped topology, in a variant that fires or
  one that must not (see ``_SCENARIOS``). Scenario starts are spread over
  ``days`` in ascending order; their later steps wait in a heap, so a scenario
  may end after ``days``.
* **Arrival.** Each event is independently displaced with probability
  ``out_of_order_rate`` (arrives up to ``max_displacement_ms`` later), re-sent
  with probability ``duplicate_rate`` (same ``event_id``, within
  ``max_displacement_ms``), and followed with probability ``invalid_rate`` by
  a broken event of one of several kinds. Displacement never makes an event
  late while ``max_displacement_ms`` is below the policies' ``lateness``.

The three parts use separate random streams, so changing an arrival rate
leaves the journeys themselves unchanged.
"""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from streams.codec.avro import touchpoint_schema, touchpoint_to_avro, write_ocf
from streams.codec.jsonl import write_jsonl
from streams.errors import ConfigError, MalformedRecord
from streams.timeutil import DAY, HOUR, MINUTE, SECOND, format_time

Record = dict[str, Any] | list[Any]
"""One generated line: an event dict, or (an invalid kind) a JSON list."""

# (offset from the scenario start in ms, type, channel, attributes)
Step = tuple[int, str, str | None, dict[str, str]]
# (occurred_at, customer index, type, channel, attributes or None)
_Raw = tuple[int, int, str, str | None, dict[str, str] | None]

_INF = float("inf")

CATEGORIES = (
    "phone",
    "tablet",
    "laptop",
    "headphones",
    "tv",
    "smartwatch",
    "camera",
    "accessories",
)
DEVICES = ("phone", "tablet")
_SKUS = {cat: tuple(f"{cat[:3]}-{n:03d}" for n in range(1, 41)) for cat in CATEGORIES}
_PAGES = ("/", "/deals", "/support", "/account", "/stores", "/c/phone", "/c/laptop", "/c/tv")
_CAMPAIGNS = ("spring_sale", "new_arrivals", "loyalty", "back_to_school", "weekend_deals")
_REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-northeast")
INVALID_TZ = "Mars/Olympus"
# (zone, weight per mille); the invalid zone exercises the default-timezone fallback.
_TIMEZONES = (
    ("Europe/Berlin", 250),
    ("America/New_York", 200),
    ("UTC", 150),
    ("Asia/Tokyo", 120),
    ("Europe/London", 100),
    ("America/Los_Angeles", 100),
    ("Australia/Sydney", 75),
    (INVALID_TZ, 5),
)
_TZ_TABLE = tuple(zone for zone, weight in _TIMEZONES for _ in range(weight))

# Noise types with their share in percent.
_NOISE_WEIGHTS = (
    ("page_view", 30),
    ("product_view", 20),
    ("ad_impression", 14),
    ("search", 12),
    ("app_open", 12),
    ("email_open", 8),
    ("ad_click", 4),
)
NOISE_TYPES = tuple(name for name, _ in _NOISE_WEIGHTS)
_NOISE_TABLE = tuple(name for name, weight in _NOISE_WEIGHTS for _ in range(weight))
_NOISE_TZ_SHARE = 0.3  # noise events other than app_open that carry the customer's tz
_SCENARIO_TZ_SHARE = 0.8  # some scenario events lack tz, so quiet hours use the default


class WriteResult(NamedTuple):
    """What :func:`write` did: lines or records written, and events Avro cannot hold."""

    written: int
    skipped: int


# --- public API ------------------------------------------------------------------


def generate(
    customers: int,
    seed: int,
    *,
    start_ms: int,
    days: float = 3.0,
    noise_per_customer: float = 6.0,
    scenario_rate: float = 0.3,
    out_of_order_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    invalid_rate: float = 0.0,
    max_displacement_ms: int = 120_000,
) -> Iterator[Record]:
    """Stream synthetic events for ``customers`` customers in arrival order.

    Deterministic for the arguments. Raises :class:`ConfigError` on
    out-of-range arguments (checked at the call, before the first event).
    """
    _check(customers, days, noise_per_customer, scenario_rate, max_displacement_ms)
    _check_rates(out_of_order_rate, duplicate_rate, invalid_rate)
    noise = round(customers * noise_per_customer)
    valid = _valid_events(customers, seed, start_ms, int(days * DAY), noise, scenario_rate)
    arrival = _Arrival(out_of_order_rate, duplicate_rate, invalid_rate, max_displacement_ms)
    return _in_arrival_order(valid, seed, arrival)


def generate_events(
    total_events: int,
    customers: int,
    seed: int,
    *,
    start_ms: int,
    days: float = 3.0,
    scenario_rate: float = 0.3,
    out_of_order_rate: float = 0.0,
    duplicate_rate: float = 0.0,
    invalid_rate: float = 0.0,
    max_displacement_ms: int = 120_000,
) -> Iterator[Record]:
    """Like :func:`generate`, with exactly ``total_events`` valid events.

    The scenario events are counted first (a cheap dry run of the same random
    stream); noise makes up the rest. Duplicates and invalid events come on
    top. Raises :class:`ConfigError` when the scenarios alone exceed the total.
    """
    _check(customers, days, 0.0, scenario_rate, max_displacement_ms)
    _check_rates(out_of_order_rate, duplicate_rate, invalid_rate)
    scenario_events = count_scenario_events(customers, seed, scenario_rate)
    if total_events < scenario_events:
        raise ConfigError(
            f"{total_events} events are fewer than the {scenario_events} scenario events of "
            f"{customers} customers at scenario_rate {scenario_rate}; lower the rate"
        )
    noise = total_events - scenario_events
    valid = _valid_events(customers, seed, start_ms, int(days * DAY), noise, scenario_rate)
    arrival = _Arrival(out_of_order_rate, duplicate_rate, invalid_rate, max_displacement_ms)
    return _in_arrival_order(valid, seed, arrival)


def count_scenario_events(customers: int, seed: int, scenario_rate: float) -> int:
    """How many events the scenarios of :func:`generate` make for these arguments."""
    return sum(len(steps) for _, _, steps in _scenarios(customers, seed, scenario_rate, 0, DAY))


def write(path: str | os.PathLike[str], events: Iterable[Record]) -> WriteResult:
    """Write ``events`` as an Avro object container file (``.avro``) or JSON Lines.

    Avro keeps every event ``tactful.Touchpoint`` can hold, invalid ones
    included (a bad ``type``, an over-long ``customer_id``); events it cannot
    hold (no ``customer_id``, a non-string attribute, a list) are skipped and
    counted.
    """
    if Path(path).suffix.lower() != ".avro":
        return WriteResult(write_jsonl(path, events), 0)
    skipped = 0

    def representable() -> Iterator[dict[str, Any]]:
        nonlocal skipped
        for event in events:
            try:
                yield touchpoint_to_avro(event)
            except MalformedRecord:
                skipped += 1

    written = write_ocf(path, representable(), touchpoint_schema())
    return WriteResult(written, skipped)


def customer_id(index: int) -> str:
    """The id of customer ``index``: ``c000123``."""
    return f"c{index:06d}"


def customer_tz(index: int, seed: int) -> str:
    """Customer ``index``'s time zone, fixed for a seed (rarely an invalid name)."""
    mixed = (index * 2_654_435_761 + seed * 40_503 + 12_345) & 0xFFFF_FFFF
    return _TZ_TABLE[(mixed >> 7) % len(_TZ_TABLE)]


# --- checks ----------------------------------------------------------------------


def _check(customers: int, days: float, noise: float, scenario_rate: float, max_displacement_ms: int) -> None:
    if customers < 1:
        raise ConfigError(f"customers must be at least 1, got {customers}")
    if not days > 0:
        raise ConfigError(f"days must be positive, got {days}")
    if noise < 0:
        raise ConfigError(f"noise_per_customer must not be negative, got {noise}")
    if max_displacement_ms < 0:
        raise ConfigError(f"max_displacement_ms must not be negative, got {max_displacement_ms}")
    _check_rate("scenario_rate", scenario_rate)


def _check_rates(out_of_order: float, duplicate: float, invalid: float) -> None:
    _check_rate("out_of_order_rate", out_of_order)
    _check_rate("duplicate_rate", duplicate)
    _check_rate("invalid_rate", invalid)


def _check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{name} must be between 0 and 1, got {rate}")


# --- valid events in event-time order ------------------------------------------------


def _valid_events(
    customers: int, seed: int, start: int, span: int, noise: int, scenario_rate: float
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(occurred_at, event dict) in event-time order, ids numbered in that order."""
    raws = _merge(
        _noise(customers, seed, start, span, noise),
        _scenarios(customers, seed, scenario_rate, start, span),
        seed,
    )
    fmt = _time_formatter()
    prefix = f"e{seed}-"
    for n, (t, cust, etype, channel, attrs) in enumerate(raws, 1):
        event: dict[str, Any] = {
            "event_id": f"{prefix}{n}",
            "customer_id": f"c{cust:06d}",
            "type": etype,
            "occurred_at": fmt(t),
        }
        if channel is not None:
            event["channel"] = channel
        if attrs:
            event["attributes"] = attrs
        yield t, event


def _merge(
    noise: Iterator[_Raw],
    scenarios: Iterator[tuple[int, int, list[Step]]],
    seed: int,
) -> Iterator[_Raw]:
    """Noise and scenario steps merged by time; a scenario is unrolled at its start."""
    pending: list[tuple[int, int, int, str, str | None, dict[str, str]]] = []
    tiebreak = 0
    next_noise = next(noise, None)
    next_scenario = next(scenarios, None)
    while True:
        t_noise = next_noise[0] if next_noise is not None else _INF
        t_pending = pending[0][0] if pending else _INF
        if next_scenario is not None and next_scenario[0] <= min(t_noise, t_pending):
            anchor, cust, steps = next_scenario
            tz = customer_tz(cust, seed)
            for offset, etype, channel, attrs in steps:
                if "tz" in attrs:
                    attrs["tz"] = tz
                tiebreak += 1
                heapq.heappush(pending, (anchor + offset, tiebreak, cust, etype, channel, attrs))
            next_scenario = next(scenarios, None)
        elif t_pending <= t_noise and pending:
            t, _, cust, etype, channel, attrs = heapq.heappop(pending)
            yield t, cust, etype, channel, attrs
        elif next_noise is not None:
            yield next_noise
            next_noise = next(noise, None)
        else:
            return


def _ordered_uniform(rand: Callable[[], float], n: int) -> Iterator[float]:
    """``n`` uniform draws from [0, 1) in ascending order, without sorting.

    The largest of k uniforms is U**(1/k), and the rest are uniform below it;
    walking down from the top and mirroring gives ascending order statistics.
    """
    top = 1.0
    for k in range(n, 0, -1):
        top *= rand() ** (1.0 / k)
        yield 1.0 - top


def _noise(customers: int, seed: int, start: int, span: int, count: int) -> Iterator[_Raw]:
    rng = random.Random(seed)
    rand = rng.random
    builders = _NOISE_BUILDERS
    table = _NOISE_TABLE
    size = len(table)
    for u in _ordered_uniform(rand, count):
        cust = int(rand() * customers)
        etype = table[int(rand() * size)]
        channel, attrs = builders[etype](rand)
        if etype == "app_open" or rand() < _NOISE_TZ_SHARE:
            attrs["tz"] = customer_tz(cust, seed)
        yield start + int(u * span), cust, etype, channel, attrs


def _scenarios(
    customers: int, seed: int, scenario_rate: float, start: int, span: int
) -> Iterator[tuple[int, int, list[Step]]]:
    """(start time, customer index, steps) in ascending start time.

    Steps that should carry the customer's tz hold a ``"tz"`` placeholder.
    """
    rng = random.Random(f"{seed}:scenarios")
    count = round(customers * scenario_rate)
    chosen = rng.sample(range(customers), count)
    kinds = [kind for kind, weight, _ in _SCENARIOS for _ in range(weight)]
    builders = {kind: build for kind, _, build in _SCENARIOS}
    for cust, u in zip(chosen, _ordered_uniform(rng.random, count), strict=True):
        steps = builders[rng.choice(kinds)](rng)
        for _, _, _, attrs in steps:
            if rng.random() < _SCENARIO_TZ_SHARE:
                attrs["tz"] = "tz"
        yield start + int(u * span), cust, steps


# --- noise events ----------------------------------------------------------------

_NoiseBuilder = Callable[[Callable[[], float]], tuple[str | None, dict[str, str]]]


def _pick(rand: Callable[[], float], items: Sequence[str]) -> str:
    return items[int(rand() * len(items))]


def _web_or_app(rand: Callable[[], float]) -> str:
    return "web" if rand() < 0.7 else "app"


def _page_view(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    return _web_or_app(rand), {"page": _pick(rand, _PAGES)}


def _product_view(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    cat = _pick(rand, CATEGORIES)
    return _web_or_app(rand), {"category": cat, "sku": _pick(rand, _SKUS[cat])}


def _search(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    cat = _pick(rand, CATEGORIES)
    return _web_or_app(rand), {"query": cat, "category": cat}


def _app_open(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    return "app", {"app_version": "4.2" if rand() < 0.8 else "4.1"}


def _email_open(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    return "email", {"campaign": _pick(rand, _CAMPAIGNS), "category": _pick(rand, CATEGORIES)}


def _ad_impression(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    return "ads", {"campaign": _pick(rand, _CAMPAIGNS), "category": _pick(rand, CATEGORIES)}


def _ad_click(rand: Callable[[], float]) -> tuple[str | None, dict[str, str]]:
    cat = _pick(rand, CATEGORIES)
    sku = _pick(rand, _SKUS[cat])
    return "ads", {"campaign": _pick(rand, _CAMPAIGNS), "category": cat, "sku": sku}


_NOISE_BUILDERS: dict[str, _NoiseBuilder] = {
    "page_view": _page_view,
    "product_view": _product_view,
    "search": _search,
    "app_open": _app_open,
    "email_open": _email_open,
    "ad_impression": _ad_impression,
    "ad_click": _ad_click,
}


# --- scenarios -------------------------------------------------------------------
# Each builder returns the steps of one journey, offsets ascending from 0. The
# variant names say whether the topology should fire; windows in the comments
# are the shipped topologies' (topologies/*.yaml).


def _between(rng: random.Random, low: int, high: int) -> int:
    return rng.randint(low, high)


def _variant(rng: random.Random, weights: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in weights], [w for _, w in weights])[0]


def _purchase(rng: random.Random, category: str) -> Step:
    channel = rng.choice(("store", "web"))
    return 0, "purchase", channel, {"category": category, "sku": rng.choice(_SKUS[category])}


def _post_purchase_friction(rng: random.Random) -> list[Step]:
    """purchase phone/tablet -> activation_failed <=72h -> support_contact unresolved <=48h."""
    variant = _variant(rng, (("fires", 55), ("unless", 15), ("resolved", 15), ("too_slow", 10), ("laptop", 5)))
    category = "laptop" if variant == "laptop" else rng.choice(DEVICES)
    steps = [_purchase(rng, category)]
    failed = _between(rng, 30 * MINUTE, 70 * HOUR)
    if variant == "too_slow":
        failed = _between(rng, 73 * HOUR, 90 * HOUR)
    steps.append((failed, "activation_failed", "app", {}))
    contact = failed + _between(rng, 10 * MINUTE, 46 * HOUR)
    if variant == "unless":
        # Succeeded after all, then called about something else: the unless voids it.
        succeeded = failed + _between(rng, 5 * MINUTE, 6 * HOUR)
        steps.append((succeeded, "activation_succeeded", "app", {}))
        contact = succeeded + _between(rng, 10 * MINUTE, 30 * HOUR)
    resolved = "true" if variant == "resolved" else "false"
    steps.append((contact, "support_contact", "call_center", {"resolved": resolved}))
    if variant != "unless" and rng.random() < 0.5:
        # Fixed later: releases the suppressions (fires variant) or is just news.
        fixed = contact + _between(rng, 2 * HOUR, 4 * DAY)
        steps.append((fixed, "activation_succeeded", "app", {}))
    return steps


def _activation_nudge(rng: random.Random) -> list[Step]:
    """purchase phone/tablet, no activation_succeeded within 24h."""
    steps = [_purchase(rng, rng.choice(DEVICES))]
    if _variant(rng, (("fires", 60), ("activated", 40))) == "activated":
        steps.append((_between(rng, 5 * MINUTE, 23 * HOUR), "activation_succeeded", "app", {}))
    elif rng.random() < 0.4:
        steps.append((_between(rng, 25 * HOUR, 60 * HOUR), "activation_succeeded", "app", {}))
    return steps


def _abandoned_cart(rng: random.Random) -> list[Step]:
    """cart_add on web/app, no purchase within 24h; without a category the template skips."""
    variant = _variant(rng, (("fires", 55), ("bought", 35), ("no_category", 10)))
    category = rng.choice(CATEGORIES)
    channel = rng.choice(("web", "app"))
    cart: dict[str, str] = {"sku": rng.choice(_SKUS[category])}
    if variant != "no_category":
        cart["category"] = category
    steps: list[Step] = [(0, "cart_add", channel, cart)]
    bought = {"category": category, "sku": cart["sku"]}
    if variant == "bought":
        steps.append((_between(rng, 5 * MINUTE, 23 * HOUR), "purchase", channel, bought))
    elif rng.random() < 0.3:
        steps.append((_between(rng, 25 * HOUR, 72 * HOUR), "purchase", channel, dict(bought)))
    return steps


def _failed_login(rng: random.Random) -> list[Step]:
    """>=5 login_failed within 15m; 3 attempts or slow attempts must not fire."""
    variant = _variant(rng, (("fires", 55), ("few", 30), ("slow", 15)))
    channel = rng.choice(("web", "app"))
    attempts = {"fires": rng.randint(5, 7), "few": 3, "slow": 5}[variant]
    # Gaps up to 150s keep any five attempts within 10 minutes; slow gaps over
    # 5 minutes leave at most three in any 15-minute window.
    slow = variant == "slow"
    low, high = (5 * MINUTE + SECOND, 8 * MINUTE) if slow else (15 * SECOND, 150 * SECOND)
    steps: list[Step] = []
    t = 0
    for i in range(attempts):
        t += _between(rng, low, high) if i else 0
        steps.append((t, "login_failed", channel, {}))
    if rng.random() < 0.5:
        steps.append((t + _between(rng, 2 * MINUTE, 2 * HOUR), "password_reset", channel, {}))
    return steps


def _delivery_delay(rng: random.Random) -> list[Step]:
    """order_shipped -> delivery_delayed within 10d, unless order_delivered in between."""
    variant = _variant(rng, (("fires", 50), ("delivered_first", 20), ("on_time", 25), ("too_late", 5)))
    category = rng.choice(CATEGORIES)
    order = f"o{rng.randrange(10**8):08d}"
    shipped = {"category": category, "order_id": order}
    steps: list[Step] = [(0, "order_shipped", None, shipped)]
    if variant == "on_time":
        steps.append((_between(rng, DAY, 3 * DAY), "order_delivered", None, {"order_id": order}))
    elif variant == "delivered_first":
        delivered = _between(rng, DAY, 3 * DAY)
        steps.append((delivered, "order_delivered", None, {"order_id": order}))
        late_notice = delivered + _between(rng, HOUR, DAY)
        steps.append((late_notice, "delivery_delayed", None, {"order_id": order}))
    else:
        window = (10 * DAY + HOUR, 11 * DAY) if variant == "too_late" else (6 * HOUR, 4 * DAY)
        delayed = _between(rng, *window)
        steps.append((delayed, "delivery_delayed", None, {"order_id": order}))
        if rng.random() < 0.7:
            delivered = delayed + _between(rng, 12 * HOUR, 3 * DAY)
            steps.append((delivered, "order_delivered", None, {"order_id": order}))
    return steps


def _complaints(rng: random.Random) -> list[Step]:
    """A second complaint within 30d fires; a single one must not."""
    count = {"fires": 2, "single": 1, "three": 3}[_variant(rng, (("fires", 50), ("single", 40), ("three", 10)))]
    category = rng.choice(CATEGORIES)
    steps: list[Step] = []
    t = 0
    for i in range(count):
        t += _between(rng, 2 * HOUR, 6 * DAY) if i else 0
        steps.append((t, "complaint", rng.choice(("call_center", "email")), {"category": category}))
    if rng.random() < 0.5:
        steps.append((t + _between(rng, HOUR, 3 * DAY), "complaint_resolved", "call_center", {}))
    return steps


def _outage(rng: random.Random) -> list[Step]:
    """service_outage with a region; without one the engagement's template skips."""
    attrs = {} if rng.random() < 0.15 else {"region": rng.choice(_REGIONS)}
    steps: list[Step] = [(0, "service_outage", None, attrs)]
    if rng.random() < 0.8:
        steps.append((_between(rng, 30 * MINUTE, 18 * HOUR), "service_restored", None, {}))
    return steps


_SCENARIOS: tuple[tuple[str, int, Callable[[random.Random], list[Step]]], ...] = (
    ("post_purchase_friction", 25, _post_purchase_friction),
    ("activation_nudge", 15, _activation_nudge),
    ("abandoned_cart_reminder", 20, _abandoned_cart),
    ("failed_login_guard", 15, _failed_login),
    ("delivery_delay_apology", 12, _delivery_delay),
    ("complaint_escalation", 8, _complaints),
    ("service_outage_hold", 5, _outage),
)
SCENARIO_TYPES = (
    "purchase",
    "activation_failed",
    "activation_succeeded",
    "support_contact",
    "cart_add",
    "login_failed",
    "password_reset",
    "order_shipped",
    "delivery_delayed",
    "order_delivered",
    "complaint",
    "complaint_resolved",
    "service_outage",
    "service_restored",
)


# --- arrival: displacement, duplicates, invalid events ----------------------------------


class _Arrival(NamedTuple):
    out_of_order: float
    duplicate: float
    invalid: float
    max_displacement: int


def _in_arrival_order(valid: Iterator[tuple[int, dict[str, Any]]], seed: int, arrival: _Arrival) -> Iterator[Record]:
    if not (arrival.out_of_order or arrival.duplicate or arrival.invalid):
        # Nothing to disturb: skip the heap and the extra draws.
        return (event for _, event in valid)
    return _arrive(valid, random.Random(f"{seed}:arrival"), arrival)


def _arrive(valid: Iterator[tuple[int, dict[str, Any]]], rng: random.Random, arrival: _Arrival) -> Iterator[Record]:
    """Valid events in event-time order -> lines in arrival order.

    A held-back event waits in a heap keyed by its arrival time and is let out
    just before the first event at or after that time, so at its arrival no
    event seen is more than ``max_displacement`` newer than it.
    """
    rand = rng.random
    held: list[tuple[int, int, Record]] = []
    seq = 0
    ooo, dup, inv, spread = arrival
    for t, event in valid:
        while held and held[0][0] <= t:
            yield heapq.heappop(held)[2]
        if ooo and spread and rand() < ooo:
            seq += 1
            heapq.heappush(held, (t + 1 + int(rand() * spread), seq, event))
        else:
            yield event
        if dup and rand() < dup:
            seq += 1
            heapq.heappush(held, (t + int(rand() * (spread + 1)), seq, dict(event)))
        if inv and rand() < inv:
            yield _broken(event, rng)
    while held:
        yield heapq.heappop(held)[2]


def _broken(event: dict[str, Any], rng: random.Random) -> Record:
    """An invalid companion of ``event``; each kind breaks one rule of section 1."""
    bad: dict[str, Any] = dict(event, event_id=f"{event['event_id']}-bad")
    kind = rng.randrange(7)
    if kind == 0:
        del bad["customer_id"]
    elif kind == 1:
        bad["type"] = "Bad Type!"
    elif kind == 2:
        bad["occurred_at"] = "yesterday"
    elif kind == 3:
        bad["attributes"] = {**event.get("attributes", {}), "quantity": 3}
    elif kind == 4:
        bad["customer_id"] = "c" * 200
    elif kind == 5:
        bad["event_id"] = ""
    else:
        return [bad["event_id"], bad["customer_id"], bad["type"], bad["occurred_at"]]
    return bad


# --- time formatting ---------------------------------------------------------------


def _time_formatter() -> Callable[[int], str]:
    """:func:`format_time`, with the text up to the minute reused between calls.

    Events come nearly in time order, so most calls only format seconds and
    milliseconds: several times faster than building a datetime per event.
    """
    minute_cached = -1
    prefix = ""

    def fmt(ms: int) -> str:
        nonlocal minute_cached, prefix
        minute, rest = divmod(ms, MINUTE)
        if minute != minute_cached:
            minute_cached = minute
            prefix = format_time(minute * MINUTE)[:-7]  # drop "00.000Z"
        seconds, millis = divmod(rest, SECOND)
        return f"{prefix}{seconds:02d}.{millis:03d}Z"

    return fmt
