"""`deploy/local/kafka-secure.sh` without a broker: what it reads, and how it fails before there is one.

The broker itself runs in tests/integration/test_secure_broker.py.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from streams.settings import OTHER_VARIABLES, VARIABLES, unknown_variables

SECURE_SH = Path(__file__).resolve().parents[1] / "deploy" / "local" / "kafka-secure.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(command: str, run_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SECURE_SH), command],
        env={
            **os.environ,
            "TACTFUL_RUN_DIR": str(run_dir),
            "TACTFUL_CACHE_DIR": str(run_dir / "cache"),
            "TACTFUL_SECURE_KAFKA_PORT": str(free_port()),
            "TACTFUL_SECURE_KAFKA_CONTROLLER_PORT": str(free_port()),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_variable_it_reads_is_known_to_the_settings() -> None:
    """A variable set for the script must not draw tactful's "not a tactful setting" warning."""
    read = set(re.findall(r"\$\{?(TACTFUL_[A-Z_]+)", SECURE_SH.read_text()))
    assert "TACTFUL_SECURE_KAFKA_PORT" in read
    assert unknown_variables(dict.fromkeys(read, "x")) == []
    assert read <= OTHER_VARIABLES | {f"TACTFUL_{name.upper()}" for name in VARIABLES}


def test_env_before_up_says_what_to_run(tmp_path: Path) -> None:
    done = run("env", tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: no secure broker set up in ") and "up' first" in done.stderr
    assert done.stdout == ""


def test_up_without_the_kafka_jars_fails_with_what_to_do_and_starts_nothing(tmp_path: Path) -> None:
    done = run("up", tmp_path)
    assert done.returncode == 1
    assert "services.sh fetch" in done.stderr
    assert not (tmp_path / "kafka-secure" / "kafka.pid").exists()


@pytest.mark.parametrize("command", ["down", "wipe"])
def test_down_and_wipe_with_nothing_running_are_fine(tmp_path: Path, command: str) -> None:
    (tmp_path / "kafka-secure" / "data").mkdir(parents=True)
    done = run(command, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kafka-secure: not running" in done.stdout
    assert (tmp_path / "kafka-secure").exists() == (command == "down")
