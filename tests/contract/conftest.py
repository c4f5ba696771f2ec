"""Fixtures for the black-box topology contract suite."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from .helpers import write_dir


@pytest.fixture
def topo_dir(tmp_path: Path):
    """make(*topologies, policies=None, files=None) -> Path of a new topologies folder.

    Each topology is a dict (dumped with yaml.safe_dump into <name>.yaml) or raw
    YAML text (written as tNN.yaml); `policies` (dict or YAML text) becomes
    policies.yaml; `files` maps extra file names to raw text.
    """
    counter = itertools.count()

    def make(*topologies: Any, policies: Any = None, files: dict[str, str] | None = None) -> Path:
        return write_dir(tmp_path / f"topologies_{next(counter)}", topologies, policies, files)

    return make
