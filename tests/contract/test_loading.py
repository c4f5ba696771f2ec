"""Contract sections 3, 4 and 6: loading a topologies folder (errors name file and key)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from .helpers import brief, engage, ev, replay, suppress, topo


def load(d):
    from streams.topology import load_folder

    return load_folder(d)


def problems(d):
    from streams.errors import TopologyError

    with pytest.raises(TopologyError) as ei:
        load(d)
    probs = ei.value.problems
    assert probs, "TopologyError without problems"
    for p in probs:
        assert isinstance(p.file, str) and p.file
        assert isinstance(p.key, str)
        assert isinstance(p.message, str) and p.message.strip()
    return probs


def assert_problem(d, file, *key_parts):
    probs = problems(d)
    hits = [p for p in probs if Path(p.file).name == file and all(k in p.key for k in key_parts)]
    assert hits, f"no problem for {file} / {key_parts}: {[str(p) for p in probs]}"


def base():
    return topo(
        "base",
        {"sequence": [{"as": "a", "event": "a"}, {"as": "b", "event": "b", "within": "1h"}]},
        [suppress(["email"], "1d", category="{a.category}"), engage("sms", "x")],
        release_on={"event": "r"},
    )


SPEC_EXAMPLE = """
topology: post_purchase_friction   # unique name, [a-z][a-z0-9_]*
version: 1                         # integer, part of every decision
description: >
  Bought a device, could not activate it, and support did not fix it:
  stop selling to this customer and offer help instead.
priority: 90                       # arbitration rank, higher wins (default 50)
cooldown: 7d                       # see 4.4 (default 0)
when:
  sequence:
    - as: bought
      event: purchase
      where: {category: [phone, tablet]}
    - as: failed
      event: activation_failed
      within: 72h                  # after the previous step's event
    - as: contact
      event: support_contact
      where: {resolved: "false"}
      within: 48h
  unless:
    event: activation_succeeded
then:
  - suppress:
      channels: [ads, email, sms]
      category: "{bought.category}"
      for: 14d
  - engage:
      channel: call_center
      action: proactive_activation_help
      expires: 24h
release_on:
  event: activation_succeeded
"""

SPEC_POLICIES = """
lateness: 10m               # default 10m
retention: 30d              # events kept per customer; a window longer than this is a loading error
frequency_caps:
  - {channel: sms, max: 2, per: 7d}
  - {channel: "*", max: 6, per: 7d}     # all ENGAGE decisions together
quiet_hours:
  from: "21:00"
  to: "08:00"
  channels: [sms, push, call_center]
  timezone_attribute: tz                # IANA zone name in the event's attributes
  default_timezone: UTC
"""


# ---------------------------------------------------------------------- valid


def test_3_spec_example_runs(topo_dir):
    """3: the contract's example behaves as described (sanity run through replay)."""
    d = topo_dir(SPEC_EXAMPLE, policies=SPEC_POLICIES)
    recs = [
        ev("p1", "c1", "purchase", "2026-05-01T10:00:00Z", category="phone"),
        ev("f1", "c1", "activation_failed", "2026-05-02T10:00:00Z"),
        ev("s1", "c1", "support_contact", "2026-05-03T10:00:00Z", resolved="false"),
    ]
    res = replay(d, recs)
    assert brief(res.decisions) == [
        ("ENGAGE", "call_center", None, "2026-05-03T10:00:00.000Z", ("p1", "f1", "s1")),
        ("SUPPRESS", "ads", "phone", "2026-05-03T10:00:00.000Z", ("p1", "f1", "s1")),
        ("SUPPRESS", "email", "phone", "2026-05-03T10:00:00.000Z", ("p1", "f1", "s1")),
        ("SUPPRESS", "sms", "phone", "2026-05-03T10:00:00.000Z", ("p1", "f1", "s1")),
    ]


