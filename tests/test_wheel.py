"""The wheel, installed away from the checkout, does what the checkout does.

The wheel is built with the project's own backend (hatchling, in the dev
extra, with no build isolation: no network) and installed with
``pip install --target`` into a bare folder put first on ``PYTHONPATH``; every
command runs from a folder outside the repository, so nothing can fall back on
the checkout's ``avro/`` or ``topologies/``. The benchmarks (``bench/``) are a
checkout's tools and must not ship.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    target: Path  # what `pip install --target` filled
    cwd: Path  # outside the repository

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Only the installed wheel on PYTHONPATH: it comes before the venv's
        # site-packages, where the editable install points at the checkout.
        env = {**os.environ, "PYTHONPATH": str(self.target)}
        return subprocess.run(
            [sys.executable, *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=120
        )

    def tactful(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run("-m", "streams.cli", *args)
        assert result.returncode == 0, result.stderr
        return result


def _pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300, check=False
    )
    # A failure here fails the test: no wheel, no proof. hatchling comes with `pip install -e '.[dev]'`.
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    dist = tmp_path_factory.mktemp("dist")
    _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist), str(REPO))
    wheels = list(dist.glob("tactful-*.whl"))
    assert len(wheels) == 1, wheels
    target = tmp_path_factory.mktemp("site")
    _pip("install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), str(wheels[0]))
    cwd = tmp_path_factory.mktemp("elsewhere")
    assert not cwd.resolve().is_relative_to(REPO)
    return Installed(wheels[0], target, cwd)


def test_the_wheel_ships_streams_and_its_data_but_no_benchmarks(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    assert [n for n in names if n.startswith(("bench/", "streams/bench/"))] == []
    packages = {n.split("/")[0] for n in names if not n.startswith("tactful-")}
    assert packages == {"streams"}
    assert {"streams/_avro/touchpoint.avsc", "streams/_avro/decision.avsc", "streams/cli.py"} <= set(names)
    shipped = {f"streams/_topologies/{p.name}" for p in (REPO / "topologies").glob("*.yaml")}
    assert shipped
    assert {n for n in names if n.startswith("streams/_topologies/")} == shipped


def test_the_installed_wheel_is_the_streams_imported(installed: Installed) -> None:
    code = (
        "import streams, streams.codec.avro as a; "
        "print(streams.__file__); print(a.schema_path('touchpoint')); print(a.schema_path('decision'))"
    )
    result = installed.run("-c", code)
    assert result.returncode == 0, result.stderr
    module, touchpoint, decision = (Path(line) for line in result.stdout.splitlines())
    assert module == installed.target / "streams" / "__init__.py"
    assert touchpoint == installed.target / "streams" / "_avro" / "touchpoint.avsc"
    assert decision == installed.target / "streams" / "_avro" / "decision.avsc"


def test_the_installed_command_line_has_no_bench(installed: Installed) -> None:
    commands = installed.tactful("--help").stdout
    assert "replay" in commands
    assert "validate" in commands
    assert "bench" not in commands


def test_the_installed_wheel_validates_its_packaged_topologies(installed: Installed) -> None:
    out = installed.tactful("validate", str(installed.target / "streams" / "_topologies")).stdout
    count = len(list((REPO / "topologies").glob("*.yaml"))) - 1  # less policies.yaml
    assert f"{count} topologies valid" in out


def test_the_installed_wheel_replays_as_the_golden_files_say(installed: Installed, tmp_path: Path) -> None:
    """The shipped journeys through the v1 catalog, byte for byte (tests/test_golden_replay.py); and
    through the packaged topologies, byte for byte what the checkout's shipped topologies give."""
    events = installed.cwd / "journeys.jsonl"
    events.write_bytes((GOLDEN / "shipped-journeys.jsonl").read_bytes())
    v1 = str(GOLDEN / "topologies-v1")
    installed.tactful("replay", "--topologies", v1, "--events", events.name, "--out", "v1.jsonl", "--no-progress")
    assert (installed.cwd / "v1.jsonl").read_bytes() == (GOLDEN / "shipped-decisions.jsonl").read_bytes()
    topologies = str(installed.target / "streams" / "_topologies")
    installed.tactful(
        "replay", "--topologies", topologies, "--events", events.name, "--out", "decisions.jsonl", "--no-progress"
    )
    checkout = tmp_path / "checkout.jsonl"
    args = ["replay", "--topologies", str(REPO / "topologies"), "--events", str(events), "--out", str(checkout)]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (installed.cwd / "decisions.jsonl").read_bytes() == checkout.read_bytes()


def test_the_installed_wheel_writes_and_reads_avro_as_the_checkout_does(installed: Installed, tmp_path: Path) -> None:
    """Avro needs the schemas: the wheel's own (streams/_avro), as the import test shows."""
    installed.tactful("generate", "--customers", "30", "--seed", "5", "--out", "events.avro")
    events = installed.cwd / "events.avro"
    topologies = str(installed.target / "streams" / "_topologies")
    installed.tactful(
        "replay", "--topologies", topologies, "--events", events.name, "--out", "wheel.jsonl", "--no-progress"
    )
    expected = tmp_path / "checkout.jsonl"
    args = ["replay", "--topologies", str(REPO / "topologies"), "--events", str(events)]
    result = CliRunner().invoke(main, [*args, "--out", str(expected), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert expected.read_bytes()  # a journey that decides nothing would prove little
    assert (installed.cwd / "wheel.jsonl").read_bytes() == expected.read_bytes()
