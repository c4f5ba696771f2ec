"""tactful: real-time interaction management on Kafka.

The public API is small and pinned by ``tests/test_public_api.py``: load a
topologies folder, drive the pure engine over events (in memory, as ``replay``
does, or from a live worker), and read the decisions.
"""

from streams.decisions import Decision
from streams.engine import CustomerState, DictStore, Engine, Outcome, Processor
from streams.errors import TactfulError
from streams.events import Event, validate_event
from streams.replay import run as replay
from streams.topology import Catalog, load_folder

__all__ = [
    "Catalog",
    "CustomerState",
    "Decision",
    "DictStore",
    "Engine",
    "Event",
    "Outcome",
    "Processor",
    "TactfulError",
    "load_folder",
    "replay",
    "validate_event",
]
__version__ = "0.1.0"
