"""Contract section 7: the new keys `mode`, `service`, `holdout`, `goal` and the policies' `holdout`.

Each case quotes the sentence it covers. Loading errors name the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import engage, ev, goal, on, replay, topo, with_keys


def load(d: Path) -> Any:
    from streams.topology import load_folder

    return load_folder(d)


def problems(d: Path) -> list[Any]:
    from streams.errors import TopologyError

    with pytest.raises(TopologyError) as ei:
        load(d)
    return list(ei.value.problems)


def base(**keys: Any) -> dict[str, Any]:
    return with_keys(on("base", "go", [engage("sms")]), **keys)


SPEC_EXAMPLE = """
topology: post_purchase_friction
version: 2
mode: live
service: false
holdout: 10%
goal:
  event: activation_succeeded
  where: {}
  within: 7d
when:
  sequence:
    - as: bought
      event: purchase
then:
  - engage: {channel: call_center, action: help}
"""


def test_7_spec_example_loads_with_its_values(topo_dir):
    """7: the example of section 7, and the policies' `holdout` example, load."""
    d = topo_dir(SPEC_EXAMPLE, policies={"holdout": {"percent": "5%", "salt": "2026-12"}})
    cat = load(d)
    [t] = cat.topologies
    assert (t.shadow, t.service, t.holdout) == (False, False, 1000)
    assert t.goal is not None and t.goal.pattern.event == "activation_succeeded" and t.goal.within == 7 * 86_400_000
    assert (cat.policies.holdout, cat.policies.salt) == (500, "2026-12")


def test_7_defaults_are_v1(topo_dir):
    """7: mode live, service false, holdout 0%, no goal; global 0% with the salt "tactful"."""
    cat = load(topo_dir(base()))
    [t] = cat.topologies
    assert (t.shadow, t.service, t.holdout, t.goal) == (False, False, 0, None)
    assert (cat.policies.holdout, cat.policies.salt) == (0, "tactful")


@pytest.mark.parametrize(
    ("text", "hundredths"),
    [
        ("0%", 0),
        ("5%", 500),
        ("2.5%", 250),
        ("16.01%", 1601),
        ("0.01%", 1),
        ("0.1%", 10),
        ("33.33%", 3333),
        ("100%", 10000),
        ("100.00%", 10000),
        ("007%", 700),
    ],
)
def test_7_a_topology_percentage_is_read_exactly_in_hundredths(topo_dir, text, hundredths):
    """7: "It is read exactly, as a whole number of hundredths of a percent h (16.01% is 1601): no floating point"."""
    [t] = load(topo_dir(base(holdout=text))).topologies
    assert t.holdout == hundredths and type(t.holdout) is int


@pytest.mark.parametrize(("text", "hundredths"), [("0%", 0), ("0.5%", 50), ("50%", 5000), ("12.34%", 1234)])
def test_7_the_global_percentage_is_read_exactly(topo_dir, text, hundredths):
    """7: the global control group's percentage, 0% to 50%, in hundredths."""
    cat = load(topo_dir(base(), policies={"holdout": {"percent": text}}))
    assert cat.policies.holdout == hundredths and cat.policies.salt == "tactful"


@pytest.mark.parametrize(
    ("mode", "service", "shadow", "is_service"),
    [("live", "false", False, False), ("shadow", "true", True, True)],
)
def test_7_mode_and_service_values(topo_dir, mode, service, shadow, is_service):
    """7: "`mode` is `live` or `shadow`; `service` is `true` or `false`"."""
    text = SPEC_EXAMPLE.replace("mode: live", f"mode: {mode}").replace("service: false", f"service: {service}")
    [t] = load(topo_dir(text)).topologies
    assert (t.shadow, t.service) == (shadow, is_service)


def error(rule: str, doc: Any, key: str, *, policies: Any = None, file: str = "base.yaml", id_: str) -> Any:
    return pytest.param(rule, doc, policies, file, key, id=id_)


HOLDOUT_ERRORS = [
    error("7: a bare number is a loading error", base(holdout=5), "holdout", id_="bare-int"),
    error("7: a bare number is a loading error", base(holdout=2.5), "holdout", id_="bare-float"),
    error("7: a bare number is a loading error (quoted, still no % sign)", base(holdout="5"), "holdout", id_="quoted"),
    error("7: at most two decimals", base(holdout="5.125%"), "holdout", id_="three-decimals"),
    error("7: a topology's percentage is 0% to 100%", base(holdout="100.01%"), "holdout", id_="over-100"),
    error("7: a string of digits", base(holdout="-1%"), "holdout", id_="negative"),
    error("7: a string of digits", base(holdout="5 %"), "holdout", id_="space"),
    error("7: a string of digits", base(holdout=".5%"), "holdout", id_="no-integer-part"),
    error("7: a string of digits", base(holdout="5.%"), "holdout", id_="no-decimals"),
    error("7: a string of digits", base(holdout="1e1%"), "holdout", id_="exponent"),
    error("7: a percentage", base(holdout=["5%"]), "holdout", id_="list"),
    error(
        "7: the global percentage is 0% to 50%",
        base(),
        "holdout.percent",
        policies={"holdout": {"percent": "50.01%"}},
        file="policies.yaml",
        id_="global-over-50",
    ),
    error(
        "7: a bare number is a loading error (global)",
        base(),
        "holdout.percent",
        policies={"holdout": {"percent": 5}},
        file="policies.yaml",
        id_="global-bare",
    ),
    error(
        "7: unknown keys are errors",
        base(),
        "holdout.size",
        policies={"holdout": {"size": "5%"}},
        file="policies.yaml",
        id_="global-unknown-key",
    ),
    error(
        "7: the salt is a string",
        base(),
        "holdout.salt",
        policies={"holdout": {"percent": "5%", "salt": ["a"]}},
        file="policies.yaml",
        id_="salt-list",
    ),
    error(
        "7: the global control group is a mapping",
        base(),
        "holdout",
        policies={"holdout": "5%"},
        file="policies.yaml",
        id_="global-not-a-mapping",
    ),
]

