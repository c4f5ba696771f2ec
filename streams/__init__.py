"""tactful: real-time interaction management on Kafka.

The public API is small and pinned by ``tests/test_public_api.py``.
"""

from streams.errors import TactfulError
from streams.events import Event, validate_event

__all__ = ["Event", "TactfulError", "validate_event"]
__version__ = "0.1.0"