def test_3_yaml_1_1_booleans_stay_strings(topo_dir):
    """3 + 3.1: `yes`, `on`, `no`, `off`, `y` are read as the strings written (names, types,
    channels, actions, where values)."""
    d = topo_dir(
        """
        topology: yes
        version: 1
        when:
          sequence:
            - event: on
              where: {flag: off}
        then:
          - engage: {channel: no, action: y}
        """
    )
    res = replay(d, [ev("e1", "c1", "on", "+0", flag="off")])
    assert [(x["topology"], x["channel"], x["action"]) for x in res.decisions] == [("yes", "no", "y")]


# --------------------------------------------------------------- unknown keys


def mutate(path, value=None, delete=False):
    doc = copy.deepcopy(base())
    node = doc
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    "path, key",
    [
        (("colour",), "colour"),
        (("when", "extra"), "extra"),
        (("when", "sequence", 0, "label"), "label"),
        (("when", "sequence", 1, "wihtin"), "wihtin"),
        (("then", 0, "suppress", "chanels"), "chanels"),
        (("then", 1, "engage", "prio"), "prio"),
        (("release_on", "when"), "when"),
    ],
)
def test_3_unknown_keys_are_errors(topo_dir, path, key):
    """3: "Unknown keys are errors"; the error names the file and the key."""
    d = topo_dir(mutate(path, "x"))
    assert_problem(d, "base.yaml", key)


def test_3_unknown_key_on_is_named_as_written(topo_dir):
    """3: an unknown key `on` is reported as `on` (not as a YAML 1.1 boolean)."""
    d = topo_dir(
        """
        topology: t
        version: 1
        on: x
        when:
          sequence:
            - event: a
        then:
          - engage: {channel: sms, action: x}
        """
    )
    probs = problems(d)
    assert any("on" in p.key and "True" not in p.key for p in probs), [str(p) for p in probs]


# ------------------------------------------------------------ required keys


@pytest.mark.parametrize("key", ["topology", "version", "when", "then"])
def test_3_required_keys(topo_dir, key):
    """3: `topology`, `version`, `when` and `then` are required."""
    d = topo_dir(mutate((key,), delete=True))
    probs = problems(d)
    assert any(Path(p.file).name.endswith(".yaml") and key in p.key for p in probs), [str(p) for p in probs]


@pytest.mark.parametrize("key", ["channel", "action"])
def test_3_3_engage_channel_and_action_are_required(topo_dir, key):
    """3.3: an engagement needs a channel and an action (only category, expires, priority are optional)."""
    d = topo_dir(mutate(("then", 1, "engage", key), delete=True))
    assert_problem(d, "base.yaml", key)


@pytest.mark.parametrize("key", ["at_least", "within", "event"])
def test_3_2_count_required_keys(topo_dir, key):
    """3.2 count: `{event, where, at_least: N, within: D, as}` -- event, at_least, within needed."""
    c = {"event": "f", "at_least": 2, "within": "1h"}
    del c[key]
    d = topo_dir(topo("base", {"count": c}, [engage("sms", "x")]))
    assert_problem(d, "base.yaml", key)


@pytest.mark.parametrize("key", ["after", "missing", "for"])
def test_3_2_absence_required_keys(topo_dir, key):
    """3.2 absence: `{after, missing, for}` are needed."""
    a = {"after": {"event": "x"}, "missing": {"event": "y"}, "for": "1h"}
    del a[key]
    d = topo_dir(topo("base", {"absence": a}, [engage("sms", "x")]))
    assert_problem(d, "base.yaml", key)


# -------------------------------------------------------------- bad values


@pytest.mark.parametrize("value", ["one", 1.5, "1"])
def test_3_version_must_be_an_integer(topo_dir, value):
    """3: `version` is an integer."""
    assert_problem(topo_dir(mutate(("version",), value)), "base.yaml", "version")


@pytest.mark.parametrize("name", ["Post_purchase", "1abc", "_abc", "a-b", "a.b", ""])
def test_3_topology_name_pattern(topo_dir, name):
    """3: topology name `[a-z][a-z0-9_]*`."""
    import yaml

    d = topo_dir(files={"base.yaml": yaml.safe_dump(mutate(("topology",), name))})
    assert_problem(d, "base.yaml", "topology")


