"""`tactful deploy` and `tactful catalog` without a broker: bad usage is exit 2, a broker down exit 1."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.test_cli import REPO, _no_tactful_variables, closed_port, one_error, tactful  # noqa: F401

TOPOLOGIES = REPO / "topologies"


def test_deploy_validates_the_folder_first(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("topology: Bad\n")
    result = tactful(["deploy", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr and "problem(s) in" in result.stderr


def test_deploy_refuses_a_time_it_cannot_read() -> None:
    one_error(tactful(["deploy", str(TOPOLOGIES), "--at", "soon"]), 2, "--at")


@pytest.mark.parametrize(
    "args", [["deploy", str(TOPOLOGIES)], ["catalog"], ["catalog", "export", "out"]], ids=lambda a: " ".join(a[:2])
)
def test_a_broker_down_is_one_line_and_exit_1(args: list[str], closed_port: int, tmp_path: Path) -> None:  # noqa: F811
    env = {"TACTFUL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}", "TACTFUL_START_TIMEOUT": "1"}
    with contextlib.chdir(tmp_path):  # the export's folder
        result = tactful(args, env=env)
    one_error(result, 1, f"127.0.0.1:{closed_port}")
