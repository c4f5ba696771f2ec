"""Which arm a fired match belongs to (contract 7.3), from a catalog's holdout settings.

The report reads arms from the audit records wherever they show one (a
``held_out`` or ``shadow`` decision, a GOAL record's cause, an ``arm`` field).
A match whose decisions were all blocked, outranked or skipped, and whose goal
gave no record yet, shows none: then the arm is computed here, with the
contract's bucket function, from the catalog the user names.

Only the keys the arm depends on are read (``mode``, ``service``, ``holdout``
of each topology; ``holdout.percent`` and ``holdout.salt`` of the policies),
straight from the YAML: the report must read a v1.1 catalog whatever the
loader of this checkout knows. The engine has its own copy of :func:`bucket`
(the contract's text is the authority for both); the lead may unify them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.errors import ConfigError
from streams.topology.yamlio import load_text

TREATED = "treated"
SHADOW = "shadow"
HOLDOUT_GLOBAL = "holdout_global"
HOLDOUT_TOPOLOGY = "holdout_topology"
UNKNOWN = "unknown"  # no record shows the arm and no catalog was given
ARMS = (TREATED, SHADOW, HOLDOUT_GLOBAL, HOLDOUT_TOPOLOGY)
CONTROL_ARMS = (HOLDOUT_GLOBAL, HOLDOUT_TOPOLOGY)
DEFAULT_SALT = "tactful"
BUCKETS = 10_000

_PERCENT = re.compile(r"(\d+)(?:\.(\d{1,2}))?%")


def bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket, 0..9999, for ``salt`` (contract 7.3, exactly as written there)."""
    digest = hashlib.blake2b((salt + "\x1f" + customer_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def parse_percent(text: object, *, most: int = BUCKETS) -> int:
    """``"16.01%"`` -> 1601 hundredths of a percent, exactly; a bare number is an error."""
    if not isinstance(text, str):
        raise ValueError(f"expected a percentage such as 5% or 2.5%, got {text!r}")
    m = _PERCENT.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected a percentage such as 5% or 2.5%, got {text!r}")
    whole, frac = m.group(1), (m.group(2) or "").ljust(2, "0")
    value = int(whole) * 100 + int(frac)
    if value > most:
        raise ValueError(f"{text} is more than {most / 100:g}%")
    return value


@dataclass(frozen=True, slots=True)
class TopologyArms:
    """What decides a topology's arms."""

    shadow: bool = False
    service: bool = False
    holdout: int = 0  # hundredths of a percent
    has_goal: bool = False


@dataclass(frozen=True)
class HoldoutCatalog:
    """The holdout settings of a catalog: the global control group and each topology's."""

    global_holdout: int = 0
    salt: str = DEFAULT_SALT
    topologies: Mapping[str, TopologyArms] = field(default_factory=dict)

    def arm(self, topology: str, customer_id: str) -> str:
        """The arm of a match of ``topology`` for ``customer_id``: the first that applies (7.3)."""
        t = self.topologies.get(topology)
        if t is None:
            return UNKNOWN
        if t.shadow:
            return SHADOW
        if not t.service and self.global_holdout and bucket(self.salt, customer_id) < self.global_holdout:
            return HOLDOUT_GLOBAL
        if t.holdout and bucket(f"{self.salt}/{topology}", customer_id) < t.holdout:
            return HOLDOUT_TOPOLOGY
        return TREATED

    @classmethod
    def from_folder(cls, folder: str | Path) -> HoldoutCatalog:
        """Read the arm-deciding keys of a topologies folder. Raises :class:`ConfigError`."""
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"no topologies folder at {root}")
        global_holdout, salt = 0, DEFAULT_SALT
        topologies: dict[str, TopologyArms] = {}
        for path in sorted(root.glob("*.yaml")):
            doc = _load(path)
            try:
                if path.name == "policies.yaml":
                    holdout = doc.get("holdout") or {}
                    if not isinstance(holdout, Mapping):
                        raise ValueError("holdout must be a mapping of percent and salt")
                    global_holdout = parse_percent(holdout.get("percent", "0%"), most=5000)
                    salt = str(holdout.get("salt", DEFAULT_SALT))
                    continue
                name = doc.get("topology")
                if not isinstance(name, str):
                    raise ValueError("no topology name")
                topologies[name] = TopologyArms(
                    shadow=str(doc.get("mode", "live")) == "shadow",
                    service=str(doc.get("service", "false")).lower() == "true",
                    holdout=parse_percent(doc.get("holdout", "0%")),
                    has_goal=doc.get("goal") is not None,
                )
            except ValueError as exc:
                raise ConfigError(f"{path}: {exc}") from exc
        return cls(global_holdout, salt, topologies)


def _load(path: Path) -> Mapping[str, Any]:
    try:
        doc = load_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top")
    return doc
