"""`tactful replay` on the shipped journeys, byte for byte.

The golden files were written by the code as it stood before the architecture
rework (issue 8); behaviour must not change, so the output must not either.
The journeys are committed rather than regenerated so that this pins replay
alone; `test_generator_is_unchanged` pins the generator that made them.

The catalog is `golden/topologies-v1/`, a copy of the shipped topologies as
they stood at contract v1: the shipped folder gains v1.1 keys (goals, a
service topology), and the pin must keep meaning "a v1 catalog over input
with no tactful.* event gives exactly the v1 decisions and ids".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main

GOLDEN = Path(__file__).parent / "golden"
TOPOLOGIES = GOLDEN / "topologies-v1"


@pytest.mark.parametrize("journeys", ["shipped", "noisy"])
@pytest.mark.parametrize("audit", [False, True], ids=["decisions", "audit"])
def test_replay_output_is_byte_identical(journeys: str, audit: bool, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["replay", "--topologies", str(TOPOLOGIES), "--events", str(GOLDEN / f"{journeys}-journeys.jsonl")]
    args += ["--out", str(out), "--no-progress", *(["--audit"] if audit else [])]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    expected = GOLDEN / f"{journeys}-{'audit' if audit else 'decisions'}.jsonl"
    assert out.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize(
    ("journeys", "flags"),
    [
        ("shipped", ["--customers", "200", "--seed", "7"]),
        (
            "noisy",
            [
                "--customers",
                "300",
                "--seed",
                "11",
                "--out-of-order",
                "0.05",
                "--duplicates",
                "0.03",
                "--invalid",
                "0.02",
            ],
        ),
    ],
)
def test_generator_is_unchanged(journeys: str, flags: list[str], tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(main, ["generate", *flags, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (GOLDEN / f"{journeys}-journeys.jsonl").read_bytes()