@pytest.mark.parametrize("value", ["10 minutes", "5x", "", "-1h", "1h30", "h", 10, "1.5h", "m10", "ms"])
def test_2_bad_durations_are_loading_errors(topo_dir, value):
    """2: durations are written `500ms`, `30s`, `10m`, `72h`, `14d` and combinations."""
    d = topo_dir(mutate(("when", "sequence", 1, "within"), value))
    assert_problem(d, "base.yaml", "within")


def test_3_duplicate_topology_names_are_an_error(topo_dir):
    """3: the topology name is unique in the folder."""
    import yaml

    a = base()
    d = topo_dir(a, files={"copy.yaml": yaml.safe_dump(a, sort_keys=False)})
    probs = problems(d)
    assert any(Path(p.file).name in ("base.yaml", "copy.yaml") and "topology" in p.key for p in probs), [
        str(p) for p in probs
    ]


def test_yaml_syntax_error_names_the_file(topo_dir):
    """6: a file that is not YAML is a loading error naming the file."""
    d = topo_dir("topology: [unclosed\n  version: 1\n")
    probs = problems(d)
    assert any(Path(p.file).name == "t00.yaml" for p in probs)


@pytest.mark.parametrize("value", ["25:00", "9pm", "21", "21:60"])
def test_4_bad_quiet_hours_time(topo_dir, value):
    """4.3: quiet-hours times are "HH:MM"."""
    pol = {"quiet_hours": {"from": value, "to": "08:00", "channels": ["sms"]}}
    assert_problem(topo_dir(base(), policies=pol), "policies.yaml", "from")


# ----------------------------------------------------------------- retention


@pytest.mark.parametrize(
    "doc, key",
    [
        (topo("base", {"sequence": [{"event": "a"}, {"event": "b", "within": "31d"}]}, [engage("sms", "x")]), "within"),
        (
            topo("base", {"sequence": [{"event": "a"}, {"event": "b"}], "within": "30d1ms"}, [engage("sms", "x")]),
            "within",
        ),
        (topo("base", {"count": {"event": "f", "at_least": 2, "within": "31d"}}, [engage("sms", "x")]), "within"),
        (
            topo(
                "base",
                {"absence": {"after": {"event": "x"}, "missing": {"event": "y"}, "for": "744h"}},
                [engage("sms", "x")],
            ),
            "for",
        ),
    ],
    ids=["step_within", "sequence_within", "count_within", "absence_for"],
)
def test_4_window_longer_than_default_retention_is_an_error(topo_dir, doc, key):
    """4: retention (default 30d): a window longer than it is a loading error."""
    assert_problem(topo_dir(doc), "base.yaml", key)


def test_4_window_checked_against_configured_retention(topo_dir):
    """4: retention from policies.yaml: 7d -> an 8d window is an error (file and key named)."""
    d = topo_dir(
        topo("base", {"count": {"event": "f", "at_least": 2, "within": "8d"}}, [engage("sms", "x")]),
        policies={"retention": "7d"},
    )
    probs = problems(d)
    assert any("within" in p.key for p in probs), [str(p) for p in probs]


# ------------------------------------------------------ tables: loads / fails


def folder(*topologies, rule, policies=None, files=None, id_):
    """One case: a topologies folder's contents and the contract rule it checks."""
    return pytest.param(rule, topologies, policies, files, id=id_)


def with_action(action):
    doc = base()
    doc["then"].append(action)
    return doc


