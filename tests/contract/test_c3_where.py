"""Contract section 3.1: `where` tests."""

from __future__ import annotations

import pytest

from .helpers import E, brief, engage, ev, on, replay


def where_topology(where_yaml: str) -> str:
    """Raw YAML (so that unquoted scalars reach the loader as written)."""
    return f"""
        topology: w
        version: 1
        when:
          sequence:
            - event: ping
              where: {where_yaml}
        then:
          - engage: {{channel: email, action: act}}
        """


def fires(d, rec) -> bool:
    res = replay(d, [rec])
    assert res.rejected == []
    if res.decisions:
        assert brief(res.decisions) == [E("email", "+0", [rec["event_id"]])]
    return bool(res.decisions)


def test_3_1_single_value_must_equal(topo_dir):
    """3.1: a single value: the attribute must equal it."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": "phone"}))
    assert fires(d, ev("e1", "c1", "ping", "+0", category="phone"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="tablet"))


def test_3_1_comparison_is_exact_string_equality(topo_dir):
    """3.1: values compare as strings: case and whitespace matter."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": "phone"}))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="Phone"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="phone "))


def test_3_1_list_of_allowed_values(topo_dir):
    """3.1: a list of allowed values: any one of them passes."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": ["phone", "tablet"]}))
    assert fires(d, ev("e1", "c1", "ping", "+0", category="phone"))
    assert fires(d, ev("e1", "c1", "ping", "+0", category="tablet"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="laptop"))


def test_3_1_every_key_must_hold(topo_dir):
    """3.1: every key must hold."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": "phone", "sku": ["s1", "s2"]}))
    assert fires(d, ev("e1", "c1", "ping", "+0", category="phone", sku="s2"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="phone", sku="s3"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", category="tablet", sku="s1"))


def test_3_1_missing_attribute_fails(topo_dir):
    """3.1: "A missing attribute fails the test" (no attributes, or other attributes only)."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": "phone"}))
    assert not fires(d, ev("e1", "c1", "ping", "+0"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", sku="phone"))


def test_3_1_extra_attributes_do_not_matter(topo_dir):
    """3.1: only the listed keys are tested."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"category": "phone"}))
    assert fires(d, ev("e1", "c1", "ping", "+0", category="phone", sku="x", tz="UTC"))


def test_3_1_channel_key_tests_the_channel_field(topo_dir):
    """3.1: the key `channel` tests the event's `channel` field."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"channel": ["web", "app"]}))
    assert fires(d, ev("e1", "c1", "ping", "+0", "app"))
    assert not fires(d, ev("e1", "c1", "ping", "+0", "store"))


def test_3_1_channel_key_ignores_an_attribute_named_channel(topo_dir):
    """3.1: `channel` means the field, not an attribute called "channel"."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"channel": "web"}))
    assert not fires(d, ev("e1", "c1", "ping", "+0", "store", attributes={"channel": "web"}))
    assert not fires(d, ev("e1", "c1", "ping", "+0", attributes={"channel": "web"}))  # no channel field at all
    assert fires(d, ev("e1", "c1", "ping", "+0", "web", attributes={"channel": "store"}))


def test_3_1_missing_channel_field_fails(topo_dir):
    """3.1: an event without a channel fails a `channel` test (null counts as absent, section 1)."""
    d = topo_dir(on("w", "ping", [engage("email")], where={"channel": "web"}))
    rec = ev("e1", "c1", "ping", "+0")
    rec["channel"] = None
    assert not fires(d, rec)


@pytest.mark.parametrize(
    "where_yaml, attr_value",
    [
        ("{resolved: false}", "false"),
        ("{resolved: true}", "true"),
        ("{resolved: no}", "no"),
        ("{resolved: yes}", "yes"),
        ("{resolved: on}", "on"),
        ("{resolved: off}", "off"),
        ("{resolved: [no, maybe]}", "no"),
        ("{resolved: 42}", "42"),
        ("{resolved: [1, 2]}", "2"),
    ],
)
def test_3_1_values_compare_as_strings_as_written(topo_dir, where_yaml, attr_value):
    """3.1: "Values compare as strings": unquoted YAML scalars compare as the text written."""
    d = topo_dir(where_topology(where_yaml))
    assert fires(d, ev("e1", "c1", "ping", "+0", resolved=attr_value))


@pytest.mark.parametrize(
    "where_yaml, attr_value",
    [
        ("{resolved: false}", "False"),
        ("{resolved: no}", "false"),
        ("{resolved: no}", "False"),
        ("{resolved: on}", "true"),
        ("{resolved: 42}", "42.0"),
    ],
)
def test_3_1_unquoted_scalars_are_not_reinterpreted(topo_dir, where_yaml, attr_value):
    """3.1: `no`, `on`, `false`, `42` are not turned into Python bools/numbers and back."""
    d = topo_dir(where_topology(where_yaml))
    assert not fires(d, ev("e1", "c1", "ping", "+0", resolved=attr_value))
