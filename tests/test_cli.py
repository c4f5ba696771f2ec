"""The command line through click's runner: each command's happy path, and every expected failure.

An expected failure is one line ``error: ...`` on standard error, a documented
exit code (``streams.cli.EXIT_CODES``), no traceback, and no hang: the tests
against a Redis or a broker that is not there (a local port bound, then
closed) bound how long the command may take.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from click.testing import CliRunner, Result

from streams.cli import EXIT_CODES, main
from streams.codec.avro import touchpoint_schema, touchpoint_to_avro, write_ocf
from streams.mirror import rebuild, wall_clock_ms
from tests.mirror.support import decision

REPO = Path(__file__).parents[1]
TOPOLOGIES = REPO / "topologies"
COMMANDS = [
    "validate",
    "replay",
    "generate",
    "worker",
    "check",
    "redis-rebuild",
    "feed",
    "forget",
    "demo",
    "report",
    "tail",
    "diff",  # tested in tests/test_diff.py
    "deploy",
    "catalog",
]
EVENT = {"event_id": "e1", "customer_id": "c1", "type": "purchase", "occurred_at": "2026-05-04T10:00:00Z"}


@pytest.fixture(autouse=True)
def _no_tactful_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the developer's own TACTFUL_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("TACTFUL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then closed): connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def tactful(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run ``tactful args``; whatever happens, it is no traceback."""
    result = CliRunner(env=env).invoke(main, args)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def one_error(result: Result, code: int, *needles: str) -> str:
    """The result is the documented exit ``code`` with exactly one ``error:`` line holding each needle."""
    assert code in EXIT_CODES
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def write_events(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# --- help and version ---------------------------------------------------------------


def test_the_group_help_documents_every_exit_code() -> None:
    result = tactful(["--help"])
    assert result.exit_code == 0
    assert "Exit codes:" in result.output
    for code, text in EXIT_CODES.items():
        assert f"{code:<4} {text}" in result.output


def test_every_command_is_tested_here() -> None:
    assert sorted(COMMANDS) == sorted(main.commands)


def test_the_readme_documents_the_same_exit_codes() -> None:
    text = (REPO / "README.md").read_text()
    table = text[text.index("### Exit codes") :].split("\n\n")[2]
    codes = [int(row.split("|")[1]) for row in table.splitlines()[2:]]
    assert codes == list(EXIT_CODES)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(command: str) -> None:
    result = tactful([command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {command}" in result.output


def test_version() -> None:
    result = tactful(["--version"])
    assert result.exit_code == 0 and "version" in result.output


# --- bad usage: exit 2, one line ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["replay", "--bogus"], "No such option: --bogus"),
        (["nosuchcommand"], "No such command"),
        (["check"], "Missing argument"),
        (["generate", "--customers", "0", "--out", "x.jsonl"], "--customers"),
        (["generate", "--start", "yesterday", "--out", "x.jsonl"], "--start"),
        (["worker", "--loglevel", "loud"], "--loglevel"),
        (["redis-rebuild", "--timeout", "0"], "--timeout"),
        (["replay", "--topologies", str(TOPOLOGIES), "--events", "e.jsonl", "--until", "soon"], "--until"),
        (["forget", "c1", "--at", "soon"], "--at"),
        (["forget", "x" * 129], "CUSTOMER_ID"),
        (["feed", "--shift-to-now"], "--shift-to-now needs --events"),
    ],
    ids=[
        "unknown-flag",
        "unknown-command",
        "missing-argument",
        "bad-int",
        "bad-time",
        "bad-choice",
        "bad-float",
        "until",
        "forget-at",
        "forget-customer",
        "shift-without-events",
    ],
)
def test_bad_usage_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        result = tactful(args)
    line = one_error(result, 2, needle)
    assert "--help" in line  # says where to look
    assert "Usage:" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["check", "c1", "email"], ["redis-rebuild"], ["feed"], ["forget", "c1"], ["worker"], ["demo"], ["tail", "sms"]],
    ids=lambda a: a[0],
)
def test_a_bad_setting_names_its_variable_and_exits_2(args: list[str]) -> None:
    result = tactful(args, env={"TACTFUL_START_TIMEOUT": "soon"})
    one_error(result, 2, "invalid settings", "TACTFUL_START_TIMEOUT", "'soon'")


