"""The suite's own Kafka and Redis: started, faulted and stopped without touching anyone else's.

Everything goes through ``deploy/local/services.sh`` with a run dir and ports
of the suite's own (free ports picked at start), so a developer's services on
the default ports, or anyone else's, are never stopped, flushed or restarted.
Faults act on the processes this run dir's pid files name, nothing else.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
SERVICES_SH = REPO / "deploy" / "local" / "services.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceError(RuntimeError):
    """services.sh failed, or a service did not come back."""


@dataclass
class Services:
    run_dir: Path
    cache_dir: Path
    kafka_port: int
    controller_port: int
    redis_port: int

    @classmethod
    def pick(cls, run_dir: Path, cache_dir: Path) -> Services:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        k, c, r = sorted(ports)
        return cls(run_dir, cache_dir, k, c, r)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TACTFUL_RUN_DIR": str(self.run_dir),
            "TACTFUL_CACHE_DIR": str(self.cache_dir),
            "TACTFUL_KAFKA_PORT": str(self.kafka_port),
            "TACTFUL_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "TACTFUL_REDIS_PORT": str(self.redis_port),
            "TACTFUL_PYTHON": sys.executable,
            # No schema registry: the suite's workers use local schema ids (docs/registry.md).
            "TACTFUL_SCHEMA_REGISTRY_URL": "",
        }

    def _sh(self, command: str, timeout: float = 300) -> str:
        proc = subprocess.run(
            ["bash", str(SERVICES_SH), command],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(f"services.sh {command} exited {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def up(self) -> None:
        """Start whatever of the two is not running (services.sh skips what runs)."""
        self._sh("up")

    def down(self) -> None:
        self._sh("down", timeout=120)

    # -- faults ------------------------------------------------------------------------------

    def _pid(self, name: str) -> int | None:
        file = self.run_dir / name / f"{name}.pid"
        try:
            pid = int(file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def _stop(self, name: str, sig: signal.Signals, grace: float) -> None:
        pid = self._pid(name)
        if pid is None:
            raise ServiceError(f"{name} of {self.run_dir} is not running")
        os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def stop_kafka(self) -> None:
        """A broker outage: kill -9 of the suite's own broker (no clean shutdown)."""
        self._stop("kafka", signal.SIGKILL, 10)

    def stop_redis(self) -> None:
        """Redis gone: SIGTERM; it keeps no RDB or AOF, so it comes back empty."""
        self._stop("redis", signal.SIGTERM, 10)

    def flush_redis(self) -> None:
        with redis.Redis.from_url(self.redis_url) as r:
            r.flushall()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)
