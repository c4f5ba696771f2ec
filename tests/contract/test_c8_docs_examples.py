"""The examples of docs/catalog-changes.md, run again: each ```console block's `tactful replay` command,
from docs/examples/catalog-changes/, must print the decisions the block shows (on the fields it shows)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "catalog-changes.md"
FOLDER = ROOT / "docs" / "examples" / "catalog-changes"
BLOCK = re.compile(r"```console\n\$ (tactful replay [^\n]*)\n(.*?)```", re.DOTALL)


def _blocks() -> list[Any]:
    found = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    return [pytest.param(cmd, out, id=cmd.split("--events ")[1].split()[0]) for cmd, out in found]


def test_the_page_has_an_example_for_each_kind_of_change():
    assert len(_blocks()) == 6


@pytest.mark.parametrize(("command", "shown"), _blocks())
def test_each_example_prints_what_the_page_shows(command, shown, monkeypatch):
    from streams.cli import main

    monkeypatch.chdir(FOLDER)
    args = shlex.split(command)[1:]
    res = CliRunner().invoke(main, [*args, "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    expected = [json.loads(line) for line in shown.splitlines() if line.strip()]
    actual = [json.loads(line) for line in res.stdout.splitlines()]
    assert [{k: d.get(k) for k in e} for d, e in zip(actual, expected, strict=True)] == expected