def test_an_unknown_variable_is_warned_about() -> None:
    result = tactful(["check", "c1", "email"], env={"TACTFUL_REDIS_URLL": "redis://x", "TACTFUL_REDIS_URL": ""})
    assert "warning: TACTFUL_REDIS_URLL is not a tactful setting" in result.stderr
    assert "TACTFUL_REDIS_URL?" in result.stderr
    one_error(result, 2, "no Redis")


# --- validate -----------------------------------------------------------------------------


def test_validate_the_shipped_topologies() -> None:
    result = tactful(["validate", "--strict", str(TOPOLOGIES)])
    assert result.exit_code == 0, result.output
    assert "topologies valid" in result.stdout
    assert result.stderr == ""  # no warning: every channel they use is declared, no engagement is always blocked


def test_validate_names_each_problem_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("topology: Bad-Name\nversion: 1\n")
    result = tactful(["validate", str(tmp_path)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert any(line.startswith("error: ") and "bad.yaml" in line for line in result.stderr.splitlines())
    assert result.stderr.splitlines()[-1].endswith(f"problem(s) in {tmp_path}")


def test_validate_a_missing_folder(tmp_path: Path) -> None:
    one_error(tactful(["validate", str(tmp_path / "nope")]), 2, "expected a folder")


def validate_folder(folder: Path, files: dict[str, str], *args: str, expect: int = 0) -> list[str]:
    """Write ``files`` into ``folder``, run ``tactful validate`` on it; the warning lines."""
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    result = tactful(["validate", *args, str(folder)])
    assert result.exit_code == expect, result.output
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def topology_text(
    then: str, *, name: str = "t", when: str = "{sequence: [{as: a, event: a}, {as: b, event: b}]}", head: str = ""
) -> str:
    return f"topology: {name}\nversion: 1\n{head}when: {when}\nthen:\n{textwrap.indent(textwrap.dedent(then), '  ')}"


PINNED = "{sequence: [{as: a, event: a, where: {category: [phone]}}]}"
ALWAYS_BLOCKED = [
    pytest.param("- suppress: {channels: [sms], for: 1d}\n- engage: {channel: sms, action: x}", "", id="any_category"),
    pytest.param(
        "- suppress: {channels: [sms, ads], category: '*', for: 0s}\n- engage: {channel: ads, action: x, category: c}",
        "",
        id="any_category_zero_duration",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: phone, for: 1d}\n- engage: {channel: sms, action: x}",
        "",
        id="engagement_without_category",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n"
        "- engage: {channel: sms, action: x, category: '{a.category}'}",
        "",
        id="same_category_template",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n"
        "- engage: {channel: sms, action: 'x_{a.category}'}",
        "",
        id="suppression_made_whenever_the_engagement_is",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n"
        "- engage: {channel: sms, action: x, category: phone}",
        PINNED,
        id="category_fixed_by_where",
    ),
]
NOT_ALWAYS_BLOCKED = [
    pytest.param("- engage: {channel: sms, action: x}\n- suppress: {channels: [sms], for: 1d}", "", id="engage_first"),
    pytest.param(
        "- suppress: {channels: [email], for: 1d}\n- engage: {channel: sms, action: x}", "", id="other_channel"
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: phone, for: 1d}\n"
        "- engage: {channel: sms, action: x, category: tablet}",
        "",
        id="other_category",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n- engage: {channel: sms, action: x}",
        "",
        id="suppression_skipped_when_a_has_no_category",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n"
        "- engage: {channel: sms, action: x, category: '{b.category}'}",
        "",
        id="categories_may_differ",
    ),
    pytest.param(
        "- suppress: {channels: [sms], category: '{a.category}', for: 1d}\n"
        "- engage: {channel: sms, action: x, category: phone}",
        "{sequence: [{as: a, event: a, where: {category: [phone, tablet]}}]}",
        id="where_admits_two_categories",
    ),
]


@pytest.mark.parametrize("then, when", ALWAYS_BLOCKED)
def test_validate_warns_of_an_engagement_its_own_suppression_always_blocks(
    tmp_path: Path, then: str, when: str
) -> None:
    text = topology_text(then, when=when) if when else topology_text(then)
    [warning] = validate_folder(tmp_path, {"t.yaml": text})
    assert warning.startswith("warning: t.yaml (t): then[1].engage: "), warning
    assert "always blocked by then[0].suppress" in warning


