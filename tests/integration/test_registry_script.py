"""deploy/local/registry.sh: a registry of its own (own run dir, free port), started, found, stopped by pid.

Uses the build that `services.sh up` left in the cache (TACTFUL_CACHE_DIR), so
nothing is built here; never touches the tier's own registry.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from streams.codec.registry import RegistryClient
from streams.errors import RegistryUnavailable
from tests.integration.conftest import REPO, free_port

SCRIPT = REPO / "deploy" / "local" / "registry.sh"


def script(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=180, check=False
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_status_down_by_pid_and_schemas_survive_a_restart(services: None, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TACTFUL_RUN_DIR": str(tmp_path / "run"), "TACTFUL_REGISTRY_PORT": str(port)}
    url = script("url", env).stdout.strip()
    assert url == f"http://127.0.0.1:{port}/apis/ccompat/v7"
    pid_file = tmp_path / "run" / "registry" / "registry.pid"
    try:
        up = script("up", env)
        assert up.returncode == 0, up.stderr
        pid = int(pid_file.read_text())
        assert "apicurio-registry-runner" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
        status = script("status", env)
        assert status.returncode == 0 and f"running (pid {pid})" in status.stdout
        assert script("up", env).stdout.startswith(f"registry: already running (pid {pid})")
        sid = RegistryClient(url).register("probe-value", '{"type":"record","name":"P","fields":[]}')

        down = script("down", env)
        assert down.returncode == 0 and f"stopped (pid {pid})" in down.stdout
        assert not alive(pid) and not pid_file.exists()
        assert script("status", env).returncode == 1
        try:
            RegistryClient(url, timeout=2).subjects()
            raise AssertionError("the registry still answers after down")
        except RegistryUnavailable:
            pass

        assert script("up", env).returncode == 0
        assert RegistryClient(url).schema(sid) == ("AVRO", '{"type":"record","name":"P","fields":[]}')
    finally:
        script("down", env)
    wipe = script("wipe", env)
    assert wipe.returncode == 0 and not (tmp_path / "run" / "registry").exists()