KEY_ERRORS = [
    error("7: `mode` is `live` or `shadow`", base(mode="dark"), "mode", id_="mode"),
    error("7: `mode` is `live` or `shadow`", base(mode=True), "mode", id_="mode-bool"),
    error("7: `service` is `true` or `false`", base(service="yes"), "service", id_="service-yes"),
    error("7: `service` is `true` or `false`", base(service=1), "service", id_="service-1"),
    error("7: `service` is `true` or `false` (not a quoted string)", base(service="true"), "service", id_="quoted"),
    error("7: `goal.event` is required", base(goal={"within": "1d"}), "goal.event", id_="goal-no-event"),
    error("7: `goal.within` is required", base(goal={"event": "buy"}), "goal.within", id_="goal-no-within"),
    error("7: a positive duration", base(goal=goal("buy", "0s")), "goal.within", id_="goal-zero"),
    error("7: a duration", base(goal=goal("buy", "soon")), "goal.within", id_="goal-not-a-duration"),
    error("7: no longer than `retention`", base(goal=goal("buy", "31d")), "goal.within", id_="goal-over-retention"),
    error(
        "7: no longer than `retention` (the configured one)",
        base(goal=goal("buy", "2d")),
        "goal.within",
        policies={"retention": "1d"},
        id_="goal-over-configured-retention",
    ),
    error("3: unknown keys are errors", base(goal={**goal("buy", "1d"), "as": "g"}), "goal.as", id_="goal-unknown"),
    error("7: goal is a mapping", base(goal="buy"), "goal", id_="goal-not-a-mapping"),
    error("3.1: where is a mapping", base(goal={**goal("buy", "1d"), "where": "x"}), "goal.where", id_="goal-where"),
    error(
        "7: a topology that names a tactful.* event type anywhere (goal)",
        base(goal=goal("tactful.erase", "1d")),
        "goal.event",
        id_="tactful-goal",
    ),
    error(
        "7: a topology that names a tactful.* event type anywhere (release_on)",
        base(release_on={"event": "tactful.erase"}),
        "release_on.event",
        id_="tactful-release-on",
    ),
    error(
        "7: a topology that names a tactful.* event type anywhere (any tactful.* type)",
        base(goal=goal("tactful.anything", "1d")),
        "goal.event",
        id_="tactful-other",
    ),
]


@pytest.mark.parametrize(("rule", "doc", "policies", "file", "key"), HOLDOUT_ERRORS + KEY_ERRORS)
def test_7_loading_errors_name_file_and_key(topo_dir, rule, doc, policies, file, key):
    """Each is a loading error that names the file and the key, with a message saying what was expected."""
    probs = problems(topo_dir(doc, policies=policies))
    hits = [p for p in probs if Path(p.file).name == file and p.key == key]
    assert hits, f"{rule}: no problem for {file} / {key}: {[str(p) for p in probs]}"
    assert all(p.message.startswith(("expected", "window", "'tactful", "unknown", "is required")) for p in hits)


def test_7_percentage_messages_say_what_is_expected(topo_dir):
    """A bare number's message names the expected form and the value found."""
    [p] = problems(topo_dir(base(holdout=5)))
    assert "%" in p.message and "'5'" in p.message


def test_7_replay_exits_2_on_a_bad_new_key(topo_dir, tmp_path):
    """6 + 7: a loading error in the new keys exits `replay` with status 2."""
    from click.testing import CliRunner

    from streams.cli import main

    events = tmp_path / "e.jsonl"
    events.write_text("")
    res = CliRunner().invoke(main, ["replay", "--topologies", str(topo_dir(base(holdout=5))), "--events", str(events)])
    assert res.exit_code == 2
    assert "holdout" in res.output


def test_7_goal_where_of_spec_example_is_empty_and_matches_any(topo_dir):
    """7: `where: {}` under `goal` is every event of the type (3.1: no key to hold)."""
    t = with_keys(topo("t", {"sequence": [{"event": "go"}]}, [engage("sms")]), goal={**goal("buy", "1d"), "where": {}})
    res = replay(topo_dir(t), [ev("g1", "c1", "go", "+0"), ev("b1", "c1", "buy", "+1h")])
    assert [(a["kind"], a["status"]) for a in res.audit if a["kind"] == "GOAL"] == [("GOAL", "reached")]


def test_7_each_goal_problem_is_reported_once(topo_dir):
    """Loading errors: an unknown key and two missing ones under `goal` are three problems, not more."""
    probs = problems(topo_dir(base(goal={"as": "x", "where": {}})))
    assert sorted(p.key for p in probs) == ["goal.as", "goal.event", "goal.within"]
