"""Contract v1.1: "a catalog that uses none of the keys below ... gives exactly the v1 decisions and ids";
and one that sets them to their defaults gives exactly the same.

`tests/test_golden_replay.py` pins the v1 catalog byte for byte; here the same catalog, with every
new key written out at its default value, must give the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

DEFAULTS = "mode: live\nservice: false\nholdout: 0%\n"


@pytest.mark.parametrize("journeys", ["shipped", "noisy"])
def test_7_the_new_keys_at_their_defaults_change_nothing(journeys: str, tmp_path: Path) -> None:
    folder = tmp_path / "topologies"
    shutil.copytree(GOLDEN / "topologies-v1", folder)
    for f in folder.glob("*.yaml"):
        if f.name == "policies.yaml":
            f.write_text(f.read_text() + 'holdout:\n  percent: 0%\n  salt: "anything"\n')
        else:
            f.write_text(f.read_text() + DEFAULTS)
    out = tmp_path / "audit.jsonl"
    args = ["replay", "--topologies", str(folder), "--events", str(GOLDEN / f"{journeys}-journeys.jsonl")]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--audit", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (GOLDEN / f"{journeys}-audit.jsonl").read_bytes()