@pytest.mark.parametrize("then, when", NOT_ALWAYS_BLOCKED)
def test_validate_is_quiet_when_an_engagement_may_get_through(tmp_path: Path, then: str, when: str) -> None:
    text = topology_text(then, when=when) if when else topology_text(then)
    assert validate_folder(tmp_path, {"t.yaml": text}) == []


@pytest.mark.parametrize(
    "head, expected",
    [
        pytest.param("priority: 60\n", True, id="applied_first_same_when"),
        pytest.param("", False, id="same_priority_but_applied_after_by_name"),
        pytest.param("priority: 60\ncooldown: 1h\n", False, id="rival_with_a_cooldown_may_sit_out"),
        pytest.param("priority: 40\n", False, id="applied_after"),
    ],
)
def test_validate_warns_of_an_engagement_another_topology_always_blocks(
    tmp_path: Path, head: str, expected: bool
) -> None:
    rival = topology_text("- suppress: {channels: [ads, sms], for: 3d}", name="zz_hold", head=head)
    mine = topology_text("- engage: {channel: sms, action: x}", name="notify")
    warnings = validate_folder(tmp_path, {"hold.yaml": rival, "notify.yaml": mine})
    if not expected:
        assert warnings == []
        return
    [warning] = warnings
    assert warning.startswith("warning: notify.yaml (notify): then[0].engage: "), warning
    assert "zz_hold's then[0].suppress" in warning and "hold.yaml" in warning


@pytest.mark.parametrize(
    "rival_head, mine_head, policies",
    [
        pytest.param("priority: 60\nmode: shadow\n", "", "", id="rival_in_shadow_blocks_nothing"),
        pytest.param("priority: 60\nholdout: 10%\n", "", "", id="rival_with_a_holdout_is_not_always_in_force"),
        pytest.param("priority: 60\n", "service: true\n", "", id="service_messages_are_never_suppressed"),
        pytest.param("priority: 60\n", "", "holdout: {percent: 5%}\n", id="global_control_group"),
    ],
)
def test_validate_knows_what_v1_1_keys_keep_out_of_force(
    tmp_path: Path, rival_head: str, mine_head: str, policies: str
) -> None:
    rival = topology_text("- suppress: {channels: [ads, sms], for: 3d}", name="zz_hold", head=rival_head)
    mine = topology_text("- engage: {channel: sms, action: x}", name="notify", head=mine_head)
    files = {"hold.yaml": rival, "notify.yaml": mine} | ({"policies.yaml": policies} if policies else {})
    assert validate_folder(tmp_path, files) == []


def test_validate_does_not_warn_a_service_topology_of_its_own_suppression(tmp_path: Path) -> None:
    then = "- suppress: {channels: [sms], for: 1d}\n- engage: {channel: sms, action: x}"
    assert validate_folder(tmp_path, {"t.yaml": topology_text(then, head="service: true\n")}) == []


def test_validate_ignores_another_topology_with_a_different_when(tmp_path: Path) -> None:
    rival = topology_text("- suppress: {channels: [sms], for: 3d}", name="hold", head="priority: 90\n")
    mine = topology_text("- engage: {channel: sms, action: x}", name="notify", when="{sequence: [{as: a, event: a}]}")
    assert validate_folder(tmp_path, {"hold.yaml": rival, "notify.yaml": mine}) == []


CHANNELS = "channels: [email, sms, ads, push]\n"


@pytest.mark.parametrize(
    "then, policies, key, name, guess",
    [
        ("- engage: {channel: smss, action: x}", CHANNELS, "t.yaml (t): then[0].engage.channel", "smss", "sms"),
        (
            "- suppress: {channels: [email, adds], for: 1d}",
            CHANNELS,
            "t.yaml (t): then[0].suppress.channels",
            "adds",
            "ads",
        ),
        ("- engage: {channel: fax, action: x}", CHANNELS, "t.yaml (t): then[0].engage.channel", "fax", None),
        (
            "- engage: {channel: sms, action: x}",
            CHANNELS + "frequency_caps: [{channel: pusj, max: 1, per: 1d}, {channel: '*', max: 1, per: 1d}]\n",
            "policies.yaml: frequency_caps[0].channel",
            "pusj",
            "push",
        ),
        (
            "- engage: {channel: sms, action: x}",
            CHANNELS + "quiet_hours: {from: '21:00', to: '08:00', channels: [sms, emial]}\n",
            "policies.yaml: quiet_hours.channels",
            "emial",
            "email",
        ),
    ],
)
def test_validate_warns_of_a_channel_policies_do_not_declare(
    tmp_path: Path, then: str, policies: str, key: str, name: str, guess: str | None
) -> None:
    [warning] = validate_folder(tmp_path, {"t.yaml": topology_text(then), "policies.yaml": policies})
    assert warning.startswith(f"warning: {key}: {name!r} is not a channel policies.yaml declares"), warning
    assert (f"did you mean {guess!r}?" in warning) == (guess is not None), warning


