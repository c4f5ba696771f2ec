"""Contract section 1: touchpoint events (validation, dead letters, duplicates)."""

from __future__ import annotations

import pytest

from .helpers import BASE_MS, E, brief, engage, ev, iso, on, replay


@pytest.fixture
def ping_dir(topo_dir):
    """Every `ping` event engages on email; nothing else happens."""
    return topo_dir(on("ping_t", "ping", [engage("email", "hello")]))


def base_rec(**over):
    rec = {
        "event_id": "e1",
        "customer_id": "c1",
        "type": "ping",
        "occurred_at": "2026-05-01T10:00:00Z",
    }
    for k, v in over.items():
        if v is _DROP:
            rec.pop(k, None)
        else:
            rec[k] = v
    return rec


_DROP = object()


def assert_valid(ping_dir, rec, effective=None):
    effective = effective or iso("+0")
    res = replay(ping_dir, [rec])
    assert res.rejected == []
    assert res.summary["invalid"] == 0
    assert brief(res.decisions) == [("ENGAGE", "email", None, effective, (rec["event_id"],))]


def assert_invalid(ping_dir, rec, reason):
    # an invalid first record, then a valid one: it is reported and does not stop the run
    ok = ev("ok1", "c9", "ping", "+1m")
    res = replay(ping_dir, [rec, ok])
    assert res.rejected == [(1, reason)]
    assert res.summary["invalid"] == 1
    assert brief(res.decisions) == [E("email", "+1m", ["ok1"])]


# ----------------------------------------------------------------- valid forms


def attributes_at_limits():
    attrs = {f"k{i}": "v" for i in range(63)}
    attrs["k" * 128] = "v" * 1024
    return attrs


@pytest.mark.parametrize(
    "rule, over, effective",
    [
        pytest.param(
            "1: only the four required fields present -> valid and evaluated.",
            {}, None,
            id="1_minimal_event_without_optional_fields_is_valid",
        ),
        pytest.param(
            '1: "a null optional field counts as absent" (channel and attributes null).',
            {"channel": None, "attributes": None}, None,
            id="1_null_optional_fields_count_as_absent",
        ),
        pytest.param(
            '1: "Unknown extra fields are ignored".',
            {"foo": 1, "nested": {"a": [1, 2]}, "source": "crm", "schema_version": None}, None,
            id="1_unknown_extra_fields_are_ignored",
        ),
        pytest.param(
            "1: occurred_at in JSON may be epoch milliseconds (a number); ms precision kept.",
            {"occurred_at": BASE_MS + 123}, "2026-05-01T10:00:00.123Z",
            id="1_occurred_at_epoch_millis_number",
        ),
        pytest.param(
            "1: ISO-8601 string with Z.",
            {"occurred_at": "2026-05-01T10:00:00Z"}, iso("+0"),
            id="1_occurred_at_iso_with_z",
        ),
        pytest.param(
            "1: ISO-8601 string with milliseconds.",
            {"occurred_at": "2026-05-01T10:00:00.250Z"}, "2026-05-01T10:00:00.250Z",
            id="1_occurred_at_iso_with_fraction",
        ),
        pytest.param(
            "1: ISO with an offset: 12:00+02:00 is 10:00Z.",
            {"occurred_at": "2026-05-01T12:00:00+02:00"}, iso("+0"),
            id="1_occurred_at_iso_with_positive_offset_is_converted_to_utc",
        ),
        pytest.param(
            "1: ISO with a negative offset: 05:30-04:30 is 10:00Z.",
            {"occurred_at": "2026-05-01T05:30:00-04:30"}, iso("+0"),
            id="1_occurred_at_iso_with_negative_offset_is_converted_to_utc",
        ),
        pytest.param(
            "1: channel string and a string->string attributes map are accepted.",
            {"channel": "call_center", "attributes": {"category": "phone", "tz": "UTC"}}, None,
            id="1_channel_and_attributes_present_are_valid",
        ),
        pytest.param(
            "1: attributes is an optional map; an empty map is a valid map.",
            {"attributes": {}}, None,
            id="1_empty_attributes_map_is_valid",
        ),
        pytest.param(
            "Contract notes: event_id at most 256 characters (boundary valid).",
            {"event_id": "e" * 256}, None,
            id="1_event_id_of_256_chars_is_valid",
        ),
        pytest.param(
            "Contract notes: channel 1..64 characters (boundary valid).",
            {"channel": "c" * 64}, None,
            id="1_channel_of_64_chars_is_valid",
        ),
        pytest.param(
            "Contract notes: 64 attributes, keys up to 128, values up to 1024 characters are valid.",
            {"attributes": attributes_at_limits()}, None,
            id="1_attributes_at_limits_are_valid",
        ),
    ],
)  # fmt: skip
def test_1_valid_event_is_evaluated(ping_dir, rule, over, effective):
    """1: the record (four required fields, with the case's changes) is valid and evaluated (rule per case)."""
    assert_valid(ping_dir, base_rec(**over), effective)


