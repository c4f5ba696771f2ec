"""Where the integration tier finds the real Kafka and Redis, and how it starts them.

The addresses come from the same TACTFUL_* variables (and defaults) that
deploy/local/services.sh uses, so `make up` and the tests always agree.
`ensure_services()` runs `services.sh up` (a no-op when all already run) and
raises when that fails: a broker or registry that cannot start must fail the
tier, never skip it, or CI would go green without having tested anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO_ROOT / "deploy" / "local" / "services.sh"

# Cold start includes fetching the Kafka jars and apt packages; warm is seconds.
_UP_TIMEOUT_S = 600


class ServicesUnavailable(RuntimeError):
    """`services.sh up` failed: Kafka or Redis did not become ready."""


def kafka_bootstrap() -> str:
    """The local broker's bootstrap address, e.g. ``127.0.0.1:19092``."""
    return f"127.0.0.1:{os.environ.get('TACTFUL_KAFKA_PORT', '19092')}"


def redis_url() -> str:
    """The local Redis, e.g. ``redis://127.0.0.1:16379/0``."""
    return f"redis://127.0.0.1:{os.environ.get('TACTFUL_REDIS_PORT', '16379')}/0"


def registry_url() -> str:
    """The schema registry the tier uses: ``TACTFUL_SCHEMA_REGISTRY_URL`` when set (empty:
    none, local schema ids), else the one services.sh starts (``TACTFUL_REGISTRY_PORT``)."""
    if "TACTFUL_SCHEMA_REGISTRY_URL" in os.environ:
        return os.environ["TACTFUL_SCHEMA_REGISTRY_URL"]
    return f"http://127.0.0.1:{os.environ.get('TACTFUL_REGISTRY_PORT', '18081')}/apis/ccompat/v7"


def ensure_services() -> None:
    """Start Kafka, Redis and the schema registry unless they already run; raise if they cannot."""
    try:
        proc = subprocess.run(
            ["bash", str(SERVICES_SH), "up"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=_UP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ServicesUnavailable(f"{SERVICES_SH.name} up did not finish in {_UP_TIMEOUT_S}s") from exc
    if proc.returncode != 0:
        # The script already prints the broker log's tail on failure; pass it on.
        raise ServicesUnavailable(
            f"{SERVICES_SH.name} up exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
        )
    url = registry_url()
    if url:
        # services.sh leaves a registry named by TACTFUL_SCHEMA_REGISTRY_URL alone: check it answers.
        from streams.codec.registry import RegistryClient
        from streams.errors import InfraError

        try:
            RegistryClient(url).subjects()
        except InfraError as exc:
            raise ServicesUnavailable(f"the schema registry at {url} does not answer: {exc}") from exc