@pytest.mark.parametrize(
    "then, key",
    [
        ("- engage: {channel: sms, action: 'hi_{a.name'}", "then[0].engage.action"),
        ("- suppress: {channels: [sms], category: 'a.category}', for: 1d}", "then[0].suppress.category"),
    ],
)
def test_validate_warns_of_a_brace_that_is_no_placeholder(tmp_path: Path, then: str, key: str) -> None:
    [warning] = validate_folder(tmp_path, {"t.yaml": topology_text(then)})
    assert warning.startswith(f"warning: t.yaml (t): {key}: ") and "taken as text" in warning, warning


def test_validate_without_declared_channels_says_nothing_of_channel_names(tmp_path: Path) -> None:
    then = "- suppress: {channels: [adds], for: 1d}\n- engage: {channel: smss, action: x}"
    assert validate_folder(tmp_path, {"t.yaml": topology_text(then)}) == []


def test_validate_refuses_the_wildcard_as_a_declared_channel(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(topology_text("- engage: {channel: sms, action: x}"))
    (tmp_path / "policies.yaml").write_text("channels: [sms, '*']")
    result = tactful(["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: policies.yaml: channels: '*' is not a channel" in result.stderr, result.output


def test_validate_warnings_change_the_exit_status_only_when_strict(tmp_path: Path) -> None:
    files = {"t.yaml": topology_text("- engage: {channel: smss, action: x}"), "policies.yaml": CHANNELS}
    assert len(validate_folder(tmp_path, files)) == 1
    assert len(validate_folder(tmp_path, files, "--strict", expect=2)) == 1
    result = tactful(["validate", "--strict", str(tmp_path)])
    assert result.stderr.splitlines()[-1] == f"error: 1 warning(s) in {tmp_path} (--strict)"
    assert "1 topology valid" in result.stdout and "1 warning(s)" in result.stdout
    files["t.yaml"] = topology_text("- engage: {channel: sms, action: x}")
    assert validate_folder(tmp_path, files, "--strict") == []


def test_validate_warns_of_yml_files_it_does_not_read(tmp_path: Path) -> None:
    files = {
        "t.yaml": topology_text("- engage: {channel: sms, action: x}"),
        "u.yml": "topology: u\n",
        "policies.yml": "lateness: 1m\n",
    }
    warnings = validate_folder(tmp_path, files)
    assert len(warnings) == 2, warnings
    assert "warning: policies.yml: (file): ignored: only *.yaml files are read; rename it to policies.yaml" in warnings
    assert "warning: u.yml: (file): ignored: only *.yaml files are read; rename it to u.yaml" in warnings
    validate_folder(tmp_path, files, "--strict", expect=2)


def test_validate_a_folder_of_only_yml_files_says_to_rename_them(tmp_path: Path) -> None:
    (tmp_path / "t.yml").write_text(topology_text("- engage: {channel: sms, action: x}"))
    result = tactful(["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "only *.yaml files are read; rename t.yml" in result.stderr


def test_validate_one_file_with_its_folders_policies(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("topology: Broken\n")
    (tmp_path / "policies.yaml").write_text(CHANNELS)
    one = tmp_path / "t.yaml"
    one.write_text(topology_text("- engage: {channel: smss, action: x}"))
    result = tactful(["validate", str(one)])
    assert result.exit_code == 0, result.output
    assert "ok  t v1" in result.stdout and "broken" not in result.output
    assert "did you mean 'sms'?" in result.stderr
    yml = tmp_path / "u.yml"
    yml.write_text(topology_text("- engage: {channel: sms, action: x}", name="u"))
    result = tactful(["validate", str(yml)])
    assert result.exit_code == 0 and "rename it to u.yaml" in result.stderr, result.output


def test_validate_one_broken_file_names_it(tmp_path: Path) -> None:
    one = tmp_path / "t.yaml"
    one.write_text("topology: t\nversion: 1\n")
    result = tactful(["validate", str(one)])
    assert result.exit_code == 2 and result.stderr.splitlines()[-1].endswith(f"problem(s) in {one}"), result.output


def test_validate_the_policies_file_alone_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "policies.yaml").write_text(CHANNELS)
    one_error(tactful(["validate", str(tmp_path / "policies.yaml")]), 2, "holds the policies", "validate its folder")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_durations_are_documented_as_accepted() -> None:
    """README, docs/contract-notes.md and `validate --help` give the one description of a duration,
    whose units are exactly the ones parsed and whose examples all parse."""
    from streams.timeutil import _UNITS, DURATION_FORMS, parse_duration

    for doc in (REPO / "README.md", REPO / "docs" / "contract-notes.md"):
        assert _words(DURATION_FORMS) in _words(doc.read_text()), doc
    assert _words(DURATION_FORMS) in _words(tactful(["validate", "--help"]).stdout)
    units, examples = DURATION_FORMS.split("(", 1)[1].split(")", 1)
    assert set(units.replace("or w for 7 days", "w").split(", ")) == set(_UNITS)
    assert all(parse_duration(f"3{unit}") == 3 * size for unit, size in _UNITS.items())
    assert parse_duration("2w") == parse_duration("14d")
    for example in examples.split(": ", 1)[1].split(", "):
        parse_duration(example)


# --- replay ------------------------------------------------------------------------------


def replay_args(events: Path, *more: str) -> list[str]:
    return ["replay", "--topologies", str(TOPOLOGIES), "--events", str(events), "--no-progress", *more]


def test_replay_to_a_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    assert tactful(["generate", "--customers", "20", "--out", str(events)]).exit_code == 0
    out = tmp_path / "decisions.jsonl"
    result = tactful(replay_args(events, "--out", str(out)))
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") > 0
    assert result.stderr.startswith("summary: ")
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    ("attributes", "needle"),
    [
        ({"sku": "p1", "price": 12}, "attribute 'price' has value 12"),
        ({"sku": "p1", "note": "x" * 2000}, "attribute 'note' is longer than 1024 characters"),
        ({"sku": "p1", "k" * 200: "x"}, "attribute key 'kkkkk"),
    ],
    ids=["not-a-string", "value-too-long", "key-too-long"],
)
def test_replay_names_an_invalid_attribute(tmp_path: Path, attributes: dict[str, Any], needle: str) -> None:
    events = write_events(tmp_path / "e.jsonl", [{**EVENT, "attributes": attributes}])
    result = tactful(replay_args(events))
    assert result.exit_code == 0
    assert "line 1: invalid_attributes: " in result.stderr and needle in result.stderr


def test_replay_counts_avro_records_not_lines(tmp_path: Path) -> None:
    events = tmp_path / "e.avro"
    write_ocf(events, [touchpoint_to_avro(EVENT), touchpoint_to_avro({**EVENT, "type": "Bad"})], touchpoint_schema())
    result = tactful(replay_args(events))
    assert result.exit_code == 0, result.output
    assert "record 2: invalid_type" in result.stderr
    assert "line 2" not in result.stderr


def test_replay_out_into_a_missing_folder_fails_before_the_run(tmp_path: Path) -> None:
    events = write_events(tmp_path / "e.jsonl", [EVENT])
    out = tmp_path / "missing" / "out.jsonl"
    result = tactful(replay_args(events, "--out", str(out)))
    one_error(result, 1, str(out), "does not exist")
    assert "summary" not in result.stderr
    assert not out.parent.exists()


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p / "missing.jsonl", "No such file or directory"),
        (lambda p: p, "Is a directory"),
        (lambda p: (p / "broken.avro").write_bytes(b"Obj\x01garbage") and p / "broken.avro", "Avro"),
    ],
    ids=["missing", "directory", "corrupt-avro"],
)
def test_replay_of_an_unreadable_events_file_exits_1(tmp_path: Path, make: Any, needle: str) -> None:
    one_error(tactful(replay_args(make(tmp_path))), 1, needle)


def test_replay_of_an_empty_events_file_warns_and_exits_0(tmp_path: Path) -> None:
    events = tmp_path / "empty.jsonl"
    events.write_text("\n  \n")
    result = tactful(replay_args(events))
    assert result.exit_code == 0, result.output
    assert f"warning: {events} holds no events" in result.stderr
    assert result.stdout == ""


def test_replay_of_binary_garbage_warns_and_exits_0(tmp_path: Path) -> None:
    """docs/contract-notes.md: the file is read; every line is a malformed event, and a warning says so."""
    events = tmp_path / "garbage.jsonl"
    events.write_bytes(bytes(range(256)) * 4 + b"\x00\xff\xfe\n\x89PNG\r\n\x1a\n")
    result = tactful(replay_args(events))
    assert result.exit_code == 0, result.output
    assert "line 1: malformed" in result.stderr
    assert f"warning: no line of {events} is JSON" in result.stderr
    assert result.stdout == ""


def test_replay_with_some_bad_lines_does_not_warn(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps(EVENT) + "\n{not json\n")
    result = tactful(replay_args(events))
    assert result.exit_code == 0
    assert "line 2: malformed" in result.stderr
    assert "warning" not in result.stderr


def test_replay_of_invalid_topologies_exits_2(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("topology: t\n")
    events = write_events(tmp_path / "e.jsonl", [EVENT])
    result = tactful(["replay", "--topologies", str(tmp_path), "--events", str(events)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "t.yaml" in result.stderr


def test_ctrl_c_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    # The module, not the package's `replay` function of the same name.
    monkeypatch.setattr(importlib.import_module("streams.replay"), "replay_numbered", interrupted)
    result = tactful(replay_args(write_events(tmp_path / "e.jsonl", [EVENT])))
    one_error(result, 130, "interrupted")


# --- generate ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_generate(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"events{suffix}"
    result = tactful(["generate", "--customers", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "events for 5 customers" in result.stderr and out.stat().st_size > 0


def test_generate_into_a_missing_folder_exits_1(tmp_path: Path) -> None:
    one_error(tactful(["generate", "--out", str(tmp_path / "no" / "e.jsonl")]), 1, "does not exist")


# --- check --------------------------------------------------------------------------------


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeServer:
    """`redis_client` hands out clients of one fake server (every command closes its own)."""
    import streams.clients

    server = fakeredis.FakeServer()
    monkeypatch.setattr(streams.clients, "redis_client", lambda *a, **k: fakeredis.FakeAsyncRedis(server=server))
    return server


def test_check_may_market(fake_redis: fakeredis.FakeServer) -> None:
    result = tactful(["check", "c1", "email", "phone"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "yes: c1 may be marketed to on email for phone\n"


def test_check_suppressed_exits_3(fake_redis: fakeredis.FakeServer) -> None:
    async def suppress() -> None:
        async with fakeredis.FakeAsyncRedis(server=fake_redis) as client:
            await rebuild(client, [decision(topology="t1")], prefix="tactful", now_ms=wall_clock_ms(), clear=False)

    asyncio.run(suppress())
    result = tactful(["check", "c1", "email", "phone"])
    assert result.exit_code == 3 and isinstance(result.exception, SystemExit)
    assert result.stdout.startswith("no: c1 is suppressed on email for phone\n  t1: category phone until ")


def test_check_without_redis_is_bad_usage() -> None:
    one_error(tactful(["check", "c1", "email"], env={"TACTFUL_REDIS_URL": ""}), 2, "TACTFUL_REDIS_URL")


@pytest.mark.parametrize("command", [["check", "c1", "email"], ["redis-rebuild"]], ids=lambda c: c[0])
def test_redis_down_is_one_line_and_exit_1(command: list[str], closed_port: int) -> None:
    env = {
        "TACTFUL_REDIS_URL": f"redis://:hunter2@127.0.0.1:{closed_port}/0",
        "TACTFUL_TOPOLOGIES": str(TOPOLOGIES),
        # redis-rebuild asks Redis first: it must not even try the (absent) broker.
        "TACTFUL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}",
    }
    started = time.monotonic()
    result = tactful(command, env=env)
    assert time.monotonic() - started < 10
    line = one_error(result, 1, f"127.0.0.1:{closed_port}", "did not answer")
    assert "hunter2" not in result.output and "***" in line


def test_a_password_in_the_url_and_in_the_setting_is_bad_usage() -> None:
    env = {"TACTFUL_REDIS_URL": "redis://:a@127.0.0.1:1/0", "TACTFUL_REDIS_PASSWORD": "b"}
    one_error(tactful(["check", "c1", "email"], env=env), 2, "set only one")


# --- forget ---------------------------------------------------------------------------------


def test_forget_sends_one_erase_event(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.live.feed

    sent: list[Any] = []
    monkeypatch.setattr(streams.live.feed, "feed", lambda settings, events: sent.extend(events) or len(sent))
    result = tactful(["forget", "c:1", "--at", "2026-05-01T10:00:00Z"], env={"TACTFUL_INPUT_TOPIC": "in"})
    assert result.exit_code == 0, result.output
    [event] = sent
    assert {k: v for k, v in event.items() if k != "event_id"} == {
        "customer_id": "c:1",
        "type": "tactful.erase",
        "occurred_at": 1777629600000,
    }
    assert event["event_id"].startswith("erase-")
    assert "sent tactful.erase for c:1 at 2026-05-01T10:00:00.000Z to in" in result.stdout


# --- services that are not there: the broker -----------------------------------------------


@pytest.fixture
def process_state() -> Iterator[None]:
    """The worker tunes the garbage collector and installs uvloop for the process: put them back."""
    thresholds = gc.get_threshold()
    policy = asyncio.get_event_loop_policy()
    yield
    gc.set_threshold(*thresholds)
    current = asyncio.get_event_loop_policy()
    if current is not policy:
        with contextlib.suppress(RuntimeError):
            current.get_event_loop().close()
        asyncio.set_event_loop_policy(policy)


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--web-port", "16999", "--loglevel", "warning"],
        ["feed", "--duration", "1"],
        ["forget", "c1"],
        ["redis-rebuild", "--timeout", "2"],
        ["demo", "--duration", "1"],
        ["tail", "email"],
    ],
    ids=lambda a: a[0],
)
def test_broker_down_is_one_line_exit_1_and_no_librdkafka_noise(
    args: list[str],
    closed_port: int,
    fake_redis: fakeredis.FakeServer,
    process_state: None,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    env = {
        "TACTFUL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}",
        "TACTFUL_START_TIMEOUT": "2",
        "TACTFUL_TOPOLOGIES": str(TOPOLOGIES),
        "TACTFUL_DATA_DIR": str(tmp_path / "data"),
        "TACTFUL_REDIS_PREFIX": "clitest",
    }
    started = time.monotonic()
    with contextlib.chdir(tmp_path):  # the demo keeps its logs under .run/
        result = tactful(args, env=env)
    assert time.monotonic() - started < 20
    one_error(result, 1, f"127.0.0.1:{closed_port}")
    # librdkafka writes to file descriptor 2 itself unless its log lines are routed to Python.
    assert "rdkafka" not in capfd.readouterr().err
    assert "rdkafka" not in result.output


def test_feed_of_an_unreadable_events_file_exits_1(tmp_path: Path, closed_port: int) -> None:
    env = {"TACTFUL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}", "TACTFUL_START_TIMEOUT": "2"}
    result = tactful(["feed", "--events", str(tmp_path / "missing.jsonl")], env=env)
    one_error(result, 1, "missing.jsonl")


def test_worker_waits_for_the_broker_saying_so(
    closed_port: int, process_state: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "TACTFUL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}",
        "TACTFUL_START_TIMEOUT": "2.5",
        "TACTFUL_TOPOLOGIES": str(TOPOLOGIES),
        "TACTFUL_DATA_DIR": str(tmp_path / "data"),
        "TACTFUL_REDIS_URL": "",
    }
    result = tactful(["worker", "--web-port", "16999"], env=env)
    one_error(result, 1, "did not answer within 2.5s", "TACTFUL_START_TIMEOUT")
    lines = result.stderr.splitlines()
    loaded = next(line for line in lines if "topologies from" in line)
    assert "post_purchase_friction v1" in loaded
    waiting = [line for line in lines if "waiting for Kafka" in line]
    assert waiting and all(f"127.0.0.1:{closed_port}" in line and "attempt" in line for line in waiting)
    assert lines[-1].startswith("error:")


def test_worker_without_a_topologies_folder_says_what_to_set(tmp_path: Path) -> None:
    with contextlib.chdir(tmp_path):
        result = tactful(["worker"])
    one_error(result, 2, "no topologies folder", str(tmp_path / "topologies"), "TACTFUL_TOPOLOGIES")