@pytest.mark.parametrize("type_", ["a", "purchase", "a.b_c9", "x" * 64, "z0.9_"])
def test_1_type_pattern_valid_values(ping_dir, type_):
    """1: type `[a-z][a-z0-9_.]*`, at most 64 characters: these are valid (not dead-lettered)."""
    res = replay(ping_dir, [base_rec(type=type_)])
    assert res.rejected == []
    assert res.summary["invalid"] == 0


def test_1_type_of_64_chars_is_evaluated(topo_dir):
    """1: a 64-character type is valid and is matched by a topology naming it."""
    t = "a" * 64
    d = topo_dir(on("t", t, [engage("email")]))
    res = replay(d, [base_rec(type=t)])
    assert res.rejected == []
    assert brief(res.decisions) == [E("email", "+0", ["e1"])]


@pytest.mark.parametrize("cust", ["c", "x" * 128])
def test_1_customer_id_length_bounds_valid(ping_dir, cust):
    """1: customer_id 1..128 characters (both bounds valid)."""
    res = replay(ping_dir, [base_rec(customer_id=cust)])
    assert res.rejected == []
    assert [d["customer_id"] for d in res.decisions] == [cust]


# --------------------------------------------------------------- invalid forms


@pytest.mark.parametrize(
    "over",
    [
        {"event_id": _DROP},
        {"event_id": ""},
        {"event_id": None},
        {"event_id": 17},
        {"event_id": "x" * 257},  # contract notes: at most 256 characters
    ],
    ids=["missing", "empty", "null", "number", "too_long"],
)
def test_1_event_id_invalid(ping_dir, over):
    """1: event_id string, required, non-empty -> invalid_event_id."""
    assert_invalid(ping_dir, base_rec(**over), "invalid_event_id")


@pytest.mark.parametrize(
    "over",
    [
        {"customer_id": _DROP},
        {"customer_id": ""},
        {"customer_id": None},
        {"customer_id": "x" * 129},
        {"customer_id": 42},
    ],
    ids=["missing", "empty", "null", "129_chars", "number"],
)
def test_1_customer_id_invalid(ping_dir, over):
    """1: customer_id string, required, 1..128 characters -> invalid_customer_id."""
    assert_invalid(ping_dir, base_rec(**over), "invalid_customer_id")


@pytest.mark.parametrize(
    "value",
    [_DROP, None, "", "Purchase", "1abc", "_abc", ".abc", "a-b", "a b", "abc\u00e9", "a" * 65, 5],
    ids=[
        "missing",
        "null",
        "empty",
        "upper",
        "digit_first",
        "underscore_first",
        "dot_first",
        "dash",
        "space",
        "non_ascii",
        "65_chars",
        "number",
    ],
)
def test_1_type_invalid(ping_dir, value):
    """1: type `[a-z][a-z0-9_.]*`, at most 64 characters -> invalid_type."""
    assert_invalid(ping_dir, base_rec(type=value), "invalid_type")