LOADS = [
    folder(
        SPEC_EXAMPLE,
        policies=SPEC_POLICIES,
        rule="3/4: the contract's own example topology and policies load without problems.",
        id_="3_spec_example_and_policies_load",
    ),
    folder(base(), rule="4: policies.yaml is optional.", id_="3_folder_without_policies_loads"),
    folder(
        base(),
        files={"README.md": "# notes: not: [yaml", "old.yaml.bak": "{{{"},
        rule="6: the folder holds one topology per *.yaml file; other files are not read as topologies.",
        id_="6_non_yaml_files_are_not_topologies",
    ),
    folder(
        topo(
            "s",
            {
                "sequence": [
                    {"as": "a", "event": "a", "where": {"channel": "web"}},
                    {"event": "b", "within": "1h", "where": {"k": ["x", "y"]}},
                ],
                "within": "2h",
                "unless": {"event": "u", "where": {"k": "z"}},
            },
            [engage("sms", "{a.k}", category="{a.channel}", expires="1h", priority=3)],
            priority=7,
            cooldown="1d",
            release_on={"event": "r", "where": {"k": "v"}},
        ),
        topo(
            "c",
            {"count": {"event": "f", "where": {"k": "v"}, "at_least": 3, "within": "1h", "as": "last"}},
            [suppress(["ads"], "1d", category="{last.k}")],
        ),
        topo(
            "a",
            {
                "absence": {
                    "after": {"event": "x", "where": {"k": "v"}, "as": "x"},
                    "missing": {"event": "y", "where": {"k": "w"}},
                    "for": "1d",
                }
            },
            [engage("email", "{x.k}")],
        ),
        policies=SPEC_POLICIES,
        rule="3: every documented key loads (sequence within/unless, count, absence, engage options).",
        id_="3_all_condition_kinds_and_options_load",
    ),
    folder(
        base(),
        rule="3.3: a template naming a binding that exists loads fine (control).",
        id_="3_3_suppress_category_template_binding_resolution_at_load",
    ),
    folder(
        topo(
            "base",
            {"sequence": [{"event": "a"}, {"event": "b", "within": "30d"}], "within": "720h"},
            [engage("sms", "x")],
        ),
        rule="4: a window of exactly the retention is not longer than it.",
        id_="4_window_equal_to_retention_loads",
    ),
    folder(
        topo(
            "base",
            {"sequence": [{"event": "a"}]},
            [suppress(["email"], "60d"), engage("sms", "x", expires="60d")],
            cooldown="60d",
        ),
        rule="Notes: suppression/engagement durations (and cooldown) are not windows: 60d loads.",
        id_="4_action_durations_are_not_windows",
    ),
]


@pytest.mark.parametrize("rule, topologies, policies, files", LOADS)
def test_folder_loads(topo_dir, rule, topologies, policies, files):
    """The folder loads without problems (rule per case)."""
    load(topo_dir(*topologies, policies=policies, files=files))


def error(doc, file, key, *, rule, policies=None, id_):
    """One case: a folder of one topology (and policies) whose problem must name `file` and `key`."""
    return pytest.param(rule, doc, policies, file, key, id=id_)


