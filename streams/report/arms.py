"""Which arm a fired match belongs to (contract 7.3), from a catalog's holdout settings.

The report reads arms from the audit records wherever they show one (a
``held_out`` or ``shadow`` decision, a GOAL record's cause, an ``arm`` field).
A match whose decisions were all blocked, outranked or skipped, and whose goal
gave no record yet, shows none: then the arm is computed here from the
catalog the user names, loaded by the same loader as replay and the workers,
with the one bucket function (:func:`streams.decisions.bucket`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.decisions import bucket
from streams.topology.loader import load_folder
from streams.topology.model import Catalog

TREATED = "treated"
SHADOW = "shadow"
HOLDOUT_GLOBAL = "holdout_global"
HOLDOUT_TOPOLOGY = "holdout_topology"
UNKNOWN = "unknown"  # no record shows the arm and no catalog was given
ARMS = (TREATED, SHADOW, HOLDOUT_GLOBAL, HOLDOUT_TOPOLOGY)
CONTROL_ARMS = (HOLDOUT_GLOBAL, HOLDOUT_TOPOLOGY)
DEFAULT_SALT = "tactful"


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
    def from_catalog(cls, catalog: Catalog) -> HoldoutCatalog:
        """The arm-deciding settings of a loaded catalog."""
        return cls(
            catalog.policies.holdout,
            catalog.policies.salt,
            {
                t.name: TopologyArms(shadow=t.shadow, service=t.service, holdout=t.holdout, has_goal=t.goal is not None)
                for t in catalog.topologies
            },
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> HoldoutCatalog:
        """Load a topologies folder, as replay and the workers do. Raises :class:`TopologyError`."""
        return cls.from_catalog(load_folder(folder))