@pytest.mark.parametrize(
    "value",
    [
        _DROP,
        None,
        "",
        "2026-05-01T10:00:00",  # no offset: the contract requires an offset or Z
        "2026-05-01",
        "yesterday",
        "1777629600000",  # a string of digits is neither a number nor ISO-8601
        True,
        [1777629600000],
        {"ms": 1777629600000},
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "iso_without_offset",
        "date_only",
        "garbage",
        "digit_string",
        "boolean",
        "list",
        "object",
    ],
)
def test_1_occurred_at_invalid(ping_dir, value):
    """1: occurred_at required; epoch ms number or ISO-8601 with offset or Z -> invalid_occurred_at."""
    assert_invalid(ping_dir, base_rec(occurred_at=value), "invalid_occurred_at")


@pytest.mark.parametrize("value", ["", 7, ["web"], "x" * 65], ids=["empty", "number", "list", "65_chars"])
def test_1_channel_invalid(ping_dir, value):
    """1: channel is a string (notes: 1..64 characters) -> invalid_channel."""
    assert_invalid(ping_dir, base_rec(channel=value), "invalid_channel")


@pytest.mark.parametrize(
    "value",
    [
        ["category", "phone"],
        "category=phone",
        {"count": 3},
        {"resolved": False},
        {"category": None},
        {"category": ["phone"]},
        {f"k{i}": "v" for i in range(65)},
        {"k": "v" * 1025},
        {"k" * 129: "v"},
    ],
    ids=[
        "list",
        "string",
        "number_value",
        "bool_value",
        "null_value",
        "list_value",
        "65_attributes",
        "value_1025_chars",
        "key_129_chars",
    ],
)
def test_1_attributes_invalid(ping_dir, value):
    """1: attributes is a map of string to string (notes: no coercion, size limits)."""
    assert_invalid(ping_dir, base_rec(attributes=value), "invalid_attributes")


# ------------------------------------------------------ dead letters and flow


def test_1_invalid_events_are_reported_in_input_order_and_do_not_stop_processing(ping_dir):
    """1: invalid -> dead letter with machine-readable reason; never stops the processor."""
    recs = [
        ev("a", "c1", "ping", "+0"),
        base_rec(event_id="b", customer_id=""),
        ev("c", "c1", "ping", "+1m"),
        base_rec(event_id="d", type="Bad"),
        base_rec(event_id="e", occurred_at="nope"),
        ev("f", "c1", "ping", "+2m"),
    ]
    res = replay(ping_dir, recs)
    assert res.rejected == [(2, "invalid_customer_id"), (4, "invalid_type"), (5, "invalid_occurred_at")]
    assert res.summary["invalid"] == 3
    assert brief(res.decisions) == [
        E("email", "+0", ["a"]),
        E("email", "+1m", ["c"]),
        E("email", "+2m", ["f"]),
    ]


def test_1_invalid_event_is_not_evaluated(topo_dir):
    """1: an invalid event "is not evaluated": it cannot complete a sequence."""
    d = topo_dir(
        {
            "topology": "two",
            "version": 1,
            "when": {"sequence": [{"event": "a"}, {"event": "b"}]},
            "then": [engage("email")],
        }
    )
    bad_b = ev("b1", "c1", "b", "+1m", "web")
    bad_b["attributes"] = {"n": 1}
    res = replay(d, [ev("a1", "c1", "a", "+0"), bad_b])
    assert res.rejected == [(2, "invalid_attributes")]
    assert res.decisions == []
    assert res.audit == []


