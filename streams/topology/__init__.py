"""Topologies: loading, checking and the compiled model the engine runs."""

from streams.topology.loader import load_folder
from streams.topology.model import Catalog, Policies, Topology

__all__ = ["Catalog", "Policies", "Topology", "load_folder"]
