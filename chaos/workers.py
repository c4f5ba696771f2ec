"""Real ``tactful worker`` processes, killed and restarted, watched from outside.

A :class:`Fleet` starts N workers on one namespace and a watcher thread that
plays the supervisor a deployment would have (systemd, Kubernetes): a worker
that exits without having been killed by the suite is a *crash* (its exit code
is kept) and is started again after a short pause. Every (re)start after the
first is timed from the process start to

* *ready*: ``/ready`` answers 200 and ``/health`` lists at least one partition
  (the worker owns work again), and
* *decide*: the worker's ``tactful_decisions_total`` counters are above zero
  (its first decision).

A worker still not there when the run ends is reported as *never*; one that
died first (crashed, or was picked for the next kill) as *died first*.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.services import REPO, free_port

TACTFUL = str(Path(sys.executable).with_name("tactful"))


@dataclass
class Restart:
    worker: str
    cause: str  # "kill" or "crash"
    started: float  # time.monotonic() of the new process's start
    ready_s: float | None = None
    decide_s: float | None = None
    died: bool = False  # the process ended (crash or kill) before it got that far


@dataclass
class Crash:
    worker: str
    exit_code: int
    at: float


class Worker:
    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {
            **env,
            "TACTFUL_WEB_PORT": str(self.port),
            "TACTFUL_DATA_DIR": str(folder / "data" / name),
            # Static membership, as the k8s StatefulSet and compose give each worker: a
            # restarted worker takes its own partitions back at once (issue 9's 15 s bound).
            "TACTFUL_INSTANCE_ID": f"{env.get('TACTFUL_APP_ID', 'chaos')}-{name}",
        }
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # the current process was (or is being) stopped by the suite
        self.restart: Restart | None = None  # the one being timed

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [TACTFUL, "worker", "--loglevel", "warning"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.killed = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.killed = True
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.killed = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as resp:
                body, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def owns_work(self) -> bool:
        try:
            status, body = self.get("/ready")
        except OSError:
            return False
        return status == 200 and isinstance(body, dict) and bool(body.get("partitions"))

    def decisions(self) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as resp:
                text = resp.read().decode()
        except OSError:
            return 0.0
        return sum(
            float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith("tactful_decisions_total{")
        )

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Fleet:
    env: dict[str, str]
    folder: Path
    size: int
    rng: random.Random
    crash_restart_after: float = 2.0
    workers: list[Worker] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    kills: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workers = [Worker(f"w{i + 1}", self.env, self.folder) for i in range(self.size)]
        for w in self.workers:
            w.start()
        self._thread = threading.Thread(target=self._watch, name="chaos-fleet", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.owns_work() for w in self.workers):
                return True
            time.sleep(0.5)
        return False

    def kill_random(self, restart_after: float = 1.0) -> str:
        """kill -9 one live worker; start it again after ``restart_after`` seconds."""
        with self._lock:
            live = [w for w in self.workers if w.alive()] or self.workers
            victim = self.rng.choice(live)
            victim.kill9()
            self.kills += 1
        time.sleep(restart_after)
        self._restart(victim, "kill")
        return victim.name

    def _restart(self, w: Worker, cause: str) -> None:
        with self._lock:
            w.start()
            if w.restart is not None and (w.restart.ready_s is None or w.restart.decide_s is None):
                w.restart.died = True  # killed or crashed before it got there: not a "never"
            w.restart = Restart(w.name, cause, time.monotonic())
            self.restarts.append(w.restart)

    def _watch(self) -> None:
        pending: dict[str, float] = {}
        while not self._stop.is_set():
            now = time.monotonic()
            for w in self.workers:
                proc = w.proc
                r = w.restart
                if proc is not None and proc.poll() is not None and not w.killed and w.name not in pending:
                    self.crashes.append(Crash(w.name, proc.returncode, now))
                    pending[w.name] = now + self.crash_restart_after
                    if r is not None and (r.ready_s is None or r.decide_s is None):
                        r.died = True
                if r is not None and w.alive():
                    if r.ready_s is None and w.owns_work():
                        r.ready_s = time.monotonic() - r.started
                    if r.decide_s is None and w.decisions() > 0:
                        r.decide_s = time.monotonic() - r.started
            for name, due in list(pending.items()):
                if now >= due and not self._stop.is_set():
                    del pending[name]
                    self._restart(next(w for w in self.workers if w.name == name), "crash")
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.stop()

    def crash_codes(self) -> dict[int, int]:
        codes: dict[int, int] = {}
        for c in self.crashes:
            codes[c.exit_code] = codes.get(c.exit_code, 0) + 1
        return codes


def worker_env(
    bootstrap: str, redis_url: str, prefix: str, redis_prefix: str, guarantee: str = "exactly_once"
) -> dict[str, str]:
    """The workers' environment: the caller's, minus any TACTFUL_* of its own, plus the namespace
    and the processing guarantee."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TACTFUL_")}
    return {
        **base,
        "TACTFUL_BOOTSTRAP_SERVERS": bootstrap,
        "TACTFUL_REDIS_URL": redis_url,
        "TACTFUL_REDIS_PREFIX": redis_prefix,
        "TACTFUL_APP_ID": prefix,
        "TACTFUL_INPUT_TOPIC": f"{prefix}.touchpoints",
        "TACTFUL_DLQ_TOPIC": f"{prefix}.touchpoints.dlq",
        "TACTFUL_DECISION_TOPIC_PREFIX": f"{prefix}.decisions.",
        "TACTFUL_AUDIT_TOPIC": f"{prefix}.decisions.audit",
        "TACTFUL_TOPOLOGIES": str(REPO / "topologies"),
        # Historical event times: no wall-clock advance of idle partitions, as in the parity test.
        "TACTFUL_IDLE_AFTER": "3650d",
        "TACTFUL_PROCESSING_GUARANTEE": guarantee,
    }
