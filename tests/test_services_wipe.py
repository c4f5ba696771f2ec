"""`deploy/local/services.sh wipe` on a throwaway run dir: never the one the real services use.

Fake Kafka and Redis processes (anything whose command line names `kafka.Kafka`
or `redis-server`, which is all the script's pid check asks) stand in for the
real ones, and the ports are free ones, so nothing that really runs is touched.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVICES_SH = Path(__file__).resolve().parents[1] / "deploy" / "local" / "services.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "TACTFUL_RUN_DIR": str(root),
            "TACTFUL_CACHE_DIR": str(root / "cache"),
            "TACTFUL_KAFKA_PORT": str(free_port()),
            "TACTFUL_KAFKA_CONTROLLER_PORT": str(free_port()),
            "TACTFUL_REDIS_PORT": str(free_port()),
            "TACTFUL_REGISTRY_PORT": str(free_port()),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def fake(self, pid_file: str, name: str) -> subprocess.Popen[bytes]:
        """A process the script takes for `name` (its pid check greps the command line), until signalled."""
        proc = self.spawn(name)
        path = self.root / pid_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(proc.pid))
        return proc

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()", name])
        self.procs.append(proc)
        # Reaped the moment it exits, as the real services (own session, not our children)
        # are: a zombie would still answer the script's `kill -0`.
        threading.Thread(target=proc.wait, daemon=True).start()
        return proc

    def wipe(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SERVICES_SH), "wipe"], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[RunDir]:
    rd = RunDir(tmp_path / "run")
    for rel, text in {
        "kafka/data/meta.properties": "cluster.id=x\n",
        "kafka/data/it-1.touchpoints-0/00000000000000000000.log": "records",
        "kafka/logs/server.log": "log\n",
        "kafka/server.properties": "node.id=1\n",
        "redis/redis.log": "log\n",
        "registry/db/registry.mv.db": "schemas",
        "bench/keep.txt": "not Kafka's, not Redis's\n",
    }.items():
        (rd.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (rd.root / rel).write_text(text)
    yield rd
    for proc in rd.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_wipe_stops_what_it_started_and_deletes_only_the_data_folders(run_dir: RunDir) -> None:
    kafka = run_dir.fake("kafka/kafka.pid", "kafka.Kafka")
    redis = run_dir.fake("redis/redis.pid", "redis-server")
    registry = run_dir.fake("registry/registry.pid", "apicurio-registry-runner")
    bystander = run_dir.spawn("kafka.Kafka")

    done = run_dir.wipe()

    assert done.returncode == 0, done.stderr
    assert kafka.wait(10) is not None and redis.wait(10) is not None  # stopped by their pid files
    assert registry.wait(10) is not None
    assert bystander.poll() is None  # a "Kafka" it did not start (no pid file) keeps running
    assert not (run_dir.root / "kafka" / "data").exists()
    assert not (run_dir.root / "redis").exists()
    assert not (run_dir.root / "registry").exists()
    assert (run_dir.root / "kafka" / "logs" / "server.log").read_text() == "log\n"
    assert (run_dir.root / "kafka" / "server.properties").exists()
    assert (run_dir.root / "bench" / "keep.txt").exists()
    assert "kafka: stopped" in done.stdout and "redis: stopped" in done.stdout
    assert f"registry: stopped (pid {registry.pid})" in done.stdout
    assert "SIGKILL" not in done.stdout  # SIGTERM was enough: it waited on the process, not on a clock
    assert f"wipe: removed {run_dir.root}/kafka/data" in done.stdout
    assert f"wipe: removed {run_dir.root}/redis" in done.stdout


def test_wipe_with_nothing_running_and_nothing_left_says_so(run_dir: RunDir) -> None:
    assert run_dir.wipe().returncode == 0
    again = run_dir.wipe()
    assert again.returncode == 0, again.stderr
    assert "kafka: not running" in again.stdout and "redis: not running" in again.stdout
    assert "wipe: no Kafka or Redis data under" in again.stdout


def test_wipe_deletes_nothing_while_a_port_still_answers(run_dir: RunDir) -> None:
    """A broker this run dir did not start may be using these folders."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", int(run_dir.env["TACTFUL_KAFKA_PORT"])))
        other.listen()
        done = run_dir.wipe()
    assert done.returncode != 0
    assert "wiped nothing" in done.stderr
    assert (run_dir.root / "kafka" / "data" / "meta.properties").exists()
    assert (run_dir.root / "redis" / "redis.log").exists()
    assert (run_dir.root / "registry" / "db" / "registry.mv.db").exists()