ERRORS = [
    # -------------------------------------------------------- unknown keys
    error(
        with_action({"notify": {"channel": "sms"}}),
        "base.yaml",
        "then",
        rule="3.3: actions are `suppress` or `engage`.",
        id_="3_unknown_action_kind_is_an_error",
    ),
    error(
        topo(
            "base",
            {"count": {"event": "f", "at_least": 2, "within": "1h", "unless": {"event": "x"}}},
            [engage("sms", "x")],
        ),
        "base.yaml",
        "unless",
        rule="3.2: `unless` sits beside `sequence` only; under `count` it is an unknown key.",
        id_="3_unless_is_not_allowed_under_count",
    ),
    error(
        topo(
            "base",
            {"count": {"event": "f", "at_least": 2, "within": "1h"}, "unless": {"event": "x"}},
            [engage("sms", "x")],
        ),
        "base.yaml",
        "unless",
        rule="3.2: `when` may hold `within` and `unless` only beside `sequence`.",
        id_="3_unless_beside_count_is_an_error",
    ),
    error(
        mutate(("when", "sequence", 0, "within"), "1h"),
        "base.yaml",
        "within",
        rule='3.2: `within` is allowed "from the second step on".',
        id_="3_within_on_the_first_step_is_an_error",
    ),
    # ------------------------------------------------------- required keys
    error(
        mutate(("then", 0, "suppress", "for"), delete=True),
        "base.yaml",
        "for",
        rule="3.3: suppress `for` is required.",
        id_="3_3_suppress_for_is_required",
    ),
    error(
        mutate(("when", "sequence", 1, "event"), delete=True),
        "base.yaml",
        "event",
        rule="3.2: each step names an `event` type.",
        id_="3_2_step_event_is_required",
    ),
    error(
        topo("base", {"within": "1h"}, [engage("sms", "x")]),
        "base.yaml",
        "when",
        rule="3.2: exactly one kind of condition under `when` (none is an error).",
        id_="3_2_when_needs_a_condition",
    ),
    error(
        topo(
            "base",
            {"sequence": [{"event": "a"}], "count": {"event": "f", "at_least": 2, "within": "1h"}},
            [engage("sms", "x")],
        ),
        "base.yaml",
        "when",
        rule="3.2: exactly one kind of condition under `when` (two is an error).",
        id_="3_2_when_holds_exactly_one_kind",
    ),
    # ---------------------------------------------------------- bad values
    error(
        mutate(("then", 0, "suppress", "for"), "two days"),
        "base.yaml",
        "for",
        rule="2 + 3.3: a bad `for` duration names the key.",
        id_="2_bad_duration_in_suppress_for",
    ),
    error(
        mutate(("cooldown",), "soon"),
        "base.yaml",
        "cooldown",
        rule="2 + 4.4: a bad cooldown duration names the key.",
        id_="2_bad_duration_in_cooldown",
    ),
    error(
        base(),
        "policies.yaml",
        "lateness",
        policies={"lateness": "ten minutes"},
        rule="2 + 4: a bad `lateness` in policies.yaml names that file and key.",
        id_="2_bad_duration_in_policies",
    ),
    error(
        mutate(("then", 0, "suppress", "category"), "{nobody.category}"),
        "base.yaml",
        "category",
        rule='3.3: "A template naming an unknown binding is a loading error".',
        id_="3_3_template_with_unknown_binding_is_a_loading_error",
    ),
    error(
        mutate(("then", 1, "engage", "action"), "hello_{who.name}"),
        "base.yaml",
        "action",
        rule="3.3: unknown binding in an `action` template.",
        id_="3_3_action_template_with_unknown_binding_is_a_loading_error",
    ),
    error(
        topo(
            "base",
            {"absence": {"after": {"event": "x", "as": "x"}, "missing": {"event": "y", "as": "y"}, "for": "1h"}},
            [engage("sms", "x")],
        ),
        "base.yaml",
        "as",
        rule="3.2/3.3: for absence only the `after` event is bound (`missing` has no `as`).",
        id_="3_3_absence_missing_has_no_binding",
    ),
    # ------------------------------------------------------------ policies
    error(
        base(),
        "policies.yaml",
        "latenes",
        policies={"latenes": "10m"},
        rule="4 + 3: unknown keys in policies.yaml are errors naming policies.yaml.",
        id_="4_unknown_policy_key_is_an_error",
    ),
    error(
        base(),
        "policies.yaml",
        "zone",
        policies={"quiet_hours": {"from": "21:00", "to": "08:00", "channels": ["sms"], "zone": "UTC"}},
        rule="4: unknown key inside quiet_hours.",
        id_="4_unknown_quiet_hours_key_is_an_error",
    ),
    error(
        base(),
        "policies.yaml",
        "min",
        policies={"frequency_caps": [{"channel": "sms", "max": 2, "per": "7d", "min": 1}]},
        rule="4: unknown key inside a frequency cap.",
        id_="4_unknown_cap_key_is_an_error",
    ),
    error(
        base(),
        "policies.yaml",
        "per",
        policies={"frequency_caps": [{"channel": "sms", "max": 2, "per": "a week"}]},
        rule="4 + 2: a cap's `per` must be a duration.",
        id_="4_bad_cap_duration",
    ),
]


@pytest.mark.parametrize("rule, doc, policies, file, key", ERRORS)
def test_loading_error_names_file_and_key(topo_dir, rule, doc, policies, file, key):
    """Loading fails with a problem naming the file and the key (rule per case)."""
    assert_problem(topo_dir(doc, policies=policies), file, key)


# ------------------------------------------- authoring help (beyond the contract)
# A new user's typos: each problem once, at the key as written, with a suggestion.


def only_problem(d):
    probs = problems(d)
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