def test_1_summary_counts_events(ping_dir):
    """6/1: summary counts the events read; all valid and distinct -> events == records."""
    recs = [ev(f"e{i}", "c1", "ping", f"+{i}m") for i in range(4)]
    res = replay(ping_dir, recs)
    assert res.summary["events"] == 4
    assert res.summary["invalid"] == 0
    assert res.summary["late"] == 0
    assert res.summary["duplicates"] == 0


# ----------------------------------------------------------------- duplicates


def test_1_repeated_event_id_is_a_duplicate_and_ignored(ping_dir):
    """1: "a repeated id is a duplicate and is ignored" (not evaluated, not dead-lettered)."""
    recs = [ev("e1", "c1", "ping", "+0"), ev("e1", "c1", "ping", "+0")]
    res = replay(ping_dir, recs)
    assert brief(res.decisions) == [E("email", "+0", ["e1"])]
    assert res.rejected == []
    assert res.summary["duplicates"] == 1
    assert res.summary["invalid"] == 0


def test_1_duplicate_with_different_content_is_still_ignored(ping_dir):
    """1: identity is the event_id: same id, other time and attributes -> still a duplicate."""
    recs = [ev("e1", "c1", "ping", "+0"), ev("e1", "c1", "ping", "+5m", "sms", x="y")]
    res = replay(ping_dir, recs)
    assert brief(res.decisions) == [E("email", "+0", ["e1"])]
    assert res.summary["duplicates"] == 1


def test_1_duplicate_does_not_count_twice_in_a_count_window(topo_dir):
    """1 + 3.2 count: a duplicate is ignored, so it cannot bring a count to N."""
    d = topo_dir(
        {
            "topology": "twice",
            "version": 1,
            "when": {"count": {"event": "ping", "at_least": 2, "within": "1h", "as": "p"}},
            "then": [engage("email")],
        }
    )
    res = replay(d, [ev("e1", "c1", "ping", "+0"), ev("e1", "c1", "ping", "+1m")])
    assert res.decisions == []
    assert res.summary["duplicates"] == 1


def test_2_duplicates_are_recognised_before_lateness(ping_dir):
    """2: "Duplicates are recognised before lateness": a behind-watermark repeat is a duplicate, not late."""
    recs = [
        ev("e1", "c1", "ping", "+0"),
        ev("e2", "c1", "ping", "+2h"),
        ev("e1", "c1", "ping", "+0"),  # far behind the watermark, but a repeat
    ]
    res = replay(ping_dir, recs)
    assert res.rejected == []
    assert res.summary["late"] == 0
    assert res.summary["duplicates"] == 1
    assert brief(res.decisions) == [E("email", "+0", ["e1"]), E("email", "+2h", ["e2"])]


def test_1_invalid_events_do_not_move_stream_time(ping_dir):
    """Contract notes: invalid events do not move stream time (so a later valid event is not late)."""
    far = base_rec(event_id="x", customer_id="", occurred_at=iso("+1d"))
    recs = [far, ev("e1", "c1", "ping", "+0")]
    res = replay(ping_dir, recs)
    assert res.rejected == [(1, "invalid_customer_id")]
    assert brief(res.decisions) == [E("email", "+0", ["e1"])]


def test_1_duplicates_recognised_per_customer(ping_dir):
    """Notes: duplicates are recognised per customer: the same id for another customer is a
    different event."""
    res = replay(ping_dir, [ev("e1", "c1", "ping", "+0"), ev("e1", "c2", "ping", "+1m")])
    assert [(x["customer_id"], x["evidence"]) for x in res.decisions] == [("c1", ["e1"]), ("c2", ["e1"])]
    assert res.summary["duplicates"] == 0


def test_1_repeats_of_unread_events_are_not_counted_as_duplicates(ping_dir):
    """Notes: events no topology reads are not remembered, so their repeats are not counted."""
    res = replay(ping_dir, [ev("n1", "c1", "noise", "+0"), ev("n1", "c1", "noise", "+1m")])
    assert res.summary["duplicates"] == 0
    assert res.rejected == []
    assert res.decisions == []