@pytest.mark.parametrize(
    "path, value, key, guess",
    [
        (("then", 0), {"suppres": {"channels": ["email"], "for": "1d"}}, "then[0].suppres", "suppress"),
        (("then", 1), {"engag": {"channel": "sms", "action": "x"}}, "then[1].engag", "engage"),
        (("release_on",), {"evnt": "r"}, "release_on.evnt", "event"),
        (("then", 1), {"engage": {"channel": "sms", "acton": "x"}}, "then[1].engage.acton", "action"),
        (("then", 0), {"suppress": {"chanels": ["email"], "for": "1d"}}, "then[0].suppress.chanels", "channels"),
        (("priorty",), 3, "priorty", "priority"),
    ],
)
def test_a_typo_is_reported_once_at_the_key_written_with_a_suggestion(topo_dir, path, value, key, guess):
    p = only_problem(topo_dir(mutate(path, value)))
    assert p.key == key and f"did you mean {guess!r}?" in p.message, str(p)
    assert "exactly one of" not in p.message


@pytest.mark.parametrize(
    "when",
    [
        {"sequence": [{"as": "a", "evnt": "a"}, {"as": "b", "event": "b"}]},
        {"sequence": [{"as": "a", "event": "a", "label": "x"}, {"as": "b", "event": "b"}]},
        {"count": {"as": "a", "evnt": "f", "at_least": 2, "within": "1h"}},
        {"count": {"as": "a", "event": "f", "at_least": 2, "within": "1h", "wher": {}}},
        {"absence": {"after": {"as": "a", "evnt": "x"}, "missing": {"event": "y"}, "for": "1h"}},
    ],
)
def test_a_typo_in_a_step_is_reported_once(topo_dir, when):
    """A step (or count, or absence's `after`) is checked as a mapping and as a pattern: one problem, not two."""
    only_problem(topo_dir(topo("base", when, [engage("sms", "x")])))


def test_keys_of_an_action_written_beside_it_are_an_indentation_problem(topo_dir):
    """`- suppress:` then `channels:` at the same indentation: YAML makes them siblings."""
    text = """
        topology: t
        version: 1
        when: {sequence: [{event: a}]}
        then:
          - suppress:
            channels: [ads]
            for: 1d
        """
    p = only_problem(topo_dir(text))
    assert p.key == "then[0]" and "channels, for must be indented under suppress" in p.message, str(p)


def test_two_actions_in_one_item_say_to_split_them(topo_dir):
    p = only_problem(topo_dir(with_action({"engage": {"channel": "sms", "action": "x"}, "suppress": {}})))
    assert p.key == "then[2]" and "separate items" in p.message, str(p)


@pytest.mark.parametrize("channels", [["email", "sms"], "sms"])
def test_policies_may_declare_the_channels(topo_dir, channels):
    """Beyond the contract: `channels` in policies.yaml (for `tactful validate`'s warnings) loads."""
    assert load(topo_dir(base(), policies={"channels": channels})).policies.channels == frozenset(
        [channels] if isinstance(channels, str) else channels
    )
    assert load(topo_dir(base())).policies.channels is None


@pytest.mark.parametrize("channels", [[], ["sms", "*"], {"sms": 1}, ""])
def test_declared_channels_are_a_list_of_names(topo_dir, channels):
    assert_problem(topo_dir(base(), policies={"channels": channels}), "policies.yaml", "channels")


@pytest.mark.parametrize(
    "text, key, needle",
    [
        ("", "(top level)", "the file is empty"),
        ("topology: t\nwhen:\n  sequence: [{event: a}\nthen: []\n", "(top level)", "line 4, column 1: expected ','"),
        (
            "topology: t\nversion: 1\nwhen: {sequence: [{event: a}]}\nthen:\n  engage: {channel: sms, action: x}\n",
            "then",
            "write each action as a list item",
        ),
        (
            "topology: t\nversion: 1\nwhen: {sequence: [{event: a}]}\nthen: [{suppress: {channels: [], for: 1d}}]\n",
            "then[0].suppress.channels",
            "got an empty list",
        ),
    ],
)
def test_problems_read_as_a_new_user_needs(topo_dir, text, key, needle):
    p = only_problem(topo_dir(files={"t.yaml": text}))
    assert p.key == key and needle in p.message and "<unicode string>" not in p.message, str(p)
